"""WSAPoll, item by item, against Wine's dlls/ws2_32/tests/sock.c test_WSAPoll (run on real
Windows) and Microsoft's WSAPoll page. Our code; each docstring names the sock.c checks it
re-states. 127.0.0.1 pairs on one simulated host (virtual time)."""

from __future__ import annotations

import ustack.winsock as W

from .wsutil import bind, fail, getopt_int, name_of, sa, set_nonblocking, tcp, tcp_socketpair, udp

ALL = W.POLLRDNORM | W.POLLRDBAND | W.POLLWRNORM
INVALID_FLAGS = (W.POLLERR, W.POLLHUP, W.POLLNVAL, 0x8, W.POLLWRBAND, 0x40, 0x80, W.POLLPRI,
                 0x800, 0x1000, 0x2000, 0x4000, -0x8000)  # -0x8000: the SHORT 0x8000


def _fds(*pairs: tuple[int, int]) -> list[W.WSAPOLLFD]:
    out = []
    for fd, events in pairs:
        e = W.WSAPOLLFD(fd & 0xFFFFFFFFFFFFFFFF, events, 0x0DEA)
        out.append(e)
    return out


def _poll1(ws, s: int, events: int = ALL, timeout_ms: int = 1000) -> int:
    """sock.c's check_poll: one entry; the result is 1 exactly when revents is set."""
    (e,) = fds = _fds((s, events))
    n = ws.WSAPoll(fds, 1, timeout_ms)
    assert n == (1 if e.revents else 0), (n, hex(e.revents), ws.WSAGetLastError())
    return e.revents


def _listener(ws) -> tuple[int, tuple[str, int]]:
    lst = tcp(ws)
    bind(ws, lst, "127.0.0.1", 0)
    assert ws.listen(lst, 5) == 0
    return lst, name_of(ws, lst)


def test_item_74_wsapoll_argument_errors(net) -> None:
    """sock.c test_WSAPoll: no array with 0 entries -> WSAEINVAL, with entries -> WSAEFAULT
    (timeout 0 or 1); events outside POLLRDNORM | POLLRDBAND | POLLWRNORM (POLLERR, POLLHUP,
    POLLNVAL, POLLPRI, POLLWRBAND and the unnamed bits) -> WSAEINVAL on a listener and on a
    connected socket; an idle listener polled for everything -> 0 with revents 0."""
    ws = net.ws
    for count, code in ((0, W.WSAEINVAL), (1, W.WSAEFAULT)):
        for timeout in (0, 1):
            ws.WSASetLastError(0xDEADBEEF)
            fail(ws, ws.WSAPoll(None, count, timeout), code)
    lst, name = _listener(ws)
    c, a = tcp_socketpair(ws, nonblocking=True)
    for s in (lst, a):
        for flag in INVALID_FLAGS:
            fds = _fds((s, flag))
            ws.WSASetLastError(0xDEADBEEF)
            fail(ws, ws.WSAPoll(fds, 1, 0), W.WSAEINVAL)
    fds = _fds((lst, ALL))
    assert ws.WSAPoll(fds, 1, 0) == 0 and fds[0].revents == 0


def test_item_74_wsapoll_invalid_handles(net) -> None:
    """sock.c test_WSAPoll: an invalid handle beside a valid socket gets POLLNVAL, is not counted
    (0) and the last error is 0 -- INVALID_SOCKET even when it asks for POLLERR; another invalid
    handle asking for POLLERR -> WSAEINVAL with every revents 0; when no entry is a socket ->
    WSAENOTSOCK with POLLNVAL on each."""
    ws = net.ws
    lst, _ = _listener(ws)
    cases = [
        ([(-1, W.POLLERR), (lst, W.POLLIN)], 0, 0, (W.POLLNVAL, 0)),
        ([(lst, W.POLLIN), (0xABACAB, W.POLLIN)], 0, 0, (0, W.POLLNVAL)),
        ([(lst, W.POLLIN), (0xABACAB, W.POLLERR)], W.SOCKET_ERROR, W.WSAEINVAL, (0, 0)),
        ([(-1, W.POLLERR), (0xABACAB, W.POLLERR)], W.SOCKET_ERROR, W.WSAENOTSOCK, (W.POLLNVAL, W.POLLNVAL)),
    ]
    for pairs, ret, err, revents in cases:
        fds = _fds(*pairs)
        ws.WSASetLastError(0xDEADBEEF)
        assert ws.WSAPoll(fds, 2, 0) == ret, pairs
        assert ws.WSAGetLastError() == err and tuple(e.revents for e in fds) == revents, pairs


