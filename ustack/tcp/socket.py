"""TcpSocket: the application's handle (contracts.md "TcpSocket"). Misuse raises UsageError;
trouble caused by the peer or the network sets `.error` and fires watch events."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core import events as ev
from ..core.errors import UsageError
from ..core.family import V4MAPPED, is_ipv6, is_multicast6, is_v4compat, is_v4mapped, unmap
from ..core.ports import bind_dual
from ..core.reasons import Reason
from .connection import Connection
from .listener import Listener
from .seq import MASK, diff
from .state import SENDING, State

if TYPE_CHECKING:
    from .config import TcpConfig
    from .layer import TcpLayer

Watcher = Callable[[Any, int], None]


class TcpSockOpts:
    """Per-socket options; a connection reads them live, accepted sockets get a copy."""

    __slots__ = ("nodelay", "keepalive", "keepalive_idle_s", "keepalive_interval_s",
                 "keepalive_probes", "linger", "rcvbuf", "sndbuf", "syn_retries", "syn_rto_s",
                 "syn_rst_retries", "syn_rst_retry_s", "data_retries", "mss", "hop_limit")

    def __init__(self, cfg: TcpConfig) -> None:
        self.nodelay = cfg.nodelay
        self.keepalive = cfg.keepalive
        self.keepalive_idle_s = cfg.keepalive_idle_s
        self.keepalive_interval_s = cfg.keepalive_interval_s
        self.keepalive_probes = cfg.keepalive_probes
        self.linger: float | None = None  # None: graceful close in the background; 0: RST
        self.rcvbuf = cfg.rcvbuf
        self.sndbuf = cfg.sndbuf
        self.syn_retries = cfg.syn_retries
        self.syn_rto_s = cfg.syn_rto_s
        self.syn_rst_retries = cfg.syn_rst_retries
        self.syn_rst_retry_s = cfg.syn_rst_retry_s
        self.data_retries = cfg.data_retries
        self.mss: int | None = None  # the application's MSS clamp (TCP_MAXSEG), for new connections
        self.hop_limit: int | None = None  # IPv6 unicast hop limit (IPV6_UNICAST_HOPS); None: the stack's

    def copy(self) -> TcpSockOpts:
        new = TcpSockOpts.__new__(TcpSockOpts)
        for name in TcpSockOpts.__slots__:
            setattr(new, name, getattr(self, name))
        return new


def _opt(name: str, doc: str) -> property:
    def get(self: TcpSocket) -> Any:
        return getattr(self.opts, name)

    def set_(self: TcpSocket, value: Any) -> None:
        setattr(self.opts, name, value)
        self._option_changed(name)

    return property(get, set_, doc=doc)


class TcpSocket:
    proto = 6
    # one per connection: no per-instance dict (docs/benchmarks.md, "Connections")
    __slots__ = ("layer", "stack", "opts", "binding", "conn", "listener", "closed", "accepted",
                 "connected_once", "shut_rd", "shut_wr", "_error", "watcher", "family", "_v6only")

    nodelay = _opt("nodelay", "disable Nagle's algorithm (TCP_NODELAY)")
    keepalive = _opt("keepalive", "send keepalive probes when idle (SO_KEEPALIVE)")
    keepalive_idle_s = _opt("keepalive_idle_s", "idle time before the first keepalive probe")
    keepalive_interval_s = _opt("keepalive_interval_s", "time between unanswered probes")
    keepalive_probes = _opt("keepalive_probes", "unanswered probes before KEEPALIVE_FAILED")
    linger = _opt("linger", "None: graceful close; 0: abortive close (RST)")
    rcvbuf = _opt("rcvbuf", "receive buffer bytes (SO_RCVBUF)")
    sndbuf = _opt("sndbuf", "send buffer bytes (SO_SNDBUF)")
    syn_retries = _opt("syn_retries", "SYN retransmissions before TIMED_OUT")
    syn_rto_s = _opt("syn_rto_s", "initial SYN retransmission timeout (doubles)")
    syn_rst_retries = _opt("syn_rst_retries", "SYNs repeated after a RST before REFUSED (Windows)")
    syn_rst_retry_s = _opt("syn_rst_retry_s", "interval before a SYN is repeated after a RST")
    data_retries = _opt("data_retries", "data retransmissions before TIMED_OUT")
    hop_limit = _opt("hop_limit", "IPv6 unicast hop limit (IPV6_UNICAST_HOPS); None: the stack's default")
    mss = _opt("mss", "MSS clamp for connections made after it is set (TCP_MAXSEG); None: none")

    def __init__(self, layer: TcpLayer, opts: TcpSockOpts | None = None, family: int = 4) -> None:
        if family not in (4, 6):
            raise UsageError(Reason.INVALID, f"address family {family}")
        self.layer = layer
        self.stack = layer.stack
        self.family = family  # 4, or 6: every address in and out is an IPv6 int (core/family.py)
        self._v6only = True  # IPV6_V6ONLY (family 6), Windows' default
        self.opts = opts if opts is not None else TcpSockOpts(layer.config)
        self.binding: Any = None
        self.conn: Connection | None = None
        self.listener: Listener | None = None
        self.closed = False
        self.accepted = False
        self.connected_once = False  # reached ESTABLISHED at least once (connect or accept)
        self.shut_rd = False
        self.shut_wr = False
        self._error: Reason | None = None
        self.watcher: Watcher | None = None  # set by watch(); Connection skips notify() without one

    # ---- state --------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        if self.listener is not None:
            return State.LISTEN
        return self.conn.state if self.conn is not None else State.CLOSED

    @property
    def local(self) -> tuple[int, int] | None:
        if self.conn is not None:
            return (self._shown(self.conn.laddr), self.conn.lport)
        b = self.binding
        if b is None:
            return None
        if self.family == 6 and b.table is self.stack.tcp_ports:  # bound to an IPv4 address
            return (V4MAPPED | b.addr, b.port)
        return (b.addr, b.port)

    @property
    def remote(self) -> tuple[int, int] | None:
        c = self.conn
        if c is None or (c.state is State.CLOSED and not self.connected_once):
            return None
        return (self._shown(c.raddr), c.rport)

    def _shown(self, addr: int) -> int:
        """A connection's address as this socket names it: v4-mapped on a family-6 socket."""
        return V4MAPPED | addr if self.family == 6 and not is_ipv6(addr) else addr

    @property
    def v6only(self) -> bool:
        """IPV6_V6ONLY of a family-6 socket; False (dual-mode) also takes IPv4, v4-mapped."""
        return self._v6only

    @v6only.setter
    def v6only(self, on: bool) -> None:
        self._check_open()
        if self.family != 6:
            raise UsageError(Reason.INVALID, "IPV6_V6ONLY on an IPv4 socket")
        if self.binding is not None or self.conn is not None:
            raise UsageError(Reason.INVALID, "IPV6_V6ONLY after bind")
        self._v6only = bool(on)

    def _wire(self, addr: int) -> tuple[bool, int]:
        """(is IPv6, the address on the wire) for an address given to this socket."""
        if self.family == 4:
            return False, addr
        if is_v4mapped(addr):
            if self._v6only:
                raise UsageError(Reason.ADDR_NOT_AVAIL, "a v4-mapped address on an IPV6_V6ONLY socket")
            return False, unmap(addr)
        if is_v4compat(addr):
            raise UsageError(Reason.ADDR_NOT_AVAIL, "IPv4-compatible IPv6 address (deprecated)")
        return True, addr

    @property
    def error(self) -> Reason | None:
        if self._error is not None:
            return self._error
        return self.conn.error if self.conn is not None else None

    def clear_error(self) -> Reason | None:
        e = self.error
        self._error = None
        if self.conn is not None:
            self.conn.error = None
        return e

    @property
    def readable_bytes(self) -> int:
        return len(self.conn.rcv.buf) if self.conn is not None else 0

    @property
    def readable(self) -> bool:
        """A recv (or accept) would not block: data, EOF, a pending connection or an error."""
        if self.listener is not None:
            return bool(self.listener.accept_queue)
        c = self.conn
        return c is not None and (bool(c.rcv.buf) or c.rcv.eof) or self.error is not None

    @property
    def send_progress(self) -> tuple[int, int]:
        """(acknowledged, queued) in one unit: what the peer has acknowledged so far (the SYN
        counts), and that plus what the send buffer still holds; equal when everything queued
        was acknowledged."""
        c = self.conn
        if c is None:
            return (0, 0)
        return c.snd.bytes_acked, c.snd.bytes_acked + c.snd.buffered()

    @property
    def urgent_mark(self) -> tuple[int, int, int] | None:
        """(urgent, unread, received) as stream indexes (0 = the first byte of the connection):
        the urgent byte, the one just before the peer's urgent pointer (RFC 6093; `urgent` may
        be >= `received` while it has not arrived), the first unread byte, and the end of what
        arrived in order. None when the peer never sent urgent data."""
        c = self.conn
        if c is None or c.rcv_up is None:
            return None
        rcv = c.rcv
        data_end = (rcv.rcv_nxt - 1) & MASK if rcv.eof else rcv.rcv_nxt  # a FIN takes one number
        urgent = rcv.delivered - diff(data_end, (c.rcv_up - 1) & MASK)
        return urgent, rcv.delivered - len(rcv.buf), rcv.delivered

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has been received and every byte before it read."""
        c = self.conn
        return c is not None and c.rcv.eof and not c.rcv.buf

    @property
    def fin_received(self) -> bool:
        """The peer's FIN has arrived (bytes sent before it may still be unread)."""
        c = self.conn
        return c is not None and c.rcv.eof

    @property
    def writable_bytes(self) -> int:
        c = self.conn
        if c is None or c.state not in SENDING or c.snd.fin_queued:
            return 0
        return c.snd.free_space()

    @property
    def accept_pending(self) -> int:
        return len(self.listener.accept_queue) if self.listener is not None else 0

    @property
    def events(self) -> int:
        """Current readiness bits."""
        bits = 0
        c = self.conn
        if self.listener is not None:
            return ev.ACCEPT | ev.READ if self.listener.accept_queue else 0
        if c is not None:
            if c.rcv.buf or c.rcv.eof:
                bits |= ev.READ
            if c.state in SENDING and not c.snd.fin_queued and c.snd.free_space():
                bits |= ev.WRITE
            if c.rcv.eof or (c.state is State.CLOSED and self.connected_once):
                bits |= ev.CLOSE
        if self.error is not None:
            bits |= ev.ERROR
        return bits

    def watch(self, callback: Watcher | None) -> None:
        self.watcher = callback

    def notify(self, events: int) -> None:
        """Tell the watcher which events just happened (called by Connection and Listener)."""
        cb = self.watcher
        if cb is not None:
            cb(self, events)

    def _check_open(self) -> None:
        if self.closed:
            raise UsageError(Reason.INVALID, "socket is closed")

    def _option_changed(self, name: str) -> None:
        c = self.conn
        if c is None or c.state is State.CLOSED:
            return
        now = self.layer.now
        if name == "keepalive" or name == "keepalive_idle_s":
            c.set_keepalive(bool(self.opts.keepalive), now)
        elif name == "rcvbuf":
            c.rcv.rcvbuf = max(int(self.opts.rcvbuf), 1)
            if c.rcv.window_update_due():
                self.layer.want_output(c)
        elif name == "sndbuf":
            c.snd.sndbuf = max(int(self.opts.sndbuf), 1)
        elif name == "nodelay" and self.opts.nodelay:
            c.output(now)
            self.layer.touch(c)

    # ---- binding ------------------------------------------------------------------------------
    def bind(self, addr: int, port: int, *, reuse: bool = False, exclusive: bool = False) -> None:
        self._check_open()
        if self.binding is not None or self.conn is not None:
            raise UsageError(Reason.INVALID, "already bound")
        stack = self.stack
        if self.family == 6 and addr == 0:
            if self._v6only:
                self.binding = stack.tcp6_ports.bind(0, port, self, reuse, exclusive)
            else:
                self.binding = bind_dual(stack.tcp6_ports, stack.tcp_ports, port, self, reuse, exclusive)
            return
        v6, addr = self._wire(addr)
        if v6:
            if not stack.is_local6(addr):
                raise UsageError(Reason.ADDR_NOT_AVAIL, "not an address of this host")
            self.binding = stack.tcp6_ports.bind(addr, port, self, reuse, exclusive)
            return
        if addr != 0 and not stack.is_local(addr):
            raise UsageError(Reason.ADDR_NOT_AVAIL, "not an address of this host")
        self.binding = stack.tcp_ports.bind(addr, port, self, reuse, exclusive)

    # ---- connect ------------------------------------------------------------------------------
    def connect(self, addr: int, port: int, now: float) -> None:
        self._check_open()
        if self.listener is not None:
            raise UsageError(Reason.INVALID, "socket is listening")  # item 32
        c = self.conn
        if c is not None:
            if c.state in (State.SYN_SENT, State.SYN_RCVD) and not self.connected_once:
                raise UsageError(Reason.ALREADY, "connect in progress")  # item 27
            if self.connected_once or self.accepted or c.state is not State.CLOSED:
                raise UsageError(Reason.IS_CONNECTED, "already connected")  # item 31
        if addr == 0 or port == 0:
            raise UsageError(Reason.ADDR_NOT_AVAIL, "destination address or port is zero")
        stack = self.stack
        v6, addr = self._wire(addr)
        b = self.binding
        if v6:
            if is_multicast6(addr):
                raise UsageError(Reason.ADDR_NOT_AVAIL, "TCP cannot connect to multicast")
            ports = stack.tcp6_ports
            if b is not None and b.table is not ports:
                raise UsageError(Reason.NET_UNREACH, "socket bound to an IPv4 address")
            src = stack.source6(addr)
            if src is None:
                raise UsageError(Reason.NET_UNREACH, "no route to the destination")
        else:
            if stack.is_broadcast(addr) or addr >> 28 == 0xE:
                raise UsageError(Reason.ADDR_NOT_AVAIL, "TCP cannot connect to broadcast or multicast")
            ports = stack.tcp_ports
            if b is not None and b.table is not ports:
                b = b.twin  # a dual-mode socket's IPv4 half
                if b is None:
                    raise UsageError(Reason.NET_UNREACH, "socket bound to an IPv6 address")
            rt = stack.route(addr)
            if rt is None:
                raise UsageError(Reason.NET_UNREACH, "no route to the destination")
            src = rt[0]
        layer = self.layer
        laddr = b.addr if b is not None and b.addr != 0 else src
        if b is None:
            lport = ports.connect_port(laddr, addr, port,
                                       lambda p: (laddr, p, addr, port) in layer.conns)
            self.binding = ports.claim(laddr, lport, self)
        else:
            lport = b.port
            if (laddr, lport, addr, port) in layer.conns:
                raise UsageError(Reason.ADDR_IN_USE, "4-tuple in use")
        self._error = None
        conn = Connection(layer, laddr, lport, addr, port, self.opts, now, passive=False)
        conn.sock = self
        conn.on_trace = layer.on_trace
        self.conn = conn
        layer.add_conn(conn)
        layer.count("tcp.active_open")
        why = conn.open_active(now)
        if why is Reason.NET_UNREACH or why is Reason.HOST_UNREACH:
            conn.fail(why, now, ev.CONNECT | ev.ERROR)

    # ---- listen / accept ----------------------------------------------------------------------
    def listen(self, backlog: int) -> None:
        self._check_open()
        if self.conn is not None:
            if self.connected_once or self.conn.state is not State.CLOSED:
                raise UsageError(Reason.IS_CONNECTED, "socket is connected")
            raise UsageError(Reason.INVALID, "socket was used for connect")
        if self.binding is None:
            raise UsageError(Reason.INVALID, "listen on an unbound socket")  # item 17
        backlog = max(1, min(int(backlog), self.layer.config.max_backlog))
        if self.listener is not None:
            self.listener.backlog = backlog
            return
        self.listener = Listener(self.layer, self, backlog)

    def accept(self) -> TcpSocket | None:
        self._check_open()
        if self.listener is None:
            raise UsageError(Reason.INVALID, "socket is not listening")  # item 20
        conn = self.listener.pop()
        if conn is None:
            return None
        sock = TcpSocket(self.layer, conn.opts, self.family)
        sock.conn = conn
        sock.accepted = True
        sock.connected_once = True
        conn.sock = sock
        return sock

    # ---- data ---------------------------------------------------------------------------------
    def send(self, data: bytes | bytearray | memoryview, now: float, overcommit: bool = False,
             urgent: bool = False) -> int:
        """Bytes taken into the send buffer (0 when full; with `overcommit`, all of `data` whenever
        the buffer is not full, as Windows does); `urgent`: its last byte is urgent (MSG_OOB).
        After the connection died, raises UsageError with its reason (RESET, ABORTED, TIMED_OUT,
        KEEPALIVE_FAILED, ...)."""
        self._check_open()
        if self.shut_wr:
            raise UsageError(Reason.SHUTDOWN, "send side shut down")  # item 63
        c = self.conn
        if c is None or self.listener is not None:
            raise UsageError(Reason.NOT_CONNECTED, "not connected")  # item 64
        if c.state not in SENDING:
            if c.error is not None:
                raise UsageError(c.error, "connection failed")
            if c.state in (State.SYN_SENT, State.SYN_RCVD) or not self.connected_once:
                raise UsageError(Reason.NOT_CONNECTED, "not connected")  # item 28
            raise UsageError(Reason.SHUTDOWN, "connection is closing")
        if not len(data):
            return 0
        return c.send(data, now, overcommit, urgent)

    def recv(self, n: int) -> bytes:
        """Up to n buffered bytes; b"" when none (check `.at_eof` and `.error`)."""
        self._check_open()
        if self.shut_rd:
            raise UsageError(Reason.SHUTDOWN, "receive side shut down")  # item 63
        c = self.conn
        if c is None or self.listener is not None:
            raise UsageError(Reason.NOT_CONNECTED, "not connected")
        if not self.connected_once and c.state in (State.SYN_SENT, State.SYN_RCVD, State.CLOSED):
            if c.error is None:
                raise UsageError(Reason.NOT_CONNECTED, "not connected")  # item 28
        if n <= 0:
            return b""
        return c.read(n)

    def peek(self, n: int) -> bytes:
        """Like recv, but the bytes stay buffered (MSG_PEEK)."""
        self._check_open()
        if self.shut_rd:
            raise UsageError(Reason.SHUTDOWN, "receive side shut down")
        c = self.conn
        if c is None or self.listener is not None:
            raise UsageError(Reason.NOT_CONNECTED, "not connected")
        if not self.connected_once and c.state in (State.SYN_SENT, State.SYN_RCVD, State.CLOSED):
            if c.error is None:
                raise UsageError(Reason.NOT_CONNECTED, "not connected")
        return c.rcv.buf.peek(n) if n > 0 else b""

    # ---- closing ------------------------------------------------------------------------------
    def shutdown(self, how: int, now: float) -> None:
        self._check_open()
        if how not in (0, 1, 2):
            raise UsageError(Reason.INVALID, f"shutdown how={how}")
        c = self.conn
        if self.listener is not None or c is None or not self.connected_once:
            raise UsageError(Reason.NOT_CONNECTED, "not connected")  # item 63
        if how in (0, 2):
            self.shut_rd = True
            c.rcv.shut = True
        if how in (1, 2):
            self.shut_wr = True
            if c.state is not State.CLOSED:
                c.shutdown_send(now)

    def close(self, now: float) -> None:
        """Graceful close in the background (or RST with `linger == 0`); the handle is dead."""
        if self.closed:
            return
        self.closed = True
        self.watcher = None
        if self.listener is not None:
            self.listener.close(now)
            self.listener = None
        c = self.conn
        if c is not None and c.state is not State.CLOSED:
            c.sock = None
            c.binding = self.binding  # the port stays taken until the connection is gone
            self.binding = None
            if self.opts.linger == 0:
                c.abort(now)
            else:
                c.close(now)
        if self.binding is not None:
            self.stack.tcp_ports.release(self.binding)
            self.binding = None

    def abort(self, now: float) -> None:
        """Reset the connection at once (RST) and close the handle."""
        c = self.conn
        if c is not None and c.state is not State.CLOSED:
            c.sock = None
            c.abort(now)
        self.close(now)

    def __repr__(self) -> str:
        return f"<TcpSocket {self.state} local={self.local} remote={self.remote}>"
