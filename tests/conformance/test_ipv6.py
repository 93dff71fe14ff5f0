"""IPv6 and ICMPv6 conformance (RFC 8200, 4443, 5722, 6946, 8201), crafted with scapy and run
against ustack and the Linux kernel alike: echo, extension headers and the parameter problems
they ask for, reassembly (out of order, overlaps, atomic fragments), errors never sent about
multicast, Packet Too Big.

As in test_ipv4.py, every "silence" case first shows that the well-formed packet is answered.
"""

import pytest
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    defragment6,
    fragment6,
)
from scapy.packet import Raw

from tests.conformance.bench6 import BENCH6, DUT6

pytestmark = pytest.mark.netns

DATA = bytes(range(56))
MTU_OF_LINK = 1500


def v6(dst=DUT6, **kw):
    return IPv6(src=BENCH6, dst=dst, **kw)


def echo(ident=0x66, seq=1, data=DATA):
    return ICMPv6EchoRequest(id=ident, seq=seq, data=data)


def is_reply(ident, seq):
    return lambda p: ICMPv6EchoReply in p and p[ICMPv6EchoReply].id == ident and p[ICMPv6EchoReply].seq == seq


def is_param_problem(p):
    return ICMPv6ParamProblem in p


def answered(bench6, ident, seq, within=2.0):
    rep = bench6.expect(is_reply(ident, seq), within)
    assert rep is not None, f"no echo reply:\n{bench6.describe_seen()}"
    return rep


def test_echo_reply_same_payload_valid_checksum(bench6):
    bench6.send(v6() / echo(0x101, 1))
    rep = answered(bench6, 0x101, 1)
    assert rep[ICMPv6EchoReply].data == DATA and rep.src == DUT6
    raw = bytes(rep)
    again = IPv6(raw)
    del again[ICMPv6EchoReply].cksum
    assert bytes(IPv6(bytes(again))) == raw  # scapy recomputes the checksum the DUT wrote


def test_unknown_next_header_gets_parameter_problem_code_1(bench6):
    probe = v6(nh=253) / Raw(b"x" * 16)
    bench6.send(probe)
    err = bench6.expect(is_param_problem, 2.0)
    assert err is not None, bench6.describe_seen()
    assert (err[ICMPv6ParamProblem].code, err[ICMPv6ParamProblem].ptr) == (1, 6)
    assert bytes(err[ICMPv6ParamProblem].payload)[:56] == bytes(probe)[:56]


