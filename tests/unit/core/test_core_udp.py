"""UDP sockets with Windows semantics (winsock-behaviour items 11-15, 50-59)."""

import pytest
from corehelpers import BCAST, FAR, LO, ME, OTHER, PEER, ips, make, udp_frame
from scapy.layers.inet import IP, UDP

from ustack.core import Reason, UsageError
from ustack.core.events import READ, WRITE
from ustack.wire import UdpDatagram


def usage(reason, fn, *args, **kw):
    with pytest.raises(UsageError) as e:
        fn(*args, **kw)
    assert e.value.reason is reason


# ---- bind ------------------------------------------------------------------------------------
def test_bind_explicit_and_ephemeral(stack):
    a = stack.udp.open()
    a.bind(ME, 5000)
    assert a.local == (ME, 5000)
    b = stack.udp.open()
    b.bind(0, 0)
    assert b.local[0] == 0 and 49152 <= b.local[1] <= 65535


def test_ephemeral_ports_random_in_range_collision_free(stack):
    socks = [stack.udp.open() for _ in range(2000)]
    for s in socks:
        s.bind(0, 0)
    ports = [s.local[1] for s in socks]
    assert len(set(ports)) == 2000
    assert all(49152 <= p <= 65535 for p in ports)
    diffs = {ports[i + 1] - ports[i] for i in range(100)}
    assert len(diffs) > 50  # not sequential


def test_custom_ephemeral_range():
    s = make(ephemeral_low=40000, ephemeral_high=40010)
    ports = set()
    for _ in range(11):
        u = s.udp.open()
        u.bind(0, 0)
        ports.add(u.local[1])
    assert ports == set(range(40000, 40011))
    usage(Reason.ADDR_IN_USE, s.udp.open().bind, 0, 0)


def test_bind_errors(stack):
    a = stack.udp.open()
    a.bind(0, 5000)
    usage(Reason.INVALID, a.bind, 0, 5001)  # bound twice (item 11)
    usage(Reason.ADDR_IN_USE, stack.udp.open().bind, 0, 5000)  # item 12
    usage(Reason.ADDR_NOT_AVAIL, stack.udp.open().bind, OTHER, 5000)  # not ours
    usage(Reason.ADDR_NOT_AVAIL, stack.udp.open().bind, 0xFFFFFFFF, 5000)
    usage(Reason.ADDR_NOT_AVAIL, stack.udp.open().bind, BCAST, 5000)
    usage(Reason.ACCESS, stack.udp.open().bind, 0, 5000, reuse=True)  # item 14
    stack.udp.open().bind(LO, 5000)  # item 13: specific beside wildcard


def test_close_releases_port(stack):
    a = stack.udp.open()
    a.bind(0, 5000)
    a.close(0.0)
    stack.udp.open().bind(0, 5000)
    usage(Reason.INVALID, a.recvfrom)
    usage(Reason.INVALID, a.sendto, b"x", PEER, 1, 0.0)


def test_specific_address_wins_over_wildcard(stack):
    w, s = stack.udp.open(), stack.udp.open()
    w.bind(0, 7000)
    s.bind(ME, 7000)
    stack.receive(udp_frame(PEER, ME, 1, 7000, b"to-me"), 0.0)
    assert s.recvfrom() == (b"to-me", PEER, 1) and w.recvfrom() is None
    stack.udp.open().sendto(b"lo", LO, 7000, 0.0)
    stack.poll(0.0)
    assert w.recvfrom()[0] == b"lo" and s.recvfrom() is None


def test_reuse_both_bound_unicast_goes_to_one(stack):
    a, b = stack.udp.open(), stack.udp.open()
    a.bind(0, 7000, reuse=True)
    b.bind(0, 7000, reuse=True)
    stack.receive(udp_frame(PEER, ME, 1, 7000, b"one"), 0.0)
    assert [a.pending_bytes, b.pending_bytes].count(3) == 1


# ---- sending ---------------------------------------------------------------------------------
def test_sendto_binds_implicitly_and_emits_correct_datagram(stack):
    u = stack.udp.open()
    assert u.local is None
    events = []
    u.watch(lambda s, ev: events.append(ev))
    assert u.sendto(b"hello", PEER, 53, 0.0) == 5
    assert u.local[0] == 0 and u.local[1] >= 49152  # item 57
    (f,) = stack.poll(0.0)
    sc = IP(f)
    assert sc.src == "198.18.0.2" and sc.dst == "198.18.0.1" and sc.ttl == 64
    assert sc[UDP].sport == u.local[1] and sc[UDP].dport == 53 and bytes(sc[UDP].payload) == b"hello"
    ref = UDP(bytes(sc[UDP]))
    del sc[UDP].chksum
    assert IP(bytes(sc))[UDP].chksum == ref.chksum  # scapy computes the same checksum
    assert events == [WRITE]  # the implicit bind makes it writable


