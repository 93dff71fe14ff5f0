"""Ported from Wine's dlls/ws2_32/tests/sock.c (run against real Windows): select.

Each test names the sock.c function whose checks it re-states in our own code; sock.c's
127.0.0.1 socket pairs are loopback pairs on one simulated host (virtual time).
"""

from __future__ import annotations

import ctypes

import ustack.winsock as W

from .wsutil import (
    bind,
    fail,
    getopt_int,
    name_of,
    recv_some,
    sa,
    select1,
    send_all,
    set_nonblocking,
    tcp,
    tcp_socketpair,
    udp,
)

ZERO = W.TIMEVAL(0, 0)


def _sel(ws, r, w, x, timeout=ZERO) -> int:
    n = ws.select(0, r, w, x, timeout)
    assert n != W.SOCKET_ERROR, ws.WSAGetLastError()
    return n


def _so_error(ws, s) -> int:
    return getopt_int(ws, s, W.SOL_SOCKET, W.SO_ERROR)


def _refused_port(ws) -> tuple[str, int]:
    """A 127.0.0.1 port nobody listens on (bound, then closed)."""
    probe = tcp(ws)
    bind(ws, probe, "127.0.0.1", 0)
    name = name_of(ws, probe)
    assert ws.closesocket(probe) == 0
    return name


def test_item_65_sockc_select_unconnected_and_invalid(net) -> None:
    """sock.c test_select: fresh TCP sockets in all three sets are nothing at once (0); no sets or
    empty sets -> WSAEINVAL; an invalid handle in any set -> WSAENOTSOCK; an unbound UDP socket
    is writable only."""
    ws = net.ws
    a, b = tcp(ws), tcp(ws)
    r, w, x = W.FD_SET(a, b), W.FD_SET(a, b), W.FD_SET(a, b)
    assert _sel(ws, r, w, x) == 0 and len(r) == len(w) == len(x) == 0
    fail(ws, ws.select(0, None, None, None, ZERO), W.WSAEINVAL)
    fail(ws, ws.select(0, W.FD_SET(), W.FD_SET(), W.FD_SET(), ZERO), W.WSAEINVAL)
    for which in range(3):
        sets = [W.FD_SET(), W.FD_SET(), W.FD_SET()]
        sets[which].fd_array.append(W.INVALID_SOCKET)
        fail(ws, ws.select(0, *sets, ZERO), W.WSAENOTSOCK)
    u = udp(ws)
    assert select1(ws, u, 0.25) == (False, True, False)


def test_item_65_sockc_select_same_socket_twice_and_shared_set(net) -> None:
    """sock.c test_select: a socket listed twice in writefds is reported once (1); one FD_SET
    passed as readfds and writefds holds each ready socket once and the result counts them
    once (a writable pair: 2; with the sender's buffer full: only the readable receiver, 1)."""
    ws = net.ws
    rd, wr = tcp_socketpair(ws)
    w = W.FD_SET()
    w.fd_array[:] = [wr, wr]
    assert _sel(ws, None, w, None) == 1 and w.fd_array == [wr]
    shared = W.FD_SET(wr)
    assert _sel(ws, shared, shared, None) == 1 and wr in shared
    shared = W.FD_SET(wr, rd)
    assert _sel(ws, shared, shared, None) == 2 and wr in shared and rd in shared
    send_all(ws, wr, b"test")
    assert select1(ws, rd, 1.0)[0]
    shared = W.FD_SET(wr, rd)
    assert _sel(ws, shared, shared, None) == 2
    set_nonblocking(ws, wr)
    chunk = bytes(65536)  # sock.c sends 1 KB at a time; the stack's buffers are megabytes
    for _ in range(10000):
        if not select1(ws, wr)[1]:
            break
        assert ws.send(wr, chunk, len(chunk), 0) > 0
    shared = W.FD_SET(wr, rd)
    assert _sel(ws, shared, shared, None) == 1 and shared.fd_array == [rd]
    send_all(ws, rd, b"test")
    net.me.sleep(0.1)
    shared = W.FD_SET(wr, rd)
    assert _sel(ws, shared, shared, None) == 2 and wr in shared and rd in shared


