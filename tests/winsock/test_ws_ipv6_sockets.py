"""AF_INET6 sockets in Winsock (issue 12): SOCKADDR_IN6 names, IPV6_V6ONLY and the other
IPPROTO_IPV6 options, v6-only sockets beside IPv4 ones on a port, and dual-mode sockets that
name IPv4 peers by v4-mapped addresses. Virtual time (Simulator); derived from Wine's sock.c
test_ipv6only and Microsoft's dual-stack sockets page."""

from __future__ import annotations

import ctypes

import pytest

from ustack.winsock import (
    AF_INET6,
    INVALID_SOCKET,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV6_UNICAST_HOPS,
    IPV6_V6ONLY,
    SOCK_DGRAM,
    SOCK_STREAM,
    SOCKADDR_IN,
    SOCKADDR_IN6,
    WSAEADDRINUSE,
    WSAEADDRNOTAVAIL,
    WSAEAFNOSUPPORT,
    WSAEFAULT,
    WSAEINVAL,
    WSAENOPROTOOPT,
    Winsock,
)

from .wsutil import (
    PEER,
    accept_in_task,
    bind,
    fail,
    getopt_int,
    listener,
    name_of,
    peer_of,
    recv_from,
    recv_some,
    sendto,
    setopt_int,
    tcp,
    udp,
)


def udp6(ws: Winsock) -> int:
    s = ws.socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP)
    assert s != INVALID_SOCKET, ws.WSAGetLastError()
    return s


def sa6(addr: str, port: int) -> SOCKADDR_IN6:
    return SOCKADDR_IN6.make(addr, port)


def name6(ws: Winsock, s: int, peer: bool = False) -> tuple[int, str, int]:
    out = SOCKADDR_IN6()
    n = ctypes.c_int(28)
    call = ws.getpeername if peer else ws.getsockname
    assert call(s, out, n) == 0, ws.WSAGetLastError()
    assert n.value == 28
    return out.sin6_family, out.addr, out.port


def test_item_120_sockaddr_in6_names(net) -> None:
    """An AF_INET6 socket takes 28-byte SOCKADDR_IN6 names: a namelen below 28 is WSAEFAULT
    (also a whole SOCKADDR_IN), a 28-byte name of another family WSAEAFNOSUPPORT, and an AF_INET
    socket refuses a SOCKADDR_IN6 with WSAEAFNOSUPPORT; getsockname/recvfrom need *namelen >= 28
    and write 28 bytes with family AF_INET6."""
    ws = net.ws
    s = udp6(ws)
    fail(ws, ws.bind(s, sa6("::", 0), 27), WSAEFAULT)
    fail(ws, ws.bind(s, SOCKADDR_IN.make("0.0.0.0", 0), 16), WSAEFAULT)
    v4_in_28 = bytes(SOCKADDR_IN.make("0.0.0.0", 0)) + bytes(12)
    fail(ws, ws.bind(s, v4_in_28, 28), WSAEAFNOSUPPORT)
    v4 = udp(ws)
    fail(ws, ws.bind(v4, sa6("::", 0), 28), WSAEAFNOSUPPORT)
    assert ws.bind(s, sa6("::", 0), 28) == 0
    fam, addr, port = name6(ws, s)
    assert (fam, addr) == (AF_INET6, "::") and port >= 49152
    short = SOCKADDR_IN6()
    fail(ws, ws.getsockname(s, short, ctypes.c_int(16)), WSAEFAULT)
    fail(ws, ws.sendto(s, b"x", 1, 0, sa6("::ffff:" + PEER, 9), 27), WSAEFAULT)
    buf = bytearray(8)
    fail(ws, ws.recvfrom(s, buf, 8, 0, SOCKADDR_IN6(), ctypes.c_int(16)), WSAEFAULT)
    t = ws.socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP)
    fail(ws, ws.connect(t, SOCKADDR_IN.make(PEER, 80), 16), WSAEFAULT)
    fail(ws, ws.connect(t, v4_in_28, 28), WSAEAFNOSUPPORT)


