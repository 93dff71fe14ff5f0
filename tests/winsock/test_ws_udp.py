"""Section I: UDP, plus the UDP lines of the connect page (section 0)."""

from __future__ import annotations

import ctypes

from ustack.winsock import (
    AF_UNSPEC,
    FD_SET,
    FIONREAD,
    SIO_UDP_CONNRESET,
    SO_BROADCAST,
    SOCKADDR_IN,
    SOL_SOCKET,
    TIMEVAL,
    WSAEACCES,
    WSAECONNRESET,
    WSAEFAULT,
    WSAEINVAL,
    WSAEMSGSIZE,
    WSAENOTCONN,
    WSAESHUTDOWN,
    WSAEWOULDBLOCK,
)

from .wsutil import (
    BCAST,
    ME,
    PEER,
    bind,
    fail,
    getopt_int,
    make_net,
    name_of,
    peer_of,
    recv_from,
    recv_some,
    sa,
    send_all,
    sendto,
    set_nonblocking,
    setopt_int,
    udp,
)


def _server(net, port: int) -> int:
    s = udp(net.pws)
    bind(net.pws, s, PEER, port)
    return s


def test_item_50_send_unconnected_udp(net) -> None:
    """≠L: send() on an unconnected UDP socket -> WSAENOTCONN (Linux: EDESTADDRREQ)."""
    ws = net.ws
    s = udp(ws)
    fail(ws, ws.send(s, b"x", 1, 0), WSAENOTCONN)
    bind(ws, s)
    fail(ws, ws.send(s, b"x", 1, 0), WSAENOTCONN)


def test_item_51_recv_unbound_udp(net) -> None:
    """≠L: recv on an unbound UDP socket -> WSAEINVAL; bound, empty, nonblocking -> WSAEWOULDBLOCK."""
    ws = net.ws
    s = udp(ws)
    fail(ws, ws.recv(s, bytearray(8), 8, 0), WSAEINVAL)
    fail(ws, ws.recvfrom(s, bytearray(8), 8, 0, None, None), WSAEINVAL)
    bind(ws, s)
    set_nonblocking(ws, s)
    fail(ws, ws.recv(s, bytearray(8), 8, 0), WSAEWOULDBLOCK)


def test_item_52_udp_connect_is_immediate(net) -> None:
    """UDP connect() returns 0 at once even nonblocking, binds implicitly; connecting again -> 0."""
    ws = net.ws
    s = udp(ws)
    set_nonblocking(ws, s)
    t0 = net.me.now()
    assert ws.connect(s, sa(PEER, 7001), 16) == 0
    assert net.me.now() == t0
    addr, port = name_of(ws, s)
    # bound to 0.0.0.0:ephemeral; once connected, getsockname reports the address the route to
    # the peer uses (Microsoft's getsockname page: known after connect)
    assert addr == ME and port >= 49152
    assert ws.connect(s, sa(PEER, 7002), 16) == 0
    assert peer_of(ws, s) == (PEER, 7002)
    assert ws.connect(s, sa("0.0.0.0", 0), 16) == 0  # dis-connect: back to the wildcard name
    assert name_of(ws, s) == ("0.0.0.0", port)


def test_item_53_all_zero_address_disconnects(net) -> None:
    """All-zero address (AF_UNSPEC or 0.0.0.0:0) -> 0 and dis-connects: getpeername/send/recv WSAENOTCONN,
    sendto/recvfrom work."""
    ws = net.ws
    srv = _server(net, 7010)
    for zero in (SOCKADDR_IN.make("0.0.0.0", 0, family=AF_UNSPEC), sa("0.0.0.0", 0)):
        s = udp(ws)
        assert ws.connect(s, sa(PEER, 7010), 16) == 0
        assert ws.connect(s, zero, 16) == 0
        fail(ws, ws.getpeername(s, SOCKADDR_IN(), ctypes.c_int(16)), WSAENOTCONN)
        fail(ws, ws.send(s, b"x", 1, 0), WSAENOTCONN)
        fail(ws, ws.recv(s, bytearray(4), 4, 0), WSAENOTCONN)
        assert sendto(ws, s, b"still", PEER, 7010) == 5
        data, src = recv_from(net.pws, srv)
        assert data == b"still" and src[1] == name_of(ws, s)[1]
        assert sendto(net.pws, srv, b"back", ME, src[1]) == 4
        assert recv_from(ws, s) == (b"back", (PEER, 7010))


def test_item_54_connected_udp_discards_other_peers(net) -> None:
    """Datagrams from other peers are discarded while connected."""
    ws, pws = net.ws, net.pws
    a = _server(net, 7020)
    b = _server(net, 7021)
    s = udp(ws)
    bind(ws, s, ME, 7022)
    assert ws.connect(s, sa(PEER, 7020), 16) == 0
    assert sendto(pws, b, b"from-b", ME, 7022) == 6
    assert sendto(pws, a, b"from-a", ME, 7022) == 6
    assert recv_some(ws, s) == b"from-a"
    set_nonblocking(ws, s)
    fail(ws, ws.recv(s, bytearray(8), 8, 0), WSAEWOULDBLOCK)


