"""NewReno window growth (RFC 5681): slow start, then one MSS per RTT by byte counting."""

from __future__ import annotations

from .base import CongestionControl


class NewReno(CongestionControl):
    name = "newreno"
    __slots__ = ()

    def on_ack(self, acked: int, now: float, rtt_s: float | None, flight: int) -> None:
        if self.cwnd < self.ssthresh:
            acked = self._slow_start(acked)
            if not acked:
                return
        # congestion avoidance: cwnd += MSS once a full window has been acknowledged (RFC 5681 3.1)
        self._acc += acked
        if self._acc >= self.cwnd:
            self._acc -= self.cwnd
            self.cwnd += self.mss

    def on_loss(self, now: float, flight: int) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._acc = 0