def test_item_121_ipv6_options(net) -> None:
    """IPV6_V6ONLY is TRUE on a new AF_INET6 socket, may be turned off before bind (reads back
    0) and not after (WSAEINVAL); on an AF_INET socket IPV6_V6ONLY is accepted and ignored while
    it is unbound (Wine's AFD does so for Windows), the IPPROTO_IPV6 options are otherwise
    WSAEINVAL; an unknown one is WSAENOPROTOOPT, a 3-byte optlen WSAEFAULT; IPV6_UNICAST_HOPS
    takes 0..255 and -1 (the default again), 256 is WSAEINVAL."""
    ws = net.ws
    s = udp6(ws)
    assert getopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY) == 1
    assert setopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY, 0) == 0
    assert getopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY) == 0
    assert setopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY, 1) == 0
    assert getopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY) == 1
    fail(ws, ws.setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, ctypes.c_int(0), 3), WSAEFAULT)
    assert ws.bind(s, sa6("::", 0), 28) == 0
    fail(ws, setopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY, 0), WSAEINVAL)
    assert getopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY) == 1
    v4 = udp(ws)
    assert setopt_int(ws, v4, IPPROTO_IPV6, IPV6_V6ONLY, 0) == 0  # unbound AF_INET: ignored
    bind(ws, v4)
    fail(ws, setopt_int(ws, v4, IPPROTO_IPV6, IPV6_V6ONLY, 0), WSAEINVAL)
    fail(ws, setopt_int(ws, v4, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 5), WSAEINVAL)
    v = ctypes.c_int(2)
    fail(ws, ws.getsockopt(v4, IPPROTO_IPV6, IPV6_V6ONLY, v, ctypes.c_int(4)), WSAEINVAL)
    assert v.value == 2  # untouched
    fail(ws, setopt_int(ws, s, IPPROTO_IPV6, 9999, 1), WSAENOPROTOOPT)
    default = getopt_int(ws, s, IPPROTO_IPV6, IPV6_UNICAST_HOPS)
    assert default == net.me.stack.config.hop_limit == 64
    assert setopt_int(ws, s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7) == 0
    assert getopt_int(ws, s, IPPROTO_IPV6, IPV6_UNICAST_HOPS) == 7
    assert ws.stack_socket(s).hop_limit == 7  # the transport sends with it
    fail(ws, setopt_int(ws, s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 256), WSAEINVAL)
    assert setopt_int(ws, s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, -1) == 0
    assert getopt_int(ws, s, IPPROTO_IPV6, IPV6_UNICAST_HOPS) == default
    assert ws.stack_socket(s).hop_limit is None


def test_item_122_v6only_sockets_and_ipv4(net) -> None:
    """sock.c test_ipv6only: a v6-only [::]:p and an IPv4 0.0.0.0:p bind side by side (either
    first); a v6-only socket refuses a v4-mapped destination (WSAEADDRNOTAVAIL) and gets no IPv4
    datagram sent to p (the IPv4 socket does)."""
    ws, pws = net.ws, net.pws
    s6 = udp6(ws)
    assert ws.bind(s6, sa6("::", 5000), 28) == 0
    s4 = udp(ws)
    bind(ws, s4, "0.0.0.0", 5000)
    t4 = udp(ws)
    bind(ws, t4, "0.0.0.0", 5001)
    t6 = udp6(ws)
    assert ws.bind(t6, sa6("::", 5001), 28) == 0
    fail(ws, ws.sendto(s6, b"x", 1, 0, sa6("::ffff:" + PEER, 9), 28), WSAEADDRNOTAVAIL)
    fail(ws, ws.connect(s6, sa6("::ffff:" + PEER, 9), 28), WSAEADDRNOTAVAIL)
    p = udp(pws)
    assert sendto(pws, p, b"to-ipv4", "198.18.0.2", 5000) == 7
    net.sim.run_for(0.1)
    assert recv_from(ws, s4)[0] == b"to-ipv4"
    assert ws.stack_socket(s6).readable is False


