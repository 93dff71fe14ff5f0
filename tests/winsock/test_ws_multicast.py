"""Section P: multicast options (issue 12, beyond the reference), in the Simulator.

IP_MULTICAST_TTL / IP_MULTICAST_LOOP follow sock.c's test_optsize rows (real Windows), the
membership errors Microsoft's "Multicast Socket Option Behavior" table."""

from __future__ import annotations

import ctypes
import struct

from ustack.winsock import (
    IP_ADD_MEMBERSHIP,
    IP_DROP_MEMBERSHIP,
    IP_MREQ,
    IP_MULTICAST_IF,
    IP_MULTICAST_LOOP,
    IP_MULTICAST_TTL,
    IPPROTO_IP,
    WSAEADDRNOTAVAIL,
    WSAEFAULT,
    WSAEINVAL,
    WSAENOBUFS,
    WSAENOPROTOOPT,
    WSAEWOULDBLOCK,
)

from .wsutil import ME, PEER, bind, fail, getopt_int, make_net, recv_from, sendto, set_nonblocking, tcp, udp

GROUP = "239.255.0.1"
OTHER_GROUP = "239.255.0.2"
PORT = 45001


def join(ws, s, group=GROUP, interface="0.0.0.0", opt=IP_ADD_MEMBERSHIP) -> int:
    return ws.setsockopt(s, IPPROTO_IP, opt, IP_MREQ.make(group, interface), 8)


def getopt_raw(ws, s, name, size):
    buf = ctypes.create_string_buffer(b"\xee" * 8, 8)
    n = ctypes.c_int(size)
    r = ws.getsockopt(s, IPPROTO_IP, name, buf, n)
    return r, buf.raw, n.value


def test_item_140_multicast_ttl_and_loop_option_sizes(net) -> None:
    """IP_MULTICAST_TTL and IP_MULTICAST_LOOP: defaults 1 and TRUE; set reads min(optlen, 4)
    bytes, optlen 0 is WSAEFAULT and a negative one WSAENOBUFS; get gives 1 byte (size 1) below
    4, else 4; a TTL above 255 is WSAEINVAL, LOOP takes 0x100 as TRUE; TCP sockets refuse them."""
    ws = net.ws
    s = udp(ws)
    assert getopt_int(ws, s, IPPROTO_IP, IP_MULTICAST_TTL) == 1
    assert getopt_int(ws, s, IPPROTO_IP, IP_MULTICAST_LOOP) == 1
    # sock.c: 0xffffff0a with optlen 1 sets 0x0a, 0xffff000b with 2 sets 0x0b, ...
    for i, v in enumerate((0xFFFFFF0A, 0xFFFF000B, 0xFF00000C, 0x0000000D)):
        raw = struct.pack("<I", v)
        assert ws.setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, raw, i + 1) == 0, ws.WSAGetLastError()
        assert getopt_int(ws, s, IPPROTO_IP, IP_MULTICAST_TTL) == v & ((1 << 8 * (i + 1)) - 1)
    for name in (IP_MULTICAST_TTL, IP_MULTICAST_LOOP):
        assert ws.setsockopt(s, IPPROTO_IP, name, struct.pack("<I", 1), 4) == 0
        fail(ws, ws.setsockopt(s, IPPROTO_IP, name, struct.pack("<I", 1), 0), WSAEFAULT)
        fail(ws, ws.setsockopt(s, IPPROTO_IP, name, struct.pack("<I", 1), -1), WSAENOBUFS)
        assert ws.setsockopt(s, IPPROTO_IP, name, struct.pack("<Q", 0xFFFFFFFF00000001), 8) == 0
        assert getopt_raw(ws, s, name, 1) == (0, b"\x01" + b"\xee" * 7, 1)
        assert getopt_raw(ws, s, name, 2) == (0, b"\x01" + b"\xee" * 7, 1)
        assert getopt_raw(ws, s, name, 8) == (0, b"\x01\0\0\0" + b"\xee" * 4, 4)
        for bad in (0, -1):
            r, _buf, _n = getopt_raw(ws, s, name, bad)
            fail(ws, r, WSAEFAULT)
    fail(ws, ws.setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, struct.pack("<I", 0x100), 4), WSAEINVAL)
    assert ws.setsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, struct.pack("<I", 0x100), 4) == 0
    assert getopt_int(ws, s, IPPROTO_IP, IP_MULTICAST_LOOP) == 1
    t = tcp(ws)
    fail(ws, ws.setsockopt(t, IPPROTO_IP, IP_MULTICAST_TTL, struct.pack("<I", 1), 4), WSAENOPROTOOPT)


