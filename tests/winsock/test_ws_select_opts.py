"""Section K: select and socket options; blocking timeouts; nonblocking sends."""

from __future__ import annotations

import ctypes

from ustack.winsock import (
    FD_SET,
    FIONREAD,
    IPPROTO_TCP,
    LINGER,
    SIOCATMARK,
    SO_ACCEPTCONN,
    SO_BROADCAST,
    SO_ERROR,
    SO_KEEPALIVE,
    SO_LINGER,
    SO_RCVBUF,
    SO_RCVTIMEO,
    SO_SNDBUF,
    SO_SNDTIMEO,
    SO_TYPE,
    SOCK_STREAM,
    SOL_SOCKET,
    TCP_NODELAY,
    TIMEVAL,
    WSAEFAULT,
    WSAEINVAL,
    WSAENOPROTOOPT,
    WSAENOTSOCK,
    WSAETIMEDOUT,
    WSAEWOULDBLOCK,
)

from .wsutil import (
    ME,
    PEER,
    accept_in_task,
    bind,
    fail,
    getopt_int,
    listener,
    recv_some,
    sa,
    sendto,
    set_nonblocking,
    setopt_int,
    tcp,
    udp,
)


def test_item_65_select_argument_rules(net) -> None:
    """≠L: select with all sets NULL or empty -> WSAEINVAL; a closed socket in any set -> WSAENOTSOCK;
    the result counts (socket, set) pairs and nfds is ignored."""
    ws, pws = net.ws, net.pws
    fail(ws, ws.select(0, None, None, None, TIMEVAL(0, 0)), WSAEINVAL)
    fail(ws, ws.select(0, FD_SET(), FD_SET(), FD_SET(), TIMEVAL(0, 0)), WSAEINVAL)
    dead = udp(ws)
    assert ws.closesocket(dead) == 0
    fail(ws, ws.select(0, FD_SET(), FD_SET(dead), None, TIMEVAL(0, 0)), WSAENOTSOCK)
    live = udp(ws)
    fail(ws, ws.select(0, FD_SET(live), None, None, TIMEVAL(-1, 0)), WSAEINVAL)
    fail(ws, ws.select(0, FD_SET(live, dead), None, None, TIMEVAL(0, 0)), WSAENOTSOCK)
    fail(ws, ws.select(0, None, FD_SET(live), FD_SET(dead), None), WSAENOTSOCK)  # no wait: fails at once
    s = udp(ws)
    bind(ws, s, ME, 8600)
    sendto(pws, udp(pws), b"x", ME, 8600)
    net.me.sleep(0.01)
    r, w, x = FD_SET(s), FD_SET(s), FD_SET(s)
    assert ws.select(12345, r, w, x, TIMEVAL(0, 0)) == 2  # readable and writable: two pairs
    assert (s in r, s in w, s in x) == (True, True, False)
    t = udp(ws)
    bind(ws, t)
    r, w = FD_SET(s, t), FD_SET(s, t)
    assert ws.select(-1, r, w, None, TIMEVAL(0, 0)) == 3  # s readable; s and t writable
    assert list(r) == [s] and sorted(w) == sorted([s, t])


def test_item_67_option_errors(net) -> None:
    """Invalid level -> WSAEINVAL; SO_LINGER on UDP -> WSAENOPROTOOPT; short optlen -> WSAEFAULT."""
    ws = net.ws
    u, t = udp(ws), tcp(ws)
    fail(ws, ws.setsockopt(u, 0x1234, SO_BROADCAST, ctypes.c_int(1), 4), WSAEINVAL)
    fail(ws, ws.getsockopt(u, 0x1234, SO_TYPE, ctypes.c_int(), ctypes.c_int(4)), WSAEINVAL)
    fail(ws, ws.setsockopt(u, SOL_SOCKET, SO_LINGER, LINGER(1, 5), 4), WSAENOPROTOOPT)
    fail(ws, ws.getsockopt(u, SOL_SOCKET, SO_LINGER, LINGER(), ctypes.c_int(4)), WSAENOPROTOOPT)
    fail(ws, ws.setsockopt(t, SOL_SOCKET, SO_RCVBUF, ctypes.c_int(1), 2), WSAEFAULT)
    fail(ws, ws.getsockopt(t, SOL_SOCKET, SO_RCVBUF, ctypes.c_int(), ctypes.c_int(2)), WSAEFAULT)
    fail(ws, ws.setsockopt(t, SOL_SOCKET, SO_LINGER, LINGER(1, 5), 2), WSAEFAULT)
    fail(ws, ws.setsockopt(t, SOL_SOCKET, SO_RCVBUF, None, 4), WSAEFAULT)
    fail(ws, ws.setsockopt(t, SOL_SOCKET, 0x7777, ctypes.c_int(1), 4), WSAENOPROTOOPT)
    fail(ws, ws.setsockopt(u, IPPROTO_TCP, TCP_NODELAY, ctypes.c_int(1), 4), WSAENOPROTOOPT)


