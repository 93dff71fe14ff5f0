"""What the sender asks of a congestion controller (all sizes in bytes)."""

from __future__ import annotations


class CongestionControl:
    """RFC 5681 window bookkeeping shared by the algorithms.

    The sender calls: `on_ack(acked, now, rtt_s, flight)` for new data acknowledged outside
    recovery; `on_loss(now, flight)` when fast recovery starts (sets ssthresh and cwnd);
    `on_recovery_exit(now)` when recovery ends; `on_rto(now, flight)` on a retransmission timeout.
    """

    name = "base"
    __slots__ = ("mss", "cwnd", "ssthresh", "_acc", "abc_limit", "iw")

    def __init__(self, mss: int, initial_segments: int = 10, abc_limit_segments: int = 0) -> None:
        self.mss = mss
        # RFC 3465 L: the most one ACK may grow cwnd by in slow start, in segments; 0 means no
        # limit, as Linux (tcp_slow_start adds every segment a stretch ACK covers)
        self.abc_limit = abc_limit_segments
        # RFC 6928: IW = min(10*MSS, max(2*MSS, 14600)) for IW10
        iw = initial_segments * mss
        if initial_segments == 10:
            iw = min(10 * mss, max(2 * mss, 14600))
        self.cwnd = self.iw = iw
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

    def restart_after_idle(self, idle_s: float, rto_s: float) -> None:
        """Nothing sent for more than an RTO (RFC 5681 4.1, as Linux's tcp_cwnd_restart): keep
        3/4 of cwnd as ssthresh, halve cwnd for every further RTO of silence, never below the
        restart window min(IW, cwnd), so the next burst is probed again by slow start."""
        self.ssthresh = max(self.ssthresh, 3 * self.cwnd // 4)
        restart = min(self.iw, self.cwnd)
        cwnd = self.cwnd
        idle_s -= rto_s
        while idle_s > 0 and cwnd > restart:
            cwnd //= 2
            idle_s -= rto_s
        self.cwnd = max(cwnd, restart)
        self._acc = 0

    def _slow_start(self, acked: int) -> int:
        """Appropriate byte counting (RFC 3465): grow by the bytes this ACK acknowledged, at most
        L = abc_limit segments (none when 0) and up to ssthresh, so ACKs covering several
        segments (delayed, stretch or GRO ACKs) still double cwnd per round trip. Returns the
        bytes left over for congestion avoidance (as Linux's tcp_slow_start)."""
        inc = acked
        if self.abc_limit and inc > self.abc_limit * self.mss:
            inc = self.abc_limit * self.mss
        room = self.ssthresh - self.cwnd
        if inc > room:
            inc = room
        self.cwnd += inc
        return acked - inc
