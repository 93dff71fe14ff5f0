"""Section J: closing and broken TCP connections."""

from __future__ import annotations

import ctypes

from ustack.winsock import (
    LINGER,
    SO_ERROR,
    SO_LINGER,
    SOL_SOCKET,
    WSAECONNABORTED,
    WSAECONNRESET,
    WSAEINVAL,
    WSAENOTCONN,
    WSAESHUTDOWN,
)

from .wsutil import PEER, accept_in_task, fail, getopt_int, listener, recv_some, sa, select1, send_all, tcp


def _pair(net, port: int) -> tuple[int, int]:
    acc = accept_in_task(net, listener(net.pws, port))
    c = tcp(net.ws)
    assert net.ws.connect(c, sa(PEER, port), 16) == 0
    (a,) = acc.result()
    return c, a


def _reset_by_peer(net, a: int) -> None:
    assert net.pws.setsockopt(a, SOL_SOCKET, SO_LINGER, LINGER(1, 0), ctypes.sizeof(LINGER)) == 0
    assert net.pws.closesocket(a) == 0
    net.me.sleep(0.1)


def test_item_60_recv_zero_repeatedly_after_graceful_close(net) -> None:
    """After a graceful close, recv returns 0 again and again (after the remaining data)."""
    ws, pws = net.ws, net.pws
    c, a = _pair(net, 8500)
    send_all(pws, a, b"last words")
    assert pws.closesocket(a) == 0
    assert recv_some(ws, c) == b"last words"
    for _ in range(3):
        assert select1(ws, c) == (True, True, False)  # readable: recv will not block (it returns 0)
        assert ws.recv(c, bytearray(10), 10, 0) == 0


def test_item_61_reset_by_peer(net) -> None:
    """≠L: after a peer RST, recv and send -> WSAECONNRESET; SO_ERROR stays 0."""
    ws = net.ws
    c, a = _pair(net, 8510)
    _reset_by_peer(net, a)
    assert select1(ws, c)[0] is True  # readable: the recv fails at once
    fail(ws, ws.recv(c, bytearray(10), 10, 0), WSAECONNRESET)
    fail(ws, ws.send(c, b"x", 1, 0), WSAECONNRESET)
    fail(ws, ws.recv(c, bytearray(10), 10, 0), WSAECONNRESET)
    assert getopt_int(ws, c, SOL_SOCKET, SO_ERROR) == 0


def test_item_61_blocked_recv_sees_reset(net) -> None:
    """A recv blocked when the RST arrives fails with WSAECONNRESET."""
    ws = net.ws
    c, a = _pair(net, 8515)

    def later() -> None:
        net.peer.sleep(1.0)
        _reset_by_peer(net, a)

    task = net.sim.spawn(later)
    fail(ws, ws.recv(c, bytearray(10), 10, 0), WSAECONNRESET)
    task.join()


def test_item_62_send_to_fully_closed_peer_then_recv_aborted(net) -> None:
    """Send to a peer that fully closed succeeds; the following recv -> WSAECONNABORTED."""
    ws, pws = net.ws, net.pws
    c, a = _pair(net, 8520)
    assert pws.closesocket(a) == 0
    assert ws.recv(c, bytearray(10), 10, 0) == 0  # the FIN
    assert ws.send(c, b"anyone?", 7, 0) == 7
    net.me.sleep(0.5)  # the peer answers with RST
    fail(ws, ws.recv(c, bytearray(10), 10, 0), WSAECONNABORTED)


def test_item_63_shutdown_checks(net) -> None:
    """shutdown on an unconnected or listening TCP socket -> WSAENOTCONN; bad how -> WSAEINVAL;
    send after SD_SEND and recv after SD_RECEIVE -> WSAESHUTDOWN (≠L EPIPE)."""
    ws, pws = net.ws, net.pws
    fail(ws, ws.shutdown(tcp(ws), 1), WSAENOTCONN)
    fail(ws, ws.shutdown(listener(ws, 8530), 1), WSAENOTCONN)
    c, a = _pair(net, 8531)
    fail(ws, ws.shutdown(c, 3), WSAEINVAL)
    assert ws.shutdown(c, 1) == 0
    fail(ws, ws.send(c, b"x", 1, 0), WSAESHUTDOWN)
    assert pws.recv(a, bytearray(10), 10, 0) == 0  # the peer saw our FIN
    send_all(pws, a, b"still open")
    assert recv_some(ws, c) == b"still open"  # half-close: our receive side works
    assert ws.shutdown(c, 0) == 0
    fail(ws, ws.recv(c, bytearray(10), 10, 0), WSAESHUTDOWN)


def test_item_64_send_on_unconnected_tcp(net) -> None:
    """send on an unconnected TCP socket -> WSAENOTCONN."""
    ws = net.ws
    fail(ws, ws.send(tcp(ws), b"x", 1, 0), WSAENOTCONN)
    fail(ws, ws.send(listener(ws, 8540), b"x", 1, 0), WSAENOTCONN)
    fail(ws, ws.recv(tcp(ws), bytearray(1), 1, 0), WSAENOTCONN)


def test_linger_zero_close_sends_rst(net) -> None:
    """SO_LINGER {1, 0} makes closesocket abortive: the peer's recv fails with WSAECONNRESET."""
    ws, pws = net.ws, net.pws
    c, a = _pair(net, 8550)
    assert ws.setsockopt(c, SOL_SOCKET, SO_LINGER, LINGER(1, 0), 4) == 0
    assert ws.closesocket(c) == 0
    fail(pws, pws.recv(a, bytearray(4), 4, 0), WSAECONNRESET)


