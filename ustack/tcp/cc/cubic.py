"""CUBIC (RFC 9438): cubic window growth around W_max with a Reno-friendly region."""

from __future__ import annotations

from .base import CongestionControl

C = 0.4
BETA = 0.7
ALPHA = 3 * (1 - BETA) / (1 + BETA)  # RFC 9438 4.3


class Cubic(CongestionControl):
    name = "cubic"
    __slots__ = ("w_max", "k", "epoch_at", "w_est", "last_rtt")

    def __init__(self, mss: int, initial_segments: int = 10, abc_limit_segments: int = 0) -> None:
        super().__init__(mss, initial_segments, abc_limit_segments)
        self.w_max = 0.0  # segments
        self.k = 0.0
        self.epoch_at: float | None = None
        self.w_est = 0.0
        self.last_rtt = 0.1

    def on_ack(self, acked: int, now: float, rtt_s: float | None, flight: int) -> None:
        if rtt_s:
            self.last_rtt = rtt_s
        if self.cwnd < self.ssthresh:
            acked = self._slow_start(acked)
            if not acked:
                return
        mss = self.mss
        cwnd_seg = self.cwnd / mss
        if self.epoch_at is None:  # a new congestion-avoidance epoch (RFC 9438 4.2)
            self.epoch_at = now
            if cwnd_seg < self.w_max:
                self.k = ((self.w_max - cwnd_seg) / C) ** (1 / 3)
            else:
                self.k = 0.0
                self.w_max = cwnd_seg
            self.w_est = cwnd_seg
        t = now - self.epoch_at + self.last_rtt
        target = C * (t - self.k) ** 3 + self.w_max
        # Reno-friendly estimate (RFC 9438 4.3)
        self.w_est += ALPHA * (acked / mss) / cwnd_seg
        if self.w_est > target:
            target = self.w_est
        target = min(target, 1.5 * cwnd_seg)  # RFC 9438 4.4: at most 1.5x per RTT
        if target > cwnd_seg:
            self._acc += int((target - cwnd_seg) / cwnd_seg * acked)
            if self._acc >= mss:
                grow = self._acc - self._acc % mss
                self.cwnd += grow
                self._acc -= grow

    def restart_after_idle(self, idle_s: float, rto_s: float) -> None:
        super().restart_after_idle(idle_s, rto_s)
        if self.epoch_at is not None:  # Linux's CA_EVENT_TX_START: the curve does not run on idle
            self.epoch_at += idle_s

    def _reduce(self, flight: int) -> None:
        cwnd_seg = self.cwnd / self.mss
        # fast convergence (RFC 9438 4.7)
        self.w_max = cwnd_seg * (1 + BETA) / 2 if cwnd_seg < self.w_max else cwnd_seg
        # RFC 9438 4.6: beta times cwnd, not FlightSize, as Linux's and Windows' CUBIC do (an
        # application-limited flight would otherwise collapse ssthresh); the sender validates
        # cwnd (RFC 7661) so an unused cwnd does not grow in the first place
        self.ssthresh = max(int(self.cwnd * BETA), 2 * self.mss)
        self.epoch_at = None
        self._acc = 0

    def on_loss(self, now: float, flight: int) -> None:
        self._reduce(flight)
        self.cwnd = self.ssthresh

    def on_rto(self, now: float, flight: int) -> None:
        self._reduce(flight)
        # a timeout forgets the curve (Linux's cubictcp_state on TCP_CA_Loss resets it): the
        # next epoch starts at the cwnd slow start reaches, not aiming back at the old W_max
        self.w_max = 0.0
        self.cwnd = self.mss
