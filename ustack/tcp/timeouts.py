"""Connection's timers firing: `on_timers` dispatches the due slots of its `Timers`
(timers.py: TIME-WAIT, FIN-WAIT-2, RTO, probe, delayed ACK, persist, keepalive, path MTU expiry)
and the persist, keepalive and path MTU expiry handlers live here (the RTO and the tail loss
probe are loss recovery: recovery.py). A mixin of `Connection` (connection.py), which holds the
state; split from it by concern so each part of the TCB's behaviour can be read alone."""

from __future__ import annotations

from ..core import events as ev
from ..core.reasons import Reason
from ..wire.tcp import ACK
from .seq import MASK
from .state import TRANSMITTING, State


class TimeoutsMixin:
    """Timer expiry for `Connection`; no state of its own."""

    __slots__ = ()

    def on_timers(self, now: float) -> None:
        t = self.timers
        if t.time_wait_at is not None and now >= t.time_wait_at:
            self.drop(None, now)
            return
        if t.deadline_at is not None and now >= t.deadline_at:
            self._count("tcp.fin_wait2_timeout")
            self.drop(None, now)
            return
        if t.rto_at is not None and now >= t.rto_at:
            t.rto_at = None
            self._on_rto(now)
            if self.state is State.CLOSED:
                return
        if t.probe_at is not None and now >= t.probe_at:
            t.probe_at = None
            self._on_probe(now)
        if t.delack_at is not None and now >= t.delack_at:
            t.delack_at = None
            self.send_ack(now)
        if t.persist_at is not None and now >= t.persist_at:
            t.persist_at = None
            self._on_persist(now)
            if self.state is State.CLOSED:
                return
        if t.keepalive_at is not None and now >= t.keepalive_at:
            t.keepalive_at = None
            self._on_keepalive(now)
        if t.pmtu_at is not None and now >= t.pmtu_at:
            t.pmtu_at = None
            self._on_pmtu_expired(now)

    def _on_persist(self, now: float) -> None:
        snd = self.snd
        if self.state not in TRANSMITTING or not (
                snd.unsent() or (snd.fin_queued and not snd.fin_sent)):
            return
        if self.persist_unanswered > self.opts.data_retries + 10:
            self._count("tcp.persist_timeout")
            self.abort(now)
            self.error = self.error or Reason.TIMED_OUT
            self._notify(ev.CLOSE | ev.ERROR | ev.READ)
            return
        usable = snd.snd_wnd - snd.flight()
        if usable > 0:
            # SWS override: send what the window allows (or the FIN that waited for it)
            if snd.unsent():
                self._send_data(snd.snd_nxt, min(usable, snd.unsent(), snd.mss), now, rexmit=False)
            else:
                self.output(now)
        else:
            # zero-window probe: one byte beyond the window elicits an ACK with the current window
            self._count("tcp.zero_window_probe")
            self._emit(ACK, (snd.snd_una - 1) & MASK, now)
            self.persist_unanswered += 1
        self.persist_backoff += 1
        self._arm_persist(now)

    def _on_keepalive(self, now: float) -> None:
        if self.state not in (State.ESTABLISHED, State.CLOSE_WAIT) or not self.opts.keepalive:
            return
        idle_until = self.last_rx_at + self.opts.keepalive_idle_s
        if self.keepalive_sent == 0 and now < idle_until:
            self.timers.keepalive_at = idle_until
            return
        snd = self.snd
        if snd.snd_max != snd.snd_una or snd.unsent():
            # data outstanding or queued: the retransmission (or persist) timer watches the
            # peer and ends a dead connection as TIMED_OUT; probe only when idle (like Linux)
            self.timers.keepalive_at = now + self.opts.keepalive_idle_s
            return
        if self.keepalive_sent >= self.opts.keepalive_probes:
            self._count("tcp.keepalive_timeout")
            self.abort(now)
            self.error = self.error or Reason.KEEPALIVE_FAILED  # Windows: WSAENETRESET, not a time-out
            self._notify(ev.CLOSE | ev.ERROR | ev.READ)
            return
        self.keepalive_sent += 1
        self._count("tcp.keepalive_probe")
        self._emit(ACK, (self.snd.snd_una - 1) & MASK, now)
        self.timers.keepalive_at = now + self.opts.keepalive_interval_s

    def _on_pmtu_expired(self, now: float) -> None:
        """RFC 1191 6.3: try the first-hop MTU again; a router still in the way says so again."""
        self.df = True
        self.our_mss = self.layer.mss_for(self.raddr, now, self.opts.mss)
        snd = self.snd
        mss = max(min(self.peer_mss, self.our_mss) - (12 if self.ts_ok else 0), 64)
        if snd.cc is not None and mss > snd.mss:
            snd.mss = mss
            snd.cc.set_mss(mss)
            self._count("tcp.pmtu_expired")
