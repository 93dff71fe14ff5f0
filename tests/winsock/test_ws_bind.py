"""Section D: bind and address reuse (Windows semantics, ≠L where marked)."""

from __future__ import annotations

import ctypes

from ustack.winsock import (
    SO_EXCLUSIVEADDRUSE,
    SO_REUSEADDR,
    SOCKADDR_IN,
    SOL_SOCKET,
    WSAEACCES,
    WSAEADDRINUSE,
    WSAEADDRNOTAVAIL,
    WSAEAFNOSUPPORT,
    WSAEFAULT,
    WSAEINVAL,
)

from .wsutil import ME, PEER, bind, fail, listener, name_of, recv_from, sa, sendto, setopt_int, tcp, udp


def test_item_11_bind_name_checks(net) -> None:
    """bind: NULL name, namelen 0 or < 16 -> WSAEFAULT; unknown family -> WSAEAFNOSUPPORT."""
    ws = net.ws
    s = udp(ws)
    fail(ws, ws.bind(s, None, 16), WSAEFAULT)
    fail(ws, ws.bind(s, sa(ME, 0), 0), WSAEFAULT)
    fail(ws, ws.bind(s, sa(ME, 0), 15), WSAEFAULT)
    fail(ws, ws.bind(s, bytes(sa(ME, 0))[:8], 16), WSAEFAULT)  # namelen beyond the buffer
    fail(ws, ws.bind(s, SOCKADDR_IN.make(ME, 0, family=23), 16), WSAEAFNOSUPPORT)
    fail(ws, ws.bind(s, SOCKADDR_IN.make(ME, 0, family=0x1234), 16), WSAEAFNOSUPPORT)
    fail(ws, ws.bind(s, SOCKADDR_IN.make(ME, 0, family=0x1234), 8), WSAEFAULT)  # length first
    assert ws.getsockname(s, SOCKADDR_IN(), ctypes.c_int(16)) == -1  # none of these bound it


def test_item_11_bind_address_checks(net) -> None:
    """bind: an address not on the host or 255.255.255.255 -> WSAEADDRNOTAVAIL; twice -> WSAEINVAL; port 0
    is ephemeral."""
    ws = net.ws
    s = udp(ws)
    fail(ws, ws.bind(s, sa(PEER, 0), 16), WSAEADDRNOTAVAIL)
    fail(ws, ws.bind(s, sa("255.255.255.255", 0), 16), WSAEADDRNOTAVAIL)
    assert ws.bind(s, bytes(sa(ME, 0)), 16) == 0  # the 16 bytes of a SOCKADDR_IN work as well
    addr, port = name_of(ws, s)
    assert addr == ME and 49152 <= port <= 65535
    fail(ws, ws.bind(s, sa(ME, 0), 16), WSAEINVAL)
    t = tcp(ws)
    bind(ws, t, "0.0.0.0", 0)
    fail(ws, ws.bind(t, sa("0.0.0.0", 0), 16), WSAEINVAL)


def test_item_12_same_address_in_use(net) -> None:
    """A second socket on the same addr:port (bound or listening) -> WSAEADDRINUSE."""
    ws = net.ws
    a = udp(ws)
    bind(ws, a, ME, 4000)
    fail(ws, ws.bind(udp(ws), sa(ME, 4000), 16), WSAEADDRINUSE)
    listener(ws, 4001)
    fail(ws, ws.bind(tcp(ws), sa("0.0.0.0", 4001), 16), WSAEADDRINUSE)
    fail(ws, ws.bind(tcp(ws), sa("0.0.0.0", 4001), 16), WSAEADDRINUSE)  # every later socket too


def _connected(net) -> tuple[int, int]:
    """A TCP socket connected to the peer, and the local port its connect chose."""
    ws = net.ws
    listener(net.pws, 4050)
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 4050), 16) == 0, ws.WSAGetLastError()
    addr, port = name_of(ws, c)
    assert addr == ME and 49152 <= port <= 65535
    return c, port


def test_item_12_port_of_a_connection_is_in_use(net) -> None:
    """A port a connected socket uses (ME:p, chosen by connect) cannot be bound by another TCP
    socket, through 0.0.0.0:p or ME:p: WSAEADDRINUSE (a connection is not an explicit bind, so
    item 13's coexistence does not apply). UDP's ports are separate."""
    ws = net.ws
    c, port = _connected(net)
    fail(ws, ws.bind(tcp(ws), sa("0.0.0.0", port), 16), WSAEADDRINUSE)
    fail(ws, ws.bind(tcp(ws), sa(ME, port), 16), WSAEADDRINUSE)
    bind(ws, tcp(ws), "127.0.0.1", port)  # another address does not overlap ME:p
    bind(ws, udp(ws), "0.0.0.0", port)
    assert ws.closesocket(c) == 0


