"""One memory budget for the whole stack (like Linux's tcp_mem/udp_mem), and true sizes.

Every queue that holds received data (TCP receive and out-of-order queues, UDP receive queues,
IPv4 reassembly) charges the *true size* of what it holds to `stack.memory`: the payload plus
the Python objects around it and the whole frame a zero-copy view keeps alive (Linux's
skb->truesize). One byte of payload in its own frame costs about 290 bytes, not 1.

Three thresholds, as Linux's tcp_mem (low, pressure, high):
- below `low`: no restriction;
- above `pressure`: *memory pressure* until usage falls below `low` again. TCP clamps the
  window it offers (at most `TcpConfig.pressure_window_segments` MSS beyond what is queued)
  and refuses out-of-order data; UDP sockets may hold only `udp_rmem_min` bytes each;
- above `high`: nothing new is queued (TCP in-order data, UDP datagrams and fragments are
  dropped), each drop counted with its reason.
Entering pressure is counted as `memory.pressure_entered`, refusals as `memory.high_drop` plus
the queue's own counter (`tcp.rcv_mem_drop`, `tcp.ooo_mem_drop`, `udp.mem_drop`,
`ipv4.reasm_mem_budget`).
"""

from __future__ import annotations

import sys
from collections import defaultdict

from .counters import Counters

# What a queued chunk costs beyond its payload: the Python objects that hold it (a view or a
# bytes object and its slot in the queue). A view also keeps its whole frame alive.
VIEW_OVERHEAD = sys.getsizeof(memoryview(b"")) + 8
BYTES_OVERHEAD = sys.getsizeof(b"") + 8
BYTEARRAY_OVERHEAD = sys.getsizeof(bytearray()) + 8


def truesize(data: bytes | bytearray | memoryview) -> int:
    """Bytes of memory a queued chunk keeps alive (payload, frame it views, object overhead)."""
    if type(data) is memoryview:
        return VIEW_OVERHEAD + BYTES_OVERHEAD + data.obj.__len__()  # type: ignore[union-attr]
    if type(data) is bytearray:
        return BYTEARRAY_OVERHEAD + len(data)
    return BYTES_OVERHEAD + len(data)


class MemoryBudget:
    """Bytes charged by every receive queue of one stack, with Linux-like thresholds.

    `used` is the total true size charged, `by_kind` the same split by queue kind ("tcp_rcv",
    "tcp_ooo", "udp_rcv", "reasm"); `pressure` is the hysteresis state described above;
    `peak` the highest `used` seen. Queues call `charge`/`uncharge` for every change, and
    `allows(n)` before taking new data."""

    __slots__ = ("low", "pressure_at", "high", "used", "peak", "pressure", "by_kind", "counters")

    def __init__(self, low: int, pressure: int, high: int, counters: Counters | None = None) -> None:
        if not 0 < low <= pressure <= high:
            raise ValueError(f"memory thresholds must satisfy 0 < low <= pressure <= high "
                             f"(got {low}, {pressure}, {high})")
        self.low = low
        self.pressure_at = pressure
        self.high = high
        self.used = 0
        self.peak = 0
        self.pressure = False
        self.by_kind: defaultdict[str, int] = defaultdict(int)
        self.counters = counters if counters is not None else Counters()

    def charge(self, kind: str, n: int) -> None:
        used = self.used = self.used + n
        self.by_kind[kind] += n
        if used > self.peak:
            self.peak = used
            if used > self.pressure_at and not self.pressure:
                self._enter_pressure()
        elif used > self.pressure_at and not self.pressure:
            self._enter_pressure()

    def _enter_pressure(self) -> None:
        self.pressure = True
        self.counters.inc("memory.pressure_entered")

    def uncharge(self, kind: str, n: int) -> None:
        used = self.used = self.used - n
        self.by_kind[kind] -= n
        if self.pressure and used < self.low:
            self.pressure = False

    def allows(self, n: int) -> bool:
        """May `n` more bytes be charged (stays at or below `high`)? Counts a refusal."""
        if self.used + n <= self.high:
            return True
        self.counters.inc("memory.high_drop")
        return False

    def snapshot(self) -> dict[str, int | bool]:
        """Usage and limits as a plain dict (for counters tables, benchmarks and fuzzers)."""
        out: dict[str, int | bool] = {"used": self.used, "peak": self.peak, "low": self.low,
                                      "pressure_at": self.pressure_at, "high": self.high,
                                      "pressure": self.pressure}
        for kind, n in sorted(self.by_kind.items()):
            out[kind] = n
        return out

    def __repr__(self) -> str:
        return (f"MemoryBudget(used={self.used}, low={self.low}, pressure={self.pressure_at}, "
                f"high={self.high}, under_pressure={self.pressure})")