def test_item_74_wsapoll_listener_and_connected(net) -> None:
    """sock.c test_WSAPoll: a pending connection makes the listener POLLRDNORM (1, twice) but
    nothing for POLLRDBAND | POLLWRNORM; after accept the listener has nothing and both ends
    are POLLWRNORM (2); data is POLLRDNORM for the receiver (POLLRDNORM | POLLWRNORM asked for
    everything) and goes away once read."""
    ws = net.ws
    lst, name = _listener(ws)
    client = tcp(ws)
    set_nonblocking(ws, client)
    fail(ws, ws.connect(client, sa(*name), 16), W.WSAEWOULDBLOCK)
    fds = _fds((lst, W.POLLIN))
    assert ws.WSAPoll(fds, 1, 100) == 1 and fds[0].revents == W.POLLRDNORM
    assert ws.WSAPoll(fds, 1, 0) == 1 and fds[0].revents == W.POLLRDNORM
    fds = _fds((lst, W.POLLRDBAND | W.POLLWRNORM))
    assert ws.WSAPoll(fds, 1, 0) == 0 and fds[0].revents == 0
    server = ws.accept(lst, None, None)
    assert server != W.INVALID_SOCKET
    set_nonblocking(ws, server)
    fds = _fds((lst, ALL), (server, ALL), (client, ALL))
    assert ws.WSAPoll(fds, 3, 0) == 2
    assert [e.revents for e in fds] == [0, W.POLLWRNORM, W.POLLWRNORM]
    assert ws.send(server, b"1234", 4, 0) == 4
    assert _poll1(ws, client, W.POLLRDNORM | W.POLLRDBAND) == W.POLLRDNORM
    assert _poll1(ws, client) == W.POLLRDNORM | W.POLLWRNORM
    assert _poll1(ws, server) == W.POLLWRNORM
    assert ws.recv(client, bytearray(6), 6, 0) == 4
    assert _poll1(ws, client) == W.POLLWRNORM and _poll1(ws, server) == W.POLLWRNORM


def test_item_74_wsapoll_shutdown_and_close(net) -> None:
    """sock.c test_WSAPoll: the client's SD_RECEIVE changes nothing (POLLWRNORM both ends); its
    SD_SEND leaves it POLLWRNORM and gives the server POLLHUP, reported even when events is 0
    (POLLWRNORM | POLLHUP for everything); a closesocket does the same; with data still queued
    the server reads POLLRDNORM | POLLWRNORM | POLLHUP."""
    ws = net.ws
    client, server = tcp_socketpair(ws, nonblocking=True)
    assert ws.shutdown(client, W.SD_RECEIVE) == 0
    assert _poll1(ws, client) == W.POLLWRNORM and _poll1(ws, server) == W.POLLWRNORM
    assert ws.shutdown(client, W.SD_SEND) == 0
    assert _poll1(ws, client) == W.POLLWRNORM
    assert _poll1(ws, server, 0) == W.POLLHUP
    assert _poll1(ws, server) == W.POLLWRNORM | W.POLLHUP
    client, server = tcp_socketpair(ws)
    assert ws.closesocket(client) == 0
    assert _poll1(ws, server, 0) == W.POLLHUP
    assert _poll1(ws, server) == W.POLLWRNORM | W.POLLHUP
    client, server = tcp_socketpair(ws)
    assert ws.send(client, b"data\0", 5, 0) == 5
    assert _poll1(ws, client) == W.POLLWRNORM
    assert _poll1(ws, server, W.POLLRDNORM | W.POLLRDBAND) == W.POLLRDNORM
    assert _poll1(ws, server) == W.POLLWRNORM | W.POLLRDNORM
    assert ws.shutdown(client, W.SD_SEND) == 0
    assert _poll1(ws, client) == W.POLLWRNORM
    assert _poll1(ws, server, 0) == W.POLLHUP
    assert _poll1(ws, server) == W.POLLWRNORM | W.POLLRDNORM | W.POLLHUP
    st = ws.stack_socket(server)
    assert st.fin_received and not st.at_eof  # the FIN is in, the data before it is not read


def test_item_74_wsapoll_closed_while_polling(net) -> None:
    """sock.c test_WSAPoll: closing the socket from another thread ends a 2 s WSAPoll with 1 and
    POLLNVAL."""
    ws = net.ws
    client, server = tcp_socketpair(ws)

    def closer() -> None:
        net.me.sleep(0.5)
        assert ws.closesocket(client) == 0

    task = net.sim.spawn(closer)
    fds = _fds((client, W.POLLRDNORM | W.POLLRDBAND))
    t0 = net.me.now()
    assert ws.WSAPoll(fds, 1, 2000) == 1 and fds[0].revents == W.POLLNVAL
    assert abs(net.me.now() - t0 - 0.5) < 0.05
    task.join()


