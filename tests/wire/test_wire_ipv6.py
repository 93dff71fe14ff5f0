"""IPv6, ICMPv6 and NDP codecs: round trips, scapy cross-checks both directions, and the
extension-header walk's refusals (each with the RFC 8200 parameter problem it asks for)."""

from __future__ import annotations

import pytest
import scapy.all as sc
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import wire_settings

from ustack.wire import Malformed
from ustack.wire import icmpv6 as I
from ustack.wire.checksum import internet_checksum, pseudo_sum6, reference_checksum
from ustack.wire.icmpv6 import Icmpv6Message
from ustack.wire.ipv6 import (
    Ipv6Packet,
    Ipv6ParamProblem,
    ip6_int,
    ip6_str,
    parse_cidr6,
    quick_header6,
)
from ustack.wire.ndp import (
    NdOptions,
    NeighborAdvert,
    NeighborSolicit,
    PrefixInfo,
    RouterAdvert,
    RouterSolicit,
)

A = ip6_int("2001:2::1")
B = ip6_int("2001:2::2")
u128 = st.integers(0, (1 << 128) - 1)
cross = settings(wire_settings, max_examples=60)


def test_address_helpers() -> None:
    assert ip6_int("::1") == 1
    assert ip6_str(ip6_int("2001:0002:0:0:0:0:0:0001")) == "2001:2::1"
    assert ip6_str(ip6_int("::ffff:198.18.0.1")) == "::ffff:198.18.0.1"
    assert parse_cidr6("2001:2::2/64") == (B, 64)
    assert parse_cidr6("fe80::1") == (ip6_int("fe80::1"), 128)
    for bad in ("2001:2::1::2", "198.18.0.1", "fe80::1%eth0", "", "2001:2::g"):
        with pytest.raises(ValueError):
            ip6_int(bad)
    for bad in ("2001:2::/129", "2001:2::/x"):
        with pytest.raises(ValueError):
            parse_cidr6(bad)
    with pytest.raises(ValueError):
        ip6_str(1 << 128)


@wire_settings
@given(u128, u128, st.integers(0, 255), st.binary(max_size=200), st.integers(0, 255),
       st.integers(0, 255), st.integers(0, 0xFFFFF))
def test_roundtrip(src, dst, proto, payload, hop, tc, flow) -> None:
    if proto in (0, 43, 44, 60):
        proto = 253  # an extension header number would be walked, not delivered
    p = Ipv6Packet(src, dst, proto, payload, hop, tc, flow)
    raw = p.emit()
    assert len(raw) == 40 + len(payload)
    assert Ipv6Packet.parse(raw + b"\0" * 5) == p  # link padding past the payload length dropped


@wire_settings
@given(st.integers(0, 0xFFF8 // 8).map(lambda x: x * 8), st.booleans(), st.integers(0, 2**32 - 1),
       st.integers(0, 100).map(lambda x: x * 8))
def test_fragment_roundtrip(off, mf, ident, n) -> None:
    if off + n > 0xFFFF:
        return
    p = Ipv6Packet(A, B, 17, b"x" * n, 64, 0, 0, off, mf, ident)
    back = Ipv6Packet.parse(p.emit())
    assert back == p._replace(nh_at=40)
    assert back.is_fragment == (mf or off != 0)


@cross
@given(u128, u128, st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFFF),
       st.binary(max_size=64))
def test_scapy_decodes_ours(src, dst, hop, tc, flow, data) -> None:
    raw = Ipv6Packet(src, dst, 253, data, hop, tc, flow).emit()
    s = sc.IPv6(raw)
    assert (ip6_int(s.src), ip6_int(s.dst), s.nh, s.hlim, s.tc, s.fl, s.plen) == (
        src, dst, 253, hop, tc, flow, len(data))
    assert bytes(s.payload) == data


@cross
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFFF), st.binary(max_size=64))
def test_we_decode_scapys(hop, tc, flow, data) -> None:
    raw = bytes(sc.IPv6(src="2001:2::1", dst="ff02::1", hlim=hop, tc=tc, fl=flow, nh=253) / sc.Raw(data))
    p = Ipv6Packet.parse(raw)
    assert (p.src, p.dst, p.proto, p.hop_limit, p.tclass, p.flow, bytes(p.payload)) == (
        A, ip6_int("ff02::1"), 253, hop, tc, flow, data)