def test_item_65_sockc_select_connection_states(net) -> None:
    """sock.c test_select: an idle listener is in no set; a pending connection makes it readable
    only; after accept both ends are writable (2) with SO_ERROR 0; data makes the receiver
    readable, not excepted (all three sets: 2); the peer's close makes it readable and recv 0."""
    ws = net.ws
    lst = tcp(ws)
    assert ws.setsockopt(lst, W.SOL_SOCKET, W.SO_REUSEADDR, ctypes.c_int(1), 4) == 0
    bind(ws, lst, "127.0.0.1", 0)
    assert ws.listen(lst, 5) == 0
    tv = W.TIMEVAL(1, 250000)
    assert _sel(ws, W.FD_SET(lst), W.FD_SET(lst), W.FD_SET(lst), tv) == 0
    wr = tcp(ws)
    set_nonblocking(ws, wr)
    fail(ws, ws.connect(wr, sa(*name_of(ws, lst)), 16), W.WSAEWOULDBLOCK)
    r, w, x = W.FD_SET(lst), W.FD_SET(lst), W.FD_SET(lst)
    assert _sel(ws, r, w, x, tv) == 1 and lst in r
    rd = ws.accept(lst, None, None)
    assert rd != W.INVALID_SOCKET
    r, w, x = W.FD_SET(lst, rd, wr), W.FD_SET(lst, rd, wr), W.FD_SET(lst, rd, wr)
    assert _sel(ws, r, w, x, tv) == 2 and wr in w and rd in w
    assert _so_error(ws, wr) == 0
    set_nonblocking(ws, rd)
    send_all(ws, wr, b"1234")
    r, x = W.FD_SET(lst, rd), W.FD_SET(lst, rd)
    assert _sel(ws, r, W.FD_SET(lst), x, tv) == 1 and rd in r and rd not in x
    assert select1(ws, rd, 1.25) == (True, True, False)
    assert recv_some(ws, rd) == b"1234"
    assert ws.closesocket(rd) == 0
    r = W.FD_SET(lst, wr)
    assert _sel(ws, r, W.FD_SET(lst), W.FD_SET(lst), tv) == 1 and wr in r
    assert recv_some(ws, wr) == b""


def test_item_29_sockc_failed_connect_in_exceptfds(net) -> None:
    """sock.c test_select (interactive part): a refused nonblocking connect is in exceptfds only;
    SO_ERROR is WSAECONNREFUSED and stays so when read twice and when connect is called again
    (only a successful connection clears it); after a connect to a listener the socket is
    writable and SO_ERROR is 0."""
    ws = net.ws
    refused = _refused_port(ws)
    lst = tcp(ws)
    bind(ws, lst, "127.0.0.1", 0)
    assert ws.listen(lst, 5) == 0
    c = tcp(ws)
    set_nonblocking(ws, c)
    fail(ws, ws.connect(c, sa(*refused), 16), W.WSAEWOULDBLOCK)
    assert select1(ws, c, 10.0) == (False, False, True)
    assert _so_error(ws, c) == W.WSAECONNREFUSED and _so_error(ws, c) == W.WSAECONNREFUSED
    assert select1(ws, c, 10.0) == (False, False, True)
    fail(ws, ws.connect(c, sa(*refused), 16), W.WSAEWOULDBLOCK)
    assert _so_error(ws, c) == W.WSAECONNREFUSED
    assert select1(ws, c, 10.0) == (False, False, True)
    fail(ws, ws.connect(c, sa(*name_of(ws, lst)), 16), W.WSAEWOULDBLOCK)
    assert select1(ws, c, 1.0) == (False, True, False)
    assert _so_error(ws, c) == 0


