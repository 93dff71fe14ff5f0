"""Receive-side memory bounds (docs/robustness.md "Memory and queues"): the copy-free
out-of-order queue, true-size accounting with coalescing and collapse, the stack's memory budget
under pressure. Virtual time; bounds and counters, never timings."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from tcphelpers import PEER_ISS, Harness

from ustack.core.memory import MemoryBudget, truesize
from ustack.tcp.receiver import _RANGE_OVERHEAD, Receiver, RecvBuffer
from ustack.wire.tcp import TcpOptions

MSS = 1460
IRS = 0xFFFFF000  # sequence numbers wrap inside the tests' data


def audit(r: Receiver) -> None:
    """The incremental accounting equals a recount from the queues."""
    assert r.buf.mem == sum(truesize(c) for c in r.buf.chunks)
    assert r.buf.size == sum(len(c) for c in r.buf.chunks)
    assert r.ooo_mem == sum(sum(truesize(c) for c in g.chunks) + _RANGE_OVERHEAD for g in r.ooo)
    assert r.ooo_bytes == sum(g.end - g.start for g in r.ooo)
    assert r.memory.by_kind["tcp_rcv"] == r.buf.mem and r.memory.by_kind["tcp_ooo"] == r.ooo_mem
    starts = [g.start for g in r.ooo]
    assert starts == sorted(starts) == r.ooo_starts and [g.end for g in r.ooo] == r.ooo_ends
    for a, b in zip(r.ooo, r.ooo[1:], strict=False):
        assert a.end < b.start  # disjoint and not adjacent


def feed(r: Receiver, data: bytes, off: int, n: int) -> None:
    """Deliver data[off:off+n] as the connection does: trim, in order or out of order."""
    seq = (IRS + 1 + off) & 0xFFFFFFFF
    frame = bytes(40) + data[off:off + n]  # a view into a frame, as received
    payload = memoryview(frame)[40:]
    skip = (r.rcv_nxt - seq) & 0xFFFFFFFF
    if skip < 0x80000000:
        if skip >= len(payload):
            return
        payload, seq = payload[skip:], r.rcv_nxt
    if seq == r.rcv_nxt:
        r.buf.append(payload)
        r.rcv_nxt = (seq + len(payload)) & 0xFFFFFFFF
        r.pull_ooo()
    else:
        r.add_ooo(seq, payload)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 1500)), min_size=1, max_size=60),
       st.integers(0, 2**32 - 1))
def test_ooo_queue_any_order_delivers_the_stream(segs, seed):
    data = random.Random(seed).randbytes(4600)
    r = Receiver(1 << 20, memory=MemoryBudget(1 << 40, 1 << 40, 1 << 40))
    r.start(IRS)
    got = bytearray()
    for off, n in segs:
        feed(r, data, off, n)
        audit(r)
        if random.Random(off).random() < 0.3:
            got += r.read(random.Random(n).randint(1, 3000))
            audit(r)
    feed(r, data, 0, 4600)  # fill every hole
    audit(r)
    got += r.read(10**6)
    assert bytes(got) == data and not r.ooo and r.mem == 0 and r.memory.used == 0


def test_ooo_queue_is_copy_free_for_full_segments():
    r = Receiver(1 << 20)
    r.start(IRS)
    frames = [bytes(52) + bytes([i]) * MSS for i in range(1, 40)]
    for i, f in enumerate(frames):
        r.add_ooo((IRS + 1 + MSS * (i + 1)) & 0xFFFFFFFF, memoryview(f)[52:])
    assert len(r.ooo) == 1 and r.ooo_bytes == 39 * MSS
    assert all(type(c) is memoryview and c.obj is f for c, f in zip(r.ooo[0].chunks, frames, strict=True))


def test_ooo_merge_moves_the_shorter_chunk_list():
    """Segments arriving in decreasing order prepend to one range: each one costs O(1)."""
    r = Receiver(1 << 22)
    r.start(0)
    for i in range(2000, 0, -1):
        f = bytes(40) + bytes(600)
        r.add_ooo(1 + 600 * i, memoryview(f)[40:])
    assert len(r.ooo) == 1 and len(r.ooo[0].chunks) == 2000
    audit(r)


def test_tiny_segments_coalesce_in_the_receive_buffer():
    """1-byte segments in their own frames: the buffer holds ~1 byte per byte, not a frame."""
    b = RecvBuffer()
    for _ in range(10_000):
        b.append(memoryview(bytes(52) + b"x")[52:])
    assert len(b) == 10_000 and len(b.chunks) == 1
    assert b.mem < 10_000 + 200
    assert b.read(10_000) == b"x" * 10_000 and b.mem == 0


def test_tiny_ooo_segments_in_decreasing_order_are_collapsed():
    """The worst case for coalescing (each segment prepends): the per-connection true-size
    limit collapses the chunks, the payload stays within the window."""
    r = Receiver(65536)
    r.start(0)
    data = random.Random(5).randbytes(60_001)
    for i in range(60_000, 0, -1):
        assert r.add_ooo(1 + i, memoryview(bytes(40) + data[i:i + 1])[40:]) is None
        assert r.mem <= r.mem_limit
    audit(r)
    assert r.ooo_bytes == 60_000 and len(r.ooo[0].chunks) < 60_000  # collapsed
    r.buf.append(data[:1])  # the hole: everything is delivered, in order, memory given back
    r.rcv_nxt = 2
    r.pull_ooo()
    audit(r)
    assert r.read(10**6) == data and r.mem == 0 and r.memory.used == 0


def test_ooo_keys_rebased_after_a_gigabyte():
    """Keys count from an anchor at or below RCV.NXT; a hole kept open across 2**30 bytes of
    delivered data moves the anchor, and the queue still answers right."""
    r = Receiver(1 << 20)
    r.start(0xFFFFFF00)
    far = (0xFFFFFF01 + (1 << 30) + 5000) & 0xFFFFFFFF
    assert r.add_ooo(far, b"far") is None
    r.rcv_nxt = (0xFFFFFF01 + (1 << 30) + 10) & 0xFFFFFFFF  # as if a GB had been delivered
    assert r.add_ooo((r.rcv_nxt + 100) & 0xFFFFFFFF, b"near") is None  # rebases
    assert r.anchor == r.rcv_nxt
    audit(r)
    assert r.sack_blocks(4) == [((r.rcv_nxt + 100) & 0xFFFFFFFF, (r.rcv_nxt + 104) & 0xFFFFFFFF),
                                (far, (far + 3) & 0xFFFFFFFF)]
    r.buf.append(bytes(100))
    r.rcv_nxt = (r.rcv_nxt + 100) & 0xFFFFFFFF
    r.pull_ooo()
    assert r.read(1000) == bytes(100) + b"near" and len(r.ooo) == 1


def test_ooo_ranges_capped_and_dropped_with_a_reason():
    r = Receiver(1 << 20, ooo_max=8)
    r.start(0)
    why = [r.add_ooo(1 + 10 * i, b"ab") for i in range(1, 12)]
    assert why[:8] == [None] * 8 and why[8:] == ["tcp.ooo_drop"] * 3


def _est(**cfg):
    h = Harness(sack=True, **cfg)
    s, c = h.established(options=TcpOptions(mss=MSS, sack_perm=True))
    return h, s, c


def _data(h, c, at, off, n, byte=b"x"):
    h.peer_sends(at, h.pseg(".", PEER_ISS + 1 + off, c.iss + 1, payload=byte * n))


def test_one_byte_ooo_flood_bounded_and_sack_blocks_still_right():
    h, s, c = _est(rcvbuf=65535)
    for i in range(2, 20_000, 2):  # 1-byte segments with 1-byte holes behind one hole
        _data(h, c, 1.0, i, 1)
    r = c.rcv
    assert r.mem <= r.mem_limit
    assert len(r.ooo) <= h.config.ooo_max_segments
    assert h.stack.counters.get("tcp.ooo_mem_drop") > 0  # the true-size limit came first
    got = h.out(1.0)[-1]
    assert got.options.sack  # still reporting blocks
    audit(r)
    assert h.stack.counters.get("tcp.internal_error") == 0


def test_memory_pressure_clamps_window_and_refuses_ooo():
    h, s, c = _est(rcvbuf=1 << 20, window_scaling=True)
    budget = h.layer.memory
    budget.charge("test", budget.pressure_at + 1)  # another part of the stack used the memory
    assert budget.pressure
    _data(h, c, 1.0, 2000, 100)
    assert h.stack.counters.get("tcp.ooo_mem_pressure") == 1 and not c.rcv.ooo
    _data(h, c, 1.1, 0, 1000)  # in-order data is still taken
    assert len(c.rcv.buf) == 1000
    assert c.rcv.free() == h.config.pressure_window_segments * c.rcv.mss
    budget.uncharge("test", budget.pressure_at + 1)
    assert not budget.pressure and c.rcv.free() == (1 << 20) - 1000


def test_memory_high_drops_in_order_data_but_an_empty_buffer_always_takes_one():
    h, s, c = _est()
    budget = h.layer.memory
    budget.charge("test", budget.high)
    _data(h, c, 1.0, 0, 500)  # empty buffer: taken (progress guaranteed, as Linux forces it)
    assert len(c.rcv.buf) == 500
    _data(h, c, 1.1, 500, 500)
    assert len(c.rcv.buf) == 500
    assert h.stack.counters.get("tcp.rcv_mem_drop") == 1
    assert h.stack.counters.get("memory.high_drop") == 1
    budget.uncharge("test", budget.high)
    _data(h, c, 1.2, 500, 500)
    assert len(c.rcv.buf) == 1000


def test_memory_high_prunes_the_ooo_queue_for_in_order_data():
    h, s, c = _est()
    _data(h, c, 1.0, 0, 100)
    _data(h, c, 1.0, 3000, 1000)
    assert c.rcv.ooo
    budget = h.layer.memory
    budget.charge("test", budget.high - budget.used - 100)
    _data(h, c, 1.1, 100, 500)
    assert len(c.rcv.buf) == 600 and not c.rcv.ooo  # the out-of-order data made room
    budget.uncharge("test", budget.by_kind["test"])


def test_connection_releases_its_memory_when_closed():
    h, s, c = _est()
    _data(h, c, 1.0, 0, 1000)
    _data(h, c, 1.0, 3000, 1000)
    assert h.layer.memory.used > 2000
    h.peer_sends(1.1, h.pseg("R", PEER_ISS + 1001, 0))
    assert c.state.name == "CLOSED" and not h.layer.conns
    assert h.layer.memory.used == 0
    assert h.stack.counters.get("tcp.internal_error") == 0


def test_collapse_works_again_in_a_later_out_of_order_episode():
    r = Receiver(1024)
    r.start(0)
    for episode in range(2):
        base = r.rcv_nxt
        data = random.Random(episode).randbytes(5001)
        for i in range(5000, 0, -1):
            assert r.add_ooo(base + i, memoryview(bytes(40) + data[i:i + 1])[40:]) is None
            assert r.mem <= r.mem_limit
        r.buf.append(data[:1])
        r.rcv_nxt = base + 1
        r.pull_ooo()
        assert r.read(10**6) == data and r.mem == 0 and r.collapsed_at == -1


def test_data_beyond_a_clamped_window_is_trimmed_and_counted():
    """Under pressure the window offered stops growing: once the old promise (64 KB here) is
    used up, the next ACK offers 4 MSS, and data past that is trimmed and counted."""
    h, s, c = _est(rcvbuf=1 << 20)
    budget = h.layer.memory
    budget.charge("test", budget.pressure_at + 1)
    off = 0
    while off < 65535:  # use up the window promised before the pressure
        n = min(MSS, 65535 - off)
        _data(h, c, 1.0, off, n)
        off += n
    assert s.recv(1 << 20) and h.out(1.0)
    s.recv(1 << 20)
    c.send_ack(1.0)
    window = (c.rcv.adv_right - c.rcv.rcv_nxt) & 0xFFFFFFFF
    assert 0 < window <= h.config.pressure_window_segments * c.rcv.mss
    _data(h, c, 1.1, off, window + 500)  # more than the window offered
    assert len(c.rcv.buf) == window
    assert h.stack.counters.get("tcp.beyond_window_trimmed") == 1
    budget.uncharge("test", budget.pressure_at + 1)