def test_item_74_wsapoll_failed_connect(net) -> None:
    """sock.c test_WSAPoll (interactive part): a refused nonblocking connect polls as POLLWRNORM |
    POLLHUP | POLLERR (within the wait) with SO_ERROR WSAECONNREFUSED, read twice, and again
    after; a refused blocking connect polls the same while SO_ERROR reads 0."""
    ws = net.ws
    probe = tcp(ws)
    bind(ws, probe, "127.0.0.1", 0)
    refused = sa(*name_of(ws, probe))
    assert ws.closesocket(probe) == 0
    c = tcp(ws)
    set_nonblocking(ws, c)
    fail(ws, ws.connect(c, refused, 16), W.WSAEWOULDBLOCK)
    fds = _fds((c, ALL))
    assert ws.WSAPoll(fds, 1, 10000) == 1
    assert fds[0].revents == W.POLLWRNORM | W.POLLHUP | W.POLLERR
    for _ in range(2):
        assert getopt_int(ws, c, W.SOL_SOCKET, W.SO_ERROR) == W.WSAECONNREFUSED
    assert _poll1(ws, c) == W.POLLWRNORM | W.POLLHUP | W.POLLERR
    b = tcp(ws)
    fail(ws, ws.connect(b, refused, 16), W.WSAECONNREFUSED)
    assert _poll1(ws, b) == W.POLLWRNORM | W.POLLHUP | W.POLLERR
    assert getopt_int(ws, b, W.SOL_SOCKET, W.SO_ERROR) == 0


def test_item_74_wsapoll_reset_and_udp(net) -> None:
    """sock.c test_tcp_reset and test_WSAPoll (UDP): after the peer's RST a socket polls as POLLERR
    | POLLHUP | POLLWRNORM; UDP sockets, bound or not, are POLLWRNORM, and a queued datagram adds
    POLLRDNORM."""
    ws = net.ws
    client, server = tcp_socketpair(ws)
    assert ws.setsockopt(server, W.SOL_SOCKET, W.SO_LINGER, W.LINGER(1, 0), 4) == 0
    assert ws.closesocket(server) == 0
    assert _poll1(ws, client) == W.POLLERR | W.POLLHUP | W.POLLWRNORM
    a, b = udp(ws), udp(ws)
    assert _poll1(ws, a) == W.POLLWRNORM and _poll1(ws, b) == W.POLLWRNORM
    bind(ws, a, "127.0.0.1", 0)
    assert _poll1(ws, a) == W.POLLWRNORM and _poll1(ws, b) == W.POLLWRNORM
    assert ws.sendto(b, b"data\0", 5, 0, sa(*name_of(ws, a)), 16) == 5
    assert _poll1(ws, a, W.POLLRDNORM | W.POLLRDBAND) == W.POLLRDNORM
    assert _poll1(ws, a) == W.POLLWRNORM | W.POLLRDNORM
    assert _poll1(ws, b) == W.POLLWRNORM


def test_item_74_wsapoll_does_not_resignal_events(net) -> None:
    """sock.c test_select_after_WSAEventSelect: after WSAEventSelect(FD_READ) signalled for
    arriving data, a WSAPoll (POLLRDNORM | POLLWRNORM) does not signal the event again."""
    ws = net.ws
    client, server = tcp_socketpair(ws)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(client, ev, W.FD_READ) == 0
    assert ws.send(server, b"data", 4, 0) == 4
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 1000, False) == W.WSA_WAIT_EVENT_0
    assert ws.WSAResetEvent(ev)
    assert _poll1(ws, client) == W.POLLRDNORM | W.POLLWRNORM
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 0, False) == W.WSA_WAIT_TIMEOUT


def test_item_74_wsapoll_ctypes_array(net) -> None:
    """WSAPoll takes a ctypes array of WSAPOLLFD as C code passes it (revents written in place);
    more entries than the array holds, or anything that is not WSAPOLLFD entries -> WSAEFAULT."""
    ws = net.ws
    client, server = tcp_socketpair(ws)
    arr = (W.WSAPOLLFD * 2)()
    arr[0].fd, arr[0].events = client, W.POLLRDNORM | W.POLLWRNORM
    arr[1].fd, arr[1].events = server, W.POLLRDNORM
    assert ws.WSAPoll(arr, 2, 0) == 1
    assert (arr[0].revents, arr[1].revents) == (W.POLLWRNORM, 0)
    fail(ws, ws.WSAPoll(arr, 3, 0), W.WSAEFAULT)
    for junk in (42, [client], [None], b"\x00" * 16):
        fail(ws, ws.WSAPoll(junk, 1, 0), W.WSAEFAULT)  # not WSAPOLLFD entries: a bad pointer
