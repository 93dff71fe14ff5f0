"""Section H: WSAAsyncSelect, WSAEventSelect, WSAEnumNetworkEvents, WSAWaitForMultipleEvents."""

from __future__ import annotations

import ctypes

from ustack.winsock import (
    FD_ACCEPT,
    FD_CLOSE,
    FD_CLOSE_BIT,
    FD_CONNECT,
    FD_CONNECT_BIT,
    FD_READ,
    FD_READ_BIT,
    FD_WRITE,
    FIONBIO,
    LINGER,
    SO_LINGER,
    SOL_SOCKET,
    WSA_INFINITE,
    WSA_INVALID_HANDLE,
    WSA_INVALID_PARAMETER,
    WSA_WAIT_EVENT_0,
    WSA_WAIT_FAILED,
    WSA_WAIT_TIMEOUT,
    WSAECONNABORTED,
    WSAECONNREFUSED,
    WSAEINVAL,
    WSAEWOULDBLOCK,
    WSAGETSELECTERROR,
    WSAGETSELECTEVENT,
    WSANETWORKEVENTS,
)

from .wsutil import (
    ME,
    PEER,
    accept_in_task,
    bind,
    fail,
    listener,
    recv_some,
    sa,
    send_all,
    sendto,
    tcp,
    udp,
)

WM_SOCK = 0x0401
ALL = FD_READ | FD_WRITE | FD_ACCEPT | FD_CONNECT | FD_CLOSE


def _events(win, timeout_s: float = 0.5) -> list[tuple[int, int, int]]:
    """Messages until `timeout_s` of quiet: (socket, event, error)."""
    out = []
    while (m := win.GetMessage(timeout_s=timeout_s)) is not None:
        assert m.message == WM_SOCK
        out.append((m.wParam, WSAGETSELECTEVENT(m.lParam), WSAGETSELECTERROR(m.lParam)))
    return out


def _connected_pair(net, port: int) -> tuple[int, int]:
    """(client on me, accepted socket on peer)."""
    acc = accept_in_task(net, listener(net.pws, port))
    c = tcp(net.ws)
    assert net.ws.connect(c, sa(PEER, port), 16) == 0
    (a,) = acc.result()
    return c, a


def test_item_38_registration_makes_nonblocking(net) -> None:
    """WSAAsyncSelect/WSAEventSelect make the socket nonblocking; FIONBIO=0 then -> WSAEINVAL until
    cleared."""
    ws = net.ws
    s = udp(ws)
    bind(ws, s)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(s, win, WM_SOCK, FD_READ) == 0
    fail(ws, ws.recv(s, bytearray(4), 4, 0), WSAEWOULDBLOCK)
    fail(ws, ws.ioctlsocket(s, FIONBIO, ctypes.c_ulong(0)), WSAEINVAL)
    assert ws.WSAAsyncSelect(s, win, 0, 0) == 0
    assert ws.ioctlsocket(s, FIONBIO, ctypes.c_ulong(0)) == 0
    ev = ws.WSACreateEvent()
    t = udp(ws)
    bind(ws, t)
    assert ws.WSAEventSelect(t, ev, FD_READ) == 0
    fail(ws, ws.recv(t, bytearray(4), 4, 0), WSAEWOULDBLOCK)
    fail(ws, ws.ioctlsocket(t, FIONBIO, ctypes.c_ulong(0)), WSAEINVAL)
    assert ws.WSAEventSelect(t, None, 0) == 0
    assert ws.ioctlsocket(t, FIONBIO, ctypes.c_ulong(0)) == 0


def test_item_39_new_registration_replaces_old(net) -> None:
    """A new registration replaces the old one; each message carries one event."""
    ws, pws = net.ws, net.pws
    s = udp(ws)
    bind(ws, s, ME, 8300)
    w1, w2 = ws.create_window("one"), ws.create_window("two")
    assert ws.WSAAsyncSelect(s, w1, WM_SOCK, FD_READ | FD_WRITE) == 0
    assert _events(w1) == [(s, FD_WRITE, 0)]
    assert ws.WSAAsyncSelect(s, w2, WM_SOCK, FD_READ) == 0
    sendto(pws, udp(pws), b"x", ME, 8300)
    assert _events(w2) == [(s, FD_READ, 0)]
    assert _events(w1, 0.1) == []


