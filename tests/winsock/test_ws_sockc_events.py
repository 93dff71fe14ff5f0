"""Ported from Wine's dlls/ws2_32/tests/sock.c test_events (run against real Windows): network
events through WSAEventSelect ("event") and WSAAsyncSelect ("message"), the same sequences in
both modes as sock.c runs them. Our code; `todo_wine` checks count as Windows' behaviour. The
AcceptEx, overlapped-WSARecv and out-of-band parts are left to the overlapped I/O work.
"""

from __future__ import annotations

import pytest

import ustack.winsock as W

from .wsutil import bind, name_of, sa, set_nonblocking, tcp, tcp_socketpair, udp

WM_USER = 0x0400
ALL = W.FD_ACCEPT | W.FD_CLOSE | W.FD_CONNECT | W.FD_OOB | W.FD_READ | W.FD_WRITE
LOOP = "127.0.0.1"


def _err(flag: int) -> int:
    return (flag >> 16) & 0xFFFF


class Ctx:
    """sock.c's event_test_ctx: one window or one event object, and the socket last selected."""

    def __init__(self, net, is_message: bool) -> None:
        self.net, self.ws, self.is_message = net, net.ws, is_message
        self.window = self.ws.create_window() if is_message else None
        self.event = None if is_message else self.ws.WSACreateEvent()
        self.socket = None

    def select(self, s: int, events: int) -> None:
        if self.is_message:
            r = self.ws.WSAAsyncSelect(s, self.window, WM_USER, events)
        else:
            r = self.ws.WSAEventSelect(s, self.event, events)
        assert r == 0, self.ws.WSAGetLastError()
        self.socket = s

    def check(self, flag1: int, flag2: int = 0, timeout_ms: int = 0) -> None:
        """sock.c's check_events: the events expected next (a low word of FD bits and a high word
        of error), in order for messages, and then nothing else."""
        ws = self.ws
        if self.is_message:
            got = []
            for flag in (flag1, flag2):
                if flag:
                    m = self.window.GetMessage(timeout_s=timeout_ms / 1000.0)
                    assert m is not None, f"expected message {flag:#x}"
                    got.append((m.wParam, m.lParam))
            assert got == [(self.socket, f) for f in (flag1, flag2) if f]
            extra = self.window.PeekMessage()
            assert extra is None, f"unexpected message {extra.lParam:#x}"
            return
        r = ws.WSAWaitForMultipleEvents(1, [self.event], False, timeout_ms, False)
        assert r == (W.WSA_WAIT_EVENT_0 if flag1 | flag2 else W.WSA_WAIT_TIMEOUT), r
        ne = W.WSANETWORKEVENTS()
        for i in range(W.FD_MAX_EVENTS):
            ne.iErrorCode[i] = 0x7777
        assert ws.WSAEnumNetworkEvents(self.socket, self.event, ne) == 0
        want = (flag1 | flag2) & 0xFFFF
        assert ne.lNetworkEvents == want, f"got {ne.lNetworkEvents:#x}, expected {want:#x}"
        for flag in (flag1, flag2):
            if flag:
                assert ne.iErrorCode[(flag & 0xFFFF).bit_length() - 1] == _err(flag)

    def reselect(self, s: int, mask: int, pending: int, *, directly: bool = True) -> None:
        """sock.c's re-registration steps: registering `mask` again (`directly`, and then after a
        registration with 0) re-posts the event still `pending` for WSAAsyncSelect only; for
        WSAEventSelect it was reported already and nothing new comes."""
        for via_zero in ((False, True) if directly else (True,)):
            if via_zero:
                self.select(s, 0)
            self.select(s, mask)
            if self.is_message:
                self.check(pending, 0, 200)
            self.check(0)


@pytest.fixture(params=["event", "message"])
def ctx(request, net) -> Ctx:
    return Ctx(net, request.param == "message")


def _listener(ws) -> tuple[int, tuple[str, int]]:
    lst = tcp(ws)
    bind(ws, lst, LOOP, 0)
    return lst, name_of(ws, lst)


def _connect(ws, name) -> int:
    c = tcp(ws)
    assert ws.connect(c, sa(*name), 16) == 0, ws.WSAGetLastError()
    return c


def _sync_recv(ws, s: int, n: int) -> int:
    """sock.c's sync_recv: a receive that waits for data even on a nonblocking socket."""
    assert ws.select(0, W.FD_SET(s), None, None, W.TIMEVAL(1, 0)) == 1
    buf = bytearray(max(n, 1))
    return ws.recv(s, buf, n, 0)