def test_item_123_dual_mode_sockets(net) -> None:
    """IPV6_V6ONLY 0 makes a dual-mode socket: [::]:p holds p for IPv4 too (an IPv4 bind of p is
    then WSAEADDRINUSE, and a dual bind of a port an IPv4 socket holds is WSAEADDRINUSE); IPv4
    peers appear as ::ffff:a.b.c.d in recvfrom, getpeername and getsockname; sendto and connect
    to ::ffff:a.b.c.d go over IPv4 (the IPv4 peer sees 198.18.0.2)."""
    ws, pws = net.ws, net.pws
    d = udp6(ws)
    assert setopt_int(ws, d, IPPROTO_IPV6, IPV6_V6ONLY, 0) == 0
    assert ws.bind(d, sa6("::", 6000), 28) == 0
    clash = udp(ws)
    fail(ws, ws.bind(clash, SOCKADDR_IN.make("0.0.0.0", 6000), 16), WSAEADDRINUSE)
    holder = udp(ws)
    bind(ws, holder, "0.0.0.0", 6001)
    d2 = udp6(ws)
    assert setopt_int(ws, d2, IPPROTO_IPV6, IPV6_V6ONLY, 0) == 0
    fail(ws, ws.bind(d2, sa6("::", 6001), 28), WSAEADDRINUSE)
    p = udp(pws)
    bind(pws, p, "0.0.0.0", 7000)
    assert sendto(pws, p, b"hello", "198.18.0.2", 6000) == 5
    net.sim.run_for(0.1)
    buf = bytearray(16)
    frm = SOCKADDR_IN6()
    fl = ctypes.c_int(28)
    assert ws.recvfrom(d, buf, 16, 0, frm, fl) == 5 and bytes(buf[:5]) == b"hello"
    assert (frm.sin6_family, frm.addr, frm.port, fl.value) == (AF_INET6, "::ffff:198.18.0.1", 7000, 28)
    assert ws.sendto(d, b"back", 4, 0, sa6("::ffff:198.18.0.1", 7000), 28) == 4
    net.sim.run_for(0.1)
    assert recv_from(pws, p) == (b"back", ("198.18.0.2", 6000))
    assert ws.connect(d, sa6("::ffff:198.18.0.1", 7000), 28) == 0
    assert name6(ws, d, peer=True) == (AF_INET6, "::ffff:198.18.0.1", 7000)
    assert name6(ws, d) == (AF_INET6, "::ffff:198.18.0.2", 6000)  # the route's source, v4-mapped
    assert ws.send(d, b"conn", 4, 0) == 4
    net.sim.run_for(0.1)
    assert recv_from(pws, p) == (b"conn", ("198.18.0.2", 6000))


def tcp6(ws: Winsock, dual: bool = False) -> int:
    s = ws.socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP)
    assert s != INVALID_SOCKET, ws.WSAGetLastError()
    if dual:
        assert setopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY, 0) == 0
    return s