def test_item_67_option_round_trips(net) -> None:
    """Options read back what was set, with Winsock's sizes (LINGER is 4 bytes, BOOL/int/DWORD 4)."""
    ws = net.ws
    t = tcp(ws)
    for opt, val in ((SO_KEEPALIVE, 1), (SO_RCVBUF, 20000), (SO_SNDBUF, 30000), (SO_RCVTIMEO, 1500),
                     (SO_SNDTIMEO, 2500)):
        assert setopt_int(ws, t, SOL_SOCKET, opt, val) == 0
        assert getopt_int(ws, t, SOL_SOCKET, opt) == val
    assert setopt_int(ws, t, IPPROTO_TCP, TCP_NODELAY, 1) == 0
    assert getopt_int(ws, t, IPPROTO_TCP, TCP_NODELAY) == 1
    assert ws.stack_socket(t).nodelay is True and ws.stack_socket(t).rcvbuf == 20000
    assert ws.setsockopt(t, SOL_SOCKET, SO_LINGER, LINGER(1, 7), 4) == 0
    out, n = LINGER(), ctypes.c_int(4)
    assert ws.getsockopt(t, SOL_SOCKET, SO_LINGER, out, n) == 0 and (out.l_onoff, out.l_linger) == (1, 7)
    assert getopt_int(ws, t, SOL_SOCKET, SO_TYPE) == SOCK_STREAM
    assert getopt_int(ws, t, SOL_SOCKET, SO_ACCEPTCONN) == 0
    assert getopt_int(ws, t, SOL_SOCKET, SO_ERROR) == 0
    raw = bytearray(4)
    n = ctypes.c_int(4)
    assert ws.getsockopt(t, SOL_SOCKET, SO_RCVBUF, raw, n) == 0 and int.from_bytes(raw, "little") == 20000
    assert ws.setsockopt(t, SOL_SOCKET, SO_SNDBUF, (40000).to_bytes(4, "little"), 4) == 0
    assert getopt_int(ws, t, SOL_SOCKET, SO_SNDBUF) == 40000


def test_item_69_rcvtimeo_expiry(net) -> None:
    """≠L: SO_RCVTIMEO expiry on a blocking recv -> WSAETIMEDOUT (Linux: EAGAIN), TCP and UDP."""
    ws = net.ws
    acc = accept_in_task(net, listener(net.pws, 8610))
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 8610), 16) == 0
    assert setopt_int(ws, c, SOL_SOCKET, SO_RCVTIMEO, 1200) == 0
    t0 = net.me.now()
    fail(ws, ws.recv(c, bytearray(10), 10, 0), WSAETIMEDOUT)
    assert abs(net.me.now() - t0 - 1.2) < 1e-6
    u = udp(ws)
    bind(ws, u)
    assert setopt_int(ws, u, SOL_SOCKET, SO_RCVTIMEO, 300) == 0
    t0 = net.me.now()
    fail(ws, ws.recvfrom(u, bytearray(10), 10, 0, None, None), WSAETIMEDOUT)
    assert abs(net.me.now() - t0 - 0.3) < 1e-6
    acc.join()


def test_item_69_sndtimeo_expiry(net) -> None:
    """SO_SNDTIMEO expiry on a blocking TCP send that cannot complete (the send buffer is full and the
    peer does not read) -> WSAETIMEDOUT after the timeout, not a partial count."""
    from .wsutil import setopt_int as setopt

    ws, pws = net.ws, net.pws
    lst = tcp(pws)
    assert setopt(pws, lst, SOL_SOCKET, SO_RCVBUF, 2000) == 0
    bind(pws, lst, PEER, 8611)
    assert pws.listen(lst, 5) == 0
    acc = accept_in_task(net, lst)
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 8611), 16) == 0
    acc.join()
    assert setopt(ws, c, SOL_SOCKET, SO_SNDBUF, 4096) == 0
    assert setopt(ws, c, SOL_SOCKET, SO_SNDTIMEO, 800) == 0
    data = b"s" * 50000
    t0 = net.me.now()
    assert ws.send(c, data, len(data), 0) == len(data)  # buffer not full: taken whole at once
    assert net.me.now() == t0
    fail(ws, ws.send(c, data, len(data), 0), WSAETIMEDOUT)  # now full, and the peer does not read
    assert abs(net.me.now() - t0 - 0.8) < 0.01


def test_item_70_nonblocking_send_all_or_nothing(net) -> None:
    """A nonblocking TCP send sends everything or fails with WSAEWOULDBLOCK; never a partial count (a
    send larger than SO_SNDBUF is taken whole while the buffer is not full, as Windows does)."""
    ws, pws = net.ws, net.pws
    acc = accept_in_task(net, listener(pws, 8620))
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 8620), 16) == 0
    (a,) = acc.result()
    assert setopt_int(ws, c, SOL_SOCKET, SO_SNDBUF, 10000) == 0
    assert setopt_int(pws, a, SOL_SOCKET, SO_RCVBUF, 4000) == 0
    set_nonblocking(ws, c)
    sent = []
    for _ in range(20):
        r = ws.send(c, b"z" * 3000, 3000, 0)
        if r == -1:
            assert ws.WSAGetLastError() == WSAEWOULDBLOCK
            break
        assert r == 3000
        sent.append(r)
    else:
        raise AssertionError("the send buffer never filled")
    assert 3 <= len(sent) <= 5
    w = FD_SET(c)
    assert ws.select(0, None, w, None, TIMEVAL(0, 0)) == 0  # full: not writable either
    total = 0
    while total < sum(sent):
        total += len(recv_some(pws, a, 65536))
    assert total == sum(sent)
    # Windows takes a send larger than SO_SNDBUF whole while the buffer is not full
    w = FD_SET(c)
    assert ws.select(0, None, w, None, TIMEVAL(5, 0)) == 1
    big = bytes(range(256)) * 200  # 51200 bytes > SO_SNDBUF 10000
    assert ws.send(c, big, len(big), 0) == len(big)
    got = b""
    while len(got) < len(big):
        got += recv_some(pws, a, 65536)
    assert got == big