def test_item_54_reconnect_discards_queue(net) -> None:
    """Queued datagrams are discarded when reconnecting to a different name (kept for the same name)."""
    ws, pws = net.ws, net.pws
    a = _server(net, 7030)
    s = udp(ws)
    bind(ws, s, ME, 7031)
    assert ws.connect(s, sa(PEER, 7030), 16) == 0
    assert sendto(pws, a, b"one", ME, 7031) == 3
    net.me.sleep(0.01)
    assert ws.connect(s, sa(PEER, 7030), 16) == 0  # same name: kept
    v = ctypes.c_ulong()
    assert ws.ioctlsocket(s, FIONREAD, v) == 0 and v.value == 3
    assert ws.connect(s, sa(PEER, 7039), 16) == 0  # different name: discarded
    assert ws.ioctlsocket(s, FIONREAD, v) == 0 and v.value == 0


def test_item_55_broadcast_needs_so_broadcast(net) -> None:
    """sendto(broadcast) without SO_BROADCAST -> WSAEACCES; with it, succeeds and is delivered."""
    ws, pws = net.ws, net.pws
    srv = udp(pws)
    bind(pws, srv, "0.0.0.0", 7040)
    s = udp(ws)
    fail(ws, sendto(ws, s, b"b", BCAST, 7040), WSAEACCES)
    fail(ws, sendto(ws, s, b"b", "255.255.255.255", 7040), WSAEACCES)
    assert setopt_int(ws, s, SOL_SOCKET, SO_BROADCAST, 1) == 0
    assert sendto(ws, s, b"bcast", BCAST, 7040) == 5
    assert recv_from(pws, srv)[0] == b"bcast"


def test_item_0_connect_error_WSAEACCES_udp_broadcast() -> None:
    """connect: a UDP connect to a broadcast address without SO_BROADCAST -> WSAEACCES (the document's
    behaviour, `Winsock(host, broadcast_connect="document")`)."""
    n = make_net(seed=9, broadcast_connect="document")
    try:
        ws = n.ws
        s = udp(ws)
        fail(ws, ws.connect(s, sa(BCAST, 7050), 16), WSAEACCES)
        fail(ws, ws.connect(s, sa("255.255.255.255", 7050), 16), WSAEACCES)
        assert setopt_int(ws, s, SOL_SOCKET, SO_BROADCAST, 1) == 0
        assert ws.connect(s, sa(BCAST, 7050), 16) == 0
    finally:
        n.close()


def test_item_55_sockc_broadcast_connect(net) -> None:
    """sock.c test_broadcast (the default, Windows' behaviour): sendto a broadcast address fails
    without SO_BROADCAST, works with it and fails again once it is cleared; a connect to the
    broadcast address succeeds without the option (which still reads 0), sendto it still
    fails, and send() on the connected socket works and is delivered."""
    ws, pws = net.ws, net.pws
    srv = udp(pws)
    bind(pws, srv, "0.0.0.0", 7051)
    s = udp(ws)
    fail(ws, sendto(ws, s, b"test", BCAST, 7051), WSAEACCES)
    assert setopt_int(ws, s, SOL_SOCKET, SO_BROADCAST, 1) == 0
    assert sendto(ws, s, b"test", BCAST, 7051) == 4
    assert setopt_int(ws, s, SOL_SOCKET, SO_BROADCAST, 0) == 0
    fail(ws, sendto(ws, s, b"test", BCAST, 7051), WSAEACCES)
    assert ws.connect(s, sa(BCAST, 7051), 16) == 0
    assert getopt_int(ws, s, SOL_SOCKET, SO_BROADCAST) == 0
    fail(ws, sendto(ws, s, b"test", BCAST, 7051), WSAEACCES)
    assert ws.send(s, b"conn", 4, 0) == 4
    got = {recv_from(pws, srv)[0] for _ in range(2)}
    assert got == {b"test", b"conn"}


def test_item_56_icmp_port_unreachable_resets_next_recv(net) -> None:
    """ICMP port unreachable after a send -> next recv/recvfrom WSAECONNRESET (connected and unconnected);
    socket stays usable."""
    ws, pws = net.ws, net.pws
    c = udp(ws)
    assert ws.connect(c, sa(PEER, 7060), 16) == 0  # nobody there
    send_all(ws, c, b"ping")
    fail(ws, ws.recv(c, bytearray(8), 8, 0), WSAECONNRESET)
    u = udp(ws)
    assert sendto(ws, u, b"ping", PEER, 7061) == 4
    fail(ws, ws.recvfrom(u, bytearray(8), 8, 0, None, None), WSAECONNRESET)
    srv = _server(net, 7061)  # now someone listens: the socket still works
    assert sendto(ws, u, b"again", PEER, 7061) == 5
    data, src = recv_from(pws, srv)
    assert sendto(pws, srv, b"reply", ME, src[1]) == 5
    assert recv_from(ws, u)[0] == b"reply"