def test_item_141_multicast_if_takes_an_in_addr_of_this_host(net) -> None:
    """IP_MULTICAST_IF takes an IN_ADDR (4 bytes, else WSAEFAULT): INADDR_ANY or our address;
    another address is WSAEADDRNOTAVAIL. Datagrams to a group then leave from that address."""
    ws = net.ws
    s = udp(ws)
    r, buf, n = getopt_raw(ws, s, IP_MULTICAST_IF, 4)
    assert (r, buf[:4], n) == (0, b"\0\0\0\0", 4)
    me = bytes(map(int, ME.split(".")))
    fail(ws, ws.setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, me, 3), WSAEFAULT)
    fail(ws, ws.setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, bytes([198, 18, 0, 77]), 4), WSAEADDRNOTAVAIL)
    assert ws.setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, me, 4) == 0, ws.WSAGetLastError()
    r, buf, n = getopt_raw(ws, s, IP_MULTICAST_IF, 4)
    assert (r, buf[:4], n) == (0, me, 4)
    r, _buf, _n = getopt_raw(ws, s, IP_MULTICAST_IF, 3)
    fail(ws, r, WSAEFAULT)


def test_item_142_membership_errors(net) -> None:
    """IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP: an ip_mreq shorter than 8 bytes is WSAEFAULT; a
    group that is not multicast WSAEINVAL; an interface that is not ours WSAEADDRNOTAVAIL; joining
    the same group twice WSAEADDRNOTAVAIL; dropping a group the socket is not in WSAEINVAL;
    getsockopt of either WSAENOPROTOOPT; a TCP socket WSAENOPROTOOPT."""
    ws = net.ws
    s = udp(ws)
    fail(ws, ws.setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, IP_MREQ.make(GROUP), 7), WSAEFAULT)
    fail(ws, join(ws, s, group=PEER), WSAEINVAL)
    fail(ws, join(ws, s, interface="198.18.0.77"), WSAEADDRNOTAVAIL)
    assert join(ws, s) == 0, ws.WSAGetLastError()
    fail(ws, join(ws, s), WSAEADDRNOTAVAIL)
    assert join(ws, s, group=OTHER_GROUP, interface=ME) == 0, ws.WSAGetLastError()
    assert join(ws, s, opt=IP_DROP_MEMBERSHIP) == 0
    fail(ws, join(ws, s, opt=IP_DROP_MEMBERSHIP), WSAEINVAL)
    r, _buf, _n = getopt_raw(ws, s, IP_ADD_MEMBERSHIP, 8)
    fail(ws, r, WSAENOPROTOOPT)
    fail(ws, join(ws, tcp(ws)), WSAENOPROTOOPT)


def test_item_143_group_traffic_reaches_only_sockets_that_joined(net) -> None:
    """A datagram to a group reaches the sockets (bound to 0.0.0.0 or to our address) that joined
    it, from another host and, with IP_MULTICAST_LOOP (TRUE by default), from this one; a socket
    on the same port that did not join gets nothing; after IP_DROP_MEMBERSHIP or closesocket the
    group is left (the IGMP leave goes out). Multicast is sent with TTL 1 unless
    IP_MULTICAST_TTL says otherwise."""
    ws, pws = net.ws, net.pws
    joined, other = udp(ws), udp(ws)
    from ustack.winsock import SO_REUSEADDR, SOL_SOCKET

    for s in (joined, other):
        assert ws.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, struct.pack("<i", 1), 4) == 0
        bind(ws, s, "0.0.0.0", PORT)
        set_nonblocking(ws, s)
    assert join(ws, joined) == 0
    sender = udp(pws)
    assert sendto(pws, sender, b"from the peer", GROUP, PORT) == 13
    net.sim.run_for(0.1)
    data, frm = recv_from(ws, joined)
    assert data == b"from the peer" and frm[0] == PEER
    buf = bytearray(64)
    fail(ws, ws.recvfrom(other, buf, 64, 0, None, None), WSAEWOULDBLOCK)
    # looped back to our own member (the default), not when IP_MULTICAST_LOOP is FALSE
    local = udp(ws)
    assert sendto(ws, local, b"own", GROUP, PORT) == 3
    net.sim.run_for(0.1)
    assert recv_from(ws, joined)[0] == b"own"
    assert ws.setsockopt(local, IPPROTO_IP, IP_MULTICAST_LOOP, struct.pack("<i", 0), 4) == 0
    assert sendto(ws, local, b"not looped", GROUP, PORT) == 10
    net.sim.run_for(0.1)
    fail(ws, ws.recvfrom(joined, buf, 64, 0, None, None), WSAEWOULDBLOCK)
    assert join(ws, joined, opt=IP_DROP_MEMBERSHIP) == 0
    assert sendto(pws, sender, b"after drop", GROUP, PORT) == 10
    net.sim.run_for(0.1)
    fail(ws, ws.recvfrom(joined, buf, 64, 0, None, None), WSAEWOULDBLOCK)
    counters = net.me.call(net.me.stack.counters.snapshot)
    assert counters["igmp.joins"] == 1 and counters["igmp.leaves"] == 1
    assert counters["ipv4.multicast_not_joined"] >= 1