def test_item_40_connect_success_order(net) -> None:
    """Nonblocking connect success posts FD_CONNECT (error 0) then FD_WRITE, in that order."""
    ws = net.ws
    acc = accept_in_task(net, listener(net.pws, 8310))
    s = tcp(ws)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(s, win, WM_SOCK, ALL) == 0
    fail(ws, ws.connect(s, sa(PEER, 8310), 16), WSAEWOULDBLOCK)
    assert _events(win) == [(s, FD_CONNECT, 0), (s, FD_WRITE, 0)]
    acc.join()


def test_item_40_connect_failure_error_in_high_word(net) -> None:
    """Nonblocking connect failure posts FD_CONNECT with the error in the high word (0x274D0010 for
    refused)."""
    ws = net.ws
    s = tcp(ws)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(s, win, WM_SOCK, ALL) == 0
    fail(ws, ws.connect(s, sa(PEER, 8320), 16), WSAEWOULDBLOCK)
    m = win.GetMessage(timeout_s=5.0)
    assert m.lParam == 0x274D0010 and WSAGETSELECTERROR(m.lParam) == WSAECONNREFUSED
    assert _events(win) == []


def test_item_42_reregistering_async_reposts_conditions(net) -> None:
    """Re-registering with WSAAsyncSelect re-posts every condition currently true (FD_READ, FD_WRITE)."""
    ws, pws = net.ws, net.pws
    s = udp(ws)
    bind(ws, s, ME, 8330)
    sendto(pws, udp(pws), b"x", ME, 8330)
    win = ws.create_window()
    net.me.sleep(0.01)
    assert ws.WSAAsyncSelect(s, win, WM_SOCK, FD_READ | FD_WRITE) == 0
    assert sorted(_events(win)) == [(s, FD_READ, 0), (s, FD_WRITE, 0)]
    assert ws.WSAAsyncSelect(s, win, WM_SOCK, FD_READ | FD_WRITE) == 0
    assert sorted(_events(win)) == [(s, FD_READ, 0), (s, FD_WRITE, 0)]


def test_item_42_reregistering_event_select_does_not_resignal(net) -> None:
    """Re-registering with WSAEventSelect does not re-signal what was already reported."""
    ws, pws = net.ws, net.pws
    s = udp(ws)
    bind(ws, s, ME, 8340)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(s, ev, FD_READ | FD_WRITE) == 0
    ne = WSANETWORKEVENTS()
    assert ws.WSAEnumNetworkEvents(s, ev, ne) == 0 and ne.lNetworkEvents == FD_WRITE
    sendto(pws, udp(pws), b"x", ME, 8340)
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 1000, False) == WSA_WAIT_EVENT_0
    assert ws.WSAEnumNetworkEvents(s, ev, ne) == 0 and ne.lNetworkEvents == FD_READ
    assert ws.WSAEventSelect(s, ev, FD_READ | FD_WRITE) == 0
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 200, False) == WSA_WAIT_TIMEOUT
    assert ws.WSAEnumNetworkEvents(s, None, ne) == 0 and ne.lNetworkEvents == 0


def test_item_43_fd_read_is_level_triggered(net) -> None:
    """FD_READ is re-enabled by recv and fires again after a partial recv; no new message without a recv."""
    ws, pws = net.ws, net.pws
    c, a = _connected_pair(net, 8350)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(c, win, WM_SOCK, FD_READ) == 0
    send_all(pws, a, b"abcdef")
    send_all(pws, a, b"ghi")
    assert _events(win) == [(c, FD_READ, 0)]  # one message, however many segments arrive
    assert recv_some(ws, c, 2) == b"ab"
    assert _events(win) == [(c, FD_READ, 0)]  # partial recv: posted again
    assert recv_some(ws, c, 100) == b"cdefghi"
    assert _events(win, 0.2) == []