def test_routing_header_type_0_refused_pointer_at_type(bench6):
    bench6.send(v6() / IPv6ExtHdrRouting(type=0, segleft=0) / echo(0x102, 1))
    answered(bench6, 0x102, 1)  # segments left 0: the header is skipped
    bench6.send(v6() / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:2::7"]) / echo(0x102, 2))
    err = bench6.expect(is_param_problem, 2.0)
    assert err is not None, bench6.describe_seen()
    assert (err[ICMPv6ParamProblem].code, err[ICMPv6ParamProblem].ptr) == (0, 42)
    assert bench6.expect(is_reply(0x102, 2), 0.3) is None


def test_hop_by_hop_not_first_is_a_parameter_problem(bench6):
    bench6.send(v6() / IPv6ExtHdrHopByHop() / echo(0x103, 1))
    answered(bench6, 0x103, 1)
    bench6.send(v6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / echo(0x103, 2))
    err = bench6.expect(is_param_problem, 2.0)
    assert err is not None, bench6.describe_seen()
    assert (err[ICMPv6ParamProblem].code, err[ICMPv6ParamProblem].ptr) == (1, 40)


@pytest.mark.parametrize("otype, outcome", [(0x1E, "answered"), (0x5E, "silent"), (0x9E, "problem"),
                                            (0xDE, "problem")])
def test_destination_option_type_high_bits(bench6, otype, outcome):
    opt = HBHOptUnknown(otype=otype, optdata=b"\0\0\0\0")
    bench6.send(v6() / IPv6ExtHdrDestOpt(options=[opt]) / echo(0x104, otype))
    got = bench6.expect(lambda p: is_reply(0x104, otype)(p) or is_param_problem(p), 1.5)
    if outcome == "answered":
        assert got is not None and ICMPv6EchoReply in got
    elif outcome == "silent":
        assert got is None
    else:
        assert got is not None and ICMPv6ParamProblem in got, bench6.describe_seen()
        assert (got[ICMPv6ParamProblem].code, got[ICMPv6ParamProblem].ptr) == (2, 42)


def test_option_type_10_is_reported_even_for_multicast_but_11_is_not(bench6):
    for otype, reported in ((0xDE, False), (0x9E, True)):
        opt = HBHOptUnknown(otype=otype, optdata=b"\0\0\0\0")
        bench6.send(v6(dst="ff02::1") / IPv6ExtHdrDestOpt(options=[opt]) / echo(0x105, otype))
        err = bench6.expect(is_param_problem, 1.0)
        assert (err is not None) == reported, (otype, bench6.describe_seen())


def test_no_error_about_a_multicast_packet(bench6):
    bench6.send(v6(dst="ff02::1") / echo(0x106, 1))
    rep = answered(bench6, 0x106, 1)  # multicast echo is answered (RFC 4443 4.1), from unicast
    assert rep.src == DUT6
    bench6.send(v6(dst="ff02::1", nh=253) / Raw(b"y" * 8))
    assert bench6.expect(is_param_problem, 1.0) is None


def test_fragmented_echo_reassembled_out_of_order_and_answered_in_fragments(bench6):
    big = bytes(i & 0xFF for i in range(4000))
    frags = fragment6(v6() / IPv6ExtHdrFragment(id=0x4321) / echo(0x107, 1, big), 1280)
    assert len(frags) == 4
    for f in reversed(frags):
        bench6.send(f)
    got = bench6.expect_all(lambda p: IPv6ExtHdrFragment in p, 1.5)
    assert got, bench6.describe_seen()
    whole = defragment6(got)
    assert whole[ICMPv6EchoReply].data == big
    assert all(len(bytes(p)) <= MTU_OF_LINK for p in got)


def test_overlapping_fragments_drop_the_datagram(bench6):
    payload = bytes(echo(0x108, 1, b"o" * 64))
    hdr = v6()
    f1 = hdr / IPv6ExtHdrFragment(id=99, offset=0, m=1, nh=58) / Raw(payload[:48])
    f2 = hdr / IPv6ExtHdrFragment(id=99, offset=4, m=0, nh=58) / Raw(payload[32:])  # overlaps f1
    bench6.send(f1)
    bench6.send(f2)
    assert bench6.expect(is_reply(0x108, 1), 1.5) is None  # RFC 5722: the whole datagram goes


def test_atomic_fragment_is_processed_alone(bench6):
    bench6.send(v6() / IPv6ExtHdrFragment(id=5, offset=0, m=0) / echo(0x109, 1))
    answered(bench6, 0x109, 1)


def test_packet_too_big_lowers_the_path_mtu(bench6):
    big = bytes(1400)
    bench6.send(v6() / echo(0x10A, 1, big))
    rep = answered(bench6, 0x10A, 1)
    assert IPv6ExtHdrFragment not in rep and len(bytes(rep)) == 40 + 8 + 1400
    bench6.send(IPv6(src="2001:2::fe", dst=DUT6) / ICMPv6PacketTooBig(mtu=1280) / bytes(rep)[:1232])
    bench6.send(v6() / echo(0x10A, 2, big))
    got = bench6.expect_all(lambda p: p.nh == 44 or ICMPv6EchoReply in p, 1.5)
    assert got and all(len(bytes(p)) <= 1280 for p in got), bench6.describe_seen()
    assert defragment6(got)[ICMPv6EchoReply].data == big


def test_first_fragment_without_the_whole_header_chain_rfc7112(bench6):
    # a destination options header claiming 24 bytes, only 8 of them in the first fragment
    first = v6() / IPv6ExtHdrFragment(id=77, offset=0, m=1, nh=60) / Raw(bytes([58, 2]) + bytes(6))
    bench6.send(first)
    err = bench6.expect(is_param_problem, 1.5)
    assert err is not None, bench6.describe_seen()
    assert (err[ICMPv6ParamProblem].code, err[ICMPv6ParamProblem].ptr) == (3, 0)
