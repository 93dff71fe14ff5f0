"""What the sender asks of a congestion controller (all sizes in bytes)."""

from __future__ import annotations


class CongestionControl:
    """RFC 5681 window bookkeeping shared by the algorithms.

    The sender calls: `on_ack(acked, now, rtt_s, flight)` for new data acknowledged outside
    recovery; `on_loss(now, flight)` when fast recovery starts (sets ssthresh and cwnd);
    `on_recovery_exit(now)` when recovery ends; `on_rto(now, flight)` on a retransmission timeout.
    """

    name = "base"
    __slots__ = ("mss", "cwnd", "ssthresh", "_acc")

    def __init__(self, mss: int, initial_segments: int = 10) -> None:
        self.mss = mss
        # RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)) for IW10
        iw = initial_segments * mss
        if initial_segments == 10:
            iw = min(10 * mss, max(2 * mss, 14600))
        self.cwnd = iw
        self.ssthresh = 1 << 30
        self._acc = 0

    def set_mss(self, mss: int) -> None:
        self.mss = mss

    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def on_ack(self, acked: int, now: float, rtt_s: float | None, flight: int) -> None:
        raise NotImplementedError

    def on_loss(self, now: float, flight: int) -> None:
        raise NotImplementedError

    def on_recovery_exit(self, now: float) -> None:
        self.cwnd = self.ssthresh

    def on_rto(self, now: float, flight: int) -> None:
        # RFC 5681 (4): ssthresh = max(FlightSize / 2, 2*SMSS); cwnd = loss window (1 segment)
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self._acc = 0

    def _slow_start(self, acked: int) -> int:
        """Grow by at most one MSS per ACK (RFC 5681 3.1); returns bytes left over for avoidance."""
        inc = min(acked, self.mss, self.ssthresh - self.cwnd)
        self.cwnd += inc
        return acked - inc