def test_item_43_fd_write_only_after_wouldblock(net) -> None:
    """FD_WRITE comes again only after a send failed with WSAEWOULDBLOCK, and only once space has
    freed up (not at the failing send itself); a successful send does not re-enable it."""
    from ustack.winsock import SO_RCVBUF, SO_SNDBUF

    from .wsutil import setopt_int

    ws, pws = net.ws, net.pws
    lst = tcp(pws)
    assert setopt_int(pws, lst, SOL_SOCKET, SO_RCVBUF, 2000) == 0  # inherited: a small window
    bind(pws, lst, PEER, 8360)
    assert pws.listen(lst, 5) == 0
    acc = accept_in_task(net, lst)
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 8360), 16) == 0
    (a,) = acc.result()
    assert setopt_int(ws, c, SOL_SOCKET, SO_SNDBUF, 4096) == 0
    win = ws.create_window()
    assert ws.WSAAsyncSelect(c, win, WM_SOCK, FD_WRITE) == 0
    assert _events(win) == [(c, FD_WRITE, 0)]
    big = b"y" * 10000
    assert ws.send(c, big, len(big), 0) == len(big)  # not full yet: taken whole (item 70)
    assert _events(win, 0.5) == []  # a successful send does not re-enable FD_WRITE
    fail(ws, ws.send(c, b"z", 1, 0), WSAEWOULDBLOCK)  # now the buffer is over SO_SNDBUF
    assert _events(win, 1.0) == []  # re-enabled, but no space yet: nothing posted
    fail(ws, ws.send(c, b"z", 1, 0), WSAEWOULDBLOCK)
    assert _events(win, 0.5) == []
    pws.ioctlsocket(a, FIONBIO, ctypes.c_ulong(1))
    got = 0
    for _ in range(200):
        buf = bytearray(65536)
        r = pws.recv(a, buf, len(buf), 0)
        got += max(r, 0)
        if got >= len(big):
            break
        net.peer.sleep(0.05)
    assert got == len(big)
    assert _events(win) == [(c, FD_WRITE, 0)]  # space again: posted exactly once
    assert ws.send(c, b"more", 4, 0) == 4
    assert _events(win, 0.5) == []


def test_item_43_fd_accept_reenabled_by_accept(net) -> None:
    """FD_ACCEPT is re-enabled by accept and fires again while more connections are pending."""
    ws, pws = net.ws, net.pws
    lst = listener(ws, 8370)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(lst, win, WM_SOCK, FD_ACCEPT) == 0
    for _ in range(2):
        assert pws.connect(tcp(pws), sa(ME, 8370), 16) == 0
    assert _events(win) == [(lst, FD_ACCEPT, 0)]
    assert ws.accept(lst, None, None) != -1
    assert _events(win) == [(lst, FD_ACCEPT, 0)]
    assert ws.accept(lst, None, None) != -1
    assert _events(win, 0.2) == []


def test_item_45_fd_close_graceful(net) -> None:
    """FD_CLOSE after a graceful peer close carries error 0; recv then returns 0."""
    ws, pws = net.ws, net.pws
    c, a = _connected_pair(net, 8380)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(c, win, WM_SOCK, FD_READ | FD_CLOSE) == 0
    assert pws.closesocket(a) == 0
    assert _events(win) == [(c, FD_CLOSE, 0)]
    assert ws.recv(c, bytearray(10), 10, 0) == 0


def test_item_45_fd_close_after_reset_is_connaborted(net) -> None:
    """Peer RST -> FD_CLOSE with WSAECONNABORTED (10053), as real Windows posts it."""
    ws, pws = net.ws, net.pws
    c, a = _connected_pair(net, 8390)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(c, win, WM_SOCK, FD_READ | FD_CLOSE) == 0
    assert pws.setsockopt(a, SOL_SOCKET, SO_LINGER, LINGER(1, 0), 4) == 0
    assert pws.closesocket(a) == 0  # abortive: RST
    assert _events(win) == [(c, FD_CLOSE, WSAECONNABORTED)]


