"""Frame fuzzing smoke (CI, a few seconds): mutated real frames into `Stack.receive` on a TUN
and a TAP stack in a busy state; after each frame no internal error, the frame accounted for
(delivered, held, consumed or dropped with one reason), memory and queues within their bounds;
at the end no connection left and the memory budget back to 0. tools/fuzz_frames.py runs the
same harness for as long as asked (results in docs/robustness.md, "Fuzzing")."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.frames import KINDS, MEM, Mutation, Step, Target, build_target, check_final, run_input

mutations = st.builds(Mutation, st.sampled_from(KINDS), st.integers(0, 1 << 16),
                      st.integers(0, (1 << 32) - 1))
steps = st.builds(Step, st.integers(0, 63), st.lists(mutations, max_size=4).map(tuple), st.booleans(),
                  st.sampled_from((0.0, 0.001, 0.05, 0.5, 3.0)),
                  st.one_of(st.just(1), st.integers(2, 300)), st.sampled_from((0, 1, 2, 1448, 65536)),
                  st.booleans())
inputs = st.lists(steps, min_size=1, max_size=6)
SMOKE = settings(max_examples=120, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("medium", ["ip", "ethernet"])
def test_the_corpus_replays_cleanly(medium):
    """The seed frames themselves: each accounted for, and the target shuts down clean."""
    t = build_target(medium)
    assert len(t.corpus) >= 12 and len(t.stack.tcp.conns) == 1
    assert t.stack.memory.used > 0  # queued data and out-of-order segments are charged
    stats = run_input(t, [Step(i, (), False, 0.0, batch=i % 2 == 1) for i in range(len(t.corpus))])
    assert stats.frames == len(t.corpus)
    assert t.sent > 0  # the duplicates were answered (ACKs, echo replies), and the answers checked
    check_final(t)


def test_malformed_output_is_caught():
    """The output check is real: a stack whose answers carry a wrong checksum is caught."""
    from tests.fuzz.frames import check_output

    t = build_target("ip")
    t.stack.icmp.ping(t.peer.addr, 1, 1, b"x", t.now)
    out = [bytearray(f) for f in t.stack.poll(t.now)]
    assert out
    check_output(t, [bytes(f) for f in out])
    out[0][-1] ^= 0xFF  # the last payload byte: the ICMP checksum no longer matches
    with pytest.raises(AssertionError, match="checksum"):
        check_output(t, [bytes(f) for f in out])


@SMOKE
@given(inputs)
def test_fuzz_tun(items):
    t = build_target("ip")
    run_input(t, items)
    check_final(t)


@SMOKE
@given(inputs)
def test_fuzz_tap(items):
    t = build_target("ethernet")
    run_input(t, items)
    check_final(t)


# -- the invariants can fail: a stack with a planted bug is caught ---------------------------------
def _corpus_index(t: Target, proto: int) -> int:
    off = t.link_header
    return next(i for i, f in enumerate(t.corpus) if len(f) > off + 9 and f[off + 9] == proto
                and not (f[off + 6] & 0x3F or f[off + 7]))


def test_a_silently_dropped_datagram_is_caught(monkeypatch):
    from ustack.core.udp import UdpLayer

    t = build_target("ip")
    monkeypatch.setattr(UdpLayer, "on_packet", lambda self, ip, now, rx=0: None)
    with pytest.raises(AssertionError, match="did not count it"):
        run_input(t, [Step(_corpus_index(t, 17), (), False, 0.0)])


def test_a_drop_without_a_reason_is_caught(monkeypatch):
    from ustack.core import udp

    t = build_target("ip")
    monkeypatch.setattr(udp.UdpSocket, "_deliver", lambda self, payload, src, sport, now: None)
    with pytest.raises(AssertionError, match="neither delivered nor dropped"):
        run_input(t, [Step(_corpus_index(t, 17), (), False, 0.0)])


def test_leaked_memory_accounting_is_caught(monkeypatch):
    from ustack.core.memory import MemoryBudget

    t = build_target("ip")
    run_input(t, [Step(_corpus_index(t, 17), (), False, 0.0)])
    monkeypatch.setattr(MemoryBudget, "uncharge", lambda self, kind, n: None)
    with pytest.raises(AssertionError):
        check_final(t)


def test_a_budget_overrun_is_caught():
    t = build_target("ip")
    t.stack.memory.charge("udp_rcv", MEM["mem_high"])  # as a queue that ignored `allows` would
    with pytest.raises(AssertionError):
        run_input(t, [Step(0, (), False, 0.0)])


# -- regressions the fuzzer found -------------------------------------------------------------------
def test_fragment_refused_by_the_budget_evicts_nothing_and_leaves_no_entry():
    """Found by the fuzzer: with the stack's memory budget at its high mark and the reassembly
    table full, a fragment of a new datagram first evicted the oldest datagram (counted
    `ipv4.reasm_evicted`), then was refused by the budget (`ipv4.reasm_mem_budget`), leaving an
    empty entry in the table until its timeout. The budget is now asked first."""
    from ustack.core import StackConfig, make_stack
    from ustack.wire import Ipv4Packet
    from ustack.wire.ipv4 import ip_int

    stack = make_stack(StackConfig(addr="198.18.0.2/24", reassembly_max_datagrams=4, **MEM))
    src, dst = ip_int("198.18.0.1"), ip_int("198.18.0.2")

    def frag(ident: int) -> bytes:
        return Ipv4Packet(src, dst, 17, b"f" * 800, ident=ident, mf=True).emit()
    for ident in range(4):
        stack.receive(frag(ident), 0.0)
    assert len(stack.reassembler.table) == 4
    stack.memory.charge("udp_rcv", MEM["mem_high"] - stack.memory.used)  # the budget is full
    before = stack.counters.snapshot()
    stack.receive(frag(99), 0.0)
    c = stack.counters
    assert c.get("ipv4.reasm_mem_budget") == before.get("ipv4.reasm_mem_budget", 0) + 1
    assert c.get("ipv4.reasm_evicted") == before.get("ipv4.reasm_evicted", 0)  # nothing destroyed for it
    assert len(stack.reassembler.table) == 4 and all(d.pieces for d in stack.reassembler.table.values())