def test_item_143_ttl_of_group_datagrams_on_the_wire() -> None:
    """IP_MULTICAST_TTL sets the TTL of datagrams to a group (default 1); unicast keeps the
    socket's own TTL."""
    from ustack.wire import Ipv4Packet

    n = make_net(seed=3)
    try:
        seen: list[Ipv4Packet] = []
        stack = n.peer.stack
        orig = stack.udp.on_packet

        def spy(ip, now, rx=0):
            seen.append(ip)
            orig(ip, now, rx)

        n.peer.call(lambda: setattr(stack.udp, "on_packet", spy))
        member = udp(n.pws)
        bind(n.pws, member, "0.0.0.0", PORT)
        assert join(n.pws, member) == 0
        ws = n.ws
        s = udp(ws)
        sendto(ws, s, b"a", GROUP, PORT)
        assert ws.setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, struct.pack("<i", 7), 4) == 0
        sendto(ws, s, b"b", GROUP, PORT)
        sendto(ws, s, b"c", PEER, PORT)
        n.sim.run_for(0.1)
    finally:
        n.close()
    assert [(ip.ttl, bytes(ip.payload)[8:]) for ip in seen] == [(1, b"a"), (7, b"b"), (64, b"c")]


def test_pysocket_multicast_options_as_in_python(net) -> None:
    """ustack.socket takes Python's multicast idiom: setsockopt(IPPROTO_IP, IP_ADD_MEMBERSHIP,
    inet_aton(group) + inet_aton(interface)) (or struct "4sL" with INADDR_ANY), the int options,
    and raises WinsockError with Windows' code."""
    import socket as pysocket

    import pytest

    from ustack import socket as us
    from ustack.winsock import WinsockError

    rx = us.socket(net.me, us.AF_INET, us.SOCK_DGRAM)
    tx = us.socket(net.peer, us.AF_INET, us.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("", PORT))
        rx.setsockopt(us.IPPROTO_IP, us.IP_ADD_MEMBERSHIP,
                      struct.pack("4sL", pysocket.inet_aton(GROUP), us.INADDR_ANY))
        with pytest.raises(WinsockError) as ei:
            rx.setsockopt(us.IPPROTO_IP, us.IP_ADD_MEMBERSHIP, pysocket.inet_aton(GROUP) + bytes(4))
        assert ei.value.winerror == WSAEADDRNOTAVAIL
        assert rx.getsockopt(us.IPPROTO_IP, us.IP_MULTICAST_TTL) == 1
        tx.setsockopt(us.IPPROTO_IP, us.IP_MULTICAST_TTL, 2)
        tx.setsockopt(us.IPPROTO_IP, us.IP_MULTICAST_IF, pysocket.inet_aton(PEER))
        assert tx.getsockopt(us.IPPROTO_IP, us.IP_MULTICAST_IF, 4) == pysocket.inet_aton(PEER)
        tx.sendto(b"hello group", (GROUP, PORT))
        rx.settimeout(1.0)
        assert rx.recvfrom(100) == (b"hello group", (PEER, tx.getsockname()[1]))
        rx.setsockopt(us.IPPROTO_IP, us.IP_DROP_MEMBERSHIP, pysocket.inet_aton(GROUP) + bytes(4))
        tx.sendto(b"after", (GROUP, PORT))
        with pytest.raises(TimeoutError):
            rx.recvfrom(100)