def test_scapy_extension_chain_is_walked() -> None:
    pkt = (sc.IPv6(src="2001:2::1", dst="2001:2::2") / sc.IPv6ExtHdrHopByHop(options=[sc.RouterAlert()])
           / sc.IPv6ExtHdrRouting(segleft=0) / sc.IPv6ExtHdrDestOpt(options=[sc.PadN(optdata=b"\0\0")])
           / sc.UDP(sport=1, dport=2) / b"hi")
    raw = bytes(pkt)
    p = Ipv6Packet.parse(raw)
    assert p.proto == 17 and p.frag_id is None
    assert bytes(p.payload) == bytes(pkt[sc.UDP])
    assert raw[p.nh_at] == 17  # the Next Header field that named UDP
    frag = bytes(sc.IPv6(src="2001:2::1", dst="2001:2::2")
                 / sc.IPv6ExtHdrFragment(offset=3, m=1, id=77, nh=17)
                 / (b"z" * 16))
    f = Ipv6Packet.parse(frag)
    assert (f.proto, f.frag_offset, f.mf, f.frag_id, bytes(f.payload)) == (17, 24, True, 77, b"z" * 16)
    ours = Ipv6Packet(A, B, 17, b"z" * 16, 64, 0, 0, 24, True, 77).emit()
    s = sc.IPv6(ours)
    fh = s[sc.IPv6ExtHdrFragment]
    assert (fh.offset, fh.m, fh.id) == (3, 1, 77)


def _problem(raw: bytes) -> Ipv6ParamProblem:
    with pytest.raises(Ipv6ParamProblem) as e:
        Ipv6Packet.parse(raw)
    return e.value


