"""The stack's memory budget (core/memory.py), true-size accounting of UDP receive queues and of
IPv4 reassembly: every bound holds and every refusal is counted (docs/robustness.md)."""

import random

import pytest
from corehelpers import ME, PEER, assert_no_internal_error, make, udp_frame

from ustack.core.frag import FRAG_OVERHEAD
from ustack.core.memory import BYTES_OVERHEAD, VIEW_OVERHEAD, MemoryBudget, truesize
from ustack.core.udp import DATAGRAM_OVERHEAD
from ustack.wire import Ipv4Packet, UdpDatagram


def test_truesize_counts_the_frame_a_view_keeps_alive():
    frame = bytes(1500)
    assert truesize(memoryview(frame)[40:41]) == VIEW_OVERHEAD + BYTES_OVERHEAD + 1500
    assert truesize(b"x") == BYTES_OVERHEAD + 1
    assert truesize(bytearray(10)) > 10


def test_budget_thresholds_and_hysteresis():
    b = MemoryBudget(100, 200, 300)
    b.charge("udp_rcv", 150)
    assert not b.pressure
    b.charge("udp_rcv", 60)
    assert b.pressure and b.counters.get("memory.pressure_entered") == 1
    b.uncharge("udp_rcv", 60)  # 150: between low and pressure, still under pressure
    assert b.pressure
    b.uncharge("udp_rcv", 51)  # 99 < low: pressure ends
    assert not b.pressure
    assert b.allows(201) and not b.allows(202)
    assert b.counters.get("memory.high_drop") == 1
    assert b.snapshot()["udp_rcv"] == 99 and b.peak == 210
    with pytest.raises(ValueError):
        MemoryBudget(200, 100, 300)


def test_stack_exposes_its_budget_from_config():
    s = make(mem_low=1000, mem_pressure=2000, mem_high=3000)
    assert (s.memory.low, s.memory.pressure_at, s.memory.high) == (1000, 2000, 3000)
    assert s.memory.used == 0


# ---- UDP --------------------------------------------------------------------------------------
def test_empty_datagram_flood_bounded_by_true_size():
    """200,000 empty datagrams used to queue against a 64 KB buffer: now the queue's true size
    stays within 2 * rcvbuf (Linux doubles SO_RCVBUF for the same overhead)."""
    s = make()
    u = s.udp.open()
    u.bind(0, 9)
    frame = udp_frame(PEER, ME, 1, 9, b"")
    for _ in range(5000):
        s.receive(frame, 0.0)
    held = len(u.queue)
    assert held == 2 * u.rcvbuf // DATAGRAM_OVERHEAD
    assert u.pending_mem <= 2 * u.rcvbuf
    assert s.counters.get("udp.rcvbuf_overflow") == 5000 - held
    assert s.memory.by_kind["udp_rcv"] == u.pending_mem == s.memory.used
    while u.recvfrom() is not None:
        pass
    assert s.memory.used == 0 and u.pending_mem == 0
    assert_no_internal_error(s)


def test_udp_payload_limit_unchanged_for_full_datagrams():
    s = make()
    u = s.udp.open()
    u.bind(0, 9)
    for _ in range(70):
        s.receive(udp_frame(PEER, ME, 1, 9, bytes(1000)), 0.0)
    assert u.pending_bytes == 65000  # payload still limited by rcvbuf (Windows semantics)