def test_sendto_errors(stack):
    u = stack.udp.open()
    usage(Reason.MSG_SIZE, u.sendto, bytes(65508), PEER, 53, 0.0)
    usage(Reason.ACCESS, u.sendto, b"x", 0xFFFFFFFF, 53, 0.0)  # item 55
    usage(Reason.ACCESS, u.sendto, b"x", BCAST, 53, 0.0)
    usage(Reason.NET_UNREACH, u.sendto, b"x", FAR, 53, 0.0)
    usage(Reason.ADDR_NOT_AVAIL, u.sendto, b"x", 0, 53, 0.0)
    usage(Reason.ADDR_NOT_AVAIL, u.sendto, b"x", PEER, 0, 0.0)
    usage(Reason.NOT_CONNECTED, u.send, b"x", 0.0)  # item 50
    assert stack.poll(0.0) == []


def test_port_zero_ok_sends_and_connects_to_port_zero(stack):
    """With port_zero_ok (set by Winsock: Windows allows it) a datagram goes to port 0 and a
    connect to port 0 names it; the address 0 stays refused."""
    u = stack.udp.open()
    u.port_zero_ok = True
    assert u.sendto(b"zero", PEER, 0, 0.0) == 4
    (f,) = stack.poll(0.0)
    sc = IP(f)  # decoded by scapy
    assert sc[UDP].dport == 0 and bytes(sc[UDP].payload) == b"zero"
    u.connect(PEER, 0)
    assert u.remote == (PEER, 0)
    usage(Reason.ADDR_NOT_AVAIL, u.sendto, b"x", 0, 53, 0.0)


def test_max_size_datagram_fragments(stack):
    u = stack.udp.open()
    assert u.sendto(bytes(65507), PEER, 53, 0.0) == 65507
    out = stack.poll(0.0)
    assert len(out) == 45
    assert sum(len(p.payload) for p in ips(out)) == 65515


def test_broadcast_with_option(stack):
    u = stack.udp.open()
    u.broadcast = True
    u.sendto(b"all", 0xFFFFFFFF, 53, 0.0)
    u.sendto(b"net", BCAST, 53, 0.0)
    p = ips(stack.poll(0.0))
    assert [(q.dst, q.src) for q in p] == [(0xFFFFFFFF, ME), (BCAST, ME)]


def test_broadcast_looped_back_to_own_wildcard_sockets(stack):
    rx = stack.udp.open()
    rx.bind(0, 6000)
    spec = stack.udp.open()
    spec.bind(ME, 6000)
    tx = stack.udp.open()
    tx.broadcast = True
    tx.sendto(b"hey", 0xFFFFFFFF, 6000, 0.0)
    assert len(stack.poll(0.0)) == 1
    assert rx.recvfrom() == (b"hey", ME, tx.local[1])
    assert spec.recvfrom() is None


def test_sendto_from_bound_specific_address(stack):
    u = stack.udp.open()
    u.bind(ME, 4444)
    u.sendto(b"x", PEER, 53, 0.0)
    (p,) = ips(stack.poll(0.0))
    assert p.src == ME and UdpDatagram.parse(p.payload, p.src, p.dst).sport == 4444


def test_loopback_bound_socket_cannot_reach_off_host(stack):
    u = stack.udp.open()
    u.bind(LO, 4444)
    usage(Reason.NET_UNREACH, u.sendto, b"x", PEER, 53, 0.0)


def test_socket_ttl(stack):
    u = stack.udp.open()
    u.ttl = 3
    u.sendto(b"x", PEER, 53, 0.0)
    assert ips(stack.poll(0.0))[0].ttl == 3


# ---- receiving -------------------------------------------------------------------------------
def test_recv_on_unbound_is_invalid(stack):
    usage(Reason.INVALID, stack.udp.open().recvfrom)  # item 51