def test_item_45_local_close_posts_nothing(net) -> None:
    """Local shutdown or closesocket posts nothing to the local socket."""
    ws = net.ws
    c, _a = _connected_pair(net, 8400)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(c, win, WM_SOCK, FD_READ | FD_CLOSE) == 0
    assert ws.shutdown(c, 1) == 0
    assert _events(win, 0.5) == []
    assert ws.closesocket(c) == 0
    assert _events(win, 0.5) == []


def test_item_47_enum_network_events_copies_and_clears(net) -> None:
    """WSAEnumNetworkEvents copies and clears the record, resets the event, writes iErrorCode only for set
    bits."""
    ws = net.ws
    s = tcp(ws)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(s, ev, FD_CONNECT | FD_READ) == 0
    fail(ws, ws.connect(s, sa(PEER, 8410), 16), WSAEWOULDBLOCK)
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 5000, False) == WSA_WAIT_EVENT_0
    ne = WSANETWORKEVENTS()
    for i in range(10):
        ne.iErrorCode[i] = 777
    assert ws.WSAEnumNetworkEvents(s, ev, ne) == 0
    assert ne.lNetworkEvents == FD_CONNECT
    assert ne.iErrorCode[FD_CONNECT_BIT] == WSAECONNREFUSED
    assert [ne.iErrorCode[i] for i in range(10) if i != FD_CONNECT_BIT] == [777] * 9
    assert ev.signaled is False
    assert ws.WSAEnumNetworkEvents(s, None, ne) == 0 and ne.lNetworkEvents == 0
    fail(ws, ws.WSAEnumNetworkEvents(s, None, None), 10014)


def test_item_48_event_select_never_resets_event(net) -> None:
    """WSAEventSelect never resets the event object itself."""
    ws = net.ws
    s = udp(ws)
    bind(ws, s)
    ev = ws.WSACreateEvent()
    assert ws.WSASetEvent(ev)
    assert ws.WSAEventSelect(s, ev, FD_READ) == 0
    assert ev.signaled
    assert ws.WSAEventSelect(s, ev, 0) == 0
    assert ws.WSAEventSelect(s, ev, FD_READ) == 0
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 0, False) == WSA_WAIT_EVENT_0


def test_item_49_wait_for_multiple_events(net) -> None:
    """WSAWaitForMultipleEvents returns the lowest signalled index; 0 or > 64 events -> WSA_INVALID_PARAMETER;
    a bad handle -> WSA_INVALID_HANDLE; it times out in virtual time."""
    ws = net.ws
    evs = [ws.WSACreateEvent() for _ in range(4)]
    assert ws.WSASetEvent(evs[3]) and ws.WSASetEvent(evs[1])
    assert ws.WSAWaitForMultipleEvents(4, evs, False, 0, False) == WSA_WAIT_EVENT_0 + 1
    assert ws.WSAWaitForMultipleEvents(4, evs, True, 0, False) == WSA_WAIT_TIMEOUT
    assert ws.WSAResetEvent(evs[1])
    assert ws.WSAWaitForMultipleEvents(4, evs, False, 0, False) == WSA_WAIT_EVENT_0 + 3
    assert ws.WSAWaitForMultipleEvents(0, [], False, 0, False) == WSA_WAIT_FAILED
    assert ws.WSAGetLastError() == WSA_INVALID_PARAMETER
    many = [ws.WSACreateEvent() for _ in range(65)]
    assert ws.WSAWaitForMultipleEvents(65, many, False, 0, False) == WSA_WAIT_FAILED
    assert ws.WSAGetLastError() == WSA_INVALID_PARAMETER
    closed = ws.WSACreateEvent()
    assert ws.WSACloseEvent(closed)
    assert ws.WSAWaitForMultipleEvents(2, [evs[0], closed], False, 0, False) == WSA_WAIT_FAILED
    assert ws.WSAGetLastError() == WSA_INVALID_HANDLE
    assert ws.WSAWaitForMultipleEvents(1, ["nope"], False, 0, False) == WSA_WAIT_FAILED
    assert ws.WSACloseEvent(closed) is False and ws.WSAGetLastError() == WSA_INVALID_HANDLE
    t0 = net.me.now()
    assert ws.WSAWaitForMultipleEvents(1, [evs[0]], False, 2500, False) == WSA_WAIT_TIMEOUT
    assert abs(net.me.now() - t0 - 2.5) < 1e-6

    def setter() -> None:
        net.me.sleep(1.0)
        ws.WSASetEvent(evs[2])

    task = net.sim.spawn(setter)
    assert ws.WSAWaitForMultipleEvents(3, evs[:3], False, WSA_INFINITE, False) == WSA_WAIT_EVENT_0 + 2
    task.join()


