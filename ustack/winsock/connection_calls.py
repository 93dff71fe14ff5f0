"""Winsock connection setup: socket, closesocket, bind, listen, accept, connect, WSAConnect,
shutdown, getsockname, getpeername.

`ConnectionCalls` is a part of the `Winsock` class (api.py), split off by concern: it uses the
same per-host state and helpers (`_get`, `_call`, `_block`, `_watch`) as the rest of the class.
"""

from __future__ import annotations

from typing import Any

from ustack.core.errors import UsageError
from ustack.core.family import is_v4mapped, unmap
from ustack.core.reasons import Reason

from . import constants as C
from . import errors as E
from . import readiness as R
from .buffers import UNSPEC_NAME as _UNSPEC_NAME
from .buffers import WsaFail as _Fail
from .buffers import len_store as _len_store
from .buffers import len_value as _len_value
from .buffers import parse_sockaddr as _parse_sockaddr
from .buffers import sockaddr_size as _sockaddr_size
from .buffers import write_sockaddr as _write_sockaddr
from .callwrap import api_call as _api
from .wsocket import Phase, WSocket

# TCP states in which our side still has data or a FIN to get acknowledged
_DRAINING = frozenset({"ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1", "CLOSING", "LAST_ACK"})


class ConnectionCalls:
    """The connection calls of `Winsock` (see the module docstring)."""

    # == socket / closesocket =====================================================================
    @_api(fail=C.INVALID_SOCKET, zero=True)
    def socket(self, af: int, type: int, protocol: int) -> int:  # noqa: A002 - Winsock name
        """Argument checks in Windows' order (sock.c test_WSASocket): AF_UNSPEC without a
        protocol -> WSAEINVAL; then the type, the family, the protocol; (af, 0, 0) is TCP and
        AF_UNSPEC with a protocol is IPv4. AF_INET6 sockets take SOCKADDR_IN6 names and start
        with IPV6_V6ONLY on (Windows' default); WSAEAFNOSUPPORT if the transport has no IPv6."""
        if af == C.AF_UNSPEC and protocol == 0:
            raise _Fail(C.WSAEINVAL)
        if type not in (0, C.SOCK_STREAM, C.SOCK_DGRAM):
            raise _Fail(C.WSAESOCKTNOSUPPORT)
        if af not in (C.AF_INET, C.AF_UNSPEC, C.AF_INET6):
            raise _Fail(C.WSAEAFNOSUPPORT)
        if protocol not in (0, C.IPPROTO_TCP, C.IPPROTO_UDP):
            raise _Fail(C.WSAEPROTONOSUPPORT)
        if type == 0:
            type = C.SOCK_DGRAM if protocol == C.IPPROTO_UDP else C.SOCK_STREAM  # noqa: A001
        want = C.IPPROTO_TCP if type == C.SOCK_STREAM else C.IPPROTO_UDP
        if protocol not in (0, want):
            raise _Fail(C.WSAEPROTONOSUPPORT)
        if len(self._sockets) >= self.max_sockets:
            raise _Fail(C.WSAEMFILE)
        stack = self.host.stack
        if type == C.SOCK_STREAM and getattr(stack, "tcp", None) is None:
            raise _Fail(C.WSAESOCKTNOSUPPORT)
        family = C.AF_INET6 if af == C.AF_INET6 else C.AF_INET
        sock = self._call(self._open_stack_socket, stack.tcp if type == C.SOCK_STREAM else stack.udp, family)
        if type == C.SOCK_DGRAM:
            sock.port_zero_ok = True  # Windows sends to port 0 (sock.c test_UDP)
        ws = WSocket(next(self._handles), type, want, sock, clock=self.host.now, family=family)
        ws.opts.rcvbuf = int(getattr(sock, "rcvbuf", ws.opts.rcvbuf) or ws.opts.rcvbuf)
        ws.opts.sndbuf = int(getattr(sock, "sndbuf", ws.opts.sndbuf) or ws.opts.sndbuf)
        ws.stack_sndbuf = ws.opts.sndbuf
        self._call(self._watch, ws)
        self._sockets[ws.handle] = ws
        return ws.handle

    @staticmethod
    def _open_stack_socket(layer: Any, family: int) -> Any:
        """A transport socket of the Winsock family (lock held)."""
        if family == C.AF_INET:
            return layer.open()
        try:
            sock = layer.open(family=6)
        except TypeError:  # a transport without IPv6 sockets
            raise _Fail(C.WSAEAFNOSUPPORT) from None
        sock.v6only = True
        return sock

    @_api()
    def closesocket(self, s: int) -> int:
        """Graceful close in the background; SO_LINGER {1, 0}: abortive (RST); SO_LINGER {1, t}
        on a blocking socket: wait up to t s for the queued data to be acknowledged, then
        reset; on a nonblocking socket with data still queued: WSAEWOULDBLOCK (not closed)."""
        ws = self._get(s)
        o = ws.opts
        timed = ws.is_tcp and o.linger_on and o.linger_s > 0
        if timed and ws.nonblocking and self._call(self._unacked, ws):
            raise _Fail(C.WSAEWOULDBLOCK)
        self._close(ws, abortive=False)
        if timed and not ws.nonblocking:
            sock = ws.sock
            outcome = self._block(None, lambda: R.tcp_state(ws) not in _DRAINING, float(o.linger_s))
            if outcome == "timeout":
                self._call(lambda: sock.abort(self._now()))
        return 0

    @staticmethod
    def _unacked(ws: WSocket) -> bool:
        """Sent data not yet acknowledged (or not yet sent) on a TCP socket."""
        s = ws.sock
        if R.tcp_state(ws) not in R.CAN_SEND:
            return R.tcp_state(ws) in _DRAINING
        return s.writable_bytes < s.sndbuf

    def _close(self, ws: WSocket, *, abortive: bool) -> None:
        def do() -> None:
            self._ov_closing(ws)
            ws.closed = True
            ws.reg_kind = None
            s = ws.sock
            s.watch(None)
            if ws.is_tcp:
                # {1, 0} resets; {1, t} is a graceful close whose wait closesocket does itself
                s.linger = 0 if abortive or (ws.opts.linger_on and ws.opts.linger_s == 0) else None
            s.close(self._now())

        self._call(do)
        self._sockets.pop(ws.handle, None)

    # == bind / listen / accept ===================================================================
    @_api(zero=True)
    def bind(self, s: int, name: Any, namelen: int) -> int:
        ws = self._get(s)
        addr, port = _parse_sockaddr(name, namelen, family=ws.family)
        if self._call(self._local, ws) is not None:
            raise _Fail(C.WSAEINVAL)

        def do() -> None:
            ws.sock.bind(addr, port, reuse=ws.opts.reuseaddr, exclusive=ws.opts.exclusive)
            if ws.phase is Phase.FRESH:
                ws.phase = Phase.BOUND

        self._call(do)
        return 0

    @_api()
    def listen(self, s: int, backlog: int) -> int:
        ws = self._get(s)
        if not ws.is_tcp:
            raise _Fail(C.WSAEOPNOTSUPP)
        if ws.phase in (Phase.CONNECTED, Phase.CONNECTING):
            raise _Fail(C.WSAEISCONN if ws.phase is Phase.CONNECTED else C.WSAEINVAL)
        if self._call(self._local, ws) is None:
            raise _Fail(C.WSAEINVAL)  # ≠L: no implicit bind
        if ws.phase is Phase.FAILED:
            self._call(self._fresh_stack_socket, ws)
        if backlog < 0:
            backlog = -backlog  # SOMAXCONN_HINT(n)
        # SOMAXCONN means "the maximum"; the stack clamps to its own limit (Windows: 200)
        backlog = max(1, min(backlog, 0xFFFF))

        def do() -> None:
            ws.sock.listen(backlog)  # again on a listening socket: 0, the new backlog applies
            ws.phase = Phase.LISTENING
            self._refresh(ws)

        self._call(do)
        return 0

    def _fresh_stack_socket(self, ws: WSocket) -> None:
        """Windows lets a socket whose connect failed listen on its name (sock.c test_select);
        the stack socket was used for the attempt, so a new one takes over the same name."""
        old = ws.sock
        addr, port = R.local(ws)
        old.watch(None)
        old.close(self._now())
        new = self._open_stack_socket(self.host.stack.tcp, ws.family)
        if ws.is_v6:
            new.v6only = ws.opts.v6only
        new.bind(addr, port, reuse=ws.opts.reuseaddr, exclusive=ws.opts.exclusive)
        o = ws.opts
        new.rcvbuf = max(o.rcvbuf, 1)
        new.sndbuf = o.sndbuf if o.sndbuf > 0 else ws.stack_sndbuf
        ws.sock = new
        self._apply_tcp_options(ws)
        self._watch(ws)
        ws.phase = Phase.BOUND

    @_api(fail=C.INVALID_SOCKET)
    def accept(self, s: int, addr: Any = None, addrlen: Any = None) -> int:
        ws = self._get(s)
        if not ws.is_tcp:
            raise _Fail(C.WSAEOPNOTSUPP)
        if ws.phase is not Phase.LISTENING:
            raise _Fail(C.WSAEINVAL)
        size = _sockaddr_size(ws.family)
        if addr is not None and addrlen is not None:
            n = _len_value(addrlen)
            if n is None or n < size:
                raise _Fail(C.WSAEFAULT)
        while (new := self._call(self._accept_one, ws)) is None:
            if ws.nonblocking:
                raise _Fail(C.WSAEWOULDBLOCK)
            outcome = self._block(ws, lambda: bool(ws.sock.accept_pending), None)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
        if addr is not None and addrlen is not None:
            raddr, rport = new.sock.remote
            _write_sockaddr(addr, addrlen, raddr, rport, ws.family)
        elif addr is None and addrlen is not None and not isinstance(addrlen, int):
            _len_store(addrlen, size)
        return new.handle

    def _accept_one(self, ws: WSocket) -> WSocket | None:
        sock = ws.sock.accept()
        self._reenable(ws, C.FD_ACCEPT)
        if sock is None:
            return None
        # item 21: the new socket inherits options and the event registration
        new = WSocket(next(self._handles), ws.type, ws.proto, sock, phase=Phase.CONNECTED,
                      nonblocking=ws.nonblocking, opts=ws.opts.copy(), stack_sndbuf=ws.stack_sndbuf,
                      clock=ws.clock, connected_at=ws.clock(), family=ws.family)
        self._apply_tcp_options(new)
        if ws.reg_kind is not None:  # inherited, not a new registration; never an FD_CONNECT
            new.reg_kind, new.reg_events, new.hwnd, new.wmsg, new.event = (
                ws.reg_kind, ws.reg_events, ws.hwnd, ws.wmsg, ws.event)
        self._sockets[new.handle] = new
        self._watch(new)
        self._refresh(new)
        return new

    def _apply_tcp_options(self, ws: WSocket) -> None:
        s, o = ws.sock, ws.opts
        s.nodelay = o.nodelay
        if o.keepalive_time_ms:
            s.keepalive_idle_s = o.keepalive_time_ms / 1000.0
        if o.keepalive_interval_ms:
            s.keepalive_interval_s = o.keepalive_interval_ms / 1000.0
        s.keepalive = o.keepalive

    # == connect ==================================================================================
    @_api(zero=True)
    def connect(self, s: int, name: Any, namelen: int) -> int:
        ws = self._get(s)
        dest = _parse_sockaddr(name, namelen, allow_unspec=not ws.is_tcp, family=ws.family)
        if not ws.is_tcp:
            return self._udp_connect(ws, dest)
        if dest is _UNSPEC_NAME:  # pragma: no cover - allow_unspec is False for TCP
            raise _Fail(C.WSAEAFNOSUPPORT)
        addr, port = dest
        if ws.phase is Phase.LISTENING or self._ov_blocks_connect(ws):
            raise _Fail(C.WSAEINVAL)
        if ws.phase is Phase.CONNECTED:
            raise _Fail(C.WSAEISCONN)
        if ws.phase is Phase.CONNECTING:
            raise _Fail(E.connect_error(Reason.ALREADY, version=self.version, was_bound=True))
        was_bound = self._call(self._local, ws) is not None

        def start() -> None:
            s = ws.sock
            s.syn_rst_retries = self.syn_rst_retries  # item 25
            if self.syn_rst_retry_s is not None:
                s.syn_rst_retry_s = self.syn_rst_retry_s
            self._apply_tcp_options(ws)
            s.connect(addr, port, self._now())
            ws.phase = Phase.CONNECTING  # SO_ERROR keeps an earlier failure's code (sock.c)
            ws.connect_failed = False  # exceptfds waits for this attempt's outcome
            ws.blocking_connect = not ws.nonblocking
            self._refresh(ws)

        try:
            self.host.call(start)
        except UsageError as e:
            raise _Fail(E.connect_error(e.reason, version=self.version, was_bound=was_bound)) from None
        if ws.nonblocking:
            raise _Fail(C.WSAEWOULDBLOCK)  # item 26: even when the peer is local
        outcome = self._block(ws, lambda: (self._refresh(ws), ws.phase is not Phase.CONNECTING)[1], None)
        if outcome != "ready":
            if outcome in ("cancelled", "down"):
                self._call(lambda: ws.sock.abort(self._now()))
                ws.phase = Phase.FAILED
            raise self._blocked_fail(outcome)
        if ws.phase is Phase.FAILED:
            raise _Fail(ws.connect_error)
        return 0

    def _udp_connect(self, ws: WSocket, dest: Any) -> int:
        if dest is _UNSPEC_NAME or dest == (0, 0):
            addr, port = 0, 0
        else:
            addr, port = dest

        def do() -> None:
            s = ws.sock
            peer4 = addr if not ws.is_v6 else (unmap(addr) if is_v4mapped(addr) else None)
            bcast_peer = (self.broadcast_connect == "windows" and not ws.opts.broadcast
                          and bool(peer4) and self.host.stack.is_broadcast(peer4))
            if bcast_peer:
                s.broadcast = True  # Windows lets the peer be set without SO_BROADCAST (item 55)
            try:
                s.connect(addr, port)
            finally:
                if bcast_peer:
                    s.broadcast = ws.opts.broadcast
            ws.udp_broadcast_peer = bcast_peer
            if addr == 0 and port == 0:
                ws.udp_disconnected = True
                ws.phase = Phase.BOUND
            else:
                ws.udp_disconnected = False
                ws.phase = Phase.CONNECTED
                ws.enabled |= C.FD_WRITE  # the connect reports FD_WRITE again (sock.c)
                R.connect_done(ws, 0, udp=True)
                self._refresh(ws)

        self._call(do)
        return 0

    @_api(zero=True)
    def WSAConnect(self, s: int, name: Any, namelen: int, lpCallerData: Any = None,  # noqa: N802, N803
                   lpCalleeData: Any = None, lpSQOS: Any = None, lpGQOS: Any = None) -> int:  # noqa: N803
        """connect with (unsupported) QoS and connect data: non-NULL QoS -> WSAEINVAL (item 35)."""
        self._get(s)
        if lpSQOS is not None or lpGQOS is not None:
            raise _Fail(C.WSAEINVAL)
        if self.connect(s, name, namelen) == C.SOCKET_ERROR:
            raise _Fail(self.WSAGetLastError())
        if lpCalleeData is not None and hasattr(lpCalleeData, "len"):
            lpCalleeData.len = 0
        return 0

    # == shutdown =================================================================================
    @_api(zero=True)
    def shutdown(self, s: int, how: int) -> int:
        ws = self._get(s)
        if how not in (C.SD_RECEIVE, C.SD_SEND, C.SD_BOTH):
            raise _Fail(C.WSAEINVAL)
        if ws.is_tcp and (ws.phase is not Phase.CONNECTED or self._ov_context_missing(ws)):
            raise _Fail(C.WSAENOTCONN)

        def do() -> None:
            if how in (C.SD_RECEIVE, C.SD_BOTH):
                ws.shut_rd = True
            if how in (C.SD_SEND, C.SD_BOTH):
                ws.shut_wr = True
            if ws.is_tcp:
                ws.sock.shutdown(how, self._now())
            else:
                ws.sock.shutdown(how)

        self._call(do)
        return 0

    # == names ====================================================================================
    @_api(zero=True)
    def getsockname(self, s: int, name: Any, namelen: Any) -> int:
        ws = self._get(s)
        loc = self._call(self._sockname, ws)
        if loc is None or self._ov_context_missing(ws):
            raise _Fail(C.WSAEINVAL)  # item 36 (≠L)
        _write_sockaddr(name, namelen, *loc, ws.family)
        return 0

    @_api()
    def getpeername(self, s: int, name: Any, namelen: Any) -> int:
        ws = self._get(s)
        remote = self._call(lambda: ws.sock.remote)
        named = ws.phase is Phase.CONNECTED or (ws.is_tcp and ws.phase is Phase.CONNECTING)
        if self._ov_context_missing(ws):
            named = False
        if not named or remote is None or (not ws.is_tcp and ws.udp_disconnected):
            raise _Fail(C.WSAENOTCONN)  # checked before the arguments, even NULL ones
        _write_sockaddr(name, namelen, int(remote[0]), int(remote[1]), ws.family)  # WSAEFAULT: short *namelen
        return 0