def test_receive_queue_events_and_sizes(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    ev = []
    u.watch(lambda s, e: ev.append(e))
    assert not u.readable and u.next_size == 0
    stack.receive(udp_frame(PEER, ME, 1, 9, b"abc"), 0.0)
    stack.receive(udp_frame(PEER, ME, 1, 9, b""), 0.0)
    assert ev == [READ, READ]
    assert u.readable and u.next_size == 3 and u.pending_bytes == 3
    assert u.events & READ and u.events & WRITE
    assert u.recvfrom() == (b"abc", PEER, 1)
    assert u.next_size == 0 and u.readable  # the empty datagram is still queued
    assert u.recvfrom() == (b"", PEER, 1)
    assert u.recvfrom() is None


def test_bad_udp_checksum_and_length_counted(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    raw = bytearray(UdpDatagram(1, 9, b"data").emit(PEER, ME))
    raw[6] ^= 0xFF
    from corehelpers import ip_frame

    stack.receive(ip_frame(PEER, ME, 17, bytes(raw)), 0.0)
    short = bytes(raw[:4]) + (40).to_bytes(2, "big") + bytes(raw[6:])
    stack.receive(ip_frame(PEER, ME, 17, short), 0.0)
    stack.receive(ip_frame(PEER, ME, 17, b"\0\1"), 0.0)
    assert stack.counters.get("udp.bad_checksum") == 1
    assert stack.counters.get("udp.bad_length") == 1
    assert stack.counters.get("udp.truncated") == 1
    assert u.recvfrom() is None


def test_zero_checksum_accepted(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    from corehelpers import ip_frame

    raw = (1).to_bytes(2, "big") + (9).to_bytes(2, "big") + (10).to_bytes(2, "big") + b"\0\0hi"
    stack.receive(ip_frame(PEER, ME, 17, raw), 0.0)
    assert u.recvfrom() == (b"hi", PEER, 1)


def test_rcvbuf_overflow_counted(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    u.rcvbuf = 2500
    for _ in range(5):
        stack.receive(udp_frame(PEER, ME, 1, 9, bytes(1000)), 0.0)
    assert u.pending_bytes == 2000
    assert stack.counters.get("udp.rcvbuf_overflow") == 3
    u.recvfrom()
    stack.receive(udp_frame(PEER, ME, 1, 9, bytes(1000)), 0.0)
    assert u.pending_bytes == 2000


def test_default_rcvbuf_is_64k(stack):
    assert stack.udp.open().rcvbuf == 65536


# ---- connected UDP ---------------------------------------------------------------------------
def test_connect_binds_and_filters_other_peers(stack):
    u = stack.udp.open()
    ev = []
    u.watch(lambda s, e: ev.append(e))
    u.connect(PEER, 53)
    assert ev == [WRITE]
    assert u.local[0] == 0 and u.local[1] >= 49152 and u.remote == (PEER, 53)  # item 52
    port = u.local[1]
    stack.receive(udp_frame(PEER, ME, 53, port, b"ok"), 0.0)
    stack.receive(udp_frame(PEER, ME, 54, port, b"wrong port"), 0.0)
    stack.receive(udp_frame(OTHER, ME, 53, port, b"wrong host"), 0.0)
    assert u.recvfrom() == (b"ok", PEER, 53)
    assert u.recvfrom() is None
    assert stack.counters.get("udp.connected_filtered") == 2
    assert stack.poll(0.0) == []  # filtered datagrams get no port unreachable
    u.send(b"q", 0.0)
    (p,) = ips(stack.poll(0.0))
    assert p.dst == PEER


def test_reconnect_to_different_peer_discards_queue(stack):
    u = stack.udp.open()
    u.connect(PEER, 53)
    port = u.local[1]
    stack.receive(udp_frame(PEER, ME, 53, port, b"old"), 0.0)
    u.connect(PEER, 53)  # same name: queue kept
    assert u.pending_bytes == 3
    u.connect(OTHER, 53)  # item 54
    assert u.recvfrom() is None and u.pending_bytes == 0
    assert stack.counters.get("udp.reconnect_discarded") == 1


def test_connect_all_zero_disconnects(stack):
    u = stack.udp.open()
    u.connect(PEER, 53)
    port = u.local[1]
    u.connect(0, 0)  # item 53
    assert u.remote is None and u.disconnected
    usage(Reason.NOT_CONNECTED, u.send, b"x", 0.0)
    stack.receive(udp_frame(OTHER, ME, 9, port, b"any"), 0.0)
    assert u.recvfrom() == (b"any", OTHER, 9)  # recvfrom works from anyone again
    u.sendto(b"still", OTHER, 9, 0.0)
    assert len(stack.poll(0.0)) == 1


def test_connect_errors(stack):
    u = stack.udp.open()
    usage(Reason.ACCESS, u.connect, 0xFFFFFFFF, 53)  # founding document
    usage(Reason.ACCESS, u.connect, BCAST, 53)
    usage(Reason.ADDR_NOT_AVAIL, u.connect, 0, 53)
    usage(Reason.ADDR_NOT_AVAIL, u.connect, PEER, 0)
    usage(Reason.NET_UNREACH, u.connect, FAR, 53)
    assert u.local is None
    u.broadcast = True
    u.connect(0xFFFFFFFF, 53)
    u.send(b"b", 0.0)
    assert ips(stack.poll(0.0))[0].dst == 0xFFFFFFFF


def test_connected_socket_and_wildcard_share_port_with_reuse(stack):
    c, w = stack.udp.open(), stack.udp.open()
    c.bind(0, 7000, reuse=True)
    w.bind(0, 7000, reuse=True)
    c.connect(PEER, 53)
    stack.receive(udp_frame(OTHER, ME, 53, 7000, b"for w"), 0.0)
    assert w.recvfrom() == (b"for w", OTHER, 53) and c.recvfrom() is None


# ---- shutdown --------------------------------------------------------------------------------
def test_shutdown_semantics(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    u.shutdown(1)  # item 59: fine on unconnected UDP
    usage(Reason.SHUTDOWN, u.sendto, b"x", PEER, 1, 0.0)
    stack.receive(udp_frame(PEER, ME, 1, 9, b"still in"), 0.0)
    assert u.recvfrom()[0] == b"still in"
    u.shutdown(0)
    stack.receive(udp_frame(PEER, ME, 1, 9, b"dropped"), 0.0)
    usage(Reason.SHUTDOWN, u.recvfrom)
    assert stack.counters.get("udp.shutdown_dropped") == 1
    assert stack.poll(0.0) == []  # bound socket: no port unreachable
    usage(Reason.INVALID, u.shutdown, 3)


def test_broadcast_received_only_by_wildcard_sockets(stack):
    w, s = stack.udp.open(), stack.udp.open()
    w.bind(0, 8000)
    s.bind(ME, 8000)
    for dst in (0xFFFFFFFF, BCAST):
        stack.receive(udp_frame(PEER, dst, 1, 8000, b"b"), 0.0)
    assert w.pending_bytes == 2 and s.pending_bytes == 0


def test_socket_repr_and_error_clear(stack):
    u = stack.udp.open()
    assert "UdpSocket" in repr(u)
    assert u.clear_error() is None


def test_broadcast_to_specific_option():
    s = make(udp_broadcast_to_specific=True)
    w, sp, lo = s.udp.open(), s.udp.open(), s.udp.open()
    w.bind(0, 8000)
    sp.bind(ME, 8000)
    lo.bind(LO, 8000)
    s.receive(udp_frame(PEER, BCAST, 1, 8000, b"b"), 0.0)
    assert sp.pending_bytes == 1 and w.pending_bytes == 1 and lo.pending_bytes == 0


def test_peekfrom_does_not_consume(stack):
    u = stack.udp.open()
    usage(Reason.INVALID, u.peekfrom)
    u.bind(0, 9)
    assert u.peekfrom() is None
    stack.receive(udp_frame(PEER, ME, 1, 9, b"peek"), 0.0)
    assert u.peekfrom() == (b"peek", PEER, 1)
    assert u.peekfrom() == (b"peek", PEER, 1) and u.pending_bytes == 4
    assert u.recvfrom() == (b"peek", PEER, 1)
    assert u.peekfrom() is None and not u.readable


def test_first_connect_keeps_queue_disconnect_with_new_name_discards(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(udp_frame(PEER, ME, 53, 9, b"early"), 0.0)
    u.connect(PEER, 53)  # no previous connect: nothing to compare with, queue kept
    assert u.recvfrom() == (b"early", PEER, 53)
    stack.receive(udp_frame(PEER, ME, 53, 9, b"later"), 0.0)
    u.connect(0, 0)  # the dis-connect is a different name than the previous connect
    assert u.recvfrom() is None
    stack.receive(udp_frame(OTHER, ME, 53, 9, b"x"), 0.0)
    u.connect(0, 0)  # same name as the previous connect: kept
    assert u.pending_bytes == 1
