"""One TCP connection: the TCB's state (one `__slots__` list), its set-up and option negotiation,
user calls, ICMP errors, and one pending error `Reason`. Sending and receiving bookkeeping live in
Sender and Receiver. Behaviour is split by concern into mixins that `Connection` is composed of:
input.py (segment arrival, RFC 9293 3.10.7), output.py (emitting segments, the sender loop),
recovery.py (loss detection and recovery, RTO, TLP) and timeouts.py (timers firing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core import events as ev
from ..core.family import is_ipv6
from ..core.reasons import Reason
from ..wire.tcp import TcpSegment
from . import cc as ccmod
from .input import InputMixin
from .output import OutputMixin
from .pmtu import PMTU_EXPIRES_S, PMTU_MIN, PMTU_MIN6
from .receiver import Receiver
from .recovery import RecoveryMixin
from .sender import Sender
from .seq import MASK, diff, ge, in_window, lt
from .state import RECEIVING, State
from .timeouts import TimeoutsMixin
from .timers import Timers

if TYPE_CHECKING:
    from .config import TcpConfig
    from .layer import TcpLayer
    from .socket import TcpSocket, TcpSockOpts


class Connection(InputMixin, OutputMixin, RecoveryMixin, TimeoutsMixin):
    """A TCB (RFC 9293 3.3.1). Never raises on peer input; misuse is checked by TcpSocket."""

    # Every attribute a Connection has (set in __init__): no per-instance dict, about 1.5 KB
    # less per connection (docs/benchmarks.md, "Connections"). A new attribute goes here too.
    __slots__ = (
        "layer", "cfg", "opts", "laddr", "lport", "raddr", "rport", "key", "v6", "state", "passive", "iss",
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
        self.v6 = is_ipv6(raddr)  # over IPv6 (core/family.py: the address says which)
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
        self.our_mss = layer.mss_for(raddr, now, opts.mss)  # TCP_MAXSEG clamps: offered and used
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

    def set_keepalive(self, on: bool, now: float) -> None:
        if on and self.state in (State.ESTABLISHED, State.CLOSE_WAIT):
            self.timers.keepalive_at = self.last_rx_at + self.opts.keepalive_idle_s
        elif not on:
            self.timers.keepalive_at = None
        self.layer.touch(self)

    # ================================================================ ICMP and path MTU
    def _on_frag_needed(self, mtu: int, now: float) -> None:
        """RFC 1191: a router could not forward a segment of `mtu` + more bytes with DF set."""
        snd = self.snd
        opt = 12 if self.ts_ok else 0
        layer = self.layer
        if layer.mss_for(self.raddr, now, path_mtu=mtu) - opt >= snd.mss:
            return  # not smaller than what we send: nothing to learn (RFC 1191 6.1)
        if self.v6:
            floor = PMTU_MIN6  # RFC 8200 5: every IPv6 link carries 1280; no DF to clear
        else:
            floor = PMTU_MIN
            if mtu < PMTU_MIN:
                self._count("tcp.pmtu_floored")
                self.df = False  # as Linux does with a locked PMTU: routers may fragment below 552
        layer.pmtu.learn(self.raddr, mtu, now, floor)
        self.timers.pmtu_at = now + PMTU_EXPIRES_S
        self.our_mss = layer.mss_for(self.raddr, now, self.opts.mss)
        new = max(self.our_mss - opt, 64)
        if new < snd.mss:
            snd.mss = new
            if snd.cc is not None:
                snd.cc.set_mss(new)
                self._count("tcp.pmtu_lowered")
                snd.snd_nxt = snd.snd_una  # resend what was too big, in smaller pieces
                self.output(now)
        layer.touch(self)

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