def test_item_47_event_select_read_and_close_record(net) -> None:
    """WSAEventSelect records FD_READ and FD_CLOSE (error 0) together for data followed by a graceful
    close: FD_CLOSE does not wait for the data to be read (sock.c test_close_events); nothing more
    is recorded once it is read."""
    ws, pws = net.ws, net.pws
    c, a = _connected_pair(net, 8420)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(c, ev, FD_READ | FD_CLOSE) == 0
    send_all(pws, a, b"bye")
    assert pws.closesocket(a) == 0
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 5000, False) == WSA_WAIT_EVENT_0
    net.me.sleep(0.1)
    ne = WSANETWORKEVENTS()
    assert ws.WSAEnumNetworkEvents(c, ev, ne) == 0
    assert ne.lNetworkEvents == FD_READ | FD_CLOSE
    assert ne.iErrorCode[FD_CLOSE_BIT] == 0 and ne.iErrorCode[FD_READ_BIT] == 0
    assert recv_some(ws, c) == b"bye"
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 1000, False) == WSA_WAIT_TIMEOUT
    assert ws.WSAEnumNetworkEvents(c, ev, ne) == 0 and ne.lNetworkEvents == 0


def test_item_40_fd_connect_for_udp_and_connected_sockets(net) -> None:
    """FD_CONNECT for a connect that completed without a pending WSAAsyncSelect (sock.c
    test_connect_events): registering an already connected socket with WSAAsyncSelect posts only
    FD_WRITE, with WSAEventSelect FD_CONNECT then FD_WRITE; a UDP connect gives WSAAsyncSelect
    FD_WRITE only and WSAEventSelect FD_CONNECT and FD_WRITE; an accepted socket gets no
    FD_CONNECT from the registration it inherits."""
    ws = net.ws
    u = udp(ws)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(u, win, WM_SOCK, FD_CONNECT | FD_WRITE) == 0
    assert _events(win, 0.1) == [(u, FD_WRITE, 0)]
    assert ws.connect(u, sa(PEER, 8430), 16) == 0
    assert _events(win) == [(u, FD_WRITE, 0)]
    u2 = udp(ws)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(u2, ev, FD_CONNECT | FD_WRITE) == 0
    ne = WSANETWORKEVENTS()
    assert ws.WSAEnumNetworkEvents(u2, ev, ne) == 0 and ne.lNetworkEvents == 0  # unbound
    assert ws.connect(u2, sa(PEER, 8433), 16) == 0
    assert ws.WSAEnumNetworkEvents(u2, ev, ne) == 0 and ne.lNetworkEvents == FD_CONNECT | FD_WRITE
    c, _a = _connected_pair(net, 8431)
    assert ws.WSAAsyncSelect(c, win, WM_SOCK, FD_CONNECT | FD_WRITE) == 0
    assert _events(win) == [(c, FD_WRITE, 0)]
    c2, _a2 = _connected_pair(net, 8434)
    assert ws.WSAEventSelect(c2, ev, FD_CONNECT | FD_WRITE) == 0
    assert ws.WSAEnumNetworkEvents(c2, ev, ne) == 0 and ne.lNetworkEvents == FD_CONNECT | FD_WRITE
    lst = listener(ws, 8432)
    assert ws.WSAAsyncSelect(lst, win, WM_SOCK, FD_ACCEPT | FD_CONNECT) == 0
    assert net.pws.connect(tcp(net.pws), sa(ME, 8432), 16) == 0
    assert _events(win) == [(lst, FD_ACCEPT, 0)]
    acc = ws.accept(lst, None, None)
    assert acc != -1
    assert _events(win, 0.2) == []


