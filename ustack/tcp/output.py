"""Connection's output: building and emitting segments (options, window, urgent pointer, the
ACK's sequence number), ACK, RST, SYN, SYN-ACK and challenge ACK, the sender loop `output` that
cuts new data, and arming the persist timer. A mixin of `Connection` (connection.py), which holds
the state; split from it by concern so each part of the TCB's behaviour can be read alone."""

from __future__ import annotations

import struct

from ..core.reasons import Reason
from ..wire.tcp import ACK, FIN, PSH, RST, SYN, URG
from .emit import build, build_gso, build_synack, sack_option, syn_options
from .seq import MASK, diff, gt, lt
from .state import TRANSMITTING, State

_TS_OPT = struct.Struct("!BBBBII")


class OutputMixin:
    """Segment sending for `Connection`; no state of its own."""

    __slots__ = ()

    def _emit(self, flags: int, seq: int, now: float, payload: bytes | bytearray | memoryview = b"",
              opts: bytes | None = None, gso: int = 0) -> Reason | None:
        """Build and send one segment; `gso` > 0: a super-segment of `gso`-byte segments whose
        payload view the device writes as it is (transmit offload)."""
        rcv = self.rcv
        if flags & SYN:
            window = min(rcv.free(), 0xFFFF)  # never scaled in SYNs (RFC 7323 2.2)
            if opts is None:
                opts = b""
        else:
            window = rcv.advertise()
            if opts is None:
                opts = b""
                if self.ts_ok:
                    opts = _TS_OPT.pack(1, 1, 8, 10, self._tsval(now), self.ts_recent)
                if self.sack_ok and flags & ACK and (rcv.ooo or self._dsack is not None):
                    limit = 3 if self.ts_ok else 4
                    if self._dsack is not None:
                        # RFC 2883: report the duplicate first; lets the sender undo and adapt
                        blocks = [self._dsack] + rcv.sack_blocks(limit - 1)
                        self._dsack = None
                    else:
                        blocks = rcv.sack_blocks(limit)
                    opts += sack_option(blocks)
        ack = rcv.rcv_nxt if flags & ACK else 0
        urg = 0
        if self.snd_up is not None and not flags & SYN:
            ahead = diff(self.snd_up, seq)
            if 0 < ahead <= 0xFFFF:  # the pointer fits this segment's field (RFC 6093 4)
                flags |= URG
                urg = ahead
        if flags & ACK:
            self._ack_sent(ack)
        if gso:
            pkt = build_gso(self.laddr, self.raddr, self.lport, self.rport, seq, ack, flags, window,
                            opts, payload, gso, self.v6)
            self.segs_out += pkt.segments
            return self.layer.output_gso(self, pkt, now)
        seg = build(self.laddr, self.raddr, self.lport, self.rport, seq, ack, flags, window, opts,
                    payload, urg)
        self.segs_out += 1
        return self.layer.output(self, seg, now)

    def _ack_sent(self, ack: int) -> None:
        """Bookkeeping for a segment acknowledging up to `ack` going out."""
        rcv = self.rcv
        if self.quickacks and rcv.unacked:  # an ACK of new data (Linux's tcp_dec_quickack_mode)
            self.quickacks -= 1
            if not self.quickacks:
                self._set_ack_thresholds()
        rcv.last_ack_sent = ack
        rcv.unacked = 0
        self.timers.delack_at = None

    def _ack_seq(self) -> int:
        """SEG.SEQ for a segment without data (ACK, RST): SND.MAX, not SND.NXT. After an RTO pulls
        SND.NXT back to SND.UNA (go-back-N), the peer's RCV.NXT is usually beyond it, and a
        segment below RCV.NXT is unacceptable (RFC 9293 3.10.7.4): the peer would drop our ACKs
        unread, and with both ends retransmitting, neither would learn anything (BSD sends
        snd_max here; Linux's tcp_acceptable_seq likewise). Kept inside the peer's window."""
        snd = self.snd
        top = snd.snd_max
        edge = (snd.snd_una + snd.snd_wnd) & MASK
        if gt(top, edge):
            top = edge
        return top if gt(top, snd.snd_nxt) else snd.snd_nxt

    def send_ack(self, now: float) -> None:
        """A bare ACK now (the layer sends the end-of-batch ACKs through this)."""
        self._emit(ACK, self._ack_seq(), now)

    def _send_rst(self, now: float) -> None:
        # with timestamps on, the RST carries them as Linux's active reset does (RFC 7323 allows it)
        opts = _TS_OPT.pack(1, 1, 8, 10, self._tsval(now), self.ts_recent) if self.ts_ok else b""
        self._emit(RST | ACK, self._ack_seq(), now, opts=opts)
        self._count("tcp.rst_out")

    def _send_syn(self, now: float) -> Reason | None:
        cfg = self.cfg
        ts = (self._tsval(now), 0) if cfg.timestamps else None
        opts = syn_options(self.our_mss, self.offer_wscale, cfg.sack, ts)
        return self._emit(SYN, self.iss, now, opts=opts)

    def _send_synack(self, now: float) -> None:
        rcv = self.rcv
        ts = (self._tsval(now), self.ts_recent) if self.ts_ok else None
        wscale = rcv.wscale if self._peer_wscale is not None and self.offer_wscale is not None else None
        # the one SYN-ACK builder, shared with the listener's SYN cookies
        seg = build_synack(self.laddr, self.raddr, self.lport, self.rport, self.iss, rcv.rcv_nxt,
                           rcv.free(), self.our_mss, wscale, self.sack_ok, ts)
        self._ack_sent(rcv.rcv_nxt)
        self.segs_out += 1
        self.layer.output(self, seg, now)

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 challenge ACK, limited per connection to a random budget each second (as
        Linux): no host-wide counter another party could drain or observe."""
        if now - self._chal_at >= 1.0:
            self._chal_at = now
            self._chal_windows += 1
            self._chal_left = self.layer.challenge_budget(self.key, self._chal_windows)
        if self._chal_left > 0:
            self._chal_left -= 1
            self._count("tcp.challenge_ack")
            self.send_ack(now)
        else:
            self._count("tcp.challenge_ack_suppressed")

    def output(self, now: float, extra: int = 0) -> None:
        """Send what the windows, Nagle and SWS avoidance allow (RFC 9293 3.8.6.2.1, RFC 6675)."""
        if self.state not in TRANSMITTING:
            return
        snd = self.snd
        cc = snd.cc
        if cc is None:
            return
        mss = snd.mss
        if snd.in_recovery and snd.sack_ok:
            self._sack_recovery_output(now)
            return
        nodelay = self.opts.nodelay
        gso = self.layer.gso_max_for(self.raddr)  # transmit offload: super-segments (0: off)
        while True:
            nxt = snd.snd_nxt
            rexmit = lt(nxt, snd.snd_max)
            if rexmit and snd.sacked:
                # skip SACKed data, but a hole shorter than a segment goes out as a whole
                # segment, SACKed bytes after it included: Linux's unit is the segment (a SACK
                # of part of one is not credited), and a receiver SACKing odd bytes cannot make
                # us send runts
                nxt = snd.skip_sacked(nxt)[0]
                snd.snd_nxt = nxt
                rexmit = lt(nxt, snd.snd_max)
            buf_end = snd.buf_end
            avail = diff(buf_end, nxt)
            flight = diff(nxt, snd.snd_una)
            wnd = snd.snd_wnd
            cw = cc.cwnd + extra
            usable = (wnd if wnd < cw else cw) - flight
            if avail > 0:
                lim = mss
                if gso and not rexmit and avail > mss and usable > mss:
                    lim = self._tso_limit(gso, cw, flight)
                n = lim if lim < avail else avail
                if n > usable:
                    n = usable
                if n > mss:
                    n -= n % mss  # whole segments; a shorter tail goes alone, by the rules below
                if n <= 0:
                    if cw <= wnd and not rexmit:
                        snd.note_sent(cc.cwnd)  # held back by cwnd
                    if flight == 0 and wnd < avail:
                        self._arm_persist(now)
                    return
                if n < mss and not rexmit:
                    # Nagle (RFC 896), or Minshall's variant (Linux): hold the tail only while
                    # an earlier small segment is unacknowledged, not any data at all
                    idle = flight == 0 or (self.cfg.nagle_minshall and not snd.small_unacked())
                    if not (n == avail and (nodelay or idle or snd.fin_queued)) and not (
                            snd.max_snd_wnd and n >= snd.max_snd_wnd // 2):
                        if flight == 0:
                            self._arm_persist(now)  # SWS override timer
                        return
                    snd.snd_sml = (nxt + n) & MASK
                self._send_data(nxt, n, now, rexmit)
                continue
            if snd.fin_queued and avail == 0 and (not snd.fin_sent or rexmit):
                if not rexmit and not lt(nxt, (snd.snd_una + wnd) & MASK):
                    # the FIN takes a sequence number of the peer's window: into a zero window
                    # it waits for a window update (persist probes ask for one), like data
                    if flight == 0:
                        self._arm_persist(now)
                    return
                self._emit(FIN | ACK, nxt, now)
                if rexmit:
                    self._count_retransmit(0)
                snd.fin_sent = True
                snd.snd_nxt = (nxt + 1) & MASK
                if gt(snd.snd_nxt, snd.snd_max):
                    snd.snd_max = snd.snd_nxt
                if not rexmit:
                    self.fin_bare = True
                    self._probe_after_new_segment(now)
                if self.state is State.CLOSE_WAIT:
                    self._set_state(State.LAST_ACK, now)
                if self.timers.rto_at is None:
                    self.timers.rto_at = now + snd.rto
            return

    def _tso_limit(self, gso: int, cwnd: int, flight: int) -> int:
        """Bytes of the next super-segment (a multiple of the MSS): Linux's TSO autosizing
        (tcp_tso_autosize: ~1 ms at the pacing rate, 2x cwnd/SRTT in slow start below half of
        ssthresh, else 1.2x, plus a 64 KB budget halved per 512 us of minimum RTT; at most `gso`,
        at least 2 segments) and never more than half the congestion window in one burst
        (tcp_cwnd_test). Only plain segments: with SACK blocks to send or in urgent mode, one
        MSS (Linux disables TSO in urgent mode)."""
        snd = self.snd
        mss = snd.mss
        if self.snd_up is not None or (self.sack_ok and (self.rcv.ooo or self._dsack is not None)):
            return mss
        srtt, min_rtt, cc = snd.srtt, snd.min_rtt, snd.cc
        if srtt is None or min_rtt is None or srtt <= 0:
            nbytes = gso  # no RTT yet: Linux's pacing rate is still unlimited
        else:
            window = cc.cwnd if cc.cwnd > flight else flight
            nbytes = int(window * (2.0 if cc.cwnd < cc.ssthresh // 2 else 1.2) / srtt) >> 10
            r = int(min_rtt * 1e6) >> 9
            if r < 32:
                nbytes += gso >> r
        segs = (nbytes if nbytes < gso else gso) // mss
        if segs < 2:
            segs = 2
        half = cwnd // mss // 2
        if half < segs:
            segs = half if half > 1 else 1
        return segs * mss

    def _send_data(self, seq: int, n: int, now: float, rexmit: bool) -> int:
        """Send n bytes from `seq` (fewer if SACK blocks take option space); returns bytes sent.
        More than one MSS goes as a super-segment (transmit offload, `output`)."""
        snd = self.snd
        if self.sack_ok and self.rcv.ooo:
            room = snd.mss - 4 - 8 * min(len(self.rcv.ooo), 3 if self.ts_ok else 4)
            if n > room:
                n = room
        off = diff(seq, snd.buf_seq) + snd.buf_off
        end = (seq + n) & MASK
        buf_end = snd.buf_end
        flags = ACK
        if end == buf_end:
            flags |= PSH
            if snd.fin_queued and not rexmit and not snd.fin_sent and lt(end, snd.snd_una + snd.snd_wnd + 1):
                flags |= FIN
                self.fin_bare = False
        whole = memoryview(snd.buf)
        part = whole[off:off + n]
        if n > snd.mss:  # the device writes the view itself (sender.py: acknowledged bytes
            try:         # it still views are cut off later)
                self._emit(flags, seq, now, part, gso=snd.mss)
            finally:
                whole.release()
        else:
            try:
                self._emit(flags, seq, now, part)  # build() copies once, straight from the buffer
            finally:
                part.release()  # the send buffer must not stay exported: it is resized on ACKs
                whole.release()
        snd.last_data_at = now
        if snd.in_recovery:
            snd.prr_out += n
        if rexmit:
            snd.retransmits += 1
            snd.undo_retrans += 1
            self._count_retransmit(n)
            if seq == snd.snd_una:
                snd.rxt_mark = snd.snd_max
            if snd.in_recovery and len(snd.rxt_log) < snd.sack_max:
                snd.rxt_log.append((seq, (seq + n) & MASK))
            if snd.rtt_seq is not None and not self.ts_ok:
                snd.rtt_seq = None  # Karn: no sample from retransmitted data
        elif snd.rtt_seq is None and not self.ts_ok:
            snd.rtt_seq, snd.rtt_at = seq, now
        if flags & FIN:
            snd.fin_sent = True
            end = (end + 1) & MASK
        if gt(end, snd.snd_nxt):
            snd.snd_nxt = end
        if gt(end, snd.snd_max):
            snd.snd_max = end
        if self.timers.rto_at is None:
            self.timers.rto_at = now + snd.rto
        if not rexmit:
            if snd.cc is not None:
                snd.note_sent(snd.cc.cwnd)
            self._probe_after_new_segment(now)
        return n

    def _arm_persist(self, now: float) -> None:
        if self.timers.persist_at is None and self.timers.rto_at is None:
            iv = max(self.cfg.persist_min_s, self.snd.rto) * (1 << min(self.persist_backoff, 16))
            self.timers.persist_at = now + min(iv, self.cfg.persist_max_s)
