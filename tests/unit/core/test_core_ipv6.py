"""The IPv6 network layer on TUN (sans-I/O, virtual time): receive checks, delivery, ICMPv6 echo
and errors (RFC 4443 2.4 rules, rate limit), Packet Too Big and path MTU (RFC 8201),
extension headers, reassembly (RFC 5722) and source fragmentation, loopback."""

from __future__ import annotations

import pytest
import scapy.all as sc
from corehelpers import assert_no_internal_error
from ipv6helpers import (
    EXPERIMENTAL,
    ME,
    ME6,
    PEER,
    PEER6,
    Recorder,
    checksum_ok,
    icmp6_of,
    make6,
    v6,
)

from ustack.core import Reason
from ustack.core.addrconf import eui64_iid
from ustack.wire.ipv6 import Ipv6Packet, ip6_int


def test_ipv4_only_config_still_gets_ipv6_link_local_and_no_timers() -> None:
    s = make6(addr6=None)
    (a,) = s.ipv6.addrs.addresses.values()
    assert a.origin == "link-local" and a.addr >> 64 == 0xFE80 << 48
    assert a.addr & ((1 << 64) - 1) == eui64_iid(s.mac)
    assert s.poll_at() is None  # TUN: no DAD, nothing scheduled


def test_echo_request_answered_with_a_valid_reply() -> None:
    s = make6()
    s.receive(bytes(v6(hlim=9) / sc.ICMPv6EchoRequest(id=7, seq=3, data=b"ping6")), 0.0)
    (reply,) = icmp6_of(s.poll(0.0))
    assert (reply.src, reply.dst, reply.hlim) == (ME6, PEER6, 64)
    r = reply[sc.ICMPv6EchoReply]
    assert (r.id, r.seq, r.data) == (7, 3, b"ping6")
    assert checksum_ok(reply)
    assert s.counters.get("icmpv6.echo_replies_out") == 1
    assert_no_internal_error(s)


def test_echo_to_link_local_and_all_nodes_answered_from_unicast() -> None:
    s = make6()
    ll = s.ipv6.addrs.link_local()
    s.receive(bytes(v6(src="fe80::1", dst="ff02::1") / sc.ICMPv6EchoRequest(id=1, seq=1)), 0.0)
    s.receive(bytes(v6(src="fe80::1", dst=hex_addr(ll)) / sc.ICMPv6EchoRequest(id=1, seq=2)), 0.0)
    replies = icmp6_of(s.poll(0.0))
    assert [ip6_int(r.src) for r in replies] == [ll, ll]  # RFC 4443 4.1: a unicast source
    assert all(checksum_ok(r) for r in replies)


def hex_addr(a: int) -> str:
    from ustack.wire.ipv6 import ip6_str

    return ip6_str(a)


def test_receive_checks_drop_and_count() -> None:
    s = make6()
    cases = [
        (v6(src="ff02::1"), "ipv6.bad_source"),
        (v6(src="::1"), "ipv6.martian_loopback"),
        (v6(dst="2001:2::99"), "ipv6.not_for_us"),
        (v6(dst="ff02::1234"), "ipv6.not_member"),
        (v6(src=ME6), "ipv6.martian_own_source"),
    ]
    for pkt, counter in cases:
        s.receive(bytes(pkt / sc.ICMPv6EchoRequest()), 0.0)
        assert s.counters.get(counter) == 1, counter
    assert s.poll(0.0) == []
    assert s.counters.get("ipv6.in") == len(cases)


def test_delivery_to_an_ipv6_transport_and_unknown_next_header() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    s.receive(bytes(v6(nh=EXPERIMENTAL) / b"payload!"), 0.0)
    ((ip, data, rx),) = rec.packets
    assert type(ip) is Ipv6Packet and (ip.src, ip.dst, data, rx) == (PEER, ME, b"payload!", 0)
    # an unknown next header behind a destination options header: parameter problem code 1
    # pointing at the Next Header field that named it (RFC 8200 4)
    raw = bytes(v6() / sc.IPv6ExtHdrDestOpt(nh=254) / (b"x" * 8))
    s.receive(raw, 0.0)
    (err,) = icmp6_of(s.poll(0.0))
    pp = err[sc.ICMPv6ParamProblem]
    assert (pp.code, pp.ptr) == (1, 40)
    assert bytes(pp.payload)[:len(raw)] == raw  # the whole offending packet quoted
    assert checksum_ok(err)
    assert s.counters.get("ipv6.unknown_next_header") == 1