def test_extension_header_refusals_carry_the_rfc_8200_answer() -> None:
    base = sc.IPv6(src="2001:2::1", dst="2001:2::2")
    # routing type 0 with segments left: refused (RFC 5095), pointer at the routing type
    e = _problem(bytes(base / sc.IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:2::9"]) / sc.UDP()))
    assert (e.reason, e.code, e.pointer) == ("ipv6.routing_refused", 0, 42)
    # hop-by-hop anywhere but first: code 1 pointing at the Next Header that named it
    e = _problem(bytes(base / sc.IPv6ExtHdrDestOpt() / sc.IPv6ExtHdrHopByHop() / sc.UDP()))
    assert (e.reason, e.code, e.pointer) == ("ipv6.hbh_not_first", 1, 40)
    # unknown option, high bits 10: report even to multicast; 11: not to multicast; 00 skip
    for otype, multicast in ((0x80, True), (0xC0, False)):
        opt = sc.HBHOptUnknown(otype=otype, optdata=b"\0\0\0\0")
        e = _problem(bytes(base / sc.IPv6ExtHdrDestOpt(options=[opt]) / sc.UDP()))
        assert (e.reason, e.code, e.pointer, e.to_multicast) == ("ipv6.unknown_option", 2, 42, multicast)
    skip = sc.HBHOptUnknown(otype=0x1E, optdata=b"\0\0\0\0")
    ok = bytes(base / sc.IPv6ExtHdrDestOpt(options=[skip]) / sc.UDP())
    assert Ipv6Packet.parse(ok).proto == 17
    with pytest.raises(Malformed, match="ipv6.option_discard"):
        Ipv6Packet.parse(bytes(base / sc.IPv6ExtHdrDestOpt(
            options=[sc.HBHOptUnknown(otype=0x5E, optdata=b"\0\0\0\0")]) / sc.UDP()))
    # fragment with M set and a length not a multiple of 8: pointer at the payload length
    e = _problem(bytes(base / sc.IPv6ExtHdrFragment(m=1, nh=17) / (b"x" * 13)))
    assert (e.reason, e.code, e.pointer) == ("ipv6.frag_bad_length", 0, 4)
    # fragment ending past 65535: pointer at the fragment offset
    e = _problem(bytes(base / sc.IPv6ExtHdrFragment(offset=8190, m=0, nh=17) / (b"x" * 64)))
    assert (e.reason, e.code, e.pointer) == ("ipv6.frag_too_big", 0, 42)


@pytest.mark.parametrize("raw, reason", [
    (b"\x60" + b"\0" * 30, "ipv6.truncated"),
    (bytes(sc.IPv6(plen=100) / b"x"), "ipv6.truncated"),
    (b"\x40" + bytes(sc.IPv6())[1:], "ipv6.bad_version"),
    (bytes(sc.IPv6(nh=60)) + b"\x11", "ipv6.bad_ext"),
    (bytes(sc.IPv6(nh=60, plen=8)) + b"\x11\x05" + b"\0" * 6, "ipv6.bad_ext"),  # length past the end
    (bytes(sc.IPv6(nh=60, plen=8)) + b"\x11\x00\x01\x05\0\0\0\0", "ipv6.bad_option"),  # option overruns
    (bytes(sc.IPv6(nh=60, plen=16)) + b"\x11\x01" + b"\0" * 14, "ipv6.bad_option"),  # 14 bytes of Pad1
])
def test_malformed(raw, reason) -> None:
    with pytest.raises(Malformed) as e:
        Ipv6Packet.parse(raw)
    assert e.value.reason == reason


def test_extension_headers_are_bounded() -> None:
    chain = sc.IPv6(src="2001:2::1", dst="2001:2::2")
    for _ in range(9):
        chain = chain / sc.IPv6ExtHdrDestOpt()
    raw = bytes(chain / sc.UDP())
    ok = sc.IPv6(src="2001:2::1", dst="2001:2::2")
    for _ in range(8):
        ok = ok / sc.IPv6ExtHdrDestOpt()
    assert Ipv6Packet.parse(bytes(ok / sc.UDP())).proto == 17
    with pytest.raises(Malformed, match="too_many_ext"):
        Ipv6Packet.parse(raw)
    opts = [sc.HBHOptUnknown(otype=0x1E, optdata=b"") for _ in range(9)]
    with pytest.raises(Malformed, match="too_many_options"):
        Ipv6Packet.parse(bytes(sc.IPv6() / sc.IPv6ExtHdrDestOpt(options=opts) / sc.UDP()))


def test_reassembled_walks_the_rest_of_the_chain() -> None:
    first = Ipv6Packet(A, B, 60, b"", 64, 0, 0, 0, True, 5, 40)
    body = bytes(sc.IPv6ExtHdrDestOpt(nh=17)) + b"u" * 8
    whole = first.reassembled(body)
    assert (whole.proto, bytes(whole.payload), whole.frag_id, whole.nh_at) == (17, b"u" * 8, None, 48)
    plain = first._replace(proto=17).reassembled(b"u" * 8)
    assert plain.nh_at == 40  # the fragment header's Next Header field named UDP
    with pytest.raises(Ipv6ParamProblem) as e:
        first._replace(proto=0).reassembled(bytes(sc.IPv6ExtHdrHopByHop(nh=17)))
    assert (e.value.code, e.value.pointer) == (1, 40)


def test_emit_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match="hop_limit"):
        Ipv6Packet(A, B, 17, b"", 256).emit()
    with pytest.raises(ValueError, match="src"):
        Ipv6Packet(1 << 128, B, 17, b"").emit()
    with pytest.raises(ValueError, match="frag_offset"):
        Ipv6Packet(A, B, 17, b"", frag_offset=3, frag_id=1).emit()
    assert quick_header6(A, B, 17, 0) == Ipv6Packet(A, B, 17, b"").header()


@cross
@given(u128, u128, st.binary(max_size=300))
def test_pseudo_header_checksum_matches_scapy(src, dst, data) -> None:
    body = bytes(sc.UDP(sport=1000, dport=53, len=8 + len(data), chksum=0) / data)
    want = sc.in6_chksum(17, sc.IPv6(src=ip6_str(src), dst=ip6_str(dst)), body)
    assert internet_checksum(body, pseudo_sum6(src, dst, 17, len(body))) == want
    n = len(body)
    pseudo = src.to_bytes(16, "big") + dst.to_bytes(16, "big") + n.to_bytes(4, "big") + b"\0\0\0\x11"
    assert internet_checksum(body, pseudo_sum6(src, dst, 17, n)) == reference_checksum(pseudo + body)


@cross
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=100))
def test_icmpv6_echo_against_scapy(ident, seq, data) -> None:
    raw = Icmpv6Message.echo(True, ident, seq, data).emit(A, B)
    pkt = sc.IPv6(src=ip6_str(A), dst=ip6_str(B)) / sc.ICMPv6EchoRequest(raw)
    rebuilt = sc.IPv6(bytes(sc.IPv6(src=ip6_str(A), dst=ip6_str(B))
                            / sc.ICMPv6EchoRequest(id=ident, seq=seq, data=data)))
    assert bytes(rebuilt.payload) == raw  # scapy computes the same checksum
    assert (pkt[sc.ICMPv6EchoRequest].id, pkt[sc.ICMPv6EchoRequest].seq) == (ident, seq)
    m = Icmpv6Message.parse(raw, A, B)
    assert (m.type, m.ident, m.seq, bytes(m.payload)) == (128, ident, seq, data)
    with pytest.raises(Malformed, match="icmpv6.bad_checksum"):
        Icmpv6Message.parse(raw, A, B + 1)


