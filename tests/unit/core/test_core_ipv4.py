"""IPv4 input validation (each drop has its counter), routing, identification, loopback."""

import pytest
from corehelpers import BCAST, FAR, GW, LO, ME, OTHER, PEER, ip_frame, ips, make, udp_frame

from ustack.core import Reason
from ustack.core.ipv4 import IdentAllocator, options_ok
from ustack.wire import Ipv4Packet, ip_int


def good() -> bytearray:
    return bytearray(udp_frame(PEER, ME, 1000, 9, b"hello"))


def refresh_checksum(b: bytearray) -> bytearray:
    from ustack.wire.checksum import internet_checksum

    hlen = (b[0] & 0xF) * 4
    b[10:12] = b"\0\0"
    b[10:12] = internet_checksum(bytes(b[:hlen])).to_bytes(2, "big")
    return b


def mutate_version(b):
    b[0] = 0x55
    return refresh_checksum(b)


def mutate_ihl(b):
    b[0] = 0x44
    return refresh_checksum(b)


def mutate_total_small(b):
    b[2:4] = (12).to_bytes(2, "big")
    return refresh_checksum(b)


def mutate_total_big(b):
    b[2:4] = (len(b) + 10).to_bytes(2, "big")
    return refresh_checksum(b)


def mutate_checksum(b):
    b[10] ^= 0xFF
    return b


def mutate_reserved_flag(b):
    b[6] |= 0x80
    return refresh_checksum(b)


def mutate_truncate(b):
    return b[:15]


@pytest.mark.parametrize("mutate,counter", [
    (mutate_version, "ipv4.bad_version"),
    (mutate_ihl, "ipv4.bad_header_length"),
    (mutate_total_small, "ipv4.bad_length"),
    (mutate_total_big, "ipv4.truncated"),
    (mutate_truncate, "ipv4.truncated"),
    (mutate_checksum, "ipv4.bad_checksum"),
    (mutate_reserved_flag, "ipv4.reserved_flag"),
])
def test_malformed_header_dropped_with_named_counter(stack, mutate, counter):
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(bytes(mutate(good())), 0.0)
    assert stack.counters.get(counter) == 1
    assert stack.counters.get("ipv4.delivered") == 0
    assert u.recvfrom() is None
    assert stack.poll(0.0) == []  # a malformed datagram never gets an ICMP error


