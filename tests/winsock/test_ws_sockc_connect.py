"""Ported from Wine's dlls/ws2_32/tests/sock.c (run against real Windows): connect, accept,
names, bind and address reuse, shutdown, UDP.

Each test names the sock.c function whose checks it re-states in our own code; sock.c's
127.0.0.1 pairs are loopback pairs on one simulated host (virtual time).
"""

from __future__ import annotations

import ctypes

import ustack.winsock as W

from .wsutil import (
    SILENT,
    bind,
    fail,
    name_of,
    peer_of,
    recv_some,
    sa,
    send_all,
    set_nonblocking,
    setopt_int,
    tcp,
    tcp_socketpair,
    udp,
)

LOOP = "127.0.0.1"


def _listener(ws, addr: str = LOOP, port: int = 0, reuse: bool = False) -> tuple[int, tuple[str, int]]:
    s = tcp(ws)
    if reuse:
        assert setopt_int(ws, s, W.SOL_SOCKET, W.SO_REUSEADDR, 1) == 0
    bind(ws, s, addr, port)
    assert ws.listen(s, 5) == 0
    return s, name_of(ws, s)


def test_item_28_sockc_connecting_socket(net) -> None:
    """sock.c test_connecting_socket: while a nonblocking connect is pending, a second connect ->
    WSAEALREADY; getsockname gives AF_INET with a nonzero port; getpeername already succeeds;
    recv and send -> WSAENOTCONN."""
    ws = net.ws
    c = tcp(ws)
    set_nonblocking(ws, c)
    ws.WSASetLastError(0xDEADBEEF)
    assert ws.bind(c, sa("0.0.0.0", 0), 16) == 0 and ws.WSAGetLastError() == 0
    fail(ws, ws.connect(c, sa(SILENT, 255), 16), W.WSAEWOULDBLOCK)
    fail(ws, ws.connect(c, sa(SILENT, 255), 16), W.WSAEALREADY)
    out, n = W.SOCKADDR_IN(), ctypes.c_int(16)
    assert ws.getsockname(c, out, n) == 0 and out.sin_family == W.AF_INET and out.port != 0
    assert peer_of(ws, c) == (SILENT, 255)
    fail(ws, ws.recv(c, bytearray(4), 4, 0), W.WSAENOTCONN)
    fail(ws, ws.send(c, b"data\0", 5, 0), W.WSAENOTCONN)


def test_item_31_sockc_connect_states(net) -> None:
    """sock.c test_connect: connect on a listener -> WSAEINVAL; on either end of a connection ->
    WSAEISCONN; after a refused blocking connect the same socket connects again (nonblocking:
    WSAEWOULDBLOCK, then accepted)."""
    ws = net.ws
    lst, name = _listener(ws)
    fail(ws, ws.connect(lst, sa(*name), 16), W.WSAEINVAL)
    a, b = tcp_socketpair(ws)
    fail(ws, ws.connect(a, sa(*name), 16), W.WSAEISCONN)
    fail(ws, ws.connect(b, sa(*name), 16), W.WSAEISCONN)
    c = tcp(ws)
    fail(ws, ws.connect(c, sa(LOOP, 255), 16), W.WSAECONNREFUSED)
    set_nonblocking(ws, c)
    fail(ws, ws.connect(c, sa(*name), 16), W.WSAEWOULDBLOCK)
    net.me.sleep(0.1)
    assert ws.accept(lst, None, None) != W.INVALID_SOCKET


def test_item_20_sockc_accept_address_arguments(net) -> None:
    """sock.c test_accept: *addrlen 0 with a buffer -> WSAEFAULT and *addrlen stays 0; NULL/NULL
    accepts; a 128-byte buffer gets the family and *addrlen becomes 16; a buffer with a NULL
    addrlen accepts and the buffer is left untouched; closing the listener from another thread
    makes a blocked accept fail."""
    ws = net.ws
    lst, name = _listener(ws, reuse=True)

    def connector() -> int:
        c = tcp(ws)
        assert ws.connect(c, sa(*name), 16) == 0
        return c

    connector()
    ss, n = (ctypes.c_ubyte * 128)(), ctypes.c_int(0)
    fail(ws, ws.accept(lst, ss, n), W.WSAEFAULT)
    assert n.value == 0
    assert ws.accept(lst, None, None) != W.INVALID_SOCKET
    connector()
    n = ctypes.c_int(128)
    assert ws.accept(lst, ss, n) != W.INVALID_SOCKET
    assert n.value == 16 and int.from_bytes(bytes(ss[:2]), "little") == W.AF_INET
    connector()
    ss = (ctypes.c_ubyte * 128)()
    assert ws.accept(lst, ss, None) != W.INVALID_SOCKET
    assert bytes(ss) == bytes(128)

    def closer() -> None:
        net.me.sleep(0.2)
        assert ws.closesocket(lst) == 0

    task = net.sim.spawn(closer)
    assert ws.accept(lst, None, None) == W.INVALID_SOCKET
    task.join()