def test_item_42_sockc_accept_events(ctx) -> None:
    """sock.c test_accept_events: FD_ACCEPT once per pending connection; re-registering (also after
    a registration with 0) re-posts it for WSAAsyncSelect only; a second arrival signals it again
    for WSAEventSelect only; accept re-enables it while another is pending; registering after
    the connect, or with FD_ACCEPT after a subset without it, reports it; not after accept; an
    event-mode record not yet enumerated signals again when re-selected; the accepted socket's
    inherited registration gives FD_WRITE, not FD_CONNECT."""
    ws, msg = ctx.ws, ctx.is_message
    mask = W.FD_CONNECT | W.FD_READ | W.FD_OOB | W.FD_ACCEPT
    lst, name = _listener(ws)
    ctx.select(lst, mask)
    assert ws.listen(lst, 2) == 0
    ctx.check(0)
    c1 = _connect(ws, name)
    ctx.check(W.FD_ACCEPT, 0, 200)
    ctx.check(0)
    ctx.reselect(lst, mask, W.FD_ACCEPT)
    c2 = _connect(ws, name)
    if not msg:
        ctx.check(W.FD_ACCEPT, 0, 200)
    ctx.check(0)
    assert ws.closesocket(ws.accept(lst, None, None)) == 0
    ctx.check(W.FD_ACCEPT, 0, 200)
    ctx.check(0)
    assert ws.closesocket(ws.accept(lst, None, None)) == 0
    ctx.check(0)
    for s in (c1, c2):
        assert ws.closesocket(s) == 0
    c = _connect(ws, name)
    ctx.check(W.FD_ACCEPT, 0, 200)
    assert ws.closesocket(ws.accept(lst, None, None)) == 0 and ws.closesocket(c) == 0
    ctx.check(0, 0, 200)
    assert ws.closesocket(lst) == 0

    lst, name = _listener(ws)  # connect and then select
    assert ws.listen(lst, 2) == 0
    c = _connect(ws, name)
    ctx.select(lst, mask)
    ctx.check(W.FD_ACCEPT, 0, 200)
    assert ws.closesocket(ws.accept(lst, None, None)) == 0 and ws.closesocket(c) == 0
    if not msg:  # a subset containing FD_ACCEPT first
        ctx.select(lst, mask)
        c = _connect(ws, name)
        assert ws.WSAWaitForMultipleEvents(1, [ctx.event], False, 200, False) == W.WSA_WAIT_EVENT_0
        ctx.select(lst, mask & ~W.FD_ACCEPT)
        assert ws.WSAWaitForMultipleEvents(1, [ctx.event], False, 0, False) == W.WSA_WAIT_EVENT_0
        assert ws.WSAResetEvent(ctx.event)
        ctx.select(lst, mask & ~W.FD_ACCEPT)
        assert ws.WSAWaitForMultipleEvents(1, [ctx.event], False, 0, False) == W.WSA_WAIT_TIMEOUT
        ctx.select(lst, mask)
        assert ws.WSAWaitForMultipleEvents(1, [ctx.event], False, 0, False) == W.WSA_WAIT_EVENT_0
        ctx.check(W.FD_ACCEPT)
        assert ws.closesocket(ws.accept(lst, None, None)) == 0 and ws.closesocket(c) == 0
    ctx.select(lst, mask & ~W.FD_ACCEPT)  # a subset not containing FD_ACCEPT first
    c = _connect(ws, name)
    ctx.select(lst, mask)
    ctx.check(W.FD_ACCEPT, 0, 200)
    assert ws.closesocket(ws.accept(lst, None, None)) == 0 and ws.closesocket(c) == 0
    ctx.select(lst, mask & ~W.FD_ACCEPT)  # accept() before selecting
    c = _connect(ws, name)
    ctx.net.me.sleep(0.2)
    server = ws.accept(lst, None, None)
    ctx.select(lst, mask)
    ctx.check(0, 0, 200)
    assert ws.closesocket(server) == 0 and ws.closesocket(c) == 0
    assert ws.closesocket(lst) == 0

    lst, name = _listener(ws)  # the accepted socket inherits the registration
    assert ws.listen(lst, 2) == 0
    c = _connect(ws, name)
    ctx.select(lst, mask | W.FD_WRITE)
    ctx.check(W.FD_ACCEPT, 0, 200)
    server = ws.accept(lst, None, None)
    ctx.socket = server
    ctx.check(W.FD_WRITE, 0, 200)
    ctx.check(0)


