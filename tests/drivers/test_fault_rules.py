"""Targeted faults in virtual time: each action on exactly the frames its filter selects, seen
from both ends of a TCP transfer in the Simulator, and the filter language's parsing."""

from __future__ import annotations

import dpkt
import pytest

from tests.drivers.faultsim import transfer
from tests.invariants import assert_no_internal_error
from ustack.drivers import FilterError, parse_rule
from ustack.drivers.filters import PROTO_TCP, IsnTable, corrupt_field, decode


def data_segments(frames: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    return [(t, f) for t, f in frames if decode(f, "ip").proto == PROTO_TCP and decode(f, "ip").length]


def rel_seq(frames: list[tuple[float, bytes]], f: bytes) -> int:
    isns = IsnTable()
    for _, g in frames:
        isns.learn(decode(g, "ip"))
    return isns.rel_seq(decode(f, "ip"))  # type: ignore[return-value]


def test_drop_the_50th_outgoing_data_segment_and_nothing_else(tmp_path):
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["drop tcp data dir=out nth=50"]'))
    assert run.sha_ok
    assert run.kinds() == ["drop"]
    sent = run.frames("a", "out")
    arrived = run.frames("b", "in")
    fiftieth = data_segments(sent)[49][1]
    assert run.events[0].frame == fiftieth
    # Every other frame the stack sent reached the peer, in order: only that one is missing.
    assert [f for _, f in arrived] == [f for _, f in sent if f != fiftieth]
    assert run.a.faults.stats["rule_dropped"] == 1
    assert run.a.faults.engine.rule_counts[0][2] == 1
    assert run.a.stack.counters.get("tcp.retransmitted_segments") >= 1
    assert_no_internal_error(run.a.stack, run.b.stack)


def _scenario(tmp_path, text: str, name: str = "s.toml") -> str:
    p = tmp_path / name
    p.write_text(text + "\n")
    return str(p)


def test_seq_range_is_relative_to_the_isn_and_holds_for_retransmissions(tmp_path):
    """seq=14481 selects the 11th 1448-byte segment (Wireshark's numbers: first byte is 1);
    it also catches its retransmissions: nth=1-2 drops the first two copies, the third passes.
    The second rule counts the same frames (nth counts arrivals, whatever other rules did)."""
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["drop tcp data dir=out seq=14481 nth=1-2", '
                                                 '"drop tcp data dir=out seq=14481 nth=2"]'))
    assert run.sha_ok and run.kinds() == ["drop", "drop"]
    sent = run.frames("a", "out")
    for ev in run.events:
        assert rel_seq(sent, ev.frame) == 14481
    copies = [f for _, f in data_segments(sent) if rel_seq(sent, f) == 14481]
    assert len(copies) == 3 and run.events[0].frame == copies[0] and run.events[1].frame == copies[1]
    arrived = [f for _, f in run.frames("b", "in")]
    assert copies[2] in arrived and copies[0] not in arrived
    assert run.a.faults.engine.rule_counts == [("drop tcp data dir=out seq=14481 nth=1-2", 3, 2),
                                               ("drop tcp data dir=out seq=14481 nth=2", 3, 0)]


def test_ack_range_on_incoming_acks(tmp_path):
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["drop tcp dir=in ack>=100001 nodata nth=1"]'))
    assert run.sha_ok and run.kinds() == ["drop"]
    recv = run.frames("b", "out")
    isns = IsnTable()
    for _, g in run.frames("a", "out") + recv:
        isns.learn(decode(g, "ip"))
    acks = [isns.rel_ack(decode(f, "ip")) for _, f in recv if decode(f, "ip").flags & 0x10]
    first = next(a for a in acks if a >= 100001)
    assert isns.rel_ack(decode(run.events[0].frame, "ip")) == first


def test_duplicate_the_fin(tmp_path):
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["duplicate 2 tcp fin dir=out"]'))
    assert run.sha_ok and run.kinds() == ["duplicate"]
    fins = [f for _, f in run.frames("b", "in") if decode(f, "ip").flags & 0x01]
    assert len(fins) == 3 and len(set(fins)) == 1


def test_delay_the_syn(tmp_path):
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["delay 300ms tcp syn dir=out"]'))
    assert run.sha_ok and run.kinds() == ["delay"]
    (t_sent, syn), = [(t, f) for t, f in run.frames("a", "out") if decode(f, "ip").flags & 0x02]
    (t_got, syn2), = [(t, f) for t, f in run.frames("b", "in") if decode(f, "ip").flags & 0x02]
    assert syn == syn2 and t_got - t_sent == pytest.approx(0.3 + 0.005, abs=1e-6)


def test_corrupt_a_checksum_is_caught_by_the_receiver(tmp_path):
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["corrupt tcp.checksum tcp data dir=out nth=5"]'))
    assert run.sha_ok and run.kinds() == ["corrupt"]
    assert run.b.stack.counters.get("tcp.bad_checksum") == 1