def test_item_37_sockc_getpeername_arguments(net) -> None:
    """sock.c test_getpeername: an invalid handle -> WSAENOTSOCK; an unconnected UDP socket ->
    WSAENOTCONN even with NULL arguments, also after a sendto; once connected NULL/NULL,
    (buffer, NULL) and *namelen 0 -> WSAEFAULT with *namelen untouched; a 128-byte buffer gets
    the connect name and *namelen 16."""
    ws = net.ws
    fail(ws, ws.getpeername(W.INVALID_SOCKET, None, None), W.WSAENOTSOCK)
    u = udp(ws)
    fail(ws, ws.getpeername(u, None, None), W.WSAENOTCONN)
    assert ws.sendto(u, b"hello world\0", 12, 0, sa(LOOP, 139), 16) == 12
    fail(ws, ws.getpeername(u, None, None), W.WSAENOTCONN)
    assert ws.connect(u, sa(LOOP, 139), 16) == 0
    fail(ws, ws.getpeername(u, None, None), W.WSAEFAULT)
    fail(ws, ws.getpeername(u, W.SOCKADDR_IN(), None), W.WSAEFAULT)
    for buf in (None, (ctypes.c_ubyte * 128)()):
        n = ctypes.c_int(0)
        fail(ws, ws.getpeername(u, buf, n), W.WSAEFAULT)
        assert n.value == 0
    ss, n = (ctypes.c_ubyte * 128)(), ctypes.c_int(128)
    assert ws.getpeername(u, ss, n) == 0 and n.value == 16
    assert bytes(ss[:16]) == bytes(sa(LOOP, 139))


def test_item_36_sockc_getsockname_arguments(net) -> None:
    """sock.c test_getsockname: unbound -> WSAEINVAL with the buffer untouched; bound to
    0.0.0.0:0 -> last error 0, AF_INET, a port, 0.0.0.0 and a zeroed sin_zero; a 15-byte
    *namelen -> WSAEFAULT and stays 15."""
    ws = net.ws
    t = tcp(ws)
    out = sa("1.2.3.4", 99)
    before = bytes(out)
    fail(ws, ws.getsockname(t, out, ctypes.c_int(16)), W.WSAEINVAL)
    assert bytes(out) == before
    bind(ws, t)
    out, n = W.SOCKADDR_IN(), ctypes.c_int(16)
    ctypes.memset(ctypes.addressof(out), 0xCC, 16)
    ws.WSASetLastError(0xDEADBEEF)
    assert ws.getsockname(t, out, n) == 0 and ws.WSAGetLastError() == 0
    assert (out.sin_family, out.addr) == (W.AF_INET, "0.0.0.0") and out.port != 0
    assert bytes(out)[8:] == bytes(8)
    n = ctypes.c_int(15)
    fail(ws, ws.getsockname(t, out, n), W.WSAEFAULT)
    assert n.value == 15