def test_item_14_reuseaddr_on_a_connections_port(net) -> None:
    """≠L: SO_REUSEADDR on the newcomer only, against a connected socket's port (0.0.0.0:p or
    ME:p) -> WSAEACCES: the connected socket never allowed sharing (item 14's rule)."""
    ws = net.ws
    _c, port = _connected(net)
    for addr in ("0.0.0.0", ME):
        b = tcp(ws)
        assert setopt_int(ws, b, SOL_SOCKET, SO_REUSEADDR, 1) == 0
        fail(ws, ws.bind(b, sa(addr, port), 16), WSAEACCES)


def test_item_13_specific_and_wildcard_coexist(net) -> None:
    """≠L: ME:p and 0.0.0.0:p may both be bound; the specific address receives the datagram."""
    ws, pws = net.ws, net.pws
    wild = udp(ws)
    bind(ws, wild, "0.0.0.0", 4100)
    spec = udp(ws)
    bind(ws, spec, ME, 4100)
    sender = udp(pws)
    assert sendto(pws, sender, b"to-specific", ME, 4100) == 11
    data, _ = recv_from(ws, spec)
    assert data == b"to-specific"
    from .wsutil import set_nonblocking

    set_nonblocking(ws, wild)
    fail(ws, ws.recv(wild, bytearray(10), 10, 0), 10035)


def test_item_13_loopback_and_wildcard_coexist(net) -> None:
    """≠L: 127.0.0.1:p and 0.0.0.0:p may both be bound; a datagram to 127.0.0.1:p goes to the loopback
    socket, one to the host's address to the wildcard socket."""
    from .wsutil import set_nonblocking

    ws = net.ws
    wild, lo = udp(ws), udp(ws)
    bind(ws, wild, "0.0.0.0", 4200)
    bind(ws, lo, "127.0.0.1", 4200)
    src = udp(ws)
    assert sendto(ws, src, b"to-lo", "127.0.0.1", 4200) == 5
    assert sendto(ws, src, b"to-me", ME, 4200) == 5
    assert recv_from(ws, lo)[0] == b"to-lo"
    assert recv_from(ws, wild)[0] == b"to-me"
    for s in (wild, lo):
        set_nonblocking(ws, s)
        fail(ws, ws.recv(s, bytearray(8), 8, 0), 10035)
    bind(ws, tcp(ws), "0.0.0.0", 4201)
    bind(ws, tcp(ws), "127.0.0.1", 4201)


def test_item_14_reuseaddr_only_on_second_socket(net) -> None:
    """≠L: SO_REUSEADDR only on the second socket -> WSAEACCES; on both -> both bind."""
    ws = net.ws
    a = udp(ws)
    bind(ws, a, ME, 4300)
    b = udp(ws)
    assert setopt_int(ws, b, SOL_SOCKET, SO_REUSEADDR, 1) == 0
    fail(ws, ws.bind(b, sa(ME, 4300), 16), WSAEACCES)
    c, d = udp(ws), udp(ws)
    for s in (c, d):
        assert setopt_int(ws, s, SOL_SOCKET, SO_REUSEADDR, 1) == 0
        bind(ws, s, ME, 4301)


def test_item_14_exclusive_holder_denies_reuse(net) -> None:
    """A holder with SO_EXCLUSIVEADDRUSE makes a later SO_REUSEADDR bind fail with WSAEACCES."""
    ws = net.ws
    a = udp(ws)
    assert setopt_int(ws, a, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1) == 0
    bind(ws, a, ME, 4310)
    b = udp(ws)
    assert setopt_int(ws, b, SOL_SOCKET, SO_REUSEADDR, 1) == 0
    fail(ws, ws.bind(b, sa(ME, 4310), 16), WSAEACCES)


def test_item_15_reuse_and_exclusive_are_exclusive(net) -> None:
    """Setting SO_REUSEADDR while SO_EXCLUSIVEADDRUSE is set (or the reverse) -> WSAEINVAL."""
    ws = net.ws
    a = udp(ws)
    assert setopt_int(ws, a, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1) == 0
    fail(ws, setopt_int(ws, a, SOL_SOCKET, SO_REUSEADDR, 1), WSAEINVAL)
    b = udp(ws)
    assert setopt_int(ws, b, SOL_SOCKET, SO_REUSEADDR, 1) == 0
    fail(ws, setopt_int(ws, b, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1), WSAEINVAL)
    assert setopt_int(ws, b, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 0) == 0  # clearing is fine
    v, n = ctypes.c_int(7), ctypes.c_int(4)
    assert ws.getsockopt(b, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, v, n) == 0 and v.value == 0
    assert ws.getsockopt(b, SOL_SOCKET, SO_REUSEADDR, v, n) == 0 and v.value == 1