def test_item_40_sockc_connect_events(ctx) -> None:
    """sock.c test_connect_events: a registered connect reports FD_CONNECT then FD_WRITE;
    re-registering re-posts FD_WRITE (WSAAsyncSelect) or nothing (WSAEventSelect); an accepted
    socket's registration gives FD_WRITE; a socket connected before registering gets FD_WRITE
    (WSAAsyncSelect) or FD_CONNECT and FD_WRITE (WSAEventSelect); a registration without
    FD_CONNECT during the connect, then one with it: FD_WRITE (message) or the held FD_CONNECT
    (event); UDP: registering an unbound socket gives FD_WRITE (message) or nothing (event), its
    connect FD_WRITE (message) or FD_CONNECT and FD_WRITE (event)."""
    ws, msg = ctx.ws, ctx.is_message
    lst, name = _listener(ws)
    assert ws.listen(lst, 2) == 0
    client = tcp(ws)
    ctx.select(client, ALL)
    ctx.check(0)
    r = ws.connect(client, sa(*name), 16)
    assert r == 0 or ws.WSAGetLastError() == W.WSAEWOULDBLOCK
    ctx.check(W.FD_CONNECT, W.FD_WRITE, 200)
    ctx.check(0)
    ctx.reselect(client, ALL, W.FD_WRITE, directly=False)
    server = ws.accept(lst, None, None)
    ctx.select(server, ALL & ~W.FD_CLOSE)
    ctx.check(W.FD_WRITE, 0, 200)
    assert ws.closesocket(client) == 0 and ws.closesocket(server) == 0

    client = _connect(ws, name)  # connect and then select
    server = ws.accept(lst, None, None)
    assert ws.send(client, b"data\0", 5, 0) == 5
    ctx.select(client, ALL)
    if msg:
        ctx.check(W.FD_WRITE, 0, 200)
    else:
        ctx.check(W.FD_CONNECT, W.FD_WRITE, 200)
    assert ws.closesocket(client) == 0 and ws.closesocket(server) == 0

    client = tcp(ws)  # a subset not containing FD_CONNECT first
    ctx.select(client, ALL & ~W.FD_CONNECT)
    r = ws.connect(client, sa(*name), 16)
    assert r == 0 or ws.WSAGetLastError() == W.WSAEWOULDBLOCK
    server = ws.accept(lst, None, None)
    ctx.check(W.FD_WRITE, 0, 200)
    ctx.select(client, ALL & ~W.FD_CLOSE)
    if msg:
        ctx.check(W.FD_WRITE, 0, 200)
    else:
        ctx.check(W.FD_CONNECT, 0, 200)
    assert ws.closesocket(client) == 0 and ws.closesocket(server) == 0

    client, server = udp(ws), udp(ws)  # UDP
    ctx.select(client, ALL & ~W.FD_CLOSE)
    if msg:
        ctx.check(W.FD_WRITE, 0, 200)
    ctx.check(0)
    bind(ws, server, LOOP, 0)
    assert ws.connect(client, sa(LOOP, 0), 16) == 0
    if msg:
        ctx.check(W.FD_WRITE, 0, 200)
    else:
        ctx.check(W.FD_CONNECT, W.FD_WRITE, 200)
    ctx.check(0)


def test_item_43_sockc_write_events(ctx) -> None:
    """sock.c test_write_events: FD_WRITE once on registering a connected socket, re-posted by
    WSAAsyncSelect re-registration only; a send, or the peer's receive, changes nothing; after
    nonblocking sends fill the buffer (each taken whole) up to WSAEWOULDBLOCK and the peer
    drains it, FD_WRITE comes once; a registration without FD_WRITE reports FD_CONNECT (event
    mode: the connect happened before it) and adding FD_WRITE reports it; a successful send
    does not consume a pending FD_WRITE."""
    ws, msg = ctx.ws, ctx.is_message
    client, server = tcp_socketpair(ws)
    set_nonblocking(ws, client)
    ctx.select(server, ALL)
    ctx.check(W.FD_WRITE, 0, 200)
    ctx.check(0)
    ctx.reselect(server, ALL, W.FD_WRITE)
    assert ws.send(server, b"data\0", 5, 0) == 5
    ctx.check(0)
    assert _sync_recv(ws, client, 1 << 20) == 5
    ctx.check(0)
    big = bytes(1 << 20)
    for _ in range(100):
        r = ws.send(server, big, len(big), 0)
        if r < 0:
            break
        assert r == len(big)
    assert r == W.SOCKET_ERROR and ws.WSAGetLastError() == W.WSAEWOULDBLOCK
    buf = bytearray(1 << 20)
    for _ in range(1000):
        if ws.recv(client, buf, len(buf), 0) <= 0:
            assert ws.WSAGetLastError() == W.WSAEWOULDBLOCK
            if ws.select(0, W.FD_SET(client), None, None, W.TIMEVAL(0, 200000)) == 0:
                break
    ctx.check(W.FD_WRITE, 0, 200)
    ctx.check(0)
    ctx.reselect(server, ALL, W.FD_WRITE, directly=False)

    client, server = tcp_socketpair(ws)  # a subset not containing FD_WRITE first
    set_nonblocking(ws, client)
    assert ws.send(client, b"data\0", 5, 0) == 5
    ctx.select(client, W.FD_ACCEPT | W.FD_CONNECT | W.FD_OOB | W.FD_READ)
    if not msg:
        ctx.check(W.FD_CONNECT, 0, 200)
    ctx.check(0)
    ctx.select(client, W.FD_ACCEPT | W.FD_CONNECT | W.FD_OOB | W.FD_READ | W.FD_WRITE)
    ctx.check(W.FD_WRITE, 0, 200)
    ctx.check(0)

    client, server = tcp_socketpair(ws)  # a send does not clear FD_WRITE
    ctx.select(server, W.FD_ACCEPT | W.FD_CONNECT | W.FD_OOB | W.FD_READ | W.FD_WRITE)
    assert ws.send(server, b"data\0", 5, 0) == 5
    ctx.check(W.FD_WRITE, 0, 200)


