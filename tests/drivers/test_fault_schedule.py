"""Scheduled faults in virtual time: at a time (or after N bytes) the link goes down, gets a
smaller MTU (with or without ICMP), a lower rate, loss, or a one-way blackhole; then it is
restored. Each kind is checked against what the two ends of a TCP transfer saw."""

from __future__ import annotations

import pytest

from tests.drivers.faultsim import transfer
from tests.invariants import assert_no_internal_error
from ustack.drivers.filters import PROTO_TCP, IsnTable, decode


def scenario(tmp_path, text: str) -> str:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


def between(frames, t0, t1):
    return [(t, f) for t, f in frames if t0 <= t < t1]


def test_link_down_then_up(tmp_path):
    run = transfer(tmp_path, scenario(tmp_path, '[[at]]\ntime = "50ms"\nfor = "400ms"\ndown = true\n'),
                   nbytes=1_000_000)
    assert run.sha_ok
    assert run.kinds()[0] == "change" and "restore" in run.kinds()
    change = run.events[0]
    restore = next(e for e in run.events if e.kind == "restore")
    assert (change.t, restore.t) == (pytest.approx(0.05), pytest.approx(0.45))
    downs = [e for e in run.events if e.kind == "down-drop"]
    assert downs and all(0.05 <= e.t < 0.45 for e in downs)
    assert run.a.faults.stats["down_dropped"] == len(downs)
    # Nothing crossed while the link was down, in either direction (frames leaving b before
    # the flap may still land; the link's latency is 5 ms).
    assert not between(run.frames("b", "in"), 0.0551, 0.45)
    assert not between(run.frames("a", "in"), 0.0551, 0.45)
    assert run.a.stack.counters.get("tcp.rto") >= 1
    assert_no_internal_error(run.a.stack, run.b.stack)


def test_mtu_with_icmp_lowers_the_path_mtu(tmp_path):
    run = transfer(tmp_path, scenario(tmp_path, '[[at]]\ntime = "30ms"\nmtu = 1000\nicmp = true\n'),
                   nbytes=1_000_000)
    assert run.sha_ok
    assert "icmp-frag-needed" in run.kinds()
    assert run.a.faults.stats["icmp_sent"] >= 1
    assert run.a.stack.counters.get("tcp.pmtu_lowered") >= 1
    t_icmp = next(e.t for e in run.events if e.kind == "icmp-frag-needed")
    late = [f for _, f in between(run.frames("b", "in"), t_icmp + 0.011, 1e9)]
    assert len(late) > 100 and max(len(f) for f in late) <= 1000
    assert run.a.faults.stats["mtu_dropped"] < 100  # the sender adapted at once


def test_mtu_without_icmp_is_a_black_hole_until_restored(tmp_path):
    run = transfer(tmp_path, scenario(tmp_path, '[[at]]\ntime = "30ms"\nfor = "1s"\nmtu = 1000\n'),
                   nbytes=500_000)
    assert run.sha_ok
    assert "icmp-frag-needed" not in run.kinds()
    assert run.a.faults.stats["mtu_dropped"] >= 1
    assert run.a.stack.counters.get("tcp.pmtu_lowered") == 0
    big = [f for _, f in between(run.frames("b", "in"), 0.04, 1.03) if len(f) > 1000]
    assert not big
    assert run.done_at > 1.03  # the transfer needed the MTU back


def test_rate_change(tmp_path):
    run = transfer(tmp_path, scenario(tmp_path, '[[at]]\ntime = 0\nfor = "1s"\nrate = "2mbit"\n'),
                   nbytes=1_000_000)
    assert run.sha_ok
    window = between(run.frames("b", "in"), 0.3, 0.9)
    rate = sum(len(f) for _, f in window) * 8 / 0.6
    assert rate == pytest.approx(2e6, rel=0.05)
    # 1 MB at 2 Mbit/s would take 4 s: restored at 1 s, the rest went at memory speed.
    assert 1.0 < run.done_at < 1.5


def test_loss_change(tmp_path):
    run = transfer(tmp_path, scenario(tmp_path, '[[at]]\ntime = "50ms"\nfor = "30ms"\nloss = "100%"\n'),
                   nbytes=1_000_000)
    assert run.sha_ok
    losses = [e for e in run.events if e.kind == "loss"]
    assert losses and all(0.05 <= e.t < 0.08 for e in losses)
    assert run.a.faults.stats["dropped"] == len(losses)
    assert run.a.faults.config.loss == 0.0  # restored


def test_blackhole_one_direction(tmp_path):
    run = transfer(tmp_path, scenario(tmp_path, '[[at]]\ntime = "50ms"\nfor = "300ms"\nblackhole = "in"\n'),
                   nbytes=1_000_000)
    assert run.sha_ok
    holes = [e for e in run.events if e.kind == "blackhole"]
    assert holes and all(e.lane == "rx" and 0.05 <= e.t < 0.35 for e in holes)
    # Data still went out while the ACKs were swallowed.
    assert between(run.frames("b", "in"), 0.06, 0.35)
    assert not between(run.frames("a", "in"), 0.0501, 0.35)