def test_routing_header_type_0_refused_with_parameter_problem() -> None:
    s = make6()
    raw = bytes(v6() / sc.IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:2::9"]) / sc.UDP())
    s.receive(raw, 0.0)
    (err,) = icmp6_of(s.poll(0.0))
    assert (err[sc.ICMPv6ParamProblem].code, err[sc.ICMPv6ParamProblem].ptr) == (0, 42)
    assert s.counters.get("ipv6.routing_refused") == 1
    # with segments left 0 it is ignored and the packet goes on
    s.receive(bytes(v6() / sc.IPv6ExtHdrRouting(type=0, segleft=0) / sc.ICMPv6EchoRequest(id=5)), 0.0)
    (rep,) = icmp6_of(s.poll(0.0))
    assert rep[sc.ICMPv6EchoReply].id == 5


def test_no_error_about_multicast_or_errors_except_option_type_10() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    s.receive(bytes(v6(dst="ff02::1") / sc.IPv6ExtHdrDestOpt(nh=254) / (b"x" * 8)), 0.0)
    assert s.poll(0.0) == [] and s.counters.get("icmpv6.no_error_multicast") == 1
    # 2.4(e.1): never an error about an error
    s.receive(bytes(v6() / sc.IPv6ExtHdrDestOpt(options=[sc.HBHOptUnknown(otype=0xC1, optdata=b"\0" * 4)])
                    / sc.ICMPv6DestUnreach() / v6(src=ME6, dst=PEER6)), 0.0)
    assert s.poll(0.0) == [] and s.counters.get("icmpv6.no_error_about_error") == 1
    # option type 10xxxxxx: reported even for a multicast destination (RFC 8200 4.2)
    s.receive(bytes(v6(dst="ff02::1") / sc.IPv6ExtHdrDestOpt(
        options=[sc.HBHOptUnknown(otype=0x81, optdata=b"\0" * 4)]) / sc.UDP()), 0.0)
    (err,) = icmp6_of(s.poll(0.0))
    assert (err[sc.ICMPv6ParamProblem].code, err[sc.ICMPv6ParamProblem].ptr) == (2, 42)
    assert ip6_int(err.src) == ME  # from our unicast address, not the group
    # 11xxxxxx to multicast: silent
    s.receive(bytes(v6(dst="ff02::1") / sc.IPv6ExtHdrDestOpt(
        options=[sc.HBHOptUnknown(otype=0xC1, optdata=b"\0" * 4)]) / sc.UDP()), 0.0)
    assert s.poll(0.0) == []


def test_errors_are_rate_limited_by_a_token_bucket() -> None:
    s = make6(icmp_rate=10.0, icmp_burst=5)
    for i in range(20):
        s.receive(bytes(v6() / sc.IPv6ExtHdrDestOpt(nh=254) / (bytes([i]) * 8)), 0.0)
    assert len(s.poll(0.0)) == 5
    assert s.counters.get("icmpv6.rate_limited") == 15
    s.receive(bytes(v6() / sc.IPv6ExtHdrDestOpt(nh=254) / (b"y" * 8)), 0.5)  # 5 tokens back
    assert len(s.poll(0.5)) == 1


def test_ping_out_and_reply_in() -> None:
    s = make6()
    assert s.icmp6.ping(PEER, 0x1234, 1, b"abc", 0.0) is None
    (req,) = icmp6_of(s.poll(0.0))
    e = req[sc.ICMPv6EchoRequest]
    assert (req.src, req.dst, e.id, e.seq, e.data) == (ME6, PEER6, 0x1234, 1, b"abc")
    assert checksum_ok(req)
    s.receive(bytes(v6() / sc.ICMPv6EchoReply(id=0x1234, seq=1, data=b"abc")), 0.25)
    (r,) = s.icmp6.replies
    assert (r.src, r.ident, r.seq, r.payload, r.at) == (PEER, 0x1234, 1, b"abc", 0.25)


def test_ping_errors_reach_echo_errors() -> None:
    s = make6()
    s.icmp6.ping(PEER, 9, 4, b"", 0.0)
    (req,) = s.poll(0.0)
    s.receive(bytes(v6(src="2001:2::fe") / sc.ICMPv6DestUnreach(code=3) / req), 0.1)
    (err,) = s.icmp6.echo_errors
    assert (err.dst, err.ident, err.seq, err.kind) == (PEER, 9, 4, Reason.HOST_UNREACH)


def test_loopback_and_own_address_stay_inside() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    assert s.send_ip6(1, EXPERIMENTAL, b"to-lo", 0.0) is None
    assert s.send_ip6(ME, EXPERIMENTAL, b"to-me", 0.0) is None
    assert s.poll(0.0) == []  # nothing on the device
    assert [(ip.src, ip.dst, d) for ip, d, _ in rec.packets] == [(1, 1, b"to-lo"), (ME, ME, b"to-me")]
    s.icmp6.ping(1, 1, 1, b"", 0.0)
    s.poll(0.0)
    assert [r.src for r in s.icmp6.replies] == [1]


def test_send_refusals() -> None:
    s = make6()
    assert s.send_ip6(PEER, EXPERIMENTAL, b"x" * 65536, 0.0) is Reason.MSG_SIZE
    assert s.send_ip6(PEER, EXPERIMENTAL, b"x", 0.0, src=ip6_int("2001:2::77")) is Reason.ADDR_NOT_AVAIL
    assert s.send_ip6(PEER, EXPERIMENTAL, b"x" * 2000, 0.0, dontfrag=True) is Reason.FRAG_NEEDED
    bare = make6(addr6=None)  # only a link-local address: no source for a global destination
    assert bare.send_ip6(PEER, EXPERIMENTAL, b"x", 0.0) is Reason.NET_UNREACH
    small = make6(mtu=1000)  # below 1280: no IPv6 on this link (RFC 8200 5)
    assert small.send_ip6(PEER, EXPERIMENTAL, b"x", 0.0) is Reason.NET_UNREACH
    small.receive(bytes(v6() / sc.ICMPv6EchoRequest()), 0.0)
    assert small.counters.get("ipv6.disabled") == 1 and small.poll(0.0) == []


def test_source_fragmentation_reassembled_by_scapy() -> None:
    s = make6()
    data = bytes(range(256)) * 16  # 4096 bytes
    assert s.send_ip6(PEER, EXPERIMENTAL, data, 0.0) is None
    frames = s.poll(0.0)
    assert len(frames) == 3 and all(len(f) <= 1500 for f in frames)
    pkts = [sc.IPv6(f) for f in frames]
    assert len({p[sc.IPv6ExtHdrFragment].id for p in pkts}) == 1
    whole = sc.defragment6(pkts)
    assert whole.nh == EXPERIMENTAL and bytes(whole.payload) == data
    assert s.counters.get("ipv6.fragments_out") == 3


def test_packet_too_big_lowers_the_path_mtu_and_tells_the_transport() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    s.send_ip6(PEER, EXPERIMENTAL, b"q" * 1400, 0.0)
    (big,) = s.poll(0.0)
    s.receive(bytes(v6(src="2001:2::fe") / sc.ICMPv6PacketTooBig(mtu=1300) / big), 1.0)
    ((kind, quoted, qdata, mtu),) = rec.errors
    assert (kind, type(quoted), quoted.dst, quoted.proto, mtu) == (
        Reason.FRAG_NEEDED, Ipv6Packet, PEER, EXPERIMENTAL, 1300)
    assert qdata == b"q" * len(qdata) and len(qdata) >= 8
    assert s.path_mtu6(PEER) == 1300
    s.send_ip6(PEER, EXPERIMENTAL, b"q" * 1400, 1.0)
    assert [len(f) for f in s.poll(1.0)] == [1296, 40 + 8 + 1400 - 1248]
    # below 1280 is taken as 1280 (RFC 8201 4); a larger PTB never raises it
    s.receive(bytes(v6(src="2001:2::fe") / sc.ICMPv6PacketTooBig(mtu=600) / big), 2.0)
    assert s.path_mtu6(PEER) == 1280
    s.receive(bytes(v6(src="2001:2::fe") / sc.ICMPv6PacketTooBig(mtu=1400) / big), 3.0)
    assert s.path_mtu6(PEER) == 1280
    # expiry: after pmtu6_expiry_s the link MTU is tried again (RFC 8201 5.3)
    s.receive(bytes(v6() / sc.ICMPv6EchoRequest()), 2.0 + 600.0)
    assert s.path_mtu6(PEER) == 1500
    # an error about a packet we never sent goes nowhere
    s.receive(bytes(v6(src="2001:2::fe") / sc.ICMPv6PacketTooBig(mtu=1300)
                    / v6(src="2001:2::5", dst=PEER6, nh=EXPERIMENTAL) / (b"z" * 8)), 700.0)
    assert s.counters.get("icmpv6.error_not_ours") == 1 and len(rec.errors) == 3


def test_unreachable_codes_map_to_reasons() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    s.send_ip6(PEER, EXPERIMENTAL, b"abcdefgh", 0.0)
    (sent,) = s.poll(0.0)
    want = {0: Reason.NET_UNREACH, 1: Reason.HOST_UNREACH, 3: Reason.HOST_UNREACH, 4: Reason.PORT_UNREACH}
    for code in want:
        s.receive(bytes(v6(src="2001:2::fe") / sc.ICMPv6DestUnreach(code=code) / sent), 0.1)
    s.receive(bytes(v6(src="2001:2::fe") / sc.ICMPv6TimeExceeded(code=0) / sent), 0.1)
    s.receive(bytes(v6(src="2001:2::fe") / sc.ICMPv6ParamProblem(code=1, ptr=6) / sent), 0.1)
    assert [e[0] for e in rec.errors] == [*want.values(), Reason.TTL_EXPIRED, Reason.PROTO_UNREACH]


def frags(payload: bytes, ident: int, pieces: list[tuple[int, int, bool]],
          nh: int = EXPERIMENTAL) -> list[bytes]:
    return [bytes(v6() / sc.IPv6ExtHdrFragment(nh=nh, offset=a // 8, m=int(m), id=ident) / payload[a:b])
            for a, b, m in pieces]


def test_reassembly_in_any_order_and_atomic_fragments() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    data = bytes(range(200)) * 20  # 4000 bytes
    for f in reversed(frags(data, 77, [(0, 1448, True), (1448, 2896, True), (2896, 4000, False)])):
        s.receive(f, 0.0)
    ((ip, got, _),) = rec.packets
    assert got == data and ip.frag_id is None and ip.proto == EXPERIMENTAL
    s.receive(frags(b"atomic!!", 78, [(0, 8, False)])[0], 0.0)
    assert rec.packets[-1][1] == b"atomic!!" and s.counters.get("ipv6.atomic_fragment") == 1


def test_overlapping_fragments_drop_the_datagram_rfc5722() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    data = b"A" * 64
    for f in frags(data, 9, [(0, 32, True), (24, 48, True), (48, 64, False)]):
        s.receive(f, 0.0)
    assert rec.packets == [] and s.counters.get("ipv6.reasm_overlap") == 1
    assert s.counters.get("ipv6.reasm_dead_fragment") == 1  # the rest of it is dropped too


def test_reassembly_timeout_sends_time_exceeded_only_with_fragment_zero() -> None:
    s = make6(reassembly_timeout_s=60.0)
    s.receive(frags(b"B" * 64, 1, [(0, 32, True)])[0], 0.0)
    s.receive(frags(b"C" * 64, 2, [(32, 64, True)])[0], 0.0)
    assert s.poll_at() == 60.0
    (te,) = icmp6_of(s.poll(60.0))
    assert te[sc.ICMPv6TimeExceeded].code == 1
    assert s.counters.get("ipv6.reasm_timeout") == 2


def test_fragment_header_checks_answered() -> None:
    s = make6()
    s.receive(bytes(v6() / sc.IPv6ExtHdrFragment(m=1, nh=17) / (b"x" * 13)), 0.0)
    (err,) = icmp6_of(s.poll(0.0))
    assert (err[sc.ICMPv6ParamProblem].code, err[sc.ICMPv6ParamProblem].ptr) == (0, 4)


def test_icmpv6_handler_hook_for_mld() -> None:
    s = make6()
    seen = []
    s.icmp6.register((130, 143), lambda ip, msg, now, rx: seen.append((msg[0], len(msg), now, rx)))
    s.receive(bytes(v6(src="fe80::1", dst="ff02::1", hlim=1) / sc.ICMPv6MLQuery()), 3.0)
    assert seen == [(130, 24, 3.0, 0)]
    s.icmp6.register((130, 143), None)
    s.receive(bytes(v6(src="fe80::1", dst="ff02::1", hlim=1) / sc.ICMPv6MLQuery()), 4.0)
    assert s.counters.get("icmpv6.mld_ignored") == 1
    with pytest.raises(ValueError):
        s.icmp6.register((128,), lambda *a: None)


def test_hop_by_hop_router_alert_sent_as_mld_needs_it() -> None:
    s = make6()
    router_alert = bytes((5, 2, 0, 0))  # RFC 2711, value 0 = MLD
    assert s.send_ip6(ip6_int("ff02::16"), 58, b"\x8f\0\0\0\0\0\0\0", 0.0, hop_limit=1,
                      hop_by_hop=router_alert) is None
    (f,) = s.poll(0.0)
    p = sc.IPv6(f)
    hbh = p[sc.IPv6ExtHdrHopByHop]
    assert p.nh == 0 and hbh.nh == 58 and len(bytes(hbh)) - len(bytes(hbh.payload)) == 8
    assert [o.otype for o in hbh.options if o.otype != 1] == [5]
    assert Ipv6Packet.parse(f).proto == 58


def test_route6_and_is_local6() -> None:
    s = make6()
    assert s.is_local6(ME) and s.is_local6(1) and not s.is_local6(PEER)
    assert s.route6(PEER) == (ME, PEER)
    assert s.route6(ip6_int("fe80::9"))[0] == s.link_local6
    assert make6(addr6=None).route6(PEER) is None


def test_bad_icmpv6_checksum_dropped() -> None:
    s = make6()
    raw = bytearray(bytes(v6() / sc.ICMPv6EchoRequest()))
    raw[-1] ^= 0xFF
    s.receive(bytes(raw), 0.0)
    assert s.counters.get("icmpv6.bad_checksum") == 1 and s.poll(0.0) == []


def test_first_fragment_without_the_whole_chain_rfc7112() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    truncated = bytes([EXPERIMENTAL, 2]) + bytes(6)  # destination options of 24 bytes, 8 here
    s.receive(bytes(v6() / sc.IPv6ExtHdrFragment(id=3, m=1, nh=60) / truncated), 0.0)
    (err,) = icmp6_of(s.poll(0.0))
    assert (err[sc.ICMPv6ParamProblem].code, err[sc.ICMPv6ParamProblem].ptr) == (3, 0)
    assert s.counters.get("ipv6.incomplete_chain") == 1 and not s.reassembler.table
    # the whole chain in the first fragment: taken
    s.receive(bytes(v6() / sc.IPv6ExtHdrFragment(id=4, m=1, nh=60) / sc.IPv6ExtHdrDestOpt(nh=EXPERIMENTAL)
                    / (b"a" * 8)), 0.0)
    s.receive(bytes(v6() / sc.IPv6ExtHdrFragment(id=4, offset=2, m=0, nh=60) / (b"b" * 8)), 0.0)
    assert rec.packets[-1][1] == b"a" * 8 + b"b" * 8


def test_idle_ipv6_timers_cost_one_comparison() -> None:
    s = make6()
    assert s.ipv6.addrs.next_at is None and s.ipv6.poll_at() is None
    t = make6(medium="ethernet", mac="02:00:00:00:00:02", slaac=True)
    t.start(0.0)
    t.poll(0.0)  # (the gratuitous ARP)
    first = t.ipv6.addrs.next_at
    assert first is not None and 0.0 <= first <= 1.0 and t.poll_at() == first


def test_multicast_loops_back_only_when_asked() -> None:
    s = make6()
    rec = Recorder()
    s.register(rec)
    s.send_ip6(ip6_int("ff02::1"), EXPERIMENTAL, b"quiet", 0.0)
    s.send_ip6(ip6_int("ff02::1"), EXPERIMENTAL, b"looped", 0.0, loop=True)
    s.send_ip6(ip6_int("ff02::1234"), EXPERIMENTAL, b"not a member", 0.0, loop=True)
    assert len(s.poll(0.0)) == 3  # all three on the link
    assert [d for _, d, _ in rec.packets] == [b"looped"]