def test_item_11_sockc_bind_arguments(net) -> None:
    """sock.c test_bind: NULL name or namelen 0 -> WSAEFAULT; family 0xdead -> WSAEAFNOSUPPORT;
    namelen 15 -> WSAEFAULT; an address not on the host -> WSAEADDRNOTAVAIL (TCP and UDP);
    127.0.0.1 binds with last error 0; binding again -> WSAEINVAL; another socket on the same
    name -> WSAEADDRINUSE."""
    ws = net.ws
    s = tcp(ws)
    fail(ws, ws.bind(s, None, 0), W.WSAEFAULT)
    fail(ws, ws.bind(s, None, 16), W.WSAEFAULT)
    fail(ws, ws.bind(s, sa("0.0.0.0", 0), 0), W.WSAEFAULT)
    bad = bytearray(bytes(sa("0.0.0.0", 0)))
    bad[0:2] = (0xDEAD).to_bytes(2, "little")
    fail(ws, ws.bind(s, bad, 16), W.WSAEAFNOSUPPORT)
    fail(ws, ws.bind(s, sa(LOOP, 0), 15), W.WSAEFAULT)
    fail(ws, ws.bind(s, sa("192.0.2.0", 0), 16), W.WSAEADDRNOTAVAIL)
    ws.WSASetLastError(0xDEADBEEF)
    assert ws.bind(s, sa(LOOP, 0), 16) == 0 and ws.WSAGetLastError() == 0
    fail(ws, ws.bind(s, sa(LOOP, 0), 16), W.WSAEINVAL)
    s2 = tcp(ws)
    fail(ws, ws.bind(s2, sa(*name_of(ws, s)), 16), W.WSAEADDRINUSE)
    u = udp(ws)
    fail(ws, ws.bind(u, sa("192.0.2.0", 0), 16), W.WSAEADDRNOTAVAIL)
    assert ws.bind(u, sa(LOOP, 0), 16) == 0


def test_item_63_sockc_shutdown(net) -> None:
    """sock.c test_shutdown: shutdown before connect -> WSAENOTCONN; SD_SEND twice -> 0 (last
    error 0), then send -> WSAESHUTDOWN and the peer reads 0 twice; SD_RECEIVE -> recv
    WSAESHUTDOWN (twice) while the other direction still works; names survive; connect ->
    WSAEISCONN; how 0xdeadbeef -> WSAEINVAL; a listener -> WSAENOTCONN; a closed peer: send
    succeeds, recv -> WSAECONNABORTED."""
    ws = net.ws
    lst, name = _listener(ws)
    client = tcp(ws)
    fail(ws, ws.shutdown(client, W.SD_SEND), W.WSAENOTCONN)
    fail(ws, ws.shutdown(client, W.SD_RECEIVE), W.WSAENOTCONN)
    assert ws.connect(client, sa(*name), 16) == 0
    server = ws.accept(lst, None, None)
    set_nonblocking(ws, client)
    for _ in range(2):
        ws.WSASetLastError(0xDEADBEEF)
        assert ws.shutdown(client, W.SD_SEND) == 0 and ws.WSAGetLastError() == 0
    fail(ws, ws.send(client, b"test\0", 5, 0), W.WSAESHUTDOWN)
    assert recv_some(ws, server) == b"" and recv_some(ws, server) == b""
    assert ws.shutdown(server, W.SD_RECEIVE) == 0
    fail(ws, ws.recv(server, bytearray(5), 5, 0), W.WSAESHUTDOWN)
    send_all(ws, server, b"test\0")
    net.me.sleep(0.1)
    assert recv_some(ws, client) == b"test\0"
    assert ws.shutdown(client, W.SD_RECEIVE) == 0
    for _ in range(2):
        fail(ws, ws.recv(client, bytearray(5), 5, 0), W.WSAESHUTDOWN)
    assert peer_of(ws, client) == name and peer_of(ws, server) == name_of(ws, client)
    fail(ws, ws.connect(client, sa(*name), 16), W.WSAEISCONN)
    fail(ws, ws.shutdown(client, 0xDEADBEEF), W.WSAEINVAL)
    fail(ws, ws.shutdown(lst, W.SD_SEND), W.WSAENOTCONN)
    fail(ws, ws.shutdown(lst, W.SD_RECEIVE), W.WSAENOTCONN)
    a, b = tcp_socketpair(ws)
    assert ws.shutdown(a, W.SD_SEND) == 0 and ws.closesocket(a) == 0
    net.me.sleep(0.1)
    assert ws.send(b, b"test\0", 5, 0) == 5
    net.me.sleep(0.1)
    fail(ws, ws.recv(b, bytearray(5), 5, 0), W.WSAECONNABORTED)


def test_item_59_sockc_udp_shutdown(net) -> None:
    """sock.c test_shutdown (UDP): SD_RECEIVE -> recvfrom WSAESHUTDOWN; SD_SEND (twice, last error
    0) -> sendto WSAESHUTDOWN."""
    ws = net.ws
    client, server = udp(ws), udp(ws)
    bind(ws, server, LOOP)
    set_nonblocking(ws, server)
    ws.WSASetLastError(0xDEADBEEF)
    assert ws.shutdown(server, W.SD_RECEIVE) == 0 and ws.WSAGetLastError() == 0
    fail(ws, ws.recvfrom(server, bytearray(5), 5, 0, None, None), W.WSAESHUTDOWN)
    dest = sa(*name_of(ws, server))
    assert ws.sendto(client, b"test\0", 5, 0, dest, 16) == 5
    for _ in range(2):
        ws.WSASetLastError(0xDEADBEEF)
        assert ws.shutdown(client, W.SD_SEND) == 0 and ws.WSAGetLastError() == 0
    fail(ws, ws.sendto(client, b"test\0", 5, 0, dest, 16), W.WSAESHUTDOWN)


