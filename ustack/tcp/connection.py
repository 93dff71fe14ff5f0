"""One TCP connection: state, the single input pipeline in RFC 9293 3.10.7 order, user calls,
timers, and one pending error `Reason`. Sending and receiving bookkeeping live in Sender and
Receiver; this module decides what happens and emits segments through the layer."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core import events as ev
from ..core.reasons import Reason
from ..wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TcpSegment
from . import cc as ccmod
from .emit import build, sack_option, syn_options
from .pmtu import PMTU_EXPIRES_S, PMTU_MIN
from .receiver import Receiver
from .sender import Sender
from .seq import MASK, diff, ge, gt, in_window, le, lt, smax
from .state import RECEIVING, State
from .timers import Timers

if TYPE_CHECKING:
    from .config import TcpConfig
    from .layer import TcpLayer
    from .socket import TcpSocket, TcpSockOpts

_PAWS_IDLE_S = 24 * 24 * 3600.0  # RFC 7323 5.5: TS.Recent is invalid after 24 days idle
WCDELACK_S = 0.2  # RFC 8985 WCDelAckT: the longest a peer may delay an ACK (Linux: 200 ms)
_TS_OPT = struct.Struct("!BBBBII")
_SENDING_STATES = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING,
                             State.LAST_ACK})


class Connection:
    """A TCB (RFC 9293 3.3.1). Never raises on peer input; misuse is checked by TcpSocket."""

    # Every attribute a Connection has (set in __init__): no per-instance dict, about 1.5 KB
    # less per connection (docs/benchmarks.md, "Connections"). A new attribute goes here too.
    __slots__ = (
        "layer", "cfg", "opts", "laddr", "lport", "raddr", "rport", "key", "state", "passive", "iss",
        "snd", "rcv", "timers", "error", "soft_error", "sock", "binding", "listener", "on_trace",
        "heap_at", "our_mss", "df", "peer_mss", "ts_ok", "ts_offset", "ts_recent", "ts_recent_at",
        "ts_first", "ts_first_at", "sack_ok", "offer_wscale", "_peer_wscale", "retries", "rst_retries",
        "rst_seen", "_rst_resend", "orphan", "sent_after_peer_fin", "last_rx_at", "keepalive_sent",
        "persist_backoff", "persist_unanswered", "segs_in", "ack_every", "ack_stretch", "quickacks",
        "tlp_sent", "ack_queued", "_oow_ack_at", "_chal_at", "_chal_left", "_chal_windows", "_dsack",
        "segs_out", "last_data_at", "fin_bare", "snd_up", "rcv_up")

    def __init__(self, layer: TcpLayer, laddr: int, lport: int, raddr: int, rport: int,
                 opts: TcpSockOpts, now: float, *, passive: bool, iss: int | None = None) -> None:
        cfg: TcpConfig = layer.config
        self.layer = layer
        self.cfg = cfg
        self.opts = opts
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport
        self.key = (laddr, lport, raddr, rport)
        self.state = State.CLOSED
        self.passive = passive
        self.iss = layer.isn.isn(laddr, lport, raddr, rport, now) if iss is None else iss
        self.snd = Sender(self.iss, opts.sndbuf, cfg.rto_initial_s, cfg.rto_min_s, cfg.rto_max_s,
                          cfg.dupthresh, cfg.sack_max_blocks, layer.count,
                          rto_min_on_variance=cfg.rto_min_on_variance)
        self.rcv = Receiver(opts.rcvbuf, cfg.ooo_max_segments, layer.memory,
                            cfg.pressure_window_segments)
        self.timers = Timers()
        self.error: Reason | None = None
        self.soft_error: Reason | None = None
        self.sock: TcpSocket | None = None
        self.binding: Any = None  # the port claim, handed over when the socket closes first
        self.listener: Any = None  # the Listener while not yet accepted
        # trace hook: on_trace(kind, now, conn=self, **fields); kinds "state" (old, new) and
        # "cwnd" (cwnd, ssthresh, optional event "loss"/"rto"/"recovered"/"undo")
        self.on_trace: Callable[..., None] | None = None
        self.heap_at: float | None = None  # layer bookkeeping: deadline of our heap entry
        # negotiated options
        self.our_mss = layer.mss_for(raddr, now)
        if opts.mss:
            self.our_mss = min(self.our_mss, opts.mss)  # TCP_MAXSEG: offered and used
        self.df = True  # path MTU discovery; off while the path MTU sits at the 552 floor
        self.peer_mss = 536
        self.ts_ok = False
        self.ts_offset = layer.rng.getrandbits(32)
        self.ts_recent = 0
        self.ts_recent_at = 0.0
        self.ts_first = 0  # the peer's TSval in its SYN, and when it came: its clock rate for PAWS
        self.ts_first_at = 0.0
        self.sack_ok = False
        self.offer_wscale = self.offered_wscale(cfg, opts.rcvbuf)
        self._peer_wscale: int | None = None
        # bookkeeping
        self.retries = 0
        self.rst_retries = 0
        self.rst_seen = False
        self._rst_resend = False
        self.orphan = False  # the application closed its socket
        self.sent_after_peer_fin = False  # for ABORTED (Winsock item 62)
        # urgent data (RFC 9293 3.8.5, RFC 6093): each points at the octet after the urgent byte
        self.snd_up: int | None = None
        self.rcv_up: int | None = None
        self.last_rx_at = now
        self.keepalive_sent = 0
        self.persist_backoff = 0
        self.persist_unanswered = 0
        self.segs_in = 0
        self.ack_every = 2 * 536
        self.ack_stretch = 32 * 536
        self.quickacks = 0  # ACKs of new data still to send at once (quick-ACK mode)
        self.tlp_sent = False
        self.ack_queued = False  # in the layer's end-of-batch ACK list
        self._oow_ack_at = -1.0
        self._chal_at = float("-inf")  # RFC 5961 challenge ACKs: this connection's budget
        self._chal_left = 0
        self._chal_windows = 0
        self._dsack: tuple[int, int] | None = None  # a duplicate to report (RFC 2883)
        self.segs_out = 0
        self.last_data_at = now  # when in-order data last arrived (or the handshake completed)
        self.fin_bare = False  # our FIN went out in a segment of its own (not on the last data)

    # ================================================================ helpers
    @classmethod
    def offered_wscale(cls, cfg: TcpConfig, rcvbuf: int) -> int | None:
        """The window scale our SYN or SYN-ACK offers (None: no window scaling)."""
        if not cfg.window_scaling:
            return None
        return cls._wscale_for(rcvbuf) if cfg.wscale is None else min(cfg.wscale, 14)

    @staticmethod
    def _wscale_for(rcvbuf: int) -> int:
        s = 0
        while (rcvbuf >> s) > 0xFFFF and s < 14:
            s += 1
        return s

    def _trace(self, kind: str, now: float, **fields: Any) -> None:
        if self.on_trace is not None:
            self.on_trace(kind, now, conn=self, **fields)

    def _set_state(self, new: State, now: float) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        if self.on_trace is not None:
            self.on_trace("state", now, conn=self, old=old.value, new=new.value)
        if new is State.TIME_WAIT:
            t = self.timers
            t.rto_at = t.probe_at = t.delack_at = t.persist_at = t.keepalive_at = t.deadline_at = None
            t.pmtu_at = None
            t.time_wait_at = now + 2 * self.cfg.msl_s
        elif new is State.CLOSED:
            self.timers.clear()
            self.layer.conn_closed(self)

    def _notify(self, events: int) -> None:
        sock = self.sock
        if sock is not None and sock.watcher is not None:
            sock.notify(events)

    def _tsval(self, now: float) -> int:
        return (int(now * 1000) + self.ts_offset) & MASK

    def _count(self, name: str) -> None:
        self.layer.count(name)

    def _count_retransmit(self, nbytes: int) -> None:
        """A segment re-sending sequence space already sent (data, SYN, SYN-ACK or FIN) went
        out: `tcp.retransmitted_segments` counts it like Linux's RetransSegs (SYNs included),
        `tcp.retransmitted_bytes` its payload. Keepalive and zero-window probes (SND.UNA - 1,
        no payload) are not retransmissions."""
        count = self.layer.count
        count("tcp.retransmitted_segments")
        if nbytes:
            count("tcp.retransmitted_bytes", nbytes)

    # ================================================================ output
    def _emit(self, flags: int, seq: int, now: float, payload: bytes | bytearray = b"",
              opts: bytes | None = None) -> Reason | None:
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
            if self.quickacks and rcv.unacked:  # an ACK of new data (Linux's tcp_dec_quickack_mode)
                self.quickacks -= 1
                if not self.quickacks:
                    self._set_ack_thresholds()
            rcv.last_ack_sent = ack
            rcv.unacked = 0
            self.timers.delack_at = None
        seg = build(self.laddr, self.raddr, self.lport, self.rport, seq, ack, flags, window, opts,
                    payload, urg)
        self.segs_out += 1
        return self.layer.output(self, seg, now)

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
        ts = (self._tsval(now), self.ts_recent) if self.ts_ok else None
        wscale = self.rcv.wscale if self._peer_wscale is not None and self.offer_wscale is not None else None
        opts = syn_options(self.our_mss, wscale, self.sack_ok, ts)
        self._emit(SYN | ACK, self.iss, now, opts=opts)

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

    # ================================================================ option negotiation
    def _take_syn_options(self, seg: TcpSegment, now: float) -> None:
        o = seg.options
        cfg = self.cfg
        self.peer_mss = o.mss if o.mss else 536  # RFC 9293 3.7.1 default
        self._peer_wscale = o.wscale
        if o.wscale is not None and self.offer_wscale is not None:
            self.snd.wscale = min(o.wscale, 14)
            self.rcv.wscale = self.offer_wscale
        else:
            self.snd.wscale = 0
            self.rcv.wscale = 0
        self.sack_ok = bool(o.sack_perm and cfg.sack)
        self.snd.sack_ok = self.sack_ok
        if o.ts is not None and cfg.timestamps:
            self.ts_ok = True
            self.ts_recent = self.ts_first = o.ts[0]
            self.ts_recent_at = self.ts_first_at = now
        else:
            self.ts_ok = False

    def _synchronized_setup(self) -> None:
        """Effective MSS and congestion control once the handshake settled the options."""
        mss = min(self.peer_mss, self.our_mss)
        if self.ts_ok:
            mss -= 12
        mss = max(mss, 64)
        self.snd.mss = mss
        # the largest segment the peer will send: its SMSS is at most its own MSS (its MTU), as
        # Linux's initial rcv_mss; "every second full-sized segment" is counted in those
        self.rcv.mss = min(self.our_mss, self.peer_mss) - (12 if self.ts_ok else 0)
        # Linux starts in quick-ACK mode: up to 16 ACKs, at most one per two segments of the
        # initial receive window (tcp_incr_quickack), so the sender's slow start is not delayed
        two_segments = 2 * self.rcv.mss  # <= 0 for a peer MSS no bigger than its options
        self.quickacks = (min(self.cfg.quickack_segments, self.rcv.rcv_wnd() // two_segments)
                          if two_segments > 0 else 0)
        self._set_ack_thresholds()
        self.snd.cc = ccmod.make(self.cfg.congestion_control, mss, self.cfg.initial_cwnd_segments,
                                 self.cfg.abc_limit_segments)
        if self.retries and self.snd.srtt is None:
            # RFC 6298 5.7: the SYN (or SYN-ACK) timed out and gave no RTT sample: data starts
            # with an RTO of 3 s, not the 1 s of 2.1
            self.snd.rto = max(self.snd.rto, min(3.0, self.snd.rto_max))

    def _set_ack_thresholds(self) -> None:
        """Bytes received before an ACK is due: any segment in quick-ACK mode, else every second
        full-sized one (RFC 5681 4.2), with one ACK per receive batch up to the stretch limit."""
        if self.quickacks > 0:
            self.ack_every = self.ack_stretch = 1
            return
        self.ack_every = self.cfg.delack_segments * self.rcv.mss
        self.ack_stretch = max(self.cfg.ack_stretch_segments, self.cfg.delack_segments) * self.rcv.mss

    def info(self) -> dict[str, Any]:
        """A snapshot for tools (like Linux's TCP_INFO / `ss -i`)."""
        snd, rcv = self.snd, self.rcv
        cc = snd.cc
        return {
            "state": self.state.value, "local": (self.laddr, self.lport),
            "remote": (self.raddr, self.rport), "mss": snd.mss, "rcv_mss": rcv.mss,
            "srtt_s": snd.srtt, "rttvar_s": snd.rttvar, "rto_s": snd.rto,
            "cwnd": cc.cwnd if cc else None, "ssthresh": cc.ssthresh if cc else None,
            "cc": cc.name if cc else self.cfg.congestion_control,
            "snd_wnd": snd.snd_wnd, "rcv_wnd": rcv.rcv_wnd(), "snd_wscale": snd.wscale,
            "rcv_wscale": rcv.wscale,
            "in_flight": snd.outstanding(), "unsent": snd.unsent(), "unread": len(rcv.buf),
            "ooo_blocks": len(rcv.ooo), "sacked_blocks": len(snd.sacked), "in_recovery": snd.in_recovery,
            "retransmits": snd.retransmits, "bytes_acked": snd.bytes_acked, "bytes_received": rcv.delivered,
            "segs_in": self.segs_in, "segs_out": self.segs_out, "sack": self.sack_ok,
            "timestamps": self.ts_ok, "error": self.error.name if self.error else None,
        }

    # ================================================================ user calls
    def open_active(self, now: float) -> Reason | None:
        self.rcv.adv_right = 0
        self._set_state(State.SYN_SENT, now)
        self.snd.snd_nxt = (self.iss + 1) & MASK
        self.snd.snd_max = self.snd.snd_nxt
        self.retries = 0
        self.timers.rto_at = now + self.opts.syn_rto_s
        self.snd.rtt_seq, self.snd.rtt_at = self.iss, now
        why = self._send_syn(now)
        self.layer.touch(self)
        return why

    def open_passive(self, seg: TcpSegment, listener: Any, now: float, reply: bool = True) -> None:
        """SYN-RECEIVED from the listener's SYN. `reply=False`: the SYN-ACK already went out as a
        SYN cookie (`seg` is the SYN rebuilt from it) and the final ACK follows at once."""
        self.listener = listener
        self.rcv.start(seg.seq)
        self._take_syn_options(seg, now)
        self.snd.snd_nxt = (self.iss + 1) & MASK
        self.snd.snd_max = self.snd.snd_nxt
        self.snd.snd_wnd = seg.window  # SYN windows are never scaled
        self.snd.snd_wl1 = seg.seq
        self.snd.snd_wl2 = self.iss
        self._set_state(State.SYN_RCVD, now)
        if not reply:
            return
        self.timers.rto_at = now + self.opts.syn_rto_s
        self.snd.rtt_seq, self.snd.rtt_at = self.iss, now
        self._send_synack(now)
        self.layer.touch(self)

    def send(self, data: bytes | bytearray | memoryview, now: float, overcommit: bool = False,
             urgent: bool = False) -> int:
        """Queue data; `urgent`: its last byte is urgent data (the send pointer moves past it
        before the first segment leaves, so every segment up to it carries URG)."""
        snd = self.snd
        if urgent and len(data):
            free = snd.free_space()
            taken = len(data) if overcommit and free > 0 else min(len(data), free)
            if taken:
                self.snd_up = (snd.buf_end + taken) & MASK
        n = snd.queue(data, overcommit)
        if n:
            if self.state is State.CLOSE_WAIT:
                self.sent_after_peer_fin = True
            last = snd.last_data_at
            if (last is not None and snd.snd_max == snd.snd_una and snd.cc is not None
                    and now - last > snd.rto and self.cfg.slow_start_after_idle):
                snd.cc.restart_after_idle(now - last, snd.rto)
                self._trace("cwnd", now, cwnd=snd.cc.cwnd, ssthresh=snd.cc.ssthresh, event="idle")
            self.output(now)
            self.layer.touch(self)
        return n

    def read(self, n: int) -> bytes:
        out = self.rcv.read(n)
        if out and self.state in RECEIVING and self.rcv.window_update_due():
            self.layer.want_output(self)
        return out

    def shutdown_send(self, now: float) -> None:
        """Queue our FIN (RFC 9293 CLOSE call): ESTABLISHED -> FIN-WAIT-1, CLOSE-WAIT -> LAST-ACK."""
        if self.snd.fin_queued:
            return
        st = self.state
        if st is State.ESTABLISHED:
            self._set_state(State.FIN_WAIT_1, now)
        elif st is State.CLOSE_WAIT:
            self._set_state(State.LAST_ACK, now)
        elif st is State.SYN_RCVD:
            pass  # stay: the ACK completing the handshake goes to FIN-WAIT-1 and sends the FIN
        else:
            return
        self.snd.fin_queued = True
        if st is not State.SYN_RCVD:
            self.output(now)
        self.layer.touch(self)

    def close(self, now: float) -> None:
        """Application closes: graceful in the background, or RST if unread data remains."""
        self.orphan = True
        st = self.state
        if st in (State.CLOSED, State.SYN_SENT):
            self.drop(None, now)
            return
        if self.rcv.buf and st in (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1,
                                   State.FIN_WAIT_2, State.SYN_RCVD):
            # RFC 9293 3.10.4 / RFC 2525: closing with unread data resets the connection
            self.abort(now, Reason.ABORTED)
            return
        self.shutdown_send(now)
        if self.state is State.FIN_WAIT_2:
            self.timers.deadline_at = now + self.cfg.fin_wait2_s
        self.layer.touch(self)

    def abort(self, now: float, reason: Reason | None = None) -> None:
        """Abortive close (linger 0, or ABORT call): RST if synchronized, then CLOSED."""
        if self.state in (State.SYN_RCVD, State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2,
                          State.CLOSE_WAIT):
            self._send_rst(now)
        self.drop(reason, now)

    def discard(self, now: float) -> None:
        """Forget the connection without a word to the peer (an evicted half-open one)."""
        self.drop(None, now)

    def drop(self, reason: Reason | None, now: float) -> None:
        """Go to CLOSED at once, sending nothing; `reason` becomes the socket's error."""
        if reason is not None and self.error is None:
            self.error = reason
        self._set_state(State.CLOSED, now)

    def fail(self, reason: Reason, now: float, events: int) -> None:
        """The connection died because of the peer or the network: record why, tell the socket."""
        if self.error is None:
            self.error = reason
        self._set_state(State.CLOSED, now)
        self._notify(events)

    # ================================================================ input pipeline
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

    # ================================================================ sending data
    def output(self, now: float, extra: int = 0) -> None:
        """Send what the windows, Nagle and SWS avoidance allow (RFC 9293 3.8.6.2.1, RFC 6675)."""
        if self.state not in _SENDING_STATES:
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
                n = mss if mss < avail else avail
                if n > usable:
                    n = usable
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

    def _send_data(self, seq: int, n: int, now: float, rexmit: bool) -> int:
        """Send n bytes from `seq` (fewer if SACK blocks take option space); returns bytes sent."""
        snd = self.snd
        if self.sack_ok and self.rcv.ooo:
            room = snd.mss - 4 - 8 * min(len(self.rcv.ooo), 3 if self.ts_ok else 4)
            if n > room:
                n = room
        off = diff(seq, snd.buf_seq)
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

    def _arm_persist(self, now: float) -> None:
        if self.timers.persist_at is None and self.timers.rto_at is None:
            iv = max(self.cfg.persist_min_s, self.snd.rto) * (1 << min(self.persist_backoff, 16))
            self.timers.persist_at = now + min(iv, self.cfg.persist_max_s)

    # ================================================================ timers
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
        if (self.state not in _SENDING_STATES or snd.in_recovery or snd.snd_max == snd.snd_una
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

    def _on_persist(self, now: float) -> None:
        snd = self.snd
        if self.state not in _SENDING_STATES or not (
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

    def _on_frag_needed(self, mtu: int, now: float) -> None:
        """RFC 1191: a router could not forward a segment of `mtu` + more bytes with DF set."""
        snd = self.snd
        opt = 12 if self.ts_ok else 0
        if mtu - 40 - opt >= snd.mss:
            return  # not smaller than what we send: nothing to learn (RFC 1191 6.1)
        layer = self.layer
        if mtu < PMTU_MIN:
            self._count("tcp.pmtu_floored")
            self.df = False  # as Linux does with a locked PMTU: routers may fragment below 552
        mtu = layer.pmtu.learn(self.raddr, mtu, now)
        self.timers.pmtu_at = now + PMTU_EXPIRES_S
        self.our_mss = min(self.our_mss, mtu - 40)
        new = max(mtu - 40 - opt, 64)
        if new < snd.mss:
            snd.mss = new
            if snd.cc is not None:
                snd.cc.set_mss(new)
                self._count("tcp.pmtu_lowered")
                snd.snd_nxt = snd.snd_una  # resend what was too big, in smaller pieces
                self.output(now)
        layer.touch(self)

    def _on_pmtu_expired(self, now: float) -> None:
        """RFC 1191 6.3: try the first-hop MTU again; a router still in the way says so again."""
        self.df = True
        self.our_mss = self.layer.mss_for(self.raddr, now)
        snd = self.snd
        mss = max(min(self.peer_mss, self.our_mss) - (12 if self.ts_ok else 0), 64)
        if snd.cc is not None and mss > snd.mss:
            snd.mss = mss
            snd.cc.set_mss(mss)
            self._count("tcp.pmtu_expired")

    def set_keepalive(self, on: bool, now: float) -> None:
        if on and self.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            self.timers.keepalive_at = self.last_rx_at + self.opts.keepalive_idle_s
        elif not on:
            self.timers.keepalive_at = None
        self.layer.touch(self)

    # ================================================================ ICMP
    def on_icmp(self, kind: Reason, seq: int, mtu: int, now: float) -> None:
        snd = self.snd
        if kind is Reason.FRAG_NEEDED:
            # RFC 5927 4.1: only an error about a segment still in flight (a pure ACK is never
            # too big); anything else may be forged by someone who does not see our traffic
            if not (ge(seq, snd.snd_una) and lt(seq, snd.snd_max)):
                self._count("tcp.icmp_out_of_window")
                return
            self._on_frag_needed(mtu, now)
            return
        if not (in_window(seq, snd.snd_una, diff(snd.snd_max, snd.snd_una) + 1)):
            self._count("tcp.icmp_out_of_window")  # RFC 5927: the quoted seq must be in flight
            return
        if self.state is State.SYN_SENT:
            reason = Reason.REFUSED if kind is Reason.PORT_UNREACH else kind
            self._count("tcp.icmp_connect_failed")
            self.fail(reason, now, ev.CONNECT | ev.ERROR)
            return
        self.soft_error = kind  # RFC 1122 4.2.3.9: soft error in synchronized states