def test_item_123_dual_mode_tcp(net) -> None:
    """A dual-mode TCP listener on [::]:p accepts an IPv4 client: accept (addrlen 28; 16 is
    WSAEFAULT), getpeername and getsockname of the accepted socket name both ends v4-mapped; a
    dual-mode client connects to ::ffff:a.b.c.d over IPv4; a v6-only one is refused
    (WSAEADDRNOTAVAIL); the IPv4 listener of the peer sees 198.18.0.2."""
    ws, pws = net.ws, net.pws
    lst = tcp6(ws, dual=True)
    assert ws.bind(lst, sa6("::", 8000), 28) == 0 and ws.listen(lst, 5) == 0
    c = tcp(pws)
    assert pws.connect(c, SOCKADDR_IN.make("198.18.0.2", 8000), 16) == 0, pws.WSAGetLastError()
    fail(ws, ws.accept(lst, SOCKADDR_IN6(), ctypes.c_int(16)), WSAEFAULT)
    frm, n = SOCKADDR_IN6(), ctypes.c_int(28)
    a = ws.accept(lst, frm, n)
    assert a != INVALID_SOCKET, ws.WSAGetLastError()
    cport = name_of(pws, c)[1]
    assert (frm.sin6_family, frm.addr, frm.port, n.value) == (AF_INET6, "::ffff:198.18.0.1", cport, 28)
    assert name6(ws, a, peer=True) == (AF_INET6, "::ffff:198.18.0.1", cport)
    assert name6(ws, a) == (AF_INET6, "::ffff:198.18.0.2", 8000)
    assert getopt_int(ws, a, IPPROTO_IPV6, IPV6_V6ONLY) == 0  # inherited from the listener
    assert ws.send(a, b"over v4", 7, 0) == 7
    net.sim.run_for(0.1)
    assert recv_some(pws, c) == b"over v4"
    plst = listener(pws, 8001)
    task = accept_in_task(net, plst)
    d = tcp6(ws, dual=True)
    assert ws.connect(d, sa6("::ffff:198.18.0.1", 8001), 28) == 0, ws.WSAGetLastError()
    (acc,) = task.result()
    assert name6(ws, d, peer=True) == (AF_INET6, "::ffff:198.18.0.1", 8001)
    assert peer_of(pws, acc) == ("198.18.0.2", name6(ws, d)[2])
    v6only = tcp6(ws)
    fail(ws, ws.connect(v6only, sa6("::ffff:198.18.0.1", 8001), 28), WSAEADDRNOTAVAIL)


def test_item_129_pythonic_layer_ipv6(net) -> None:
    """ustack.socket with AF_INET6: ("addr", port[, flowinfo[, scope_id]]) in, the 4-tuple out
    (getsockname, getpeername, recvfrom, accept); IPV6_V6ONLY 1 by default and settable through
    setsockopt; Python's TypeError / OverflowError for a malformed tuple, WSAEINVAL for a host
    that is not an IPv6 literal."""
    from ustack import socket as us

    srv = us.socket(net.me, us.AF_INET6, us.SOCK_DGRAM)
    assert srv.getsockopt(us.IPPROTO_IPV6, us.IPV6_V6ONLY) == 1
    srv.setsockopt(us.IPPROTO_IPV6, us.IPV6_V6ONLY, 0)
    srv.bind(("", 9300))
    assert srv.getsockname() == ("::", 9300, 0, 0)
    with us.socket(net.peer, us.AF_INET, us.SOCK_DGRAM) as c:
        c.sendto(b"ping", ("198.18.0.2", 9300))
        data, addr = srv.recvfrom(100)
        assert data == b"ping" and addr == ("::ffff:198.18.0.1", c.getsockname()[1], 0, 0)
        srv.sendto(b"pong", addr[:2])
        assert c.recvfrom(100) == (b"pong", ("198.18.0.2", 9300))
    for bad in [("::1",), ("::1", 1, 0, 0, 0), "::1"]:
        with pytest.raises(TypeError):
            srv.sendto(b"x", bad)
    with pytest.raises(OverflowError):
        srv.sendto(b"x", ("::1", 70000))
    with pytest.raises(OverflowError):
        srv.sendto(b"x", ("::1", 1, 1 << 20, 0))
    with pytest.raises(OSError) as ei:
        srv.sendto(b"x", ("198.18.0.1", 1))
    assert ei.value.winerror == WSAEINVAL
    srv.close()
    lst = us.socket(net.me, us.AF_INET6, us.SOCK_STREAM)
    lst.setsockopt(us.IPPROTO_IPV6, us.IPV6_V6ONLY, 0)
    lst.bind(("::", 9301, 0, 0))
    lst.listen(2)
    cli = us.create_connection(net.peer, ("198.18.0.2", 9301))
    conn, addr = lst.accept()
    assert addr == ("::ffff:198.18.0.1", cli.getsockname()[1], 0, 0)
    assert conn.getpeername() == addr and conn.getsockname() == ("::ffff:198.18.0.2", 9301, 0, 0)
    cli.sendall(b"abc")
    assert conn.recv(10) == b"abc"
    for s in (cli, conn, lst):
        s.close()