def test_item_8_sockc_tcp_sendto_recvfrom_ignore_addresses(net) -> None:
    """sock.c test_tcp_sendto_recvfrom: on a TCP connection sendto ignores a garbage address and
    recvfrom neither checks nor writes from/fromlen (a garbage *fromlen is fine); recvfrom's, send's
    and recv's success leaves the last error 0 (test_WSASendMsg, test_ip_pktinfo, test_WSARecv)."""
    ws = net.ws
    client, server = tcp_socketpair(ws)
    msg = b"ws2_32/TCP socket test\0"
    bad = (ctypes.c_ubyte * 16)(*([0xFE] * 16))
    assert ws.sendto(server, msg, len(msg), 0, bad, 16) == len(msg)
    assert bytes(bad) == bytes([0xFE] * 16)
    to_len = ctypes.c_int(0xC0FFEE11 - (1 << 32))
    buf = bytearray(len(msg))
    ws.WSASetLastError(0xDEADBEEF)
    assert ws.recvfrom(client, buf, len(buf), 0, bad, to_len) == len(msg)
    assert ws.WSAGetLastError() == 0
    assert bytes(buf) == msg and bytes(bad) == bytes([0xFE] * 16) and to_len.value == 0xC0FFEE11 - (1 << 32)
    ws.WSASetLastError(0xDEADBEEF)
    assert ws.send(client, b"ab", 2, 0) == 2 and ws.WSAGetLastError() == 0
    net.me.sleep(0.01)
    ws.WSASetLastError(0xDEADBEEF)
    assert ws.recv(server, bytearray(2), 2, 0) == 2 and ws.WSAGetLastError() == 0


def test_item_58_sockc_udp_fromlen(net) -> None:
    """sock.c test_UDP: recvfrom with *fromlen 1 fails without writing the address and leaves the
    datagram queued; a 1024-byte from buffer gets only the 16-byte address; the last error is
    0 after a successful recvfrom."""
    ws = net.ws
    peer0, peer1 = udp(ws), udp(ws)
    bind(ws, peer0, LOOP)
    bind(ws, peer1, LOOP)
    dest = sa(*name_of(ws, peer0))
    buf = bytes(16)
    assert ws.sendto(peer1, buf, 16, 0, dest, 16) == 16
    frm = (ctypes.c_ubyte * 1024)()
    frm[0] = ord("A")
    assert ws.recvfrom(peer0, bytearray(16), 16, 0, frm, ctypes.c_int(1)) == W.SOCKET_ERROR
    assert frm[0] == ord("A")
    assert ws.recvfrom(peer0, bytearray(16), 16, 0, frm, ctypes.c_int(16)) == 16
    assert ws.sendto(peer1, buf, 16, 0, dest, 16) == 16
    frm[1023] = ord("B")
    fl = ctypes.c_int(1024)
    ws.WSASetLastError(0xDEADBEEF)
    assert ws.recvfrom(peer0, bytearray(16), 16, 0, frm, fl) == 16
    assert ws.WSAGetLastError() == 0 and frm[1023] == ord("B") and fl.value == 16