def test_item_17_sockc_listen_after_failed_connect(net) -> None:
    """sock.c test_select: a socket bound to 127.0.0.1:0 whose nonblocking connect was refused may
    listen on that name (Linux forbids it); a client then connects and is accepted; SO_ERROR
    still holds WSAECONNREFUSED and the socket stays in exceptfds only."""
    ws = net.ws
    refused = _refused_port(ws)
    s = tcp(ws)
    set_nonblocking(ws, s)
    bind(ws, s, "127.0.0.1", 0)
    fail(ws, ws.connect(s, sa(*refused), 16), W.WSAEWOULDBLOCK)
    x = W.FD_SET(s)
    assert _sel(ws, None, None, x, W.TIMEVAL(10, 0)) == 1
    name = name_of(ws, s)
    assert ws.listen(s, 1) == 0, ws.WSAGetLastError()
    client = tcp(ws)
    assert ws.connect(client, sa(*name), 16) == 0, ws.WSAGetLastError()
    server = ws.accept(s, None, None)
    assert server != W.INVALID_SOCKET, ws.WSAGetLastError()
    assert _so_error(ws, s) == W.WSAECONNREFUSED
    assert ws.closesocket(server) == 0 and ws.closesocket(client) == 0
    assert select1(ws, s, 0) == (False, False, True)


def test_item_24_sockc_blocking_refusal_so_error_zero(net) -> None:
    """sock.c test_select and test_errors: a blocking connect refused -> WSAECONNREFUSED, yet
    SO_ERROR reads 0 before and after; the socket is in exceptfds, and not writable (a 50 ms
    select on writefds times out)."""
    ws = net.ws
    c = tcp(ws)
    fail(ws, ws.connect(c, sa(*_refused_port(ws)), 16), W.WSAECONNREFUSED)
    assert _so_error(ws, c) == 0
    assert select1(ws, c, 0) == (False, False, True)
    assert _so_error(ws, c) == 0
    assert _sel(ws, None, W.FD_SET(c), None, W.TIMEVAL(0, 50000)) == 0


def test_item_65_sockc_closed_during_select(net) -> None:
    """sock.c test_select (SelectReadThread, SelectCloseThread, bug 38399): closing a socket that
    another thread is selecting on wakes select: listed in readfds it is reported there (1);
    listed only in exceptfds, select fails with WSAENOTSOCK and the set is emptied. A closed
    socket given to select -> WSAENOTSOCK with the sets left as they were."""
    ws = net.ws
    for sets in ("read+except", "except"):
        rd, wr = tcp_socketpair(ws)

        def closer(sock: int = wr) -> None:
            net.me.sleep(0.5)
            assert ws.closesocket(sock) == 0

        task = net.sim.spawn(closer)
        x = W.FD_SET(wr)
        t0 = net.me.now()
        if sets == "read+except":
            r = W.FD_SET(wr)
            assert ws.select(0, r, None, x, W.TIMEVAL(1, 250000)) == 1
            assert wr in r and wr not in x
        else:
            fail(ws, ws.select(0, None, None, x, W.TIMEVAL(1, 250000)), W.WSAENOTSOCK)
            assert wr not in x
        assert abs(net.me.now() - t0 - 0.5) < 0.05
        task.join()
        assert ws.closesocket(rd) == 0
    rd, wr = tcp_socketpair(ws)
    assert ws.closesocket(rd) == 0
    r, x = W.FD_SET(wr, rd), W.FD_SET(wr, rd)
    fail(ws, ws.select(0, r, None, x, W.TIMEVAL(1, 250000)), W.WSAENOTSOCK)
    assert len(r) == 2 and len(x) == 2


def test_item_61_sockc_reset_readiness(net) -> None:
    """sock.c test_tcp_reset: after the peer's RST, SO_ERROR is 0, recv and send fail with
    WSAECONNRESET, and select lists the socket as readable and writable (2), not excepted;
    exceptfds alone -> 0."""
    ws = net.ws
    client, server = tcp_socketpair(ws)
    assert ws.setsockopt(server, W.SOL_SOCKET, W.SO_LINGER, W.LINGER(1, 0), 4) == 0
    assert ws.closesocket(server) == 0
    net.me.sleep(0.1)
    assert _so_error(ws, client) == 0
    fail(ws, ws.recv(client, bytearray(10), 10, 0), W.WSAECONNRESET)
    fail(ws, ws.send(client, b"data\0", 5, 0), W.WSAECONNRESET)
    r, w, x = W.FD_SET(client), W.FD_SET(client), W.FD_SET(client)
    assert _sel(ws, r, w, x) == 2 and client in r and client in w and client not in x
    assert _sel(ws, None, None, W.FD_SET(client)) == 0