def test_item_56_sio_udp_connreset_off(net) -> None:
    """With SIO_UDP_CONNRESET off, the ICMP error is not reported."""
    ws = net.ws
    u = udp(ws)
    assert ws.ioctlsocket(u, SIO_UDP_CONNRESET, ctypes.c_ulong(0)) == 0
    assert sendto(ws, u, b"ping", PEER, 7062) == 4
    set_nonblocking(ws, u)
    net.me.sleep(0.01)
    assert net.me.stack.counters.get("udp.icmp_error") == 1  # the ICMP did arrive
    r = FD_SET(u)
    assert ws.select(0, r, None, None, TIMEVAL(0, 0)) == 0  # ... and is not a readable condition
    fail(ws, ws.recvfrom(u, bytearray(8), 8, 0, None, None), WSAEWOULDBLOCK)


def test_item_57_sendto_binds_implicitly(net) -> None:
    """sendto on an unbound socket binds it to 0.0.0.0:ephemeral."""
    ws = net.ws
    s = udp(ws)
    fail(ws, ws.getsockname(s, SOCKADDR_IN(), ctypes.c_int(16)), WSAEINVAL)
    assert sendto(ws, s, b"x", PEER, 7070) == 1
    addr, port = name_of(ws, s)
    assert addr == "0.0.0.0" and 49152 <= port <= 65535


def test_item_58_recvfrom_truncates_with_msgsize(net) -> None:
    """recvfrom into a smaller buffer -> WSAEMSGSIZE, data truncated, the rest discarded."""
    ws, pws = net.ws, net.pws
    s = udp(ws)
    bind(ws, s, ME, 7080)
    src = udp(pws)
    assert sendto(pws, src, b"0123456789", ME, 7080) == 10
    assert sendto(pws, src, b"next", ME, 7080) == 4
    fail(ws, ws.recvfrom(s, bytearray(16), 16, 0, SOCKADDR_IN(), ctypes.c_int(8)), WSAEFAULT)  # short fromlen
    buf = bytearray(4)
    frm = SOCKADDR_IN()
    fl = ctypes.c_int(16)
    fail(ws, ws.recvfrom(s, buf, 4, 0, frm, fl), WSAEMSGSIZE)
    assert bytes(buf) == b"0123" and frm.addr == PEER
    assert recv_some(ws, s) == b"next"  # the rest of the first datagram is gone


def test_item_59_shutdown_unconnected_udp(net) -> None:
    """shutdown on unconnected UDP -> 0; later sendto/recvfrom -> WSAESHUTDOWN."""
    ws = net.ws
    s = udp(ws)
    bind(ws, s)
    assert ws.shutdown(s, 2) == 0
    fail(ws, sendto(ws, s, b"x", PEER, 7090), WSAESHUTDOWN)
    fail(ws, ws.recvfrom(s, bytearray(4), 4, 0, None, None), WSAESHUTDOWN)


def test_item_65_select_udp_readable_after_datagram(net) -> None:
    """select: a UDP socket is writable at once and readable once a datagram is queued; blocking select
    waits in virtual time."""
    ws, pws = net.ws, net.pws
    s = udp(ws)
    bind(ws, s, ME, 7100)
    r, w = FD_SET(s), FD_SET(s)
    assert ws.select(0, r, w, None, TIMEVAL(0, 0)) == 1
    assert s not in r and s in w
    src = udp(pws)

    def later() -> None:
        net.peer.sleep(2.0)
        sendto(pws, src, b"late", ME, 7100)

    task = net.sim.spawn(later)
    t0 = net.me.now()
    r = FD_SET(s)
    assert ws.select(0, r, None, None, TIMEVAL(5, 0)) == 1 and s in r
    assert 2.0 <= net.me.now() - t0 < 2.5
    task.join()
    r = FD_SET(s)
    assert ws.select(0, r, None, None, TIMEVAL(0, 0)) == 1
    recv_some(ws, s)
    r = FD_SET(s)
    t0 = net.me.now()
    assert ws.select(0, r, None, None, TIMEVAL(1, 500000)) == 0 and len(r) == 0
    assert abs(net.me.now() - t0 - 1.5) < 1e-6
    w = FD_SET(s)
    assert ws.select(0, None, w, None, None) == 1 and s in w  # NULL timeout: returns when ready