def test_corrupt_a_header_field_keeps_the_checksums_valid(tmp_path):
    """corrupt tcp.window=0: the peer accepts the segment and believes the zero window
    (dpkt, an independent decoder, agrees the checksums are right)."""
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["corrupt tcp.window=0 tcp dir=in nodata nth=20"]'))
    assert run.sha_ok
    ev = run.events[0]
    assert ev.kind == "corrupt"
    seen = [f for _, f in run.frames("a", "in") if decode(f, "ip").proto == PROTO_TCP]
    zero = [f for f in seen if dpkt.ip.IP(f).data.win == 0]
    assert len(zero) == 1
    ip = dpkt.ip.IP(zero[0])
    sums = (ip.sum, ip.data.sum)
    ip.sum = 0
    ip.data.sum = 0
    again = dpkt.ip.IP(bytes(ip))
    assert (again.sum, again.data.sum) == sums
    assert run.a.stack.counters.get("tcp.bad_checksum") == 0


@pytest.mark.parametrize("name", ["ip.ttl", "ip.id", "tcp.urg", "tcp.ack", "icmp.code", "udp.checksum"])
def test_corrupt_field_sets_exactly_that_field(name):
    import random

    seg = dpkt.tcp.TCP(sport=1000, dport=80, seq=5, ack=7, flags=0x18, data=b"hello")
    ip = dpkt.ip.IP(src=bytes([198, 18, 0, 2]), dst=bytes([198, 18, 0, 1]), p=6, data=seg, ttl=64, id=9)
    ip.len = len(bytes(ip))
    frame = bytes(ip)
    out = corrupt_field(frame, decode(frame, "ip"), name, None, random.Random(1).getrandbits)
    if name.startswith(("icmp", "udp")):
        assert out == frame  # not that protocol: untouched
        return
    a, b = dpkt.ip.IP(frame), dpkt.ip.IP(out)
    where, attr = {"ip.ttl": (None, "ttl"), "ip.id": (None, "id"), "tcp.urg": ("t", "urp"),
                   "tcp.ack": ("t", "ack")}[name]
    get = (lambda p: getattr(p, attr)) if where is None else (lambda p: getattr(p.data, attr))
    assert get(a) != get(b)
    for other in ("ttl", "id", "src", "dst", "p"):
        if other != attr:
            assert getattr(a, other) == getattr(b, other)
    b.sum = 0
    b.data.sum = 0
    c = dpkt.ip.IP(bytes(b))
    assert (c.sum, c.data.sum) == (dpkt.ip.IP(out).sum, dpkt.ip.IP(out).data.sum)


def test_truncate_udp(tmp_path):
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["truncate 30 udp dir=out dport=9"]'),
                   udp=b"x" * 100)
    assert run.kinds() == ["truncate"]
    (_, got), = run.frames("b", "in")
    assert len(got) == 30
    assert run.b.stack.counters.get("ipv4.truncated") == 1


def test_reorder_behind_the_next_three(tmp_path):
    run = transfer(tmp_path, _scenario(tmp_path, 'rules = ["reorder 3 tcp data dir=out nth=10"]'))
    assert run.sha_ok and run.kinds() == ["reorder"]
    sent = [f for _, f in data_segments(run.frames("a", "out"))]
    arrived = [f for _, f in data_segments(run.frames("b", "in"))]
    held = sent[9]
    assert arrived.index(held) == 12 and arrived[9:12] == sent[10:13]


@pytest.mark.parametrize(("text", "message"), [
    ("drop udp syn", "TCP flags on a protocol that is not TCP"),
    ("drop tcp udp", "exclude each other"),
    ("drop syn !syn", "required and excluded"),
    ("drop tcp seq=500-100", "range 500-100 is empty"),
    ("drop tcp len>65535", "outside 0..65535"),
    ("drop data nodata", "range 1-0 is empty"),
    ("drop icmp port=80", "TCP and UDP only"),
    ("drop udp seq=1", "TCP only"),
    ("drop dir=in dir=out", "dir=in and dir=out"),
    ("drop tcp nth=0", "counts from 1"),
    ("explode tcp", "unknown action"),
    ("drop tcp colour=red", "unknown term"),
    ("delay tcp", "needs a duration"),
    ("corrupt tcp.color", "unknown field"),
    ("corrupt tcp.window=70000", "does not fit in 16 bits"),
    ("corrupt udp.checksum tcp", "not udp"),
    ("truncate -3 tcp", "N must be >= 0"),
    ("reorder 0 tcp", "K must be >= 1"),
    ("drop tcp flags=SX", "unknown flag letter"),
    ("drop src=198.18.0.300", "not an IPv4 address"),
    ("delay 100ms tcp hold=2s", "hold= goes with reorder"),
])
def test_rules_that_cannot_work_are_rejected(text, message):
    with pytest.raises(FilterError, match=message):
        parse_rule(text)


def test_dir_in_never_matches_on_a_link():
    parse_rule("drop tcp dir=in")
    with pytest.raises(FilterError, match="never matches on a link"):
        parse_rule("drop tcp dir=in", link=True)


def test_rule_parts():
    r = parse_rule("reorder 3 tcp data dir=out sport=1000-2000 len<=1000 flags=PA hold=20ms nth=4")
    f = r.filter
    assert (r.action, r.count, r.delay_s, f.direction, f.nth) == ("reorder", 3, 0.02, "out", (4, 4))
    assert f.protos == frozenset({PROTO_TCP}) and f.flags_set == 0x18 and f.flags_clear == 0xE7
    assert dict((k, (lo, hi)) for k, lo, hi in f.ranges) == {"len": (1, 1000), "sport": (1000, 2000)}