def test_udp_under_pressure_keeps_rmem_min_and_at_high_drops():
    s = make(mem_low=10_000, mem_pressure=20_000, mem_high=40_000, udp_rmem_min=3000)
    socks = []
    for port in (9, 10, 11):
        u = s.udp.open()
        u.bind(0, port)
        socks.append(u)
    for _ in range(25):  # 25 KB into port 9: over the pressure mark
        s.receive(udp_frame(PEER, ME, 1, 9, bytes(1000)), 0.0)
    assert s.memory.pressure
    held9 = len(socks[0].queue)
    assert s.counters.get("udp.mem_drop") == 25 - held9 > 0
    for _ in range(10):  # another socket still gets udp_rmem_min
        s.receive(udp_frame(PEER, ME, 1, 10, bytes(1000)), 0.0)
    assert socks[1].pending_mem <= 3000 and len(socks[1].queue) == 3000 // (1000 + DATAGRAM_OVERHEAD)
    assert s.memory.used <= s.memory.high
    # reading below mem_low ends the pressure
    for u in socks:
        while u.recvfrom() is not None:
            pass
    assert not s.memory.pressure and s.memory.used == 0
    assert_no_internal_error(s)


def test_udp_close_and_shutdown_release_memory():
    s = make()
    u = s.udp.open()
    u.bind(0, 9)
    s.receive(udp_frame(PEER, ME, 1, 9, b"abc"), 0.0)
    assert s.memory.used == 3 + DATAGRAM_OVERHEAD
    u.shutdown(0)
    assert s.memory.used == 0
    v = s.udp.open()
    v.bind(0, 10)
    s.receive(udp_frame(PEER, ME, 1, 10, b"abc"), 0.0)
    v.close()
    assert s.memory.used == 0


# ---- IPv4 reassembly --------------------------------------------------------------------------
def _frag(ident: int, off: int, data: bytes, mf: bool = True) -> bytes:
    return Ipv4Packet(PEER, ME, 17, data, ident=ident, mf=mf, frag_offset=off).emit()


def test_tiny_fragments_capped_per_datagram():
    s = make()
    for i in range(200):  # 8-byte fragments of one datagram, never completed
        s.receive(_frag(1, 8 * i, bytes(8)), 0.0)
    assert s.counters.get("ipv4.reasm_too_many_fragments") == 1
    assert s.counters.get("ipv4.reasm_dead_fragment") == 200 - 65
    assert s.reassembler.mem == 0 and s.memory.used == 0


def test_fragments_charged_in_true_size():
    s = make()
    for i in range(10):
        s.receive(_frag(1, 8 * i, bytes(8)), 0.0)
    assert s.reassembler.mem == 10 * (8 + FRAG_OVERHEAD) == s.memory.by_kind["reasm"]
    s.poll(31.0)  # timeout releases it
    assert s.reassembler.mem == 0 and s.memory.used == 0


def test_reassembly_memory_limit_in_true_size_across_datagrams():
    s = make(reassembly_mem_limit=20_000)
    for ident in range(500):
        for i in range(8):
            s.receive(_frag(ident, 8 * i, bytes(8)), 0.0)
        assert s.reassembler.mem <= 20_000
    assert s.counters.get("ipv4.reasm_evicted") > 0
    assert_no_internal_error(s)


def test_fragments_in_any_order_reassemble_with_sorted_intervals():
    data = random.Random(3).randbytes(63 * 8)
    dgram = UdpDatagram(1, 9, data).emit(PEER, ME)
    pieces = [(off, dgram[off:off + 8]) for off in range(0, len(dgram), 8)]
    random.Random(4).shuffle(pieces)
    s = make()
    u = s.udp.open()
    u.bind(0, 9)
    last = len(dgram) - 8
    for off, chunk in pieces:
        s.receive(_frag(5, off, chunk, mf=off != last), 0.0)
    assert u.recvfrom() == (data, PEER, 1)
    assert s.reassembler.mem == 0 and s.memory.by_kind["reasm"] == 0
    assert_no_internal_error(s)


def test_fragments_refused_at_the_budget_high_mark():
    s = make(mem_low=500, mem_pressure=1000, mem_high=1500)
    for i in range(20):
        s.receive(_frag(1, 8 * i, bytes(8)), 0.0)
    assert s.memory.used <= 1500
    assert s.counters.get("ipv4.reasm_mem_budget") == 20 - 1500 // (8 + FRAG_OVERHEAD)