def test_item_43_sockc_read_events(ctx) -> None:
    """sock.c test_read_events: FD_READ once for arriving data; re-registration re-posts it for
    WSAAsyncSelect only; more data arriving signals it again for WSAEventSelect only; a partial
    recv brings it back; a recv that fails (WSAEFAULT) brings it back for WSAAsyncSelect only;
    after each 1-byte receive it comes back while data is left; data that arrived while
    unregistered is reported on registering (not if it was read meanwhile); while unregistered
    nothing is recorded, and registering for FD_READ and FD_WRITE then reports both."""
    ws, msg = ctx.ws, ctx.is_message
    mask = ALL & ~W.FD_WRITE
    client, server = tcp_socketpair(ws)
    set_nonblocking(ws, client)
    ctx.select(server, mask)
    ctx.check(0)
    assert ws.send(client, b"data\0", 5, 0) == 5
    ctx.check(W.FD_READ, 0, 200)
    ctx.check(0)
    ctx.reselect(server, mask, W.FD_READ)
    assert ws.send(client, b"data\0", 5, 0) == 5
    if not msg:
        ctx.check(W.FD_READ, 0, 200)
    ctx.check(0)
    buf = bytearray(8)
    assert ws.recv(server, buf, 2, 0) == 2
    ctx.check(W.FD_READ, 0, 200)
    ctx.check(0)
    assert ws.recv(server, buf, -1, 0) == W.SOCKET_ERROR
    assert ws.WSAGetLastError() == W.WSAEFAULT
    if msg:
        ctx.check(W.FD_READ, 0, 200)
    ctx.check(0)
    for i in range(8):
        assert _sync_recv(ws, server, 1) == 1
        if i < 7:
            ctx.check(W.FD_READ, 0, 200)
        ctx.check(0)

    ctx.select(server, 0)  # data sent while not selecting
    assert ws.send(client, b"data\0", 5, 0) == 5
    ctx.select(server, mask)
    ctx.check(W.FD_READ, 0, 200)
    assert ws.recv(server, buf, 5, 0) == 5
    ctx.select(server, 0)
    assert ws.send(client, b"data\0", 5, 0) == 5
    assert _sync_recv(ws, server, 5) == 5
    ctx.select(server, mask & ~W.FD_CLOSE)
    ctx.check(0, 0, 200)

    fds = [W.WSAPOLLFD(server, W.POLLIN, 0)]  # data sent while polling, not selecting
    ctx.select(server, 0)
    assert ws.send(client, b"data\0", 5, 0) == 5
    assert ws.WSAPoll(fds, 1, 500) == 1
    ctx.check(0)
    ctx.select(server, W.FD_ACCEPT | W.FD_CONNECT | W.FD_OOB | W.FD_READ | W.FD_WRITE)
    ctx.check(W.FD_READ, W.FD_WRITE, 200)
    ctx.check(0)
    assert _sync_recv(ws, server, 5) == 5