def test_fionread_counts_pending_bytes(net) -> None:
    """ioctlsocket(FIONREAD) reports the bytes waiting (TCP stream bytes, UDP queued bytes)."""
    ws, pws = net.ws, net.pws
    u = udp(ws)
    bind(ws, u, ME, 8630)
    src = udp(pws)
    sendto(pws, src, b"12345", ME, 8630)
    sendto(pws, src, b"678", ME, 8630)
    net.me.sleep(0.01)
    v = ctypes.c_ulong()
    assert ws.ioctlsocket(u, FIONREAD, v) == 0 and v.value == 8
    fail(ws, ws.ioctlsocket(u, 0x12345678, v), WSAEINVAL)
    fail(ws, ws.ioctlsocket(u, FIONREAD, None), WSAEFAULT)
    t = tcp(ws)
    mark = ctypes.c_ulong(0)
    assert ws.ioctlsocket(t, SIOCATMARK, mark) == 0 and mark.value == 1  # no urgent data
    out = bytearray(4)
    got = ctypes.c_ulong()
    assert ws.WSAIoctl(u, FIONREAD, None, 0, out, 4, got) == 0
    assert int.from_bytes(out, "little") == 8 and got.value == 4


def test_msg_peek_leaves_data_queued(net) -> None:
    """recv with MSG_PEEK returns the data and leaves it queued (TCP bytes, UDP datagram)."""
    from ustack.winsock import MSG_PEEK, WSAEMSGSIZE

    ws, pws = net.ws, net.pws
    acc = accept_in_task(net, listener(pws, 8640))
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 8640), 16) == 0
    (a,) = acc.result()
    assert pws.send(a, b"peekaboo", 8, 0) == 8
    buf = bytearray(4)
    assert ws.recv(c, buf, 4, MSG_PEEK) == 4 and bytes(buf) == b"peek"
    assert recv_some(ws, c, 100) == b"peekaboo"
    u = udp(ws)
    bind(ws, u, ME, 8641)
    sendto(pws, udp(pws), b"datagram", ME, 8641)
    small = bytearray(4)
    fail(ws, ws.recv(u, small, 4, MSG_PEEK), WSAEMSGSIZE)
    assert bytes(small) == b"data"
    assert recv_some(ws, u, 100) == b"datagram"


def test_nonblocking_calls_never_block(net) -> None:
    """Nonblocking connect, accept, recv, recvfrom, send-when-full, select with a zero timeval and
    WSAWaitForMultipleEvents with 0 ms all return without any (virtual) time passing."""
    from ustack.winsock import SO_SNDBUF, WSA_WAIT_TIMEOUT

    from .wsutil import SILENT

    ws, pws = net.ws, net.pws
    lst = listener(ws, 8650)
    set_nonblocking(ws, lst)
    u = udp(ws)
    bind(ws, u)
    set_nonblocking(ws, u)
    c = tcp(ws)
    set_nonblocking(ws, c)
    acc = accept_in_task(net, listener(pws, 8651))
    full = tcp(ws)
    assert ws.connect(full, sa(PEER, 8651), 16) == 0
    acc.join()
    assert setopt_int(ws, full, SOL_SOCKET, SO_SNDBUF, 1) == 0
    set_nonblocking(ws, full)
    t0 = net.me.now()
    fail(ws, ws.connect(c, sa(SILENT, 80), 16), WSAEWOULDBLOCK)
    fail(ws, ws.accept(lst, None, None), WSAEWOULDBLOCK)
    fail(ws, ws.recv(u, bytearray(8), 8, 0), WSAEWOULDBLOCK)
    fail(ws, ws.recvfrom(u, bytearray(8), 8, 0, None, None), WSAEWOULDBLOCK)
    sent_once = ws.send(full, b"x" * 100000, 100000, 0)
    assert sent_once == 100000  # taken whole (item 70) ...
    fail(ws, ws.send(full, b"y", 1, 0), WSAEWOULDBLOCK)  # ... then full
    assert ws.select(0, FD_SET(u, lst), None, None, TIMEVAL(0, 0)) == 0
    assert ws.WSAWaitForMultipleEvents(1, [ws.WSACreateEvent()], False, 0, False) == WSA_WAIT_TIMEOUT
    assert net.me.now() == t0