def test_after_n_bytes_on_a_connection(tmp_path):
    run = transfer(tmp_path, scenario(tmp_path, '[[at]]\nbytes = 100000\non = "tcp dir=out"\nfor = "200ms"\n'
                                                'down = true\n'), nbytes=500_000)
    assert run.sha_ok
    change = run.events[0]
    assert change.kind == "change"
    sent = run.frames("a", "out")
    isns = IsnTable()
    for _, f in sent:
        isns.learn(decode(f, "ip"))
    ends = [(t, isns.rel_seq(decode(f, "ip")) - 1 + decode(f, "ip").length) for t, f in sent
            if decode(f, "ip").proto == PROTO_TCP and decode(f, "ip").length]
    first_past = min(t for t, end in ends if end >= 100_000)
    assert change.t == pytest.approx(first_past, abs=1e-6)
    assert all(t >= first_past for t, end in ends if end >= 100_000)


def test_changes_fire_in_virtual_time_without_traffic(tmp_path):
    """A scheduled change is an event of its own (poll_at): it fires on time on an idle link."""
    from ustack import Simulator

    sim = Simulator()
    h = sim.add_host("198.18.0.2/24", faults=scenario(tmp_path, '[[at]]\ntime = 3\nfor = 2\ndown = true\n'))
    seen = []
    h.faults.add_listener(seen.append)
    sim.run_for(10)
    assert [(e.kind, e.t) for e in seen] == [("change", 3.0), ("restore", 5.0)]


def test_a_loss_change_over_a_loss_model_and_back(tmp_path):
    """`loss = P` in a change replaces the [loss] model while it lasts; the model comes back."""
    run = transfer(tmp_path, scenario(tmp_path, '[loss]\nmodel = "simple-gilbert"\np = "0.1%"\nr = "50%"\n'
                                                '[[at]]\ntime = "50ms"\nfor = "30ms"\nloss = "100%"\n'),
                   nbytes=1_000_000)
    assert run.sha_ok
    inside = [e for e in run.events if e.kind == "loss" and 0.05 <= e.t < 0.08]
    assert inside and all(e.cause == "loss 1" for e in inside)
    cfg = run.a.faults.config
    assert cfg.loss == 0.0 and cfg.loss_model is not None and cfg.loss_model.model == "simple-gilbert"
    assert_no_internal_error(run.a.stack, run.b.stack)
    assert run.sim.errors == 0


def test_rules_and_mtu_icmp_on_ethernet(tmp_path):
    """On a TAP-like medium the filters find the IP header after the Ethernet one, and the ICMP
    frag-needed goes back in an Ethernet frame with the addresses swapped."""
    run = transfer(tmp_path, scenario(tmp_path, 'rules = ["drop tcp data dir=out nth=20"]\n'
                                                '[[at]]\ntime = "30ms"\nmtu = 1000\nicmp = true\n'),
                   nbytes=500_000, medium="ethernet")
    assert run.sha_ok
    kinds = run.kinds()
    assert kinds.count("drop") == 1 and "icmp-frag-needed" in kinds
    icmp = next(e for e in run.events if e.kind == "icmp-frag-needed")
    assert icmp.frame[12:14] == b"\x08\x00" and icmp.frame[14 + 9] == 1
    assert run.a.stack.counters.get("tcp.pmtu_lowered") >= 1
    assert_no_internal_error(run.a.stack, run.b.stack)


@pytest.mark.internal_error_expected
def test_a_raising_listener_is_contained_and_counted(tmp_path, _no_swallowed_exceptions):
    """A listener that raises never stops traffic; the engine counts it and the suite-wide guard
    (tests/conftest.py) sees it, so a real listener bug fails the test that caused it."""
    from ustack import Simulator

    sim = Simulator()
    h = sim.add_host("198.18.0.2/24", faults=scenario(tmp_path, '[[at]]\ntime = 3\nfor = 2\ndown = true\n'))
    seen = []

    def broken(event):
        raise RuntimeError("listener bug")
    h.faults.add_listener(broken)
    h.faults.add_listener(seen.append)
    sim.run_for(10)
    assert [e.kind for e in seen] == ["change", "restore"]  # later listeners still ran
    engine = h.faults.engine
    assert engine.listener_errors == 2
    assert len(_no_swallowed_exceptions) == 2 and "listener bug" in _no_swallowed_exceptions[0]


@pytest.mark.internal_error_expected
def test_a_decoder_bug_matches_nothing_and_is_counted(monkeypatch, _no_swallowed_exceptions):
    """decode() turns a decoder bug (anything but Malformed) into UNDECODED, counted and seen by
    the suite-wide guard; Malformed input is an ordinary UNDECODED, not counted."""
    from ustack.drivers import filters

    before = filters.decoder_errors
    assert filters.decode(b"\x45\x00", "ip") is filters.UNDECODED  # truncated: Malformed
    assert filters.decoder_errors == before and not _no_swallowed_exceptions

    class Broken:
        @staticmethod
        def parse(*args, **kwargs):
            raise IndexError("decoder bug")
    import ustack.wire

    monkeypatch.setattr(ustack.wire, "Ipv4Packet", Broken)
    assert filters.decode(bytes(20), "ip") is filters.UNDECODED
    assert filters.decoder_errors == before + 1
    assert len(_no_swallowed_exceptions) == 1 and "decoder bug" in _no_swallowed_exceptions[0]


def test_a_broken_trace_sink_loses_lines_counted_and_never_stops_traffic():
    from ustack.drivers.memlink import MemLink
    from ustack.drivers.trace import Tracer

    def sink(line):
        raise OSError("sink closed")
    a, b = MemLink.pair()
    dev = Tracer(a, sink)
    dev.send(b"\x45" + bytes(19), 0.0)
    assert dev.lines_lost == 1 and b.recv(1.0) == b"\x45" + bytes(19)
