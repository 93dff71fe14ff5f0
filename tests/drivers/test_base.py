"""Middleware forwarding, counters, helpers, and the tracer without a decoder."""

import io

import pytest

import ustack.drivers.trace as trace_mod
from ustack.drivers import Device, DeviceCounters, FaultInjector, MemLink, Middleware, PcapWriter, Tracer
from ustack.drivers.base import earliest, max_frame_len


class FakeDevice:
    medium = "ethernet"
    mtu = 9000

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.extra = "visible through middleware"

    def send(self, frame: bytes, now: float) -> None:
        self.calls.append(("send", frame, now))

    def recv(self, now: float) -> bytes | None:
        self.calls.append(("recv", now))
        return b"r"

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        self.calls.append(("recv_batch", now, limit))
        return [b"b"]

    def fileno(self) -> int | None:
        return 42

    def poll_at(self) -> float | None:
        return 3.5

    def close(self) -> None:
        self.calls.append(("close",))


def test_middleware_forwards_everything() -> None:
    inner = FakeDevice()
    m = Middleware(inner)
    assert isinstance(inner, Device) and isinstance(m, Device)
    assert (m.medium, m.mtu, m.fileno(), m.poll_at(), m.extra) == ("ethernet", 9000, 42, 3.5, inner.extra)
    m.send(b"s", 1.0)
    assert m.recv(2.0) == b"r" and m.recv_batch(3.0, 7) == [b"b"]
    m.send_batch([b"x", b"y"], 4.0)
    m.advance(5.0)  # the fake has no advance(): a no-op, not an error
    with m:
        pass
    assert inner.calls == [("send", b"s", 1.0), ("recv", 2.0), ("recv_batch", 3.0, 7),
                           ("send", b"x", 4.0), ("send", b"y", 4.0), ("close",)]
    with pytest.raises(AttributeError):
        _ = m.no_such_attribute


def test_close_goes_down_the_chain() -> None:
    inner = FakeDevice()
    dev = Tracer(PcapWriter(FaultInjector(inner), io.BytesIO()), io.StringIO())
    dev.close()
    assert inner.calls[-1] == ("close",)
    assert dev.medium == "ethernet" and dev.fileno() == 42 and dev.poll_at() == 3.5


def test_counters_snapshot() -> None:
    c = DeviceCounters()
    c.drop_tx("tx_queue_full")
    c.drop_tx("tx_queue_full")
    c.drop_rx("rx_queue_full")
    snap = c.snapshot()
    assert snap["tx_dropped"] == 2 and snap["rx_dropped"] == 1
    assert snap["drop.tx_queue_full"] == 2 and snap["drop.rx_queue_full"] == 1
    assert "tx_dropped" in repr(c)


def test_helpers() -> None:
    assert earliest() is None and earliest(None, None) is None
    assert earliest(None, 3.0, 1.0) == 1.0 and earliest(0.0, 5.0) == 0.0
    assert max_frame_len("ip", 1500) == 1500 and max_frame_len("ethernet", 1500) == 1514


def test_tracer_without_wire_still_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_mod, "_wire", None)
    monkeypatch.setattr(trace_mod, "_wire_error", "ImportError: test")
    lines: list[str] = []
    a, _ = MemLink.pair()
    Tracer(a, lines.append).send(b"\x45" + bytes(19), 0.5)
    assert lines == ["0.500000 > [undecoded: ustack.wire unavailable (ImportError: test)] length 20"]


def test_tracer_survives_a_decoder_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(frame):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(trace_mod, "_format_ip", broken)
    text = trace_mod.format_frame(b"\x45", "ip")
    assert text == "[malformed: decoder error ZeroDivisionError: oops] length 1"


def test_middleware_never_forwards_the_trusted_checksum_read():
    """A device's checksum-trusted read must not leak through middleware: frames would skip a
    FaultInjector that corrupts them, or a capture. Other unknown attributes are forwarded."""
    a, _b = MemLink.pair()
    a.recv_batch_trusted = lambda now, limit=64: []  # as an offloading TunDevice has
    a.special = "forwarded"
    for wrapped in (Middleware(a), FaultInjector(a, seed=1, corrupt=0.5), Tracer(a, out=io.StringIO())):
        assert not hasattr(wrapped, "recv_batch_trusted")
        assert wrapped.special == "forwarded"
