"""Two ustack stacks on one Ethernet segment, in virtual time: DAD on both, neighbour resolution
both ways, ping6 and UDP over IPv6, 4000-byte echoes fragmented and reassembled, and two hosts
configured with the same address (exactly one keeps it)."""

from __future__ import annotations

from corehelpers import assert_no_internal_error

from ustack.core import Stack, StackConfig
from ustack.wire.ipv6 import ip6_int

A6, B6 = "2001:2::a", "2001:2::b"


class Segment:
    """A hub: every frame one stack sends reaches the other; time advances in small steps."""

    def __init__(self, *stacks: Stack) -> None:
        self.stacks = stacks
        self.now = 0.0
        self.frames = 0

    def run(self, until: float, step: float = 0.01) -> None:
        while self.now < until:
            moved = True
            while moved:  # deliver until quiet at this instant
                moved = False
                for s in self.stacks:
                    for f in s.poll(self.now):
                        moved = True
                        self.frames += 1
                        for other in self.stacks:
                            if other is not s:
                                other.receive(f, self.now)
            self.now = round(self.now + step, 6)


def pair(a6: str = A6, b6: str = B6) -> tuple[Segment, Stack, Stack]:
    a = Stack(StackConfig(addr="198.18.0.10/24", medium="ethernet", mac="02:00:00:00:00:0a", addr6=a6 + "/64",
                          seed=1))
    b = Stack(StackConfig(addr="198.18.0.11/24", medium="ethernet", mac="02:00:00:00:00:0b", addr6=b6 + "/64",
                          seed=2))
    seg = Segment(a, b)
    a.start(0.0)
    b.start(0.0)
    seg.run(3.0)
    return seg, a, b


def test_dad_then_ping6_and_udp_both_ways() -> None:
    seg, a, b = pair()
    for s, me in ((a, A6), (b, B6)):
        assert s.ipv6.addrs.accepts(ip6_int(me)) and s.counters.get("ipv6.dad_ok") == 2
    a.icmp6.ping(ip6_int(B6), 1, 1, b"a->b", seg.now)
    b.icmp6.ping(ip6_int(A6), 2, 1, b"b->a", seg.now)
    seg.run(seg.now + 0.5)
    assert [r.payload for r in a.icmp6.replies] == [b"a->b"]
    assert [r.payload for r in b.icmp6.replies] == [b"b->a"]
    ua, ub = a.udp.open(family=6), b.udp.open(family=6)
    ub.bind(0, 5000)
    ua.sendto(b"over ipv6", ip6_int(B6), 5000, seg.now)
    seg.run(seg.now + 0.2)
    data, src, port = ub.recvfrom()
    assert (bytes(data), src) == (b"over ipv6", ip6_int(A6))
    ub.sendto(b"back", src, port, seg.now)
    seg.run(seg.now + 0.2)
    assert bytes(ua.recvfrom()[0]) == b"back"
    for s in (a, b):
        assert_no_internal_error(s)


def test_4000_byte_echo_fragmented_and_reassembled_both_ways() -> None:
    seg, a, b = pair()
    big = bytes(i & 0xFF for i in range(4000))
    a.icmp6.ping(ip6_int(B6), 3, 1, big, seg.now)
    seg.run(seg.now + 0.5)
    assert [r.payload for r in a.icmp6.replies] == [big]
    for s in (a, b):
        assert s.counters.get("ipv6.fragmented") == 1 and s.counters.get("ipv6.reasm_ok") == 1


def test_same_address_on_both_hosts_one_keeps_it() -> None:
    # both tentative at once: the first DAD probe makes the other give up (RFC 4862 5.4.3); the
    # first prober then hears nothing and keeps the address
    seg, a, b = pair(A6, A6)
    holders = [s for s in (a, b) if s.ipv6.addrs.accepts(ip6_int(A6))]
    assert len(holders) == 1
    assert sorted(s.counters.get("ipv6.dad_duplicate") for s in (a, b)) == [0, 1]
    # a late joiner with an address already held loses it to the holder's defence
    seg2, c, d = pair(A6, B6)
    e = Stack(StackConfig(addr="198.18.0.12/24", medium="ethernet", mac="02:00:00:00:00:0c",
                          addr6=A6 + "/64", seed=3))
    seg2.stacks = (c, d, e)
    e.start(seg2.now)
    seg2.run(seg2.now + 3.0)
    assert c.ipv6.addrs.accepts(ip6_int(A6)) and not e.ipv6.addrs.accepts(ip6_int(A6))
    assert ip6_int(A6) in e.ipv6.addrs.duplicates
