"""Connection's input: the one segment-arrival pipeline in RFC 9293 3.10.7 order (the
established-state fast path as a guard in front of it, then sequence and PAWS checks, RST, SYN,
ACK, text and FIN) and its SYN-SENT handling. A mixin of `Connection` (connection.py), which holds
the state; split from it by concern so each part of the TCB's behaviour can be read alone."""

from __future__ import annotations

from ..core import events as ev
from ..core.reasons import Reason
from ..wire.tcp import ACK, FIN, RST, SYN, URG, TcpSegment
from .seq import MASK, diff, ge, gt, le, lt
from .state import RECEIVING, State

_PAWS_IDLE_S = 24 * 24 * 3600.0  # RFC 7323 5.5: TS.Recent is invalid after 24 days idle


class InputMixin:
    """Segment arrival (RFC 9293 3.10.7) for `Connection`; no state of its own."""

    __slots__ = ()

    def on_segment(self, seg: TcpSegment, now: float, fast: bool = True) -> None:
        """Process one segment (RFC 9293 3.10.7.4 "SEGMENT ARRIVES"). Never raises.
        `fast=False`: on_data_fast already declined this segment (TcpLayer tried it)."""
        if fast and seg.flags & 0x37 == ACK:
            ts = seg.options.ts
            if self.on_data_fast(seg.seq, seg.ack, seg.window, None if ts is None else ts[0],
                                 seg.payload, now):
                return
        self.segs_in += 1
        self._slow_path(seg, now)

    def on_data_fast(self, seq: int, ack: int, window: int, tsval: int | None,
                     payload: bytes | memoryview, now: float) -> bool:
        """The fast path (header prediction): ESTABLISHED, in-order data, the ACK and window
        unchanged, nothing out of order (no data, no FIN behind a hole); the caller checked that
        of ACK/SYN/FIN/RST/URG only ACK is set. `tsval` is the segment's TSval (None: no
        timestamp option). Also called by
        TcpLayer straight from the header, without a TcpSegment. Returns False, having changed
        nothing, when the segment needs the full processing (`on_segment`)."""
        if self.state is not State.ESTABLISHED:
            return False
        rcv = self.rcv
        snd = self.snd
        n = len(payload)
        # a FIN recorded out of order (rcv.fin_seq) counts as out-of-order data: only _on_text
        # delivers it once the hole before it is filled
        memory = rcv.memory  # near its high mark: _on_text decides (room_for_in_order)
        if not (n and seq == rcv.rcv_nxt and ack == snd.snd_una and not rcv.ooo and not rcv.shut
                and rcv.fin_seq is None and memory.used + 4096 < memory.high
                and n <= ((rcv.adv_right - seq) & MASK) and (window << snd.wscale) == snd.snd_wnd):
            return False
        if self.ts_ok:
            if tsval is None:
                return False
            recent = self.ts_recent
            if tsval != recent and (tsval - recent) & MASK >= 0x80000000:  # lt(tsval, recent)
                return False
            if seq == rcv.last_ack_sent:
                self.ts_recent = tsval
                self.ts_recent_at = now
        self.segs_in += 1
        snd.snd_wl1 = seq
        self.last_rx_at = now
        self.keepalive_sent = 0
        rcv.buf.append(payload)
        rcv.rcv_nxt = (seq + n) & MASK
        rcv.delivered += n
        self.last_data_at = now
        unacked = rcv.unacked = rcv.unacked + n
        if unacked >= self.ack_every:
            # ACK due: send it at the end of this receive batch (layer.poll), one ACK for
            # the whole batch (like GRO), unless the stretch limit is reached
            if unacked >= self.ack_stretch:
                self.send_ack(now)
            elif not self.ack_queued:
                self.ack_queued = True
                self.layer.ack_soon(self)
        elif self.timers.delack_at is None:
            self.timers.delack_at = now + self.cfg.delack_s
            self.layer.touch(self)
        sock = self.sock
        if sock is not None and sock.watcher is not None:
            sock.notify(ev.READ)
        return True

    def _slow_path(self, seg: TcpSegment, now: float) -> None:
        st = self.state
        if st is State.SYN_SENT:
            self._on_syn_sent(seg, now)
            self.layer.touch(self)
            return
        if st is State.CLOSED:
            return
        flags = seg.flags
        seq = seg.seq
        rcv = self.rcv
        self.last_rx_at = now
        self.keepalive_sent = 0
        seg_len = len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)

        # TIME-WAIT: a retransmitted FIN restarts the 2*MSL timer and is ACKed
        # PAWS (RFC 7323 5.3)
        ts = seg.options.ts
        if self.ts_ok and ts is not None and not flags & RST and (seg_len or seq != rcv.rcv_nxt):
            # pure ACKs at RCV.NXT carry no data to protect: a reordered ACK is not a duplicate
            if (lt(ts[0], self.ts_recent) and now - self.ts_recent_at < _PAWS_IDLE_S
                    and not self._paws_reordered(ts[0])):
                self._count("tcp.paws_drop")
                self.send_ack(now)
                self.layer.touch(self)
                return

        # simultaneous open: the peer's SYN-ACK repeats its SYN; take it as the ACK it carries
        if (st is State.SYN_RCVD and not self.passive and flags & (SYN | ACK) == SYN | ACK
                and seq == rcv.irs):
            seq = (seq + 1) & MASK
            flags &= ~SYN
            seg = seg._replace(seq=seq, flags=flags)
            seg_len -= 1
        # 1. sequence number check
        if not rcv.acceptable(seq, seg_len):
            zero_wnd_ok = rcv.rcv_wnd() == 0 and seq == rcv.rcv_nxt
            if not zero_wnd_ok:
                if st is State.SYN_RCVD and flags & SYN and not flags & ACK and seq == rcv.irs:
                    self._send_synack(now)  # our SYN-ACK was lost: the peer repeats its SYN
                    self._count("tcp.syn_retransmitted_by_peer")
                    self._count_retransmit(0)
                elif not flags & RST:
                    self._count("tcp.out_of_window")
                    if seg.payload and self.sack_ok and lt(seq, rcv.rcv_nxt):
                        end = (seq + len(seg.payload)) & MASK
                        self._dsack = (seq, end if le(end, rcv.rcv_nxt) else rcv.rcv_nxt)
                    if st is State.TIME_WAIT and flags & FIN:
                        self.timers.time_wait_at = now + 2 * self.cfg.msl_s
                    if seg.payload or flags & FIN or now - self._oow_ack_at >= 0.5:
                        # pure ACKs out of window are answered at most twice a second: two
                        # confused ends must not ACK each other forever (like Linux)
                        self._oow_ack_at = now
                        self.send_ack(now)
                    else:
                        self._count("tcp.out_of_window_ack_suppressed")
                self.layer.touch(self)
                return
            # zero window: only the ACK (and RST) of a segment at RCV.NXT are processed
            seg = seg._replace(payload=b"", flags=flags & ~FIN)
            flags = seg.flags
            self._count("tcp.zero_window_drop")
            self.rcv.unacked = 1 << 30  # make sure an ACK goes out

        # 2. RST (RFC 5961 3.2)
        if flags & RST:
            self._on_rst(seg, now)
            self.layer.touch(self)
            return

        # 4. SYN in a synchronized state (RFC 5961 4.2); SYN-RECEIVED from LISTEN: back to LISTEN
        if flags & SYN:
            if st is State.SYN_RCVD and self.passive:
                self._count("tcp.syn_in_syn_rcvd")
                self.drop(None, now)
                return
            self._challenge_ack(now)
            self.layer.touch(self)
            return

        # 5. ACK
        if not flags & ACK:
            self.layer.touch(self)
            return
        # timestamps: RFC 7323 4.3 TS.Recent update, by an acceptable segment only: one whose ACK
        # is rejected below is dropped and must not move TS.Recent (Linux checks the ACK first)
        if (self.ts_ok and ts is not None and le(seq, rcv.last_ack_sent) and ge(ts[0], self.ts_recent)
                and self._ack_acceptable(seg.ack)):
            self.ts_recent = ts[0]
            self.ts_recent_at = now
        if not self._on_ack(seg, now):
            self.layer.touch(self)
            return
        if self.state is State.CLOSED:
            return

        # 6. URG (RFC 9293 3.10.7.4): keep the furthest urgent pointer seen
        if flags & URG and seg.urg and self.state in RECEIVING:
            up = (seg.seq + seg.urg) & MASK
            if self.rcv_up is None or gt(up, self.rcv_up):
                self.rcv_up = up
        # 7. segment text, 8. FIN
        if seg.payload or flags & FIN:
            self._on_text(seg, now)
        if rcv.unacked >= (1 << 30):
            self.send_ack(now)
        self.layer.touch(self)

    def _paws_reordered(self, tsval: int) -> bool:
        """PAWS allowance for reordering: is `tsval` (older than TS.Recent) at most one RTO older?

        TS.Recent moves up with any segment at or below Last.ACK.sent, e.g. a retransmission that
        fills a hole, or an in-order segment that overtook others; segments sent just before it
        and still in flight then carry older TSvals although they are new data or fresh ACKs.
        Dropping them costs a retransmission each (with 10 % loss and jitter, often several in a
        row: a data_retries abort). An old duplicate of a wrapped sequence space is older by
        at least the time the peer took to send 2**31 bytes, far more than an RTO below ~10 GB/s,
        and one of an earlier incarnation is older than the SYN (Linux's tcp_disordered_ack
        allows one RTO for reordered pure ACKs; this extends it to every segment). The
        RTO (not backed off) is converted into the peer's ticks at its observed clock rate
        (1 kHz, the usual rate, for the first second), so a coarse clock gets no more slack in
        time than a fine one (RFC 7323 5.4 allows 1 ms to 1 s per tick)."""
        snd = self.snd
        cfg = self.cfg
        rto = cfg.rto_initial_s if snd.srtt is None else snd.srtt + max(0.001, 4 * snd.rttvar)
        rto = min(max(rto, cfg.rto_min_s), cfg.rto_max_s)
        elapsed = self.ts_recent_at - self.ts_first_at
        rate = diff(self.ts_recent, self.ts_first) / elapsed if elapsed >= 1.0 else 1000.0
        return diff(self.ts_recent, tsval) <= rto * rate

    # ---------------------------------------------------------------- SYN-SENT
    def _on_syn_sent(self, seg: TcpSegment, now: float) -> None:
        flags = seg.flags
        snd = self.snd
        if flags & ACK:
            if le(seg.ack, self.iss) or gt(seg.ack, snd.snd_max):
                if not flags & RST:
                    self.layer.send_rst_for(self.laddr, self.raddr, seg, now)
                self._count("tcp.bad_ack_syn_sent")
                return
        if flags & RST:
            if not flags & ACK:
                return  # RFC 9293: an RST without an acceptable ACK is dropped in SYN-SENT
            self.rst_seen = True
            if self.rst_retries < self.opts.syn_rst_retries:
                # Windows retries the SYN after a RST before reporting refusal (item 25)
                self.rst_retries += 1
                self._rst_resend = True
                self.timers.rto_at = now + self.opts.syn_rst_retry_s
                self._count("tcp.syn_rst_retry")
                return
            self._count("tcp.refused")
            self.fail(Reason.REFUSED, now, ev.CONNECT | ev.ERROR)
            return
        if not flags & SYN:
            return
        rcv = self.rcv
        rcv.start(seg.seq)
        self._take_syn_options(seg, now)
        if flags & ACK:
            if self.ts_ok and seg.options.ts and seg.options.ts[1]:
                snd.rtt_sample((int(now * 1000) + self.ts_offset - seg.options.ts[1]) % (1 << 32) / 1000)
            elif snd.rtt_seq is not None and self.retries == 0:
                snd.rtt_sample(now - snd.rtt_at)
            snd.rtt_seq = None
            snd.ack_data(seg.ack)
            snd.snd_wnd = seg.window  # window in a SYN is never scaled
            snd.max_snd_wnd = seg.window
            snd.snd_wl1, snd.snd_wl2 = seg.seq, seg.ack
            self._synchronized_setup()
            self.timers.rto_at = None
            self.retries = 0
            self._set_state(State.ESTABLISHED, now)
            self._established(now)
            before = self.segs_out
            if seg.payload or flags & FIN:
                self._on_text(seg._replace(seq=(seg.seq + 1) & MASK, flags=seg.flags & ~SYN), now)
            if self.state is not State.CLOSED:
                if self.segs_out == before:
                    self.send_ack(now)
                self.output(now)
        else:
            # simultaneous open (RFC 9293 figure 7)
            self._count("tcp.simultaneous_open")
            snd.snd_wnd = seg.window
            snd.snd_wl1 = seg.seq
            self._set_state(State.SYN_RCVD, now)
            self.timers.rto_at = now + self.opts.syn_rto_s
            self.retries = 0
            self._send_synack(now)

    def _established(self, now: float) -> None:
        """The handshake completed (either side)."""
        self.last_data_at = now
        if self.opts.keepalive:
            self.timers.keepalive_at = now + self.opts.keepalive_idle_s
        if self.listener is not None:
            self.listener.on_established(self, now)
        else:
            if self.sock is not None:
                self.sock.connected_once = True
            self._notify(ev.CONNECT | ev.WRITE)
        self._trace("cwnd", now, cwnd=self.snd.cc.cwnd, ssthresh=self.snd.cc.ssthresh)

    # ---------------------------------------------------------------- RST
    def _on_rst(self, seg: TcpSegment, now: float) -> None:
        st = self.state
        if seg.seq != self.rcv.rcv_nxt:
            self._challenge_ack(now)  # in window but not exact: RFC 5961 3.2
            return
        self._count("tcp.rst_in")
        if st is State.SYN_RCVD:
            if self.passive:
                self.drop(None, now)  # back to LISTEN: the listener simply forgets it
            else:
                self.fail(Reason.REFUSED, now, ev.CONNECT | ev.ERROR)
        elif st is State.CLOSE_WAIT and self.sent_after_peer_fin:
            self.fail(Reason.ABORTED, now, ev.CLOSE | ev.ERROR | ev.READ)
        elif st in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT):
            self.fail(Reason.RESET, now, ev.CLOSE | ev.ERROR | ev.READ)
        elif st is State.TIME_WAIT and self.cfg.rfc1337:
            self._count("tcp.rst_time_wait_ignored")  # RFC 1337 TIME-WAIT assassination hazard
        else:  # CLOSING, LAST-ACK, TIME-WAIT without RFC 1337
            self.drop(None, now)

    # ---------------------------------------------------------------- ACK
    def _ack_acceptable(self, ack: int) -> bool:
        """RFC 5961 5.2 (synchronized states): SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT."""
        snd = self.snd
        return not (gt(ack, snd.snd_max) or lt(ack, (snd.snd_una - max(snd.max_snd_wnd, 1)) & MASK))

    def _on_ack(self, seg: TcpSegment, now: float) -> bool:
        """Step 5. Returns False when the segment must be dropped."""
        snd = self.snd
        ack = seg.ack
        st = self.state
        if st is State.SYN_RCVD:
            if lt(snd.snd_una, ack) and le(ack, snd.snd_max):
                self._synchronized_setup()
                snd.snd_wl1 = (seg.seq - 1) & MASK  # force the window update below
                self.timers.rto_at = None
                if snd.rtt_seq is not None and self.retries == 0:
                    snd.rtt_sample(now - snd.rtt_at)
                snd.rtt_seq = None
                self.retries = 0
                fin_queued = snd.fin_queued
                self._set_state(State.FIN_WAIT_1 if fin_queued else State.ESTABLISHED, now)
                snd.ack_data(ack)
                snd.update_window(seg.seq, ack, seg.window)
                self._established(now)
                if self.state is State.CLOSED:
                    return False
                if fin_queued:
                    self.output(now)
                return True
            self.layer.send_rst_for(self.laddr, self.raddr, seg, now)
            return False
        if not self._ack_acceptable(ack):
            self._count("tcp.bad_ack")
            if self.cfg.answer_ack_of_unsent or not gt(ack, snd.snd_max):
                self._challenge_ack(now)
            return False
        if self.ts_ok and seg.options.ts is not None:
            tsecr = seg.options.ts[1]
        else:
            tsecr = 0
        sack = seg.options.sack
        if sack and snd.sack_ok and snd.retransmits:
            left, right = sack[0]
            if le(right, ack) or (len(sack) > 1 and ge(left, sack[1][0]) and le(right, sack[1][1])):
                self._on_dsack(now)
        if lt(snd.snd_una, ack):
            self._on_new_ack(seg, ack, tsecr, now)
            if self.state is State.CLOSED:
                return False
        else:
            sacked_before = snd.sacked_total
            new_sack = snd.add_sack(seg.options.sack) if seg.options.sack and snd.sack_ok else False
            changed = snd.update_window(seg.seq, ack, seg.window)
            if snd.snd_wnd == 0:
                self.retries = 0  # the peer is alive, only its window is closed (RFC 9293 3.8.6.1)
                self.persist_unanswered = 0  # an answered zero-window probe never aborts
            if ack == snd.snd_una and snd.snd_max != snd.snd_una and (
                    new_sack or (not seg.payload and not seg.flags & FIN and not changed)):
                # RFC 6675 counts ACKs with new SACK information even when the window moved
                self._on_dupack(now, snd.sacked_total - sacked_before)
            elif changed:
                self._on_window_change(now)
            elif new_sack and snd.in_recovery:
                self._prr(snd.sacked_total - sacked_before, False)
                self.output(now)
        # state-specific ACK handling
        st = self.state
        if snd.fin_acked():
            if st is State.FIN_WAIT_1:
                self._set_state(State.FIN_WAIT_2, now)
                if self.orphan:
                    self.timers.deadline_at = now + self.cfg.fin_wait2_s
            elif st is State.CLOSING:
                self._set_state(State.TIME_WAIT, now)
            elif st is State.LAST_ACK:
                self.drop(None, now)
                return False
        return True

    def _on_new_ack(self, seg: TcpSegment, ack: int, tsecr: int, now: float) -> None:
        snd = self.snd
        cc = snd.cc
        flight_before = snd.outstanding()
        # RTT sample: timestamps (RFC 7323 4.1) or the one timed segment (Karn)
        rtt = None
        rxt_ts = snd.rxt_ts
        if tsecr:
            if rxt_ts is not None and lt(tsecr, rxt_ts):
                # the echo predates our latest RTO retransmission (duplicates do not move the peer's
                # TS.Recent): the sample would span the backoff (Karn's spirit, Eifel RFC 3522)
                if ack == snd.snd_max:
                    snd.rxt_ts = None
            else:
                snd.rxt_ts = None  # echoes the retransmission or later: genuine from here on
                rtt = ((int(now * 1000) + self.ts_offset - tsecr) & MASK) / 1000.0
                if rtt > 60:
                    rtt = None
        elif snd.rtt_seq is not None and gt(ack, snd.rtt_seq):
            rtt = now - snd.rtt_at
            snd.rtt_seq = None
        # RFC 6298 (note after 5.7), Karn: only a valid sample collapses the backed-off RTO
        if rtt is not None:
            snd.rtt_sample(rtt)
        snd.rto_streak = 0
        sacked_before = snd.sacked_total
        if seg.options.sack and snd.sack_ok:
            snd.add_sack(seg.options.sack)
        acked = snd.ack_data(ack)
        # bytes this ACK delivered: newly SACKed plus newly acknowledged but not SACKed before
        # (Linux's acked_sacked); bytes SACKed earlier already reached the peer
        delivered = acked + snd.sacked_total - sacked_before
        if not snd.sack_ok and snd.dupacks:
            # without SACK each duplicate ACK stood for one segment delivered (Linux's Reno
            # SACK emulation): those were counted when they arrived, at least one segment is new
            delivered = max(acked - snd.dupacks * snd.mss, min(acked, snd.mss))
        # the retransmission of the old SND.UNA that rxt_mark dates has arrived: later SACKs say
        # nothing about retransmissions of the holes above it
        snd.rxt_mark = None
        snd.update_window(seg.seq, ack, seg.window)
        self.retries = 0
        self.persist_backoff = 0
        self.persist_unanswered = 0
        self.tlp_sent = False
        snd.dupacks = 0
        if snd.in_recovery:
            if snd.sack_ok and lt(ack, snd.recover):
                self._check_lost_retransmission()
            if ge(ack, snd.recover):
                snd.in_recovery = False
                if snd.sack_ok:
                    cc.on_recovery_exit(now)
                else:  # RFC 6582 3.2 (3) full acknowledgment
                    cc.cwnd = min(cc.ssthresh, max(snd.outstanding(), snd.mss) + snd.mss)
                self._trace("cwnd", now, cwnd=cc.cwnd, ssthresh=cc.ssthresh, event="recovered")
            elif not snd.sack_ok:
                # RFC 6582 partial acknowledgment: retransmit the next hole, deflate the window
                self._retransmit_una(now)
                cc.cwnd = max(cc.cwnd - acked + snd.mss, snd.mss)
            else:
                self._prr(delivered, True)
        else:
            # grow only while the window is what limits us (RFC 7661)
            if cc is not None and snd.cwnd_limited(cc.cwnd, cc.in_slow_start()):
                cc.on_ack(delivered, now, rtt, flight_before)
                if self.on_trace is not None:
                    self.on_trace("cwnd", now, conn=self, cwnd=cc.cwnd, ssthresh=cc.ssthresh)
        # RFC 6298 5.2/5.3: stop the timer when all is acked, else restart it
        if snd.snd_max != snd.snd_una:
            self.timers.rto_at = now + snd.rto
            if not snd.in_recovery and snd.srtt is not None and self.cfg.tail_loss_probe:
                self._arm_probe(now)
        else:
            self.timers.rto_at = self.timers.probe_at = None
        if self.timers.persist_at is not None and snd.snd_wnd:
            self.timers.persist_at = None
        if self.sock is not None and acked:
            self._notify(ev.WRITE)
        self.output(now)

    def _on_window_change(self, now: float) -> None:
        snd = self.snd
        if snd.snd_wnd and self.timers.persist_at is not None:
            self.timers.persist_at = None
            self.persist_backoff = 0
        self.output(now)

    # ---------------------------------------------------------------- text and FIN
    def _on_text(self, seg: TcpSegment, now: float) -> None:
        rcv = self.rcv
        st = self.state
        flags = seg.flags
        payload = seg.payload
        seq = seg.seq
        fin = flags & FIN
        if st not in RECEIVING:
            if fin and st is State.TIME_WAIT:
                self.timers.time_wait_at = now + 2 * self.cfg.msl_s
                self.send_ack(now)
            return  # CLOSE-WAIT, CLOSING, LAST-ACK: the peer already sent its FIN
        # trim to the window (RFC 9293 3.10.7.4 first check, "trimmed")
        nxt = rcv.rcv_nxt
        skip = diff(nxt, seq)
        if skip > 0:
            if payload and self.sack_ok:
                self._dsack = (seq, (seq + min(skip, len(payload))) & MASK)
            if skip >= len(payload):
                if fin and skip == len(payload):
                    payload = b""
                else:
                    payload, fin = b"", 0
            else:
                payload = payload[skip:]
            seq = nxt
        room = diff(rcv.adv_right, seq)
        if len(payload) > room:
            payload = payload[:max(room, 0)]
            fin = 0
            self._count("tcp.beyond_window_trimmed")  # past the window we offered (maybe clamped)
        n = len(payload)
        if n and (self.orphan or rcv.shut and (self.cfg.rst_after_shutdown_rd
                                                or self.state is not State.ESTABLISHED)):
            # RFC 1122 4.2.2.13: data nobody will read (the application closed, or on Windows
            # shut down receiving; on Linux shut down both ways) resets the connection
            self._count("tcp.data_after_close")
            self.abort(now, Reason.ABORTED)
            self._notify(ev.CLOSE | ev.ERROR)
            return
        if seq == nxt:
            if n and not rcv.room_for_in_order(n):
                self._count("tcp.rcv_mem_drop")  # the stack's memory budget is at its high mark
                return
            if n:
                rcv.buf.append(payload)
                rcv.rcv_nxt = (nxt + n) & MASK
                rcv.delivered += n
                self.last_data_at = now
                rcv.unacked += n
                hole_filled = False
                if rcv.ooo:
                    rcv.pull_ooo()
                    hole_filled = True
                if rcv.fin_seq is not None and rcv.fin_seq == rcv.rcv_nxt:
                    fin = FIN
                if not fin:
                    if hole_filled or rcv.unacked >= self.ack_every:
                        self.send_ack(now)
                    elif self.timers.delack_at is None:
                        self.timers.delack_at = now + self.cfg.delack_s
                self._notify(ev.READ)
            if fin:
                self._on_fin(now)
        else:
            # out of order: queue and send an immediate duplicate ACK with SACK (RFC 5681 4.2)
            if n:
                dropped = rcv.add_ooo(seq, payload)
                if dropped is not None:
                    self._count(dropped)  # tcp.ooo_drop, tcp.ooo_mem_drop, tcp.ooo_mem_pressure
            if fin:
                rcv.fin_seq = (seq + n) & MASK
            self._count("tcp.ooo_in")
            self.send_ack(now)

    def _on_fin(self, now: float) -> None:
        rcv = self.rcv
        rcv.rcv_nxt = (rcv.rcv_nxt + 1) & MASK
        rcv.eof = True
        rcv.fin_seq = None
        st = self.state
        if st is State.ESTABLISHED:
            self._set_state(State.CLOSE_WAIT, now)
        elif st is State.FIN_WAIT_1:
            self._set_state(State.TIME_WAIT if self.snd.fin_acked() else State.CLOSING, now)
        elif st is State.FIN_WAIT_2:
            self._set_state(State.TIME_WAIT, now)
        self.send_ack(now)
        self._notify(ev.READ | ev.CLOSE)
