"""Random and mutated IPv6 packets (extension headers, fragments, ICMPv6 and ND messages) into a
TUN and a TAP stack: never an internal error, every output frame well formed, and the
reassembler's memory bounded. (The frame fuzzer in test_fuzz_frames.py covers IPv4.)"""

from __future__ import annotations

import scapy.all as sc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ustack.core import Stack, StackConfig
from ustack.wire.ipv6 import Ipv6Packet

ME, PEER = "2001:2::2", "2001:2::1"
MAC, PEER_MAC = "02:00:00:00:00:02", "02:00:00:00:00:01"


def seeds() -> list[bytes]:
    base = sc.IPv6(src=PEER, dst=ME)
    ll = sc.IPv6(src="fe80::1", dst="ff02::1", hlim=255)
    return [bytes(p) for p in (
        base / sc.ICMPv6EchoRequest(id=1, seq=1, data=b"x" * 20),
        base / sc.IPv6ExtHdrHopByHop(options=[sc.RouterAlert()]) / sc.IPv6ExtHdrDestOpt() / sc.UDP(dport=7),
        base / sc.IPv6ExtHdrRouting(segleft=0) / sc.ICMPv6EchoRequest(),
        base / sc.IPv6ExtHdrFragment(id=9, offset=0, m=1, nh=58) / (b"f" * 16),
        base / sc.IPv6ExtHdrFragment(id=9, offset=2, m=0, nh=58) / (b"g" * 16),
        sc.IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255) / sc.ICMPv6ND_NS(tgt=ME)
        / sc.ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC),
        ll / sc.ICMPv6ND_RA(routerlifetime=1800) / sc.ICMPv6NDOptPrefixInfo(prefix="2001:2::", prefixlen=64)
        / sc.ICMPv6NDOptMTU(mtu=1400),
        base / sc.ICMPv6PacketTooBig(mtu=1280) / sc.IPv6(src=ME, dst=PEER) / sc.UDP(sport=5, dport=6),
        sc.IPv6(src=PEER, dst=ME, hlim=255) / sc.ICMPv6ND_NA(tgt=PEER, S=1, O=1)
        / sc.ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC),
    )]


SEEDS = seeds()
mutations = st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6)


def mutate(raw: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    b = bytearray(raw)
    for pos, val in edits:
        if b:
            b[pos % len(b)] = val
    return bytes(b[:cut]) if cut else bytes(b)


def check(stack: Stack, ethernet: bool) -> None:
    assert stack.counters.get("stack.internal_error") == 0, list(stack.internal_errors)
    for f in stack.poll(stack.last_now):
        pkt = f[14:] if ethernet else f
        if ethernet and f[12:14] != b"\x86\xdd":
            continue
        Ipv6Packet.parse(pkt)  # everything we send parses (its own chain included)
    assert stack.ipv6.reassembler.mem <= stack.config.reassembly_mem_limit


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SEEDS))), mutations, st.integers(0, 300), st.booleans())
def test_mutated_ipv6_never_breaks_the_stack(which, edits, cut, ethernet):
    cfg = dict(addr6=ME + "/64", seed=1, slaac=ethernet, dad_transmits=0)
    if ethernet:
        cfg.update(medium="ethernet", mac=MAC)
    s = Stack(StackConfig(**cfg))
    s.start(0.0)
    raw = mutate(SEEDS[which], edits, cut)
    for t in (0.0, 0.5):
        s.receive(bytes(sc.Ether(dst=MAC, src=PEER_MAC, type=0x86DD)) + raw if ethernet else raw, t)
        check(s, ethernet)
    assert s.counters.get("ethernet.in" if ethernet else "ipv6.in") + s.counters.get("ipv4.in") == 2
    s.poll(100.0)  # timers (reassembly timeout, NDP, lifetimes) with the state it was left in
    check(s, ethernet)


def test_the_unmutated_seeds_are_understood():
    s = Stack(StackConfig(addr6=ME + "/64", seed=1))
    for raw in SEEDS:
        s.receive(raw, 0.0)
    s.poll(0.0)
    c = s.counters
    assert c.get("icmpv6.echo_replies_out") == 2 and c.get("ipv6.reasm_ok") == 1
    assert c.get("icmpv6.nd_on_tun") == 3 and c.get("icmpv6.pmtu_lowered") == 1
    assert c.get("stack.internal_error") == 0