def test_item_45_sockc_close_events(ctx) -> None:
    """sock.c test_close_events: the peer's closesocket or SD_SEND gives FD_CLOSE (error 0) once,
    re-posted by WSAAsyncSelect re-registration only; recv then returns 0 and nothing follows;
    no other shutdown posts anything, even to a socket that shut SD_BOTH, until the peer's
    SD_SEND; with data unread FD_CLOSE comes at once after FD_READ and a partial recv still
    brings FD_READ back; close-then-select and selecting FD_CLOSE after a subset report it; a
    reset gives FD_CLOSE with WSAECONNABORTED."""
    ws = ctx.ws
    mask = ALL & ~W.FD_WRITE
    client, server = tcp_socketpair(ws)
    ctx.select(server, mask)
    assert ws.closesocket(client) == 0
    ctx.check(W.FD_CLOSE, 0, 1000)
    ctx.check(0)
    ctx.reselect(server, mask, W.FD_CLOSE)
    assert ws.recv(server, bytearray(5), 5, 0) == 0
    ctx.check(0)
    assert ws.closesocket(server) == 0

    client, server = tcp_socketpair(ws)  # shutdown(remote end, SD_SEND)
    ctx.select(server, mask)
    assert ws.shutdown(client, W.SD_SEND) == 0
    ctx.check(W.FD_CLOSE, 0, 1000)
    ctx.check(0)
    assert ws.closesocket(client) == 0
    ctx.check(0, 0, 200)
    assert ws.closesocket(server) == 0

    client, server = tcp_socketpair(ws)  # no other shutdown() call generates an event
    ctx.select(server, mask)
    assert ws.shutdown(client, W.SD_RECEIVE) == 0 and ws.shutdown(server, W.SD_BOTH) == 0
    ctx.check(0, 0, 200)
    assert ws.shutdown(client, W.SD_SEND) == 0
    ctx.check(W.FD_CLOSE, 0, 200)
    ctx.check(0)

    client, server = tcp_socketpair(ws)  # data sent before closesocket()
    ctx.select(server, mask)
    assert ws.send(client, b"data\0", 5, 0) == 5
    ctx.check(W.FD_READ, 0, 200)
    assert ws.closesocket(client) == 0
    ctx.check(W.FD_CLOSE, 0, 200)
    assert ws.recv(server, bytearray(5), 3, 0) == 3
    ctx.check(W.FD_READ, 0, 200)
    assert ws.recv(server, bytearray(5), 5, 0) == 2
    ctx.check(0)

    client, server = tcp_socketpair(ws)  # close and then select
    assert ws.closesocket(client) == 0
    ctx.select(server, mask)
    ctx.check(W.FD_CLOSE, 0, 200)
    client, server = tcp_socketpair(ws)  # a subset not containing FD_CLOSE first
    ctx.select(server, mask & ~W.FD_CLOSE)
    assert ws.closesocket(client) == 0
    ctx.check(0, 0, 200)
    ctx.select(server, mask)
    ctx.check(W.FD_CLOSE, 0, 200)

    client, server = tcp_socketpair(ws)  # a reset
    ctx.select(server, mask)
    assert ws.setsockopt(client, W.SOL_SOCKET, W.SO_LINGER, W.LINGER(1, 0), 4) == 0
    assert ws.closesocket(client) == 0
    aborted = W.FD_CLOSE | (W.WSAECONNABORTED << 16)
    ctx.check(aborted, 0, 200)
    ctx.check(0)
    ctx.reselect(server, mask, aborted)


def test_item_47_sockc_enum_network_events_repeat(net) -> None:
    """sock.c test_WSAEnumNetworkEvents: registering FD_READ | FD_WRITE five times, enumerating
    each time (with and without the event object): a bound, unconnected TCP socket reports
    nothing; a bound UDP socket and a connected TCP socket report FD_WRITE the first time only;
    iErrorCode entries of unreported events are left alone."""
    ws = net.ws
    for with_event in (True, False):
        for kind in ("tcp", "udp", "pair"):
            if kind == "pair":
                s, _peer = tcp_socketpair(ws)
            else:
                s = tcp(ws) if kind == "tcp" else udp(ws)
                bind(ws, s, "0.0.0.0", 0)
            ev = ws.WSACreateEvent()
            for j in range(5):
                assert ws.WSAEventSelect(s, ev, W.FD_READ | W.FD_WRITE) == 0
                ne = W.WSANETWORKEVENTS()
                ne.lNetworkEvents = 0x0ABABABA
                for k in range(W.FD_MAX_EVENTS):
                    ne.iErrorCode[k] = -0x54545455  # 0xABABABAB
                assert ws.WSAEnumNetworkEvents(s, ev if with_event else None, ne) == 0
                want = W.FD_WRITE if kind != "tcp" and j == 0 else 0
                assert ne.lNetworkEvents == want, (kind, j)
                for k in range(W.FD_MAX_EVENTS):
                    assert ne.iErrorCode[k] == (0 if want & (1 << k) else -0x54545455), (kind, j, k)
            assert ws.closesocket(s) == 0