def test_data_retransmission_timeout_is_connaborted(net) -> None:
    """A peer that vanishes mid-connection: once retransmissions run out, recv/send fail with
    WSAECONNABORTED and FD_CLOSE carries WSAECONNABORTED (Windows' "data transmission time-out")."""
    from ustack.winsock import FD_CLOSE, WSAGETSELECTERROR, WSAGETSELECTEVENT

    ws = net.ws
    c, _a = _pair(net, 8560)
    sock = ws.stack_socket(c)
    net.me.call(lambda: setattr(sock, "data_retries", 3))
    win = ws.create_window()
    assert ws.WSAAsyncSelect(c, win, 0x401, FD_CLOSE) == 0
    net.peer.close()  # the peer disappears from the link without a word
    assert ws.send(c, b"hello?", 6, 0) == 6
    m = win.GetMessage(timeout_s=600)
    assert m is not None and WSAGETSELECTEVENT(m.lParam) == FD_CLOSE
    assert WSAGETSELECTERROR(m.lParam) == WSAECONNABORTED
    fail(ws, ws.recv(c, bytearray(4), 4, 0), WSAECONNABORTED)
    fail(ws, ws.send(c, b"x", 1, 0), WSAECONNABORTED)
    assert net.me.stack.counters.get("tcp.data_timeout") == 1


def test_item_45_keepalive_failure_is_netreset_fd_close_connaborted(net) -> None:
    """SO_KEEPALIVE on an idle connection whose peer vanished: once the probes go unanswered,
    FD_CLOSE carries WSAECONNABORTED and recv/send fail with WSAENETRESET ("broken due to
    keep-alive activity detecting a failure", Microsoft's recv/send pages)."""
    from ustack.winsock import FD_CLOSE, SO_KEEPALIVE, WSAENETRESET, WSAGETSELECTERROR, WSAGETSELECTEVENT

    from .wsutil import setopt_int

    ws = net.ws
    c, _a = _pair(net, 8565)
    assert setopt_int(ws, c, SOL_SOCKET, SO_KEEPALIVE, 1) == 0
    sock = ws.stack_socket(c)

    def tune() -> None:
        sock.keepalive_idle_s, sock.keepalive_interval_s, sock.keepalive_probes = 10.0, 1.0, 3
        sock.keepalive = True  # re-arm with the short idle time

    net.me.call(tune)
    win = ws.create_window()
    assert ws.WSAAsyncSelect(c, win, 0x401, FD_CLOSE) == 0
    t0 = net.me.now()
    net.peer.close()  # the peer disappears from the link without a word
    m = win.GetMessage(timeout_s=600)
    assert m is not None and WSAGETSELECTEVENT(m.lParam) == FD_CLOSE
    assert WSAGETSELECTERROR(m.lParam) == WSAECONNABORTED
    assert 12.0 <= net.me.now() - t0 <= 14.5  # idle 10 s, then 3 probes 1 s apart
    fail(ws, ws.recv(c, bytearray(4), 4, 0), WSAENETRESET)
    fail(ws, ws.send(c, b"x", 1, 0), WSAENETRESET)
    counters = net.me.stack.counters
    assert counters.get("tcp.keepalive_timeout") == 1 and counters.get("tcp.data_timeout") == 0


def test_linger_timeout_blocking_close(net) -> None:
    """SO_LINGER {1, t} on a blocking socket: closesocket waits until the data is acknowledged
    (then the peer reads it all and EOF), or at most t s, after which the connection is reset."""
    from ustack.winsock import SO_RCVBUF, WSAEWOULDBLOCK

    from .wsutil import set_nonblocking, setopt_int

    ws, pws = net.ws, net.pws
    c, a = _pair(net, 8570)
    assert ws.setsockopt(c, SOL_SOCKET, SO_LINGER, LINGER(1, 5), 4) == 0
    send_all(ws, c, b"q" * 50000)
    t0 = net.me.now()
    assert ws.closesocket(c) == 0
    assert net.me.now() - t0 < 1.0  # acknowledged quickly
    got = b""
    while chunk := recv_some(pws, a, 65536):
        got += chunk
    assert got == b"q" * 50000

    d, b = _pair(net, 8571)
    assert setopt_int(pws, b, SOL_SOCKET, SO_RCVBUF, 2000) == 0  # the peer never reads
    assert ws.setsockopt(d, SOL_SOCKET, SO_LINGER, LINGER(1, 2), 4) == 0
    send_all(ws, d, b"z" * 100000)
    set_nonblocking(ws, d)
    fail(ws, ws.closesocket(d), WSAEWOULDBLOCK)  # nonblocking, data queued: not closed
    set_nonblocking(ws, d, False)
    t0 = net.me.now()
    assert ws.closesocket(d) == 0
    assert abs(net.me.now() - t0 - 2.0) < 0.01  # waited the linger time, then reset
    fail(ws, ws.closesocket(d), 10038)
    net.peer.sleep(0.1)
    buf = bytearray(1 << 20)
    while (r := pws.recv(b, buf, len(buf), 0)) > 0:
        pass
    assert r == -1 and pws.WSAGetLastError() == WSAECONNRESET
