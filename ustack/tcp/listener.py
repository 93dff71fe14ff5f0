"""A listening socket's queues: the SYN queue (SYN-RECEIVED, its own bounded budget, SYN cookies
beyond it) and the accept queue (ESTABLISHED, bounded by the backlog)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..core import events as ev
from ..wire.tcp import ACK, FIN, RST, SYN, TcpOptions, TcpSegment
from .connection import Connection
from .emit import build_synack
from .receiver import INITIAL_RCV_MSS, Receiver
from .syncookie import CookieOptions, decode_ts, encode_ts

if TYPE_CHECKING:
    from .layer import TcpLayer
    from .socket import TcpSocket

COOKIE_ACK_WINDOW_S = 120.0  # final ACKs are checked as cookies this long after the last one sent


class Listener:
    """Windows semantics: when the accept queue holds `backlog` connections a new SYN is answered
    with RST, so the client sees "refused" (winsock item 18; Linux would drop the SYN instead).

    Half-open connections have their own budget (`TcpConfig.max_syn_backlog`), so a SYN flood
    cannot make the listener refuse real clients: beyond it the listener answers with SYN cookies
    (RFC 4987, `TcpConfig.syncookies`), or, with cookies off, evicts its oldest half-open entry."""

    def __init__(self, layer: TcpLayer, sock: TcpSocket, backlog: int) -> None:
        self.layer = layer
        self.sock = sock
        self.backlog = backlog
        self.syn_queue: dict[Connection, None] = {}  # insertion order: oldest first
        self.accept_queue: deque[Connection] = deque()
        self.cookie_sent_at: float | None = None

    def on_segment(self, seg: TcpSegment, laddr: int, raddr: int, now: float,
                   iss: int | None = None) -> None:
        """RFC 9293 3.10.7.2 (LISTEN state). `iss`: the ISN to use instead of RFC 6528's (a SYN
        that reopens a TIME-WAIT pair)."""
        layer = self.layer
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self._cookie_ack(seg, laddr, raddr, now):
                return
            layer.count("tcp.listen_bad_ack")
            layer.send_rst_for(laddr, raddr, seg, now)
            return
        if not flags & SYN:
            layer.count("tcp.listen_no_syn")
            return
        if flags & FIN:
            layer.count("tcp.listen_syn_fin")  # SYN+FIN: a scan or a forgery; Linux drops it too
            return
        if len(self.accept_queue) >= self.backlog:
            layer.count("tcp.listen_overflow")
            layer.send_rst_for(laddr, raddr, seg, now)
            return
        if len(self.syn_queue) >= layer.config.max_syn_backlog:
            if layer.config.syncookies:
                self._send_cookie(seg, laddr, raddr, now)
                return
            oldest = next(iter(self.syn_queue))
            layer.count("tcp.syn_queue_evicted")
            oldest.discard(now)  # forgotten without a word, like a SYN-ACK that timed out
        conn = Connection(layer, laddr, seg.dport, raddr, seg.sport, self.sock.opts.copy(), now,
                          passive=True, iss=iss)
        conn.on_trace = layer.on_trace
        self.syn_queue[conn] = None
        layer.add_conn(conn)
        layer.count("tcp.passive_open")
        conn.open_passive(seg, self, now)

    # ---- SYN cookies ---------------------------------------------------------------------------
    def _send_cookie(self, seg: TcpSegment, laddr: int, raddr: int, now: float) -> None:
        """Answer a SYN with a SYN-ACK whose ISN (and TSval) hold what we would have stored."""
        layer = self.layer
        cfg = layer.config
        o = seg.options
        cookies = layer.syncookies
        lport, rport = seg.dport, seg.sport
        isn = cookies.isn(laddr, lport, raddr, rport, seg.seq, o.mss or 536, now)
        ts = wscale = None
        sack = False
        if o.ts is not None and cfg.timestamps:
            # only a timestamp can carry window scale and SACK through the handshake
            peer_ws = min(o.wscale, 14) if o.wscale is not None and cfg.window_scaling else None
            sack = bool(o.sack_perm and cfg.sack)
            if peer_ws is not None:
                wscale = Connection.offered_wscale(cfg, self.sock.opts.rcvbuf)
            # the options go into our clock's low bits, then the connection's offset is added
            # (as Linux adds ts_off): on the wire they look like any TSval
            stamped = encode_ts(int(now * 1000) & 0xFFFFFFFF, CookieOptions(peer_ws, sack, False))
            ts = ((stamped + cookies.ts_offset(laddr, lport, raddr, rport)) & 0xFFFFFFFF, o.ts[0])
        # the window a connection would offer (nothing queued yet): the same rule and builder
        free = Receiver.space(self.sock.opts.rcvbuf, 0, layer.memory,
                              cfg.pressure_window_segments * INITIAL_RCV_MSS)
        b = build_synack(laddr, raddr, lport, rport, isn, (seg.seq + 1) & 0xFFFFFFFF, free,
                         layer.mss_for(raddr, now, self.sock.opts.mss), wscale, sack, ts)
        self.cookie_sent_at = now
        layer.count("tcp.syncookies_sent")
        layer.send(laddr, raddr, b, now)

    def _cookie_ack(self, seg: TcpSegment, laddr: int, raddr: int, now: float) -> bool:
        """A final ACK for a cookie SYN-ACK: make the connection the SYN would have made, then let
        it take the ACK (and any data on it). False: not a valid cookie (the caller resets)."""
        if self.cookie_sent_at is None or now - self.cookie_sent_at > COOKIE_ACK_WINDOW_S:
            return False  # no recent SYN-queue overflow: a stray ACK (Linux checks the same)
        layer = self.layer
        cfg = layer.config
        lport, rport = seg.dport, seg.sport
        peer_isn = (seg.seq - 1) & 0xFFFFFFFF
        mss = layer.syncookies.check(laddr, lport, raddr, rport, peer_isn,
                                     (seg.ack - 1) & 0xFFFFFFFF, now)
        opts = CookieOptions(None, False, False)
        ts = seg.options.ts
        if mss is not None and ts is not None and cfg.timestamps:
            decoded = decode_ts((ts[1] - layer.syncookies.ts_offset(laddr, lport, raddr, rport))
                                & 0xFFFFFFFF)
            if (decoded.wscale is not None and not cfg.window_scaling) or (decoded.sack and not cfg.sack):
                mss = None
            else:
                opts = decoded
        if mss is None:
            layer.count("tcp.syncookies_failed")
            return False
        if len(self.accept_queue) >= self.backlog:
            layer.count("tcp.listen_overflow")  # the Windows rule, as for a SYN
            layer.send_rst_for(laddr, raddr, seg, now)
            return True
        layer.count("tcp.syncookies_recv")
        conn = Connection(layer, laddr, lport, raddr, rport, self.sock.opts.copy(), now,
                          passive=True, iss=(seg.ack - 1) & 0xFFFFFFFF)
        conn.on_trace = layer.on_trace
        if ts is not None and cfg.timestamps:
            conn.ts_offset = layer.syncookies.ts_offset(laddr, lport, raddr, rport)
        syn = TcpSegment(rport, lport, peer_isn, 0, SYN, seg.window, b"",
                         TcpOptions(mss=mss, wscale=opts.wscale, sack_perm=opts.sack,
                                    ts=None if ts is None else (ts[0], 0)))
        layer.add_conn(conn)
        layer.count("tcp.passive_open")
        conn.open_passive(syn, self, now, reply=False)
        conn.on_segment(seg, now)
        return True

    # ---- queues --------------------------------------------------------------------------------
    def on_established(self, conn: Connection, now: float) -> None:
        self.syn_queue.pop(conn, None)
        if len(self.accept_queue) >= self.backlog:
            self.layer.count("tcp.accept_queue_full")
            conn.abort(now)
            return
        self.accept_queue.append(conn)
        self.sock.notify(ev.ACCEPT | ev.READ)

    def forget(self, conn: Connection) -> None:
        """A connection closed before it was accepted. Established ones stay queued (accept still
        returns them, and their error or EOF is then seen on the new socket)."""
        self.syn_queue.pop(conn, None)

    def pop(self) -> Connection | None:
        q = self.accept_queue
        if not q:
            return None
        conn = q.popleft()
        conn.listener = None
        return conn

    def close(self, now: float) -> None:
        """Closing a listener resets every connection not yet accepted."""
        for conn in list(self.syn_queue) + list(self.accept_queue):
            conn.listener = None
            conn.abort(now)
        self.syn_queue.clear()
        self.accept_queue.clear()
