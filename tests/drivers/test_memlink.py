"""In-memory links: FIFO delivery, virtual-time latency, hubs, limits, counters."""

import pytest

from ustack.drivers import Device, MemLink, MemSegment


def test_pair_fifo_and_empty() -> None:
    a, b = MemLink.pair()
    assert isinstance(a, Device) and isinstance(b, Device)
    assert a.medium == "ip" and a.mtu == 1500 and a.fileno() is None
    assert b.recv(0.0) is None and b.poll_at() is None and b.pending() == 0
    for i in range(5):
        a.send(bytes([i]) * 20, 0.0)
    assert b.pending() == 5 and a.pending() == 0  # nothing echoes back to the sender
    assert b.poll_at() == 0.0
    assert [b.recv(0.0) for _ in range(5)] == [bytes([i]) * 20 for i in range(5)]
    assert b.recv(0.0) is None
    b.send(b"back", 1.0)
    assert a.recv(1.0) == b"back"


def test_counters() -> None:
    a, b = MemLink.pair()
    a.send(b"x" * 100, 0.0)
    a.send(b"y" * 50, 0.0)
    b.recv_batch(0.0)
    assert (a.counters.tx_frames, a.counters.tx_bytes) == (2, 150)
    assert (b.counters.rx_frames, b.counters.rx_bytes) == (2, 150)
    snap = a.counters.snapshot()
    assert snap["tx_frames"] == 2 and snap["tx_dropped"] == 0


def test_recv_batch_limit_and_order() -> None:
    a, b = MemLink.pair()
    frames = [i.to_bytes(2, "big") * 10 for i in range(100)]
    for f in frames:
        a.send(f, 0.0)
    first = b.recv_batch(0.0, limit=64)
    rest = b.recv_batch(0.0, limit=64)
    assert first + rest == frames and len(first) == 64
    assert b.recv_batch(0.0) == []


def test_latency_in_virtual_time() -> None:
    a, b = MemLink.pair(latency_s=0.25)
    a.send(b"p" * 30, 10.0)
    assert b.pending() == 1
    assert b.poll_at() == 10.25
    assert b.recv(10.2) is None and b.recv_batch(10.2) == []
    assert b.recv(10.25) == b"p" * 30


def test_sender_buffer_is_snapshotted() -> None:
    a, b = MemLink.pair()
    buf = bytearray(b"A" * 40)
    a.send(buf, 0.0)
    buf[:] = b"B" * 40
    assert b.recv(0.0) == b"A" * 40


def test_segment_delivers_to_all_other_ports() -> None:
    seg = MemSegment("ethernet", 1500)
    ports = [seg.attach() for _ in range(4)]
    frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\0" * 28
    ports[1].send(frame, 0.0)
    assert [p.pending() for p in ports] == [1, 0, 1, 1]
    assert seg.pending() == 3 and seg.poll_at() == 0.0
    for i in (0, 2, 3):
        assert ports[i].recv(0.0) == frame


def test_segment_ip_medium_delivers_to_all_others_too() -> None:
    seg = MemSegment("ip", 1500)
    p = [seg.attach(), seg.attach(), seg.attach()]
    p[0].send(b"E" * 20, 0.0)
    assert [x.pending() for x in p] == [0, 1, 1]


def test_close_detaches() -> None:
    seg = MemSegment("ip")
    a, b, c = seg.attach(), seg.attach(), seg.attach()
    c.close()
    a.send(b"Z" * 20, 0.0)
    assert b.pending() == 1 and c.pending() == 0
    c.send(b"Z" * 20, 0.0)
    assert c.counters.tx_dropped == 1 and c.counters.drops == {"closed": 1}
    assert len(seg.ports) == 2


@pytest.mark.parametrize("medium, limit", [("ip", 1400), ("ethernet", 1414)])
def test_oversize_is_dropped_and_counted(medium: str, limit: int) -> None:
    a, b = MemLink.pair(medium, mtu=1400)
    a.send(b"\0" * limit, 0.0)
    a.send(b"\0" * (limit + 1), 0.0)
    assert b.pending() == 1
    assert a.counters.tx_dropped == 1 and a.counters.drops == {"oversize": 1}


def test_queue_limit_tail_drop() -> None:
    a, b = MemLink.pair(queue_limit=3)
    for i in range(5):
        a.send(bytes([i]) * 20, 0.0)
    assert b.pending() == 3
    assert b.counters.rx_dropped == 2 and b.counters.drops == {"rx_queue_full": 2}
    assert b.recv_batch(0.0) == [bytes([i]) * 20 for i in range(3)]


def test_on_pending_notifies_the_receiver_port() -> None:
    a, b = MemLink.pair(latency_s=0.5)
    seen = []
    b.on_pending = lambda port, due: seen.append((port, due))
    a.send(b"n" * 20, 1.0)
    assert seen == [(b, 1.5)]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        MemSegment("atm")
    with pytest.raises(ValueError):
        MemSegment("ip", mtu=20)
    with pytest.raises(ValueError):
        MemSegment("ip", latency_s=-1)
