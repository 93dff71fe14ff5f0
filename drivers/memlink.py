"""In-memory links for tests and the simulator: point-to-point pairs and shared segments (hubs).

Time is only what callers pass as `now`: a frame sent at `now` becomes receivable at
`now + latency_s`, and `poll_at()` says when the oldest queued frame is (or was) due, so a
virtual-clock scheduler knows when to step the receiving host. `fileno()` is None.

Thread note: deque append/popleft are atomic in CPython, so one sender thread and one receiver
thread per port are safe without locks (real-time runtimes wired by a memlink).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .base import DeviceCounters, check_medium, max_frame_len

Notify = Callable[["MemPort", float], None]


class MemPort:
    """One port of a MemSegment; a Device. Frames from every other port arrive in FIFO order."""

    def __init__(self, segment: MemSegment, name: str) -> None:
        self.segment = segment
        self.name = name
        self.medium: str = segment.medium
        self.mtu: int = segment.mtu
        self.counters = DeviceCounters()
        self.on_pending: Notify | None = None  # called as on_pending(port, due_at) per queued frame
        self._q: deque[tuple[float, bytes]] = deque()
        self._closed = False

    # -- sending side ------------------------------------------------------------------------
    def send(self, frame: bytes, now: float) -> None:
        c = self.counters
        if self._closed:
            c.drop_tx("closed")
            return
        frame = bytes(frame)  # snapshot: a caller's bytearray may be reused after send returns
        if len(frame) > self.segment.max_frame:
            c.drop_tx("oversize")
            return
        c.tx_frames += 1
        c.tx_bytes += len(frame)
        due = now + self.segment.latency_s
        for port in self.segment.ports:
            if port is not self:
                port._deliver(frame, due)

    def send_batch(self, frames: Iterable[bytes], now: float) -> None:
        for frame in frames:
            self.send(frame, now)

    # -- receiving side ----------------------------------------------------------------------
    def _deliver(self, frame: bytes, due: float) -> None:
        if len(self._q) >= self.segment.queue_limit:
            self.counters.drop_rx("rx_queue_full")
            return
        self._q.append((due, frame))
        cb = self.on_pending
        if cb is not None:
            cb(self, due)

    def recv(self, now: float) -> bytes | None:
        q = self._q
        if q and q[0][0] <= now:
            frame = q.popleft()[1]
            c = self.counters
            c.rx_frames += 1
            c.rx_bytes += len(frame)
            return frame
        return None

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        q = self._q
        out: list[bytes] = []
        while q and len(out) < limit and q[0][0] <= now:
            out.append(q.popleft()[1])
        if out:
            c = self.counters
            c.rx_frames += len(out)
            c.rx_bytes += sum(map(len, out))
        return out

    def pending(self) -> int:
        """Frames queued for this port, due or not."""
        return len(self._q)

    def poll_at(self) -> float | None:
        # The head is the earliest: latency is constant, so due times follow send order.
        q = self._q
        return q[0][0] if q else None

    def fileno(self) -> int | None:
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._q.clear()
            self.segment._detach(self)

    def __repr__(self) -> str:
        return f"MemPort({self.name!r}, medium={self.medium!r}, pending={len(self._q)})"


class MemSegment:
    """A shared medium with N ports: a frame sent on one port reaches every other port.

    For "ethernet" this is a broadcast domain (a hub; receivers filter by MAC themselves);
    for "ip" every other port gets every packet too (point-to-point when there are two).
    Frames larger than the MTU (plus the 14-byte header on Ethernet) are dropped and counted
    on the sender; each port queues at most `queue_limit` frames (drop-tail, counted).
    """

    def __init__(self, medium: str = "ip", mtu: int = 1500, *, latency_s: float = 0.0,
                 queue_limit: int = 4096, name: str = "seg") -> None:
        self.medium = check_medium(medium)
        if mtu < 68:
            raise ValueError(f"mtu {mtu} is below the IPv4 minimum of 68")
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        self.mtu = mtu
        self.max_frame = max_frame_len(medium, mtu)
        self.latency_s = latency_s
        self.queue_limit = queue_limit
        self.name = name
        self.ports: list[MemPort] = []
        self._attached = 0

    def attach(self, name: str | None = None) -> MemPort:
        port = MemPort(self, name or f"{self.name}.{self._attached}")
        self._attached += 1
        # Replace, not mutate, so a send iterating the old list is never disturbed.
        self.ports = [*self.ports, port]
        return port

    def _detach(self, port: MemPort) -> None:
        self.ports = [p for p in self.ports if p is not port]

    def pending(self) -> int:
        return sum(p.pending() for p in self.ports)

    def poll_at(self) -> float | None:
        times = [t for t in (p.poll_at() for p in self.ports) if t is not None]
        return min(times) if times else None


class MemLink:
    """Factory for connected in-memory device pairs."""

    @staticmethod
    def pair(medium: str = "ip", mtu: int = 1500, *, latency_s: float = 0.0,
             queue_limit: int = 4096, name: str = "link") -> tuple[MemPort, MemPort]:
        seg = MemSegment(medium, mtu, latency_s=latency_s, queue_limit=queue_limit, name=name)
        return seg.attach(f"{name}.a"), seg.attach(f"{name}.b")

    @staticmethod
    def segment(medium: str = "ethernet", mtu: int = 1500, **kw: Any) -> MemSegment:
        return MemSegment(medium, mtu, **kw)