def test_icmpv6_error_quote() -> None:
    offending = bytes(sc.IPv6(src="2001:2::2", dst="2001:2::9") / sc.IPv6ExtHdrDestOpt()
                      / sc.UDP(sport=5000, dport=53) / (b"q" * 2000))
    err = Icmpv6Message.error(I.PACKET_TOO_BIG, 0, offending, 1400)
    raw = err.emit(A, B)
    assert len(raw) + 40 == 1280  # RFC 4443 2.4(c): never beyond the minimum MTU
    ref = bytes(sc.IPv6(src=ip6_str(A), dst=ip6_str(B)) / sc.ICMPv6PacketTooBig(mtu=1400)
                / sc.Raw(offending[:1232]))[40:]
    assert raw == ref
    quoted, data = Icmpv6Message.parse(raw, A, B).quoted()
    assert (quoted.src, quoted.dst, quoted.proto) == (B, ip6_int("2001:2::9"), 17)
    assert data[:4] == (5000).to_bytes(2, "big") + (53).to_bytes(2, "big")
    with pytest.raises(Malformed, match="bad_quote"):
        Icmpv6Message.error(I.DEST_UNREACH, 4, offending[:44]).quoted()
    with pytest.raises(Malformed, match="not_error"):
        Icmpv6Message.echo(True, 1, 1).quoted()


def test_ndp_messages_against_scapy() -> None:
    mac = bytes.fromhex("020000000002")
    ns = NeighborSolicit(B, NdOptions(slla=mac)).message().emit(A, ip6_int("ff02::1:ff00:2"))
    s = sc.ICMPv6ND_NS(ns)
    assert s.tgt == "2001:2::2" and s[sc.ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:00:02"
    ref = bytes(sc.IPv6(src="2001:2::1", dst="ff02::1:ff00:2") / sc.ICMPv6ND_NS(tgt="2001:2::2")
                / sc.ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:02"))[40:]
    assert ns == ref
    na = NeighborAdvert(B, True, True, True, NdOptions(tlla=mac)).message().emit(B, A)
    ref = bytes(sc.IPv6(src="2001:2::2", dst="2001:2::1") / sc.ICMPv6ND_NA(tgt="2001:2::2", R=1, S=1, O=1)
                / sc.ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02"))[40:]
    assert na == ref
    back = NeighborAdvert.parse(Icmpv6Message.parse(na, B, A))
    assert back == NeighborAdvert(B, True, True, True, NdOptions(tlla=mac))
    ra = bytes(sc.ICMPv6ND_RA(chlim=64, M=0, O=1, routerlifetime=1800, reachabletime=30000, retranstimer=1000)
               / sc.ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01") / sc.ICMPv6NDOptMTU(mtu=1400)
               / sc.ICMPv6NDOptPrefixInfo(prefix="2001:2:0:1::", prefixlen=64, L=1, A=1,
                                          validlifetime=3600, preferredlifetime=1800))
    r = RouterAdvert.parse(Icmpv6Message.parse(ra, 0, 0, verify=False))
    assert (r.hop_limit, r.managed, r.other, r.lifetime_s, r.reachable_ms, r.retrans_ms) == (
        64, False, True, 1800, 30000, 1000)
    assert r.options == NdOptions(slla=bytes.fromhex("020000000001"), mtu=1400, prefixes=(
        PrefixInfo(ip6_int("2001:2:0:1::"), 64, True, True, 3600, 1800),))
    again = r.message()
    assert RouterAdvert.parse(Icmpv6Message.parse(again.emit(A, B), A, B)) == r
    rs = RouterSolicit(NdOptions(slla=mac)).message().emit(A, ip6_int("ff02::2"))
    assert rs == bytes(sc.IPv6(src="2001:2::1", dst="ff02::2") / sc.ICMPv6ND_RS()
                       / sc.ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:02"))[40:]
    with pytest.raises(Malformed, match="ndp.bad_option"):
        NdOptions.parse(b"\x01\x00" + b"\0" * 6)
    with pytest.raises(Malformed, match="ndp.truncated"):
        NeighborSolicit.parse(Icmpv6Message(135, 0, 0, b"\0" * 8))