def test_item_53_sockc_connect_udp(net) -> None:
    """sock.c test_connect_udp: send before connect -> WSAENOTCONN; recv unbound -> WSAEINVAL,
    bound and empty -> WSAEWOULDBLOCK; after connect getpeername is the server and data flows;
    the server's send -> WSAENOTCONN; connecting again (same or another port) -> 0; AF_UNSPEC
    dis-connects (getpeername -> WSAENOTCONN)."""
    ws = net.ws
    client, server = udp(ws), udp(ws)
    set_nonblocking(ws, client)
    set_nonblocking(ws, server)
    fail(ws, ws.send(client, b"data", 4, 0), W.WSAENOTCONN)
    fail(ws, ws.recv(server, bytearray(5), 5, 0), W.WSAEINVAL)
    bind(ws, server, LOOP)
    addr = name_of(ws, server)
    fail(ws, ws.recv(server, bytearray(5), 5, 0), W.WSAEWOULDBLOCK)
    assert ws.connect(client, sa(*addr), 16) == 0
    assert peer_of(ws, client) == addr
    name_of(ws, client)
    fail(ws, ws.getpeername(server, W.SOCKADDR_IN(), ctypes.c_int(16)), W.WSAENOTCONN)
    assert ws.send(client, b"data", 4, 0) == 4
    net.me.sleep(0.01)
    assert recv_some(ws, server, 5) == b"data"
    fail(ws, ws.recv(server, bytearray(5), 5, 0), W.WSAEWOULDBLOCK)
    fail(ws, ws.send(server, b"data", 4, 0), W.WSAENOTCONN)
    assert ws.connect(client, sa(*addr), 16) == 0
    assert ws.connect(client, sa(addr[0], addr[1] + 1), 16) == 0
    unspec = bytes(16)
    assert ws.connect(client, unspec, 16) == 0
    fail(ws, ws.getpeername(client, W.SOCKADDR_IN(), ctypes.c_int(16)), W.WSAENOTCONN)


ANY = "0.0.0.0"
# sock.c test_reuseaddr's SO_EXCLUSIVEADDRUSE table, its IPv4 rows: (first socket's address,
# exclusive?), (second socket's address, exclusive?), the second bind's error (0: it binds)
EXCLUSIVE = [
    ((ANY, True), (LOOP, False), W.WSAEACCES),
    ((ANY, False), (LOOP, True), 0),
    ((ANY, True), (LOOP, True), W.WSAEACCES),
    ((LOOP, True), (ANY, False), 0),
    ((LOOP, False), (ANY, True), W.WSAEADDRINUSE),
    ((ANY, False), (ANY, True), W.WSAEADDRINUSE),
    ((ANY, False), (ANY, False), W.WSAEADDRINUSE),
    ((LOOP, True), (LOOP, False), W.WSAEADDRINUSE),
    ((LOOP, False), (LOOP, True), W.WSAEADDRINUSE),
]


def test_item_14_sockc_exclusiveaddruse_matrix(net) -> None:
    """sock.c test_reuseaddr, the SO_EXCLUSIVEADDRUSE table (IPv4 rows): an exclusive wildcard
    holder refuses a later specific bind with WSAEACCES; a specific holder lets an exclusive or
    plain wildcard in unless the newcomer is exclusive over a plain holder (WSAEADDRINUSE); the
    same address twice is WSAEADDRINUSE whoever is exclusive."""
    ws = net.ws
    port = 9375
    for (a1, x1), (a2, x2), want in EXCLUSIVE:
        s1, s2 = tcp(ws), tcp(ws)
        for s, x in ((s1, x1), (s2, x2)):
            if x:
                assert setopt_int(ws, s, W.SOL_SOCKET, W.SO_EXCLUSIVEADDRUSE, 1) == 0
        bind(ws, s1, a1, port)
        r = ws.bind(s2, sa(a2, port), 16)
        if want:
            fail(ws, r, want)
        else:
            assert r == 0, (a1, x1, a2, x2, ws.WSAGetLastError())
        assert ws.closesocket(s1) == 0 and ws.closesocket(s2) == 0