def test_item_43_fd_connect_and_fd_close_never_reenabled(net) -> None:
    """FD_CONNECT and FD_CLOSE are posted once: recv (even returning 0 again and again) and send do not
    bring them back; FD_CLOSE follows FD_READ at once, with the data before the FIN still unread
    (sock.c test_close_events)."""
    ws, pws = net.ws, net.pws
    lst = listener(pws, 8440)
    acc = accept_in_task(net, lst)
    c = tcp(ws)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(c, win, WM_SOCK, FD_CONNECT | FD_READ | FD_CLOSE) == 0
    fail(ws, ws.connect(c, sa(PEER, 8440), 16), WSAEWOULDBLOCK)
    assert _events(win) == [(c, FD_CONNECT, 0)]
    (a,) = acc.result()
    send_all(ws, c, b"ping")
    assert _events(win, 0.2) == []
    assert recv_some(pws, a) == b"ping"  # (unread data would make the close a reset)
    send_all(pws, a, b"x")
    assert pws.closesocket(a) == 0
    assert _events(win) == [(c, FD_READ, 0), (c, FD_CLOSE, 0)]
    assert recv_some(ws, c) == b"x"
    assert _events(win, 0.2) == []
    for _ in range(3):
        assert ws.recv(c, bytearray(8), 8, 0) == 0
    assert _events(win, 0.5) == []


def test_item_43_udp_fd_read_level_triggered_by_recvfrom(net) -> None:
    """UDP: one FD_READ for several queued datagrams; each recvfrom that leaves more queued posts it again;
    none once the queue is empty."""
    ws, pws = net.ws, net.pws
    s = udp(ws)
    bind(ws, s, ME, 8450)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(s, win, WM_SOCK, FD_READ) == 0
    src = udp(pws)
    for d in (b"one", b"two", b"three"):
        assert sendto(pws, src, d, ME, 8450) == len(d)
    assert _events(win) == [(s, FD_READ, 0)]
    for want, more in ((b"one", True), (b"two", True), (b"three", False)):
        buf = bytearray(16)
        assert ws.recvfrom(s, buf, 16, 0, None, None) == len(want) and bytes(buf[:len(want)]) == want
        assert _events(win, 0.2) == ([(s, FD_READ, 0)] if more else [])


def test_item_56_icmp_error_posts_fd_read(net) -> None:
    """A UDP socket registered for FD_READ gets FD_READ when an ICMP port unreachable arrives (the
    recv it invites fails with WSAECONNRESET); with SIO_UDP_CONNRESET off, nothing is posted."""
    from ustack.winsock import SIO_UDP_CONNRESET, WSAECONNRESET

    ws = net.ws
    for connreset in (1, 0):
        u = udp(ws)
        bind(ws, u)
        assert ws.ioctlsocket(u, SIO_UDP_CONNRESET, ctypes.c_ulong(connreset)) == 0
        win = ws.create_window()
        assert ws.WSAAsyncSelect(u, win, WM_SOCK, FD_READ) == 0
        assert sendto(ws, u, b"anyone?", PEER, 8460) == 7  # nobody listens there
        if connreset:
            assert _events(win) == [(u, FD_READ, 0)]
            fail(ws, ws.recvfrom(u, bytearray(8), 8, 0, None, None), WSAECONNRESET)
        else:
            assert _events(win) == []
        fail(ws, ws.recvfrom(u, bytearray(8), 8, 0, None, None), WSAEWOULDBLOCK)
