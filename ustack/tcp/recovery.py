"""Connection's loss recovery: duplicate ACKs and D-SACK undo, entering SACK recovery (RFC 6675)
with PRR (RFC 6937) and RACK's loss rules (RFC 8985), the retransmission timeout (RFC 6298) and
the tail loss probe, with their congestion-window events. A mixin of `Connection`
(connection.py), which holds the state; split from it by concern so each part of the TCB's
behaviour can be read alone."""

from __future__ import annotations

from ..core import events as ev
from ..core.reasons import Reason
from ..wire.tcp import ACK, FIN
from .seq import MASK, diff, gt, lt, smax
from .state import TRANSMITTING, State

WCDELACK_S = 0.2  # RFC 8985 WCDelAckT: the longest a peer may delay an ACK (Linux: 200 ms)


class RecoveryMixin:
    """Loss detection and recovery for `Connection`; no state of its own."""

    __slots__ = ()

    def _on_dupack(self, now: float, delivered: int = 0) -> None:
        snd = self.snd
        snd.dupacks += 1
        self._count("tcp.dupack_in")
        if snd.in_recovery and snd.sack_ok and snd.rxt_mark is not None and snd.sacked:
            # data sent after our retransmission of SND.UNA was SACKed: that retransmission is
            # lost too (like Linux's lost-retransmit detection); retransmit the holes again
            if gt(snd.sacked[-1][1], snd.rxt_mark):
                snd.rxt_mark = None
                snd.high_rxt = snd.snd_una
                self._count("tcp.lost_retransmit")
        if snd.in_recovery:
            if not snd.sack_ok:
                snd.cc.cwnd += snd.mss  # RFC 6582 / RFC 5681 window inflation
            else:
                self._check_lost_retransmission()
                self._prr(delivered, False)
            self.output(now)
            return
        if snd.dupacks >= snd.thresh() or (snd.sack_ok and snd.lost_end() != snd.snd_una):
            # RFC 6582 3.2 (1): no new recovery before the previous one is fully acknowledged
            if not lt(snd.snd_una, snd.recover):
                self._enter_recovery(now, delivered)
                return
        if snd.dupacks <= 2 and snd.unsent():
            self.output(now, extra=snd.dupacks * snd.mss)  # RFC 3042 limited transmit

    def _on_dsack(self, now: float) -> None:
        """The peer got one of our segments twice (RFC 2883): a retransmission was spurious,
        most likely because of reordering. Tolerate more reordering from now on (like Linux's
        reordering metric) and undo the window reduction once every retransmission of the
        episode proved spurious (RFC 3708)."""
        snd = self.snd
        self._count("tcp.dsack_in")
        if snd.dupthresh < self.cfg.max_dupthresh:
            snd.dupthresh += 1
        if snd.undo is not None:
            snd.undo_retrans -= 1
            if snd.undo_retrans <= 0:
                cwnd, ssthresh = snd.undo
                snd.undo = None
                cc = snd.cc
                if cwnd > cc.cwnd:
                    cc.cwnd = cwnd
                if ssthresh > cc.ssthresh:
                    cc.ssthresh = ssthresh
                self._count("tcp.spurious_recovery_undone")
                self._trace("cwnd", now, cwnd=cc.cwnd, ssthresh=cc.ssthresh, event="undo")

    def _check_lost_retransmission(self) -> None:
        snd = self.snd
        lost = snd.lost_retransmission()
        if lost is not None and lt(lost, snd.high_rxt):
            snd.high_rxt = lost  # NextSeg starts again from the lost retransmission
            self._count("tcp.lost_retransmit")

    def _prr(self, delivered: int, una_advanced: bool) -> None:
        """SACK recovery: set cwnd to what Proportional Rate Reduction (RFC 6937) lets this ACK
        send, so the flight shrinks smoothly to ssthresh instead of in one burst or pause."""
        snd = self.snd
        cc = snd.cc
        cwnd = snd.prr_cwnd(delivered, snd.pipe(snd.lost_end()), cc.ssthresh, una_advanced)
        if cwnd is not None:
            cc.cwnd = cwnd

    def _enter_recovery(self, now: float, delivered: int = 0) -> None:
        snd = self.snd
        cc = snd.cc
        snd.undo = (cc.cwnd, cc.ssthresh)
        snd.undo_retrans = 0
        snd.rescued = False
        self.timers.probe_at = None
        snd.rxt_mark = None
        snd.in_recovery = True
        snd.recover = snd.snd_max
        snd.high_rxt = snd.snd_una
        snd.rtt_seq = None
        cc.on_loss(now, snd.outstanding())
        self._count("tcp.fast_retransmit")
        self._trace("cwnd", now, cwnd=cc.cwnd, ssthresh=cc.ssthresh, event="loss")
        if snd.sack_ok:
            snd.prior_cwnd = snd.undo[0]
            snd.prr_delivered = snd.prr_out = 0
            snd.rxt_log.clear()
            self._prr(max(delivered, 1), False)
            # RFC 6675 (4.3): the first presumed-lost segment goes out whatever the pipe says
            lost_end = snd.lost_end()
            if lost_end == snd.snd_una:
                lost_end = (snd.snd_una + snd.mss) & MASK  # entered on DupThresh dupacks alone
            hole = snd.next_hole(lost_end)
            if hole is not None and lt(hole[0], snd.buf_end):
                s, n = hole
                n = self._send_data(s, min(n, snd.mss, diff(snd.buf_end, s)), now, rexmit=True)
                snd.high_rxt = (s + n) & MASK
            self.output(now)
        else:
            self._retransmit_una(now)
            cc.cwnd = cc.ssthresh + 3 * snd.mss
            self.output(now)

    def _retransmit_una(self, now: float) -> None:
        snd = self.snd
        n = min(snd.mss, diff(snd.buf_end, snd.snd_una))
        if n > 0:
            self._send_data(snd.snd_una, n, now, rexmit=True)
        elif snd.fin_sent:
            self._emit(FIN | ACK, snd.snd_una, now)
            self._count_retransmit(0)
        self.timers.rto_at = now + snd.rto

    def _probe_after_new_segment(self, now: float) -> None:
        """New sequence space (data or a FIN) went out: the tail loss probe restarts from it."""
        snd = self.snd
        if not snd.in_recovery and snd.srtt is not None and not self.tlp_sent and self.cfg.tail_loss_probe:
            self._arm_probe(now)

    def _arm_probe(self, now: float) -> None:
        """RFC 8985 7.2: PTO = 2*SRTT, plus the peer's worst-case delayed-ACK time WCDelAckT
        when one segment is in flight (else `tlp_extra_s`), at least `tlp_min_s`; a PTO beyond
        the RTO takes the RTO's place (the probe goes out just before it, as Linux's one timer
        does)."""
        snd = self.snd
        assert snd.srtt is not None
        cfg = self.cfg
        pto = 2 * snd.srtt + (WCDELACK_S if diff(snd.snd_max, snd.snd_una) <= snd.mss else cfg.tlp_extra_s)
        at = now + max(pto, cfg.tlp_min_s)
        rto_at = self.timers.rto_at
        if rto_at is not None and at >= rto_at:
            at = max(now, rto_at - 1e-6)
        self.timers.probe_at = at

    def _sack_recovery_output(self, now: float) -> None:
        snd = self.snd
        cc = snd.cc
        mss = snd.mss
        while True:
            lost_end = snd.lost_end()
            pipe = snd.pipe(lost_end)
            if cc.cwnd - pipe < mss:
                return
            hole = snd.next_hole(lost_end)
            if hole is not None:
                s, n = hole
                data_left = diff(snd.buf_end, s)
                if data_left <= 0:
                    if snd.fin_sent:
                        self._emit(FIN | ACK, s, now)
                        self._count_retransmit(0)
                    snd.high_rxt = (s + 1) & MASK
                    continue
                n = self._send_data(s, min(n, mss, data_left), now, rexmit=True)
                snd.high_rxt = (s + n) & MASK
                continue
            # rule 2: new data, if the receive window allows
            avail = snd.unsent()
            room = diff((snd.snd_una + snd.snd_wnd) & MASK, snd.snd_max)
            if snd.snd_nxt == snd.snd_max and avail > 0 and room > 0:
                n = min(mss, avail, room)
                if n < mss and n < avail:
                    return
                self._send_data(snd.snd_nxt, n, now, rexmit=False)
                continue
            if (snd.fin_queued and not snd.fin_sent and avail == 0 and room > 0
                    and snd.snd_nxt == snd.snd_max):
                self._emit(FIN | ACK, snd.snd_nxt, now)
                self.fin_bare = True
                snd.fin_sent = True
                snd.snd_nxt = snd.snd_max = (snd.snd_nxt + 1) & MASK
                self._probe_after_new_segment(now)
                return
            # rule 4, rescue retransmission (once per recovery): nothing new may be sent, so
            # resend the highest unSACKed segment; its SACK or ACK ends a tail without an RTO
            if not snd.rescued and (avail <= 0 or room <= 0):
                top = snd.buf_end if lt(snd.buf_end, snd.snd_max) else snd.snd_max
                if snd.sacked and not lt(snd.sacked[-1][1], top):
                    top = snd.sacked[-1][0]  # the tail itself is SACKed: below the last block
                n = min(mss, diff(top, smax(snd.high_rxt, snd.snd_una)))
                if n > 0:
                    snd.rescued = True
                    self._send_data((top - n) & MASK, n, now, rexmit=True)
                    self._count("tcp.rescue_retransmit")
            return

    def _on_rto(self, now: float) -> None:
        st = self.state
        snd = self.snd
        if st is State.SYN_SENT:
            if self._rst_resend:
                self._rst_resend = False  # a SYN repeated after RST does not use up a SYN retry
                self._send_syn(now)
                self._count_retransmit(0)
                self.timers.rto_at = now + self.opts.syn_rto_s * (1 << self.retries)
                return
            self.retries += 1
            if self.retries > self.opts.syn_retries:
                self._count("tcp.connect_timeout")
                self.fail(Reason.REFUSED if self.rst_seen else (self.soft_error or Reason.TIMED_OUT),
                           now, ev.CONNECT | ev.ERROR)
                return
            snd.rtt_seq = None
            self.timers.rto_at = now + self.opts.syn_rto_s * (1 << self.retries)
            self._count("tcp.syn_retransmit")
            self._send_syn(now)
            self._count_retransmit(0)
            return
        if st is State.SYN_RCVD:
            self.retries += 1
            if self.retries > self.cfg.synack_retries:
                self._count("tcp.synack_timeout")
                if self.passive:
                    self.drop(None, now)
                else:
                    self.fail(Reason.TIMED_OUT, now, ev.CONNECT | ev.ERROR)
                return
            snd.rtt_seq = None
            self.timers.rto_at = now + self.opts.syn_rto_s * (1 << self.retries)
            self._send_synack(now)
            self._count_retransmit(0)
            return
        if snd.snd_max == snd.snd_una:
            return
        self.retries += 1
        if self.retries > self.opts.data_retries:
            self._count("tcp.data_timeout")
            self.abort(now)
            self.error = self.error or Reason.TIMED_OUT
            self._notify(ev.CLOSE | ev.ERROR | ev.READ)
            return
        self._count("tcp.rto")
        self.timers.probe_at = None
        snd.undo = None  # no undo across a timeout
        snd.dupthresh = self.cfg.dupthresh  # a timeout: stop trusting the reordering estimate
        cc = snd.cc
        if snd.rto_streak == 0:  # a new loss episode (an ACK of new data came since the last RTO)
            cc.on_rto(now, snd.outstanding())
        else:
            cc.cwnd = snd.mss
        snd.on_timeout()
        snd.rto_streak += 1
        if self.ts_ok:
            # an ACK echoing a TSval older than this timeout's retransmission gives no sample
            # (B4); TLP and fast retransmits do not count: their span is about one RTT
            snd.rxt_ts = self._tsval(now)
        if snd.rto_streak >= 2:
            snd.clear_sack()  # the peer may have reneged (RFC 2018 section 8)
        snd.in_recovery = False
        snd.recover = snd.snd_max
        snd.high_rxt = snd.snd_una
        snd.dupacks = 0
        snd.snd_nxt = snd.snd_una
        self._trace("cwnd", now, cwnd=cc.cwnd, ssthresh=cc.ssthresh, event="rto")
        before = self.segs_out
        self.output(now)
        if self.segs_out == before and snd.snd_wnd == 0:
            # zero window with data outstanding: the retransmission doubles as a window probe
            self._retransmit_una(now)
        if self.timers.rto_at is None and snd.snd_max != snd.snd_una:
            self.timers.rto_at = now + snd.rto

    def _on_probe(self, now: float) -> None:
        """RFC 8985 TLP: a tail segment went unanswered for a PTO: send one segment (new data if
        the peer's window allows, else the last one again) so SACK recovery can start instead of
        an RTO."""
        snd = self.snd
        if (self.state not in TRANSMITTING or snd.in_recovery or snd.snd_max == snd.snd_una
                or lt(snd.snd_nxt, snd.snd_max) or self.tlp_sent):
            return
        self.tlp_sent = True
        self._count("tcp.tail_loss_probe")
        room = diff((snd.snd_una + snd.snd_wnd) & MASK, snd.snd_max)
        if snd.unsent() and room > 0:
            self._send_data(snd.snd_nxt, min(snd.mss, snd.unsent(), room), now, rexmit=False)
            self.timers.rto_at = now + snd.rto  # the probe restarts the RTO (RFC 8985 7.3)
            return
        data_end = snd.buf_end
        if lt(snd.snd_max, data_end):
            data_end = snd.snd_max  # the last segment sent, not queued data
        if (snd.fin_sent and snd.snd_max == ((data_end + 1) & MASK)
                and (data_end == snd.snd_una or self.fin_bare)):
            # the last segment sent was the FIN alone: probe with it (Linux's tail skb)
            self._emit(FIN | ACK, data_end, now)
            self._count_retransmit(0)
            self.timers.rto_at = now + snd.rto
            return
        n = min(snd.mss, diff(data_end, snd.snd_una))
        if n > 0:
            self._send_data((data_end - n) & MASK, n, now, rexmit=True)
        self.timers.rto_at = now + snd.rto