def test_good_packet_is_delivered(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(bytes(good()), 0.0)
    assert u.recvfrom() == (b"hello", PEER, 1000)
    assert stack.counters.get("ipv4.in") == 1
    assert stack.counters.get("ipv4.delivered") == 1


def test_link_padding_after_total_length_is_ignored(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(bytes(good()) + b"\0" * 20, 0.0)
    assert u.recvfrom() == (b"hello", PEER, 1000)


def test_checksum_not_verified_when_offloaded():
    s = make(verify_checksums=False)
    u = s.udp.open()
    u.bind(0, 9)
    s.receive(bytes(mutate_checksum(good())), 0.0)
    assert u.recvfrom() == (b"hello", PEER, 1000)


@pytest.mark.parametrize("opts,ok", [
    (b"\x01\x01\x01\x00", True),  # NOPs then EOL
    (b"\x94\x04\x00\x00", True),  # router alert
    (b"\x94\x01\x00\x00", False),  # length < 2
    (b"\x07\x0c\x04\x00", False),  # record route running past the header
    (b"\x01\x01\x01\x83", False),  # type with no length byte
])
def test_options_are_checked_for_structure(stack, opts, ok):
    assert options_ok(opts) is ok
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(udp_frame(PEER, ME, 1000, 9, b"x", options=opts), 0.0)
    assert (u.recvfrom() is not None) is ok
    assert stack.counters.get("ipv4.bad_options") == (0 if ok else 1)


@pytest.mark.parametrize("src,dst,counter", [
    # impossible sources (RFC 1122 3.2.1.3)
    (ip_int("255.255.255.255"), ME, "ipv4.bad_source"),
    (BCAST, ME, "ipv4.bad_source"),
    (ip_int("224.0.0.5"), ME, "ipv4.bad_source"),
    (ip_int("240.0.0.1"), ME, "ipv4.bad_source"),
    (LO, ME, "ipv4.martian_loopback"),
    (ME, ME, "ipv4.martian_own_source"),
    # destinations that are neither ours nor a broadcast (a host does not forward)
    (PEER, OTHER, "ipv4.not_for_us"),
    (PEER, ip_int("224.0.0.5"), "ipv4.multicast_not_joined"),  # a group we are not in
    (PEER, LO, "ipv4.martian_loopback"),
])
def test_impossible_source_or_foreign_destination_dropped(stack, src, dst, counter):
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(udp_frame(src, dst, 1000, 9, b"x"), 0.0)
    assert stack.counters.get(counter) == 1
    assert u.recvfrom() is None
    assert stack.poll(0.0) == []


@pytest.mark.parametrize("dst", ["255.255.255.255", "198.18.0.255", "198.18.0.0", "224.0.0.1"])
def test_broadcast_destinations_accepted(stack, dst):
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(udp_frame(PEER, ip_int(dst), 1000, 9, b"b"), 0.0)
    assert u.recvfrom() == (b"b", PEER, 1000)


def test_ttl_below_two_is_still_accepted(stack):
    # RFC 1122 3.2.1.7: a host must not discard a datagram just because its TTL is < 2
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(udp_frame(PEER, ME, 1000, 9, b"t", ttl=1), 0.0)
    stack.receive(udp_frame(PEER, ME, 1000, 9, b"z", ttl=0), 0.0)
    assert u.recvfrom()[0] == b"t"
    assert u.recvfrom()[0] == b"z"


def test_ipv6_on_tun_goes_to_the_ipv6_layer(stack):
    v6 = bytes([0x60]) + bytes(39)  # next header 0 (hop-by-hop) with no room for it
    stack.receive(v6, 0.0)
    assert stack.counters.get("ipv6.in") == 1
    assert stack.counters.get("ipv6.bad_ext") == 1
    assert stack.counters.get("ipv4.in") == 0


def test_empty_frame_counted(stack):
    stack.receive(b"", 0.0)
    assert stack.counters.get("ipv4.truncated") == 1


# ---- routing ---------------------------------------------------------------------------------
def test_route_on_link_and_no_gateway(stack):
    assert stack.route(PEER) == (ME, PEER)
    assert stack.route(BCAST) == (ME, BCAST)
    assert stack.route(ip_int("255.255.255.255")) == (ME, 0xFFFFFFFF)
    assert stack.route(FAR) is None
    assert stack.route(LO) == (LO, LO)


def test_route_via_gateway():
    s = make(gateway="198.18.0.254")
    assert s.route(FAR) == (ME, GW)
    assert s.route(PEER) == (ME, PEER)


def test_gateway_must_be_on_link():
    with pytest.raises(ValueError):
        make(gateway="10.0.0.1")


def test_no_route_is_net_unreach_and_nothing_sent(stack):
    assert stack.send_ip(FAR, 17, b"12345678", 0.0) is Reason.NET_UNREACH
    assert stack.poll(0.0) == []
    assert stack.counters.get("ipv4.no_route") == 1


def test_send_via_gateway_keeps_destination():
    s = make(gateway="198.18.0.254")
    assert s.send_ip(FAR, 253, b"abc", 0.0) is None
    (p,) = ips(s.poll(0.0))
    assert (p.src, p.dst, p.proto, bytes(p.payload)) == (ME, FAR, 253, b"abc")


def test_send_ip_header_fields(stack):
    stack.send_ip(PEER, 253, b"data", 0.0, ttl=9, df=True, tos=0x10)
    (p,) = ips(stack.poll(0.0))
    assert (p.ttl, p.df, p.mf, p.tos, p.frag_offset) == (9, True, False, 0x10, 0)


def test_df_too_big_is_frag_needed_locally(stack):
    assert stack.send_ip(PEER, 17, bytes(1481), 0.0, df=True) is Reason.FRAG_NEEDED
    assert stack.poll(0.0) == []
    assert stack.send_ip(PEER, 17, bytes(1480), 0.0, df=True) is None
    (p,) = ips(stack.poll(0.0))
    assert len(p.payload) == 1480


def test_datagram_over_65535_refused(stack):
    assert stack.send_ip(PEER, 17, bytes(65516), 0.0) is Reason.MSG_SIZE
    assert stack.poll(0.0) == []


def test_ident_per_destination_increments_from_random_start(stack):
    for dst in (PEER, PEER, PEER, OTHER, OTHER):
        stack.send_ip(dst, 253, b"x", 0.0)
    p = ips(stack.poll(0.0))
    a = [q.ident for q in p if q.dst == PEER]
    b = [q.ident for q in p if q.dst == OTHER]
    assert a[1] == (a[0] + 1) & 0xFFFF and a[2] == (a[1] + 1) & 0xFFFF
    assert b[1] == (b[0] + 1) & 0xFFFF
    s2 = make(seed=8)
    s2.send_ip(PEER, 253, b"x", 0.0)
    assert ips(s2.poll(0.0))[0].ident != a[0]  # seeded start, not 0


def test_ident_allocator_bounded():
    import random

    ids = IdentAllocator(random.Random(1), limit=10)
    for d in range(100):
        ids.next(d)
    assert len(ids.ids) <= 10


# ---- loopback --------------------------------------------------------------------------------
@pytest.mark.parametrize("medium", ["ip", "ethernet"])
@pytest.mark.parametrize("dst", [LO, ip_int("127.9.8.7"), ME])
def test_loopback_never_touches_the_device(dst, medium):
    stack = make(medium=medium)
    rx = stack.udp.open()
    rx.bind(0, 4000)
    tx = stack.udp.open()
    tx.sendto(b"local", dst, 4000, 0.0)
    assert stack.poll(0.0) == []
    data, src, sport = rx.recvfrom()
    assert data == b"local" and sport == tx.local[1]
    assert src == (LO if dst >> 24 == 127 else ME)
    assert stack.counters.get("ipv4.out") == 0


def test_loopback_large_datagram_not_fragmented(stack):
    rx = stack.udp.open()
    rx.bind(0, 4000)
    stack.udp.open().sendto(bytes(range(256)) * 200, LO, 4000, 0.0)
    assert stack.poll(0.0) == []
    assert rx.recvfrom()[0] == bytes(range(256)) * 200
    assert stack.counters.get("ipv4.fragmented") == 0


def test_loopback_delivered_in_order_on_next_poll_not_inline(stack):
    rx = stack.udp.open()
    rx.bind(0, 4000)
    tx = stack.udp.open()
    for i in range(5):
        tx.sendto(bytes([i]), LO, 4000, 0.0)
    assert rx.recvfrom() is None  # queued, not delivered re-entrantly
    assert stack.poll_at() == 0.0
    stack.poll(0.0)
    assert [rx.recvfrom()[0] for _ in range(5)] == [bytes([i]) for i in range(5)]
    assert stack.poll_at() is None


def test_unknown_protocol_over_loopback_gets_protocol_unreachable(stack):
    assert stack.send_ip(LO, 200, b"12345678", 0.0) is None
    stack.poll(0.0)
    assert stack.counters.get("ipv4.unknown_proto") == 1
    assert stack.counters.get("icmp.errors_out") == 1
    assert stack.counters.get("icmp.errors_in") == 1  # the error came back to us over loopback
    assert stack.counters.get("icmp.error_no_transport") == 1


def test_parsed_packet_type(stack):
    stack.send_ip(PEER, 17, b"x" * 8, 0.0)
    (f,) = stack.poll(0.0)
    assert isinstance(Ipv4Packet.parse(f), Ipv4Packet)
    assert ip_frame(ME, PEER, 17, b"x" * 8)[12:] == f[12:]  # same header apart from id/csum