def test_item_14_sockc_reuseaddr_binds_and_delivery(net) -> None:
    """sock.c test_reuseaddr (IPv4): SO_REUSEADDR on the second socket only -> WSAEACCES; on both,
    a plain second bind fails until it sets SO_REUSEADDR too, then both listen and a connection
    goes to the first; the wildcard and 127.0.0.1 bind together either order and the specific
    listener gets the connection; two plain wildcard binds -> WSAEADDRINUSE; successive
    SO_REUSEADDR listeners take over as earlier ones close."""
    ws = net.ws
    port = 9376
    s1, s2 = tcp(ws), tcp(ws)
    bind(ws, s1, LOOP, port)
    assert setopt_int(ws, s2, W.SOL_SOCKET, W.SO_REUSEADDR, 1) == 0
    fail(ws, ws.bind(s2, sa(LOOP, port), 16), W.WSAEACCES)
    for s in (s1, s2):
        assert ws.closesocket(s) == 0

    s1, s2, s3 = tcp(ws), tcp(ws), tcp(ws)
    assert setopt_int(ws, s1, W.SOL_SOCKET, W.SO_REUSEADDR, 1) == 0
    bind(ws, s1, LOOP, port)
    assert ws.bind(s2, sa(LOOP, port), 16) == W.SOCKET_ERROR
    assert setopt_int(ws, s2, W.SOL_SOCKET, W.SO_REUSEADDR, 1) == 0
    bind(ws, s2, LOOP, port)
    assert ws.listen(s1, 1) == 0 and ws.listen(s2, 1) == 0
    assert ws.connect(s3, sa(LOOP, port), 16) == 0
    assert ws.accept(s1, None, None) != W.INVALID_SOCKET
    for s in (s1, s2, s3):
        assert ws.closesocket(s) == 0

    for first, second, winner in ((ANY, LOOP, 1), (LOOP, ANY, 0)):
        a, b, c = tcp(ws), tcp(ws), tcp(ws)
        bind(ws, a, first, port + 1)
        assert ws.listen(a, 1) == 0
        bind(ws, b, second, port + 1)
        assert ws.listen(b, 1) == 0
        assert ws.connect(c, sa(LOOP, port + 1), 16) == 0
        assert ws.accept((a, b)[winner], None, None) != W.INVALID_SOCKET
        for s in (a, b, c):
            assert ws.closesocket(s) == 0
        port += 1

    a, b = tcp(ws), tcp(ws)
    bind(ws, a, ANY, port + 1)
    fail(ws, ws.bind(b, sa(ANY, port + 1), 16), W.WSAEADDRINUSE)

    port += 2
    socks = [tcp(ws) for _ in range(4)]
    for s in socks:
        assert setopt_int(ws, s, W.SOL_SOCKET, W.SO_REUSEADDR, 1) == 0
    bind(ws, socks[0], LOOP, port)
    bind(ws, socks[1], LOOP, port)
    assert ws.listen(socks[0], 1) == 0 and ws.listen(socks[1], 1) == 0
    for k in range(4):  # socket k takes the connection; k + 2 binds, k + 1 starts listening
        c = tcp(ws)
        assert ws.connect(c, sa(LOOP, port), 16) == 0, (k, ws.WSAGetLastError())
        assert ws.accept(socks[k], None, None) != W.INVALID_SOCKET, k
        assert ws.closesocket(c) == 0 and ws.closesocket(socks[k]) == 0
        if k + 2 < 4:
            bind(ws, socks[k + 2], LOOP, port)
        if 2 <= k + 1 < 4:
            assert ws.listen(socks[k + 1], 1) == 0


def test_item_33_sockc_udp_port_zero(net) -> None:
    """sock.c test_UDP and test_connect_events: a UDP sendto 127.0.0.1 port 0 succeeds (the whole
    datagram), and a UDP connect to port 0 succeeds; the address 0.0.0.0 stays refused."""
    ws = net.ws
    u = udp(ws)
    assert ws.sendto(u, bytes(16), 16, 0, sa(LOOP, 0), 16) == 16, ws.WSAGetLastError()
    c = udp(ws)
    assert ws.connect(c, sa(LOOP, 0), 16) == 0, ws.WSAGetLastError()
    assert peer_of(ws, c) == (LOOP, 0)
    fail(ws, ws.sendto(u, bytes(4), 4, 0, sa("0.0.0.0", 53), 16), W.WSAEADDRNOTAVAIL)


def test_item_56_sockc_udp_sends_despite_port_unreachable(net) -> None:
    """sock.c test_UDP: a UDP socket connected to a port nobody listens on keeps sending (ten
    blocking sends, each answered by an ICMP port unreachable, all succeed), and nonblocking it
    stays writable: 256 send + select rounds all succeed."""
    ws = net.ws
    s = udp(ws)
    assert ws.connect(s, sa(LOOP, 255), 16) == 0
    buf = bytes(256)
    for _ in range(10):
        assert ws.send(s, buf, len(buf), 0) == len(buf), ws.WSAGetLastError()
        net.me.sleep(0.01)
    set_nonblocking(ws, s)
    for i in range(256):
        assert ws.send(s, buf, len(buf), 0) == len(buf), (i, ws.WSAGetLastError())
        w = W.FD_SET(s)
        assert ws.select(0, None, w, None, W.TIMEVAL(0, 0)) == 1, i
    assert net.me.stack.counters.get("icmp.errors_in") >= 1  # the port unreachables did arrive
