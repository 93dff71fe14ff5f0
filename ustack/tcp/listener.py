"""A listening socket's queues: bounded SYN queue (SYN-RECEIVED) and accept queue (ESTABLISHED)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..core import events as ev
from ..wire.tcp import ACK, FIN, RST, SYN, TcpSegment

if TYPE_CHECKING:
    from .connection import Connection
    from .layer import TcpLayer
    from .socket import TcpSocket


class Listener:
    """Windows semantics: when the queues hold `backlog` connections a new SYN is answered with
    RST, so the client sees "refused" (winsock item 18; Linux would drop the SYN instead)."""

    def __init__(self, layer: TcpLayer, sock: TcpSocket, backlog: int) -> None:
        self.layer = layer
        self.sock = sock
        self.backlog = backlog
        self.syn_queue: set[Connection] = set()
        self.accept_queue: deque[Connection] = deque()

    def on_segment(self, seg: TcpSegment, laddr: int, raddr: int, now: float,
                   iss: int | None = None) -> None:
        """RFC 9293 3.10.7.2 (LISTEN state). `iss`: the ISN to use instead of RFC 6528's (a SYN
        that reopens a TIME-WAIT pair)."""
        layer = self.layer
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            layer.count("tcp.listen_bad_ack")
            layer.send_rst_for(laddr, raddr, seg, now)
            return
        if not flags & SYN:
            layer.count("tcp.listen_no_syn")
            return
        if flags & FIN:
            layer.count("tcp.listen_syn_fin")  # SYN+FIN: a scan or a forgery; Linux drops it too
            return
        if len(self.accept_queue) + len(self.syn_queue) >= self.backlog:
            layer.count("tcp.listen_overflow")
            layer.send_rst_for(laddr, raddr, seg, now)
            return
        if len(self.syn_queue) >= layer.config.max_syn_backlog:
            layer.count("tcp.syn_queue_full")
            return
        from .connection import Connection

        conn = Connection(layer, laddr, seg.dport, raddr, seg.sport, self.sock.opts.copy(), now,
                          passive=True, iss=iss)
        conn.on_trace = layer.on_trace
        self.syn_queue.add(conn)
        layer.add_conn(conn)
        layer.count("tcp.passive_open")
        conn.open_passive(seg, self, now)

    def on_established(self, conn: Connection, now: float) -> None:
        self.syn_queue.discard(conn)
        if len(self.accept_queue) >= self.backlog:
            self.layer.count("tcp.accept_queue_full")
            conn.abort(now)
            return
        self.accept_queue.append(conn)
        self.sock._fire(ev.ACCEPT | ev.READ)

    def forget(self, conn: Connection) -> None:
        """A connection closed before it was accepted. Established ones stay queued (accept still
        returns them, and their error or EOF is then seen on the new socket)."""
        self.syn_queue.discard(conn)

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
