"""The Winsock API over a ustack runtime host: one `Winsock` object per host.

Method names and arguments follow Winsock: integer handles, SOCKET_ERROR / INVALID_SOCKET
returns, the code in WSAGetLastError (per thread), SOCKADDR_IN structures or their bytes with an
explicit length, option values as bytes/ctypes with optlen. Blocking calls block the calling
thread through `host.wait` (virtual time in the Simulator); nonblocking calls never block.

Errors from the stack are translated in exactly one place, `errors.py`.
"""

from __future__ import annotations

import itertools
import struct
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ustack.core.errors import UsageError
from ustack.core.reasons import Reason

from . import constants as C
from . import errors as E
from . import ioconstants as K
from . import oob as OOB
from . import options as O
from . import readiness as R
from . import structs as _structs
from .buffers import UNSPEC_NAME as _UNSPEC_NAME
from .buffers import WsaFail as _Fail
from .buffers import in_bytes as _in_bytes
from .buffers import len_store as _len_store
from .buffers import len_value as _len_value
from .buffers import out_check as _out_check
from .buffers import parse_sockaddr as _parse_sockaddr
from .buffers import write_out as _write_out
from .buffers import write_sockaddr as _write_sockaddr
from .callwrap import api_call as _api
from .callwrap import usage_fail as _usage
from .names import NameResolution
from .objects import MSG, WSAEVENT, Window, is_valid_event
from .overlapped_calls import OverlappedCalls
from .structs import (
    FD_SET,
    SOCKADDR_IN_SIZE,
    TIMEVAL,
    WSADATA,
    WSANETWORKEVENTS,
    WSAPOLLFD,
    u_long,
)
from .wsocket import Options, Phase, WSocket

T = TypeVar("T")
# TCP states in which our side still has data or a FIN to get acknowledged
_DRAINING = frozenset({"ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1", "CLOSING", "LAST_ACK"})

_SUPPORTED = ((1, 1), (2, 2))
_HOOK_SLICE_S = 0.05  # how often a Winsock 1.1 blocking hook runs while a call blocks
_MAX_DGRAM = 65507


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.last_error = 0
        self.blocking = False  # a Winsock 1.1 blocking call is outstanding in this thread
        self.cancelled = False
        self.in_hook = False
        self.last_from: tuple[int, int] | None = None


_registry_lock = threading.Lock()


class Winsock(OverlappedCalls, NameResolution):
    """Winsock for one host (a runtime.Host or a simulated host).

    Options (keyword):
    - syn_rst_retries: how often Windows re-sends a SYN answered by RST before reporting
      WSAECONNREFUSED (item 25; default 2).
    - syn_rst_retry_s: the wait before each of those SYNs, set on every socket this Winsock
      connects (default 1.0 s, so a refusal takes about 2 s as on Windows' loopback; None: the
      TCP layer's TcpConfig.syn_rst_retry_s).
    - broadcast_connect: "windows" (default: a UDP connect to a broadcast address without
      SO_BROADCAST succeeds and send() to it works; only sendto a broadcast address needs the
      option, as sock.c test_broadcast shows on real Windows) or "document" (that connect fails
      with WSAEACCES, as the founding connect page says; item 55).
    - max_sockets: more open sockets than this -> WSAEMFILE.
    - on_event: called as on_event(s, events) under the host lock after every stack event on
      socket s (`events`: ustack.core.events bits), once Winsock's own bookkeeping is done; a
      layer above can mirror readiness onto something else (e.g. a file descriptor), asking
      `readiness(s)` when the event may have changed it. It runs for every segment received,
      so it must be quick, and it may call nothing else of this Winsock.
    """

    def __init__(self, host: Any, *, syn_rst_retries: int = 2, syn_rst_retry_s: float | None = 1.0,
                 broadcast_connect: str = "windows", max_sockets: int = 4096,
                 on_event: Callable[[int, int], None] | None = None) -> None:
        if broadcast_connect not in ("windows", "document"):
            raise ValueError("broadcast_connect must be 'windows' or 'document'")
        self.host = host
        self.syn_rst_retries = syn_rst_retries
        if syn_rst_retry_s is not None and syn_rst_retry_s < 0:
            raise ValueError("syn_rst_retry_s must be >= 0")
        self.syn_rst_retry_s = syn_rst_retry_s
        self.broadcast_connect = broadcast_connect
        self.max_sockets = max_sockets
        self.on_event = on_event
        self.version: tuple[int, int] = (2, 2)
        self._startups = 0
        self._sockets: dict[int, WSocket] = {}
        self._handles = itertools.count(0x104, 4)  # never reused: a stale handle stays invalid
        self._tls = _ThreadState()
        self._hooks: dict[int, Callable[[], Any] | None] = {}  # thread id -> 1.1 blocking hook
        self.callback_errors: list[BaseException] = []  # exceptions caught in stack callbacks
        self._ov_setup()

    @classmethod
    def for_host(cls, host: Any) -> Winsock:
        """The host's shared Winsock, started (version 2.2) if it was not. Kept on the host
        object itself, so it lives exactly as long as the host."""
        with _registry_lock:
            ws = getattr(host, "_ustack_winsock", None)
            if ws is None:
                ws = cls(host)
                host._ustack_winsock = ws
        if ws._startups == 0:
            ws.WSAStartup(0x0202, WSADATA())
        return ws

    def __repr__(self) -> str:
        return f"<Winsock {self.version[0]}.{self.version[1]} on {self.host!r}, {len(self._sockets)} sockets>"

    # == helpers ===================================================================================
    def _set_error(self, code: int) -> None:
        self._tls.last_error = code

    def _tls_blocking(self) -> bool:
        return self._tls.blocking

    def _check_started(self) -> None:
        if self._startups <= 0:
            raise _Fail(C.WSANOTINITIALISED)
        if self._net_down():
            raise _Fail(C.WSAENETDOWN)

    def _net_down(self) -> bool:
        """The host was closed, or its network thread stopped (a real Host whose device failed)."""
        host = self.host
        down = getattr(host, "down", None)  # the runtime contract's flag
        if down is not None:
            return bool(down)
        return bool(getattr(host, "closed", False)) or getattr(host, "running", True) is False

    def _get(self, s: Any) -> WSocket:
        ws = self._sockets.get(s) if isinstance(s, int) else None
        if ws is None or ws.closed:
            raise _Fail(C.WSAENOTSOCK)
        return ws

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn under the host lock; a UsageError from the stack becomes the call's WSA code."""
        try:
            return self.host.call(fn, *args)
        except UsageError as e:
            raise _usage(e) from None

    def _now(self) -> float:
        return self.host.now()

    def _is_v11(self) -> bool:
        return self.version < (2, 0)

    # -- blocking ---------------------------------------------------------------------------------
    def _block(self, ws: WSocket | None, ready: Callable[[], bool], timeout_s: float | None, *,
               alertable: bool = True) -> str:
        """Block the calling thread until ready() (run under the lock): "ready", "timeout",
        "cancelled" (WSACancelBlockingCall), "closed" (closesocket from another thread) or
        "down" (the host stopped). `alertable`: completion routines of this thread run while
        it waits and the wait goes on (sock.c: a blocking recv, accept or select waits
        alertably once it really blocks)."""
        tls = self._tls
        me = threading.get_ident()
        v11 = self._is_v11()
        tls.blocking = v11
        tls.cancelled = False
        if ws is not None:
            ws.blockers += 1
        outcome: list[str] = []

        def pred() -> bool:
            if tls.cancelled:
                outcome.append("cancelled")
            elif ws is not None and ws.closed:
                outcome.append("closed")
            elif ready():
                outcome.append("ready")
            elif self._net_down():
                outcome.append("down")
            elif alertable and self._ov_apcs.pending(me):
                outcome.append("apc")
            return bool(outcome)

        try:
            deadline = None if timeout_s is None else self._now() + timeout_s
            while True:
                hook = self._hooks.get(threading.get_ident()) if v11 else None
                left = None if deadline is None else max(0.0, deadline - self._now())
                step = left if hook is None else (_HOOK_SLICE_S if left is None else min(left, _HOOK_SLICE_S))
                self.host.wait(pred, step)
                if outcome and outcome[-1] == "apc":
                    outcome.clear()
                    self._ov_run_apcs()
                    continue
                if outcome:
                    return outcome[-1]
                if self._net_down():
                    return "down"
                if deadline is not None and self._now() >= deadline:
                    return "timeout"
                if hook is not None:
                    tls.in_hook = True
                    try:
                        hook()
                    finally:
                        tls.in_hook = False
        finally:
            tls.blocking = False
            if ws is not None:
                ws.blockers -= 1

    def _blocked_fail(self, outcome: str) -> _Fail:
        if outcome == "down":
            return _Fail(C.WSAENETDOWN)
        if outcome == "timeout":
            return _Fail(C.WSAETIMEDOUT)
        return _Fail(C.WSAEINTR)  # cancelled, or the socket was closed under the call

    # -- readiness (ustack/winsock/readiness.py; lock held) ---------------------------------------
    @staticmethod
    def _tcp_state(ws: WSocket) -> str:
        return R.tcp_state(ws)

    @staticmethod
    def _local(ws: WSocket) -> tuple[int, int] | None:
        return R.local(ws)

    def _sockname(self, ws: WSocket) -> tuple[int, int] | None:
        """The bound name; a connected UDP socket bound to 0.0.0.0 reports the local address its
        route to the peer uses, as Microsoft documents for getsockname after connect."""
        loc = R.local(ws)
        if loc is None or loc[0] != 0 or ws.is_tcp or ws.udp_disconnected:
            return loc
        remote = ws.sock.remote
        if remote is None:
            return loc
        stack = self.host.stack
        if stack.is_local(remote[0]):
            return (remote[0], loc[1])  # loopback and our own addresses: the peer's address is ours
        route = stack.route(remote[0])
        return loc if route is None else (int(route[0]), loc[1])

    def _refresh(self, ws: WSocket) -> None:
        R.refresh(ws, self.version)

    def _reenable(self, ws: WSocket, bits: int) -> None:
        R.reenable(ws, bits, self.version)

    def _on_stack_event(self, ws: WSocket, _sock: Any, events: int) -> None:
        try:
            if self._ov_busy(ws):
                self._ov_progress(ws)  # overlapped operations take data before events report it
            self._refresh(ws)
            hook = self.on_event
            if hook is not None and not ws.closed:
                hook(ws.handle, events)
        except Exception as e:  # noqa: BLE001 - nothing may escape into the network thread
            self._callback_error(e)

    def _callback_error(self, e: Exception) -> None:
        """Keep (the first 100 of) the exceptions a stack callback raised; tests/conftest.py
        watches this, as Stack._internal_error, so a swallowed one fails the test."""
        if len(self.callback_errors) < 100:
            self.callback_errors.append(e)

    def _watch(self, ws: WSocket) -> None:
        ws.sock.watch(lambda sock, events: self._on_stack_event(ws, sock, events))

    # == startup and errors =========================================================================
    @_api(startup=False, inprogress=False)
    def WSAStartup(self, wVersionRequested: int, lpWSAData: WSADATA | None) -> int:  # noqa: N802, N803
        """Negotiate 1.1 or 2.2; returns 0 or the error code itself (not via WSAGetLastError)."""
        major, minor = wVersionRequested & 0xFF, (wVersionRequested >> 8) & 0xFF
        if major == 0:
            return C.WSAVERNOTSUPPORTED
        if lpWSAData is None:
            return C.WSAEFAULT
        if (major, minor) >= (2, 2) or major >= 2:
            version = (2, 2) if (major, minor) >= (2, 2) else (2, minor)
        else:
            version = (1, min(minor, 1)) if minor >= 1 else (1, 0)
        lpWSAData.wVersion = version[0] | (version[1] << 8)
        lpWSAData.wHighVersion = 0x0202
        lpWSAData.iMaxSockets = 0 if version >= (2, 0) else min(self.max_sockets, 0xFFFF)
        lpWSAData.iMaxUdpDg = 0 if version >= (2, 0) else _MAX_DGRAM
        lpWSAData.szDescription = b"ustack Winsock 2.2"
        lpWSAData.szSystemStatus = b"Running"
        self.version = version if version >= (1, 1) else (1, 1)
        self._startups += 1
        return 0

    @_api(startup=False)
    def WSACleanup(self) -> int:  # noqa: N802
        """Unmatched -> WSANOTINITIALISED; the last one closes every socket (abortively)."""
        if self._startups <= 0:
            raise _Fail(C.WSANOTINITIALISED)
        self._startups -= 1
        if self._startups == 0:
            for ws in list(self._sockets.values()):
                self._close(ws, abortive=True)
            self._sockets.clear()
        return 0

    def WSAGetLastError(self) -> int:  # noqa: N802
        return self._tls.last_error

    def WSASetLastError(self, iError: int) -> None:  # noqa: N802, N803
        self._tls.last_error = iError

    # == Winsock 1.1 blocking model ================================================================
    def WSAIsBlocking(self) -> bool:  # noqa: N802
        return self._is_v11() and self._tls.blocking

    @_api(inprogress=False)
    def WSACancelBlockingCall(self) -> int:  # noqa: N802
        """1.1 only: the outstanding blocking call of this thread fails with WSAEINTR."""
        if not self._is_v11():
            raise _Fail(C.WSAEOPNOTSUPP)
        if not self._tls.blocking:
            raise _Fail(C.WSAEINVAL)
        self._tls.cancelled = True
        return 0

    @_api(fail=None)
    def WSASetBlockingHook(self, lpBlockFunc: Callable[[], Any]) -> Callable[[], Any] | None:  # noqa: N802, N803
        """1.1 only: fn() runs in the blocked thread while a blocking call waits; calls it makes
        fail with WSAEINPROGRESS, except WSACancelBlockingCall/WSAIsBlocking."""
        if not self._is_v11():
            raise _Fail(C.WSAEOPNOTSUPP)
        if lpBlockFunc is None:
            raise _Fail(C.WSAEFAULT)
        tid = threading.get_ident()
        old = self._hooks.get(tid)
        self._hooks[tid] = lpBlockFunc
        return old

    @_api()
    def WSAUnhookBlockingHook(self) -> int:  # noqa: N802
        if not self._is_v11():
            raise _Fail(C.WSAEOPNOTSUPP)
        self._hooks.pop(threading.get_ident(), None)
        return 0

    # == socket / closesocket =====================================================================
    @_api(fail=C.INVALID_SOCKET, zero=True)
    def socket(self, af: int, type: int, protocol: int) -> int:  # noqa: A002 - Winsock name
        """Argument checks in Windows' order (sock.c test_WSASocket): AF_UNSPEC without a
        protocol -> WSAEINVAL; then the type, the family, the protocol; (af, 0, 0) is TCP and
        AF_UNSPEC with a protocol is IPv4."""
        if af == C.AF_UNSPEC and protocol == 0:
            raise _Fail(C.WSAEINVAL)
        if type not in (0, C.SOCK_STREAM, C.SOCK_DGRAM):
            raise _Fail(C.WSAESOCKTNOSUPPORT)
        if af not in (C.AF_INET, C.AF_UNSPEC):
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
        sock = self._call(stack.tcp.open if type == C.SOCK_STREAM else stack.udp.open)
        if type == C.SOCK_DGRAM:
            sock.port_zero_ok = True  # Windows sends to port 0 (sock.c test_UDP)
        ws = WSocket(next(self._handles), type, want, sock, clock=self.host.now)
        ws.opts.rcvbuf = int(getattr(sock, "rcvbuf", ws.opts.rcvbuf) or ws.opts.rcvbuf)
        ws.opts.sndbuf = int(getattr(sock, "sndbuf", ws.opts.sndbuf) or ws.opts.sndbuf)
        ws.stack_sndbuf = ws.opts.sndbuf
        self._call(self._watch, ws)
        self._sockets[ws.handle] = ws
        return ws.handle

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
        addr, port = _parse_sockaddr(name, namelen)
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
        new = self.host.stack.tcp.open()
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
        if addr is not None and addrlen is not None:
            n = _len_value(addrlen)
            if n is None or n < SOCKADDR_IN_SIZE:
                raise _Fail(C.WSAEFAULT)
        while (new := self._call(self._accept_one, ws)) is None:
            if ws.nonblocking:
                raise _Fail(C.WSAEWOULDBLOCK)
            outcome = self._block(ws, lambda: bool(ws.sock.accept_pending), None)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
        if addr is not None and addrlen is not None:
            raddr, rport = new.sock.remote
            _write_sockaddr(addr, addrlen, raddr, rport)
        elif addr is None and addrlen is not None and not isinstance(addrlen, int):
            _len_store(addrlen, SOCKADDR_IN_SIZE)
        return new.handle

    def _accept_one(self, ws: WSocket) -> WSocket | None:
        sock = ws.sock.accept()
        self._reenable(ws, C.FD_ACCEPT)
        if sock is None:
            return None
        # item 21: the new socket inherits options and the event registration
        new = WSocket(next(self._handles), ws.type, ws.proto, sock, phase=Phase.CONNECTED,
                      nonblocking=ws.nonblocking, opts=ws.opts.copy(), stack_sndbuf=ws.stack_sndbuf,
                      clock=ws.clock, connected_at=ws.clock())
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
        dest = _parse_sockaddr(name, namelen, allow_unspec=not ws.is_tcp)
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
            bcast_peer = (self.broadcast_connect == "windows" and not ws.opts.broadcast
                          and addr != 0 and self.host.stack.is_broadcast(addr))
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

    # == send / recv ==============================================================================
    @_api(zero=True)
    def send(self, s: int, buf: Any, len: int, flags: int = 0) -> int:  # noqa: A002
        ws = self._get(s)
        data = _in_bytes(buf, len)
        if flags & C.MSG_OOB and not ws.is_tcp:
            raise _Fail(C.WSAEOPNOTSUPP)
        if not ws.is_tcp:
            return self._udp_send(ws, data, None)
        return self._tcp_send(ws, data, urgent=bool(flags & C.MSG_OOB))

    def _tcp_send(self, ws: WSocket, data: bytes, urgent: bool = False) -> int:
        """urgent (MSG_OOB): the last byte goes as TCP urgent data (oob.py)."""
        if ws.phase is not Phase.CONNECTED:
            raise _Fail(C.WSAENOTCONN)
        if ws.shut_wr:
            raise _Fail(C.WSAESHUTDOWN)
        s = ws.sock

        def broken() -> int | None:
            err = s.error
            if err is not None:
                return E.broken_error(err)
            if self._tcp_state(ws) not in R.CAN_SEND:
                return C.WSAESHUTDOWN if ws.shut_wr else C.WSAECONNABORTED
            return None

        def try_all() -> int:
            """Nonblocking: all or nothing (item 70); -1 = would block.

            As in Windows' AFD, a send is taken whole whenever the send buffer is not full,
            even if it is larger than the free space (the buffer is overcommitted until it
            drains); WSAEWOULDBLOCK only when it is full. That failure re-enables FD_WRITE,
            which is then posted once space frees up (item 43), not at once."""
            code = broken()
            if code is not None:
                raise _Fail(code)
            if not data:
                return 0
            free = s.writable_bytes
            if free <= 0:
                self._reenable(ws, C.FD_WRITE)
                return -1
            return self._send_overcommit(ws, data, urgent)

        if ws.nonblocking or not data:
            n = self._call(try_all)
            if n < 0:
                raise _Fail(C.WSAEWOULDBLOCK)
            return n
        sent = 0
        view = memoryview(data)  # slices of the rest without copying it each round
        timeout = ws.opts.sndtimeo_ms / 1000.0 if ws.opts.sndtimeo_ms else None
        deadline = None if timeout is None else self._now() + timeout
        while sent < len(data):

            def push(rest: memoryview) -> int:
                """Like a nonblocking send: the whole rest as soon as the buffer is not full."""
                code = broken()
                if code is not None:
                    raise _Fail(code)
                free = s.writable_bytes
                return self._send_overcommit(ws, rest, urgent) if free > 0 else 0

            sent += self._call(push, view[sent:])
            if sent >= len(data):
                break
            left = None if deadline is None else deadline - self._now()
            if left is not None and left <= 0:
                raise _Fail(C.WSAETIMEDOUT)
            outcome = self._block(ws, lambda: s.writable_bytes > 0 or broken() is not None, left)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
        return sent

    def _send_overcommit(self, ws: WSocket, data: bytes | memoryview, urgent: bool = False) -> int:
        """Queue all of data on the TCP socket (lock held; the buffer is not full), letting it
        exceed SO_SNDBUF; it stays unwritable until it has drained below."""
        return ws.sock.send(data, self._now(), overcommit=True, urgent=urgent)

    def _udp_send(self, ws: WSocket, data: bytes, dest: tuple[int, int] | None) -> int:
        if ws.shut_wr:
            raise _Fail(C.WSAESHUTDOWN)
        if len(data) > _MAX_DGRAM:
            raise _Fail(C.WSAEMSGSIZE)
        s = ws.sock

        def do() -> int:
            if dest is None:
                if ws.phase is not Phase.CONNECTED or s.remote is None:
                    raise _Fail(C.WSAENOTCONN)  # item 50 (≠L: EDESTADDRREQ)
                if ws.udp_broadcast_peer and not ws.opts.broadcast:
                    s.broadcast = True  # send() to a connected broadcast peer works (item 55)
                try:
                    n = s.send(data, self._now())
                finally:
                    s.broadcast = ws.opts.broadcast
            else:
                n = s.sendto(data, dest[0], dest[1], self._now())
                if ws.phase is Phase.FRESH:
                    ws.phase = Phase.BOUND  # item 57: sendto binds implicitly
            return len(data) if n is None else n

        return self._call(do)

    @_api(zero=True)
    def sendto(self, s: int, buf: Any, len: int, flags: int, to: Any, tolen: int) -> int:  # noqa: A002
        ws = self._get(s)
        data = _in_bytes(buf, len)
        if ws.is_tcp:  # the address is ignored on a connection-oriented socket
            return self._tcp_send(ws, data, urgent=bool(flags & C.MSG_OOB))
        if flags & C.MSG_OOB:
            raise _Fail(C.WSAEOPNOTSUPP)
        if to is None:
            return self._udp_send(ws, data, None)
        dest = _parse_sockaddr(to, tolen)
        if dest[0] == 0:
            raise _Fail(C.WSAEADDRNOTAVAIL)
        return self._udp_send(ws, data, dest)

    @_api(zero=True)
    def recv(self, s: int, buf: Any, len: int, flags: int = 0) -> int:  # noqa: A002
        ws = self._get(s)
        try:
            _out_check(buf, len)
        except _Fail:
            if ws.reg_kind == "async":  # a failed recv still re-enables FD_READ there (sock.c)
                self._call(self._reenable, ws, C.FD_READ)
            raise
        if ws.is_tcp:
            return self._tcp_recv(ws, buf, len, flags)
        if ws.udp_disconnected:
            raise _Fail(C.WSAENOTCONN)
        data, _addr, _port = self._udp_recv(ws, buf, len, flags)
        return data

    def _tcp_recv(self, ws: WSocket, buf: Any, n: int, flags: int) -> int:
        if flags & C.MSG_OOB:
            return self._tcp_recv_oob(ws, buf, n, flags)
        if ws.phase is not Phase.CONNECTED:
            raise _Fail(C.WSAENOTCONN)
        if ws.shut_rd:
            raise _Fail(C.WSAESHUTDOWN)
        s = ws.sock
        peek = bool(flags & C.MSG_PEEK)
        waitall = bool(flags & C.MSG_WAITALL) and not ws.nonblocking and not peek
        got = bytearray()

        def take() -> int | None:
            """Bytes moved, 0 at EOF, None = would block; raises _Fail on a broken connection."""
            try:
                if OOB.normal_bytes(ws) > 0:
                    chunk = OOB.read_normal(ws, n - len(got), peek)  # stops at an urgent byte
                    got.extend(chunk)
                    return len(chunk)
                if s.error is not None:
                    raise _Fail(E.broken_error(s.error))
                if s.at_eof:
                    return 0
                return None
            finally:
                self._reenable(ws, C.FD_READ | C.FD_OOB)

        if n == 0:
            return 0
        timeout = ws.opts.rcvtimeo_ms / 1000.0 if ws.opts.rcvtimeo_ms else None
        deadline = None if timeout is None else self._now() + timeout
        while True:
            r = self._call(take)
            if r is not None and (r == 0 or not waitall or len(got) >= n):
                break
            if ws.nonblocking:
                if got:
                    break
                raise _Fail(C.WSAEWOULDBLOCK)
            left = None if deadline is None else deadline - self._now()
            if left is not None and left <= 0:
                if got:
                    break
                raise _Fail(C.WSAETIMEDOUT)  # item 69 (≠L EAGAIN)
            outcome = self._block(ws, lambda: OOB.normal_bytes(ws) > 0 or s.at_eof or s.error is not None,
                                  left)
            if outcome == "timeout" and got:
                break
            if outcome != "ready":
                raise self._blocked_fail(outcome)
        _write_out(buf, bytes(got))
        return len(got)

    def _tcp_recv_oob(self, ws: WSocket, buf: Any, n: int, flags: int) -> int:
        """recv(MSG_OOB): the one urgent byte (oob.py). WSAEINVAL with SO_OOBINLINE (Microsoft,
        recv); none waiting: WSAEWOULDBLOCK on a nonblocking socket, else wait for one."""
        if ws.phase is not Phase.CONNECTED:
            raise _Fail(C.WSAENOTCONN)
        if ws.opts.oobinline:
            raise _Fail(C.WSAEINVAL)
        if n == 0:
            return 0
        peek = bool(flags & C.MSG_PEEK)

        def take() -> bytes | None:
            try:
                return OOB.read_oob(ws, peek)
            finally:
                self._reenable(ws, C.FD_OOB)

        timeout = ws.opts.rcvtimeo_ms / 1000.0 if ws.opts.rcvtimeo_ms else None
        s = ws.sock
        while (data := self._call(take)) is None:
            if ws.nonblocking:
                raise _Fail(C.WSAEWOULDBLOCK)
            outcome = self._block(ws, lambda: OOB.pending(ws) or s.error is not None or s.at_eof, timeout)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
            if s.error is not None:
                raise _Fail(E.broken_error(s.error))
            if s.at_eof and not OOB.pending(ws):
                return 0
        _write_out(buf, data)
        return len(data)

    def _udp_recv(self, ws: WSocket, buf: Any, n: int, flags: int) -> tuple[int, int, int]:
        if flags & C.MSG_OOB:
            raise _Fail(C.WSAEOPNOTSUPP)
        if ws.shut_rd:
            raise _Fail(C.WSAESHUTDOWN)
        s = ws.sock
        if self._call(self._local, ws) is None:
            raise _Fail(C.WSAEINVAL)  # item 51 (≠L)
        peek = bool(flags & C.MSG_PEEK)

        def take() -> tuple[bytes, int, int] | None:
            try:
                if s.error is not None:
                    reason = s.error
                    s.clear_error()
                    if ws.opts.udp_connreset:
                        raise _Fail(E.wsa_code(reason))  # item 56: WSAECONNRESET, stays usable
                if peek:
                    return s.peekfrom() if s.readable else None
                return s.recvfrom()
            finally:
                self._reenable(ws, C.FD_READ)

        timeout = ws.opts.rcvtimeo_ms / 1000.0 if ws.opts.rcvtimeo_ms else None
        deadline = None if timeout is None else self._now() + timeout
        while True:
            got = self._call(take)
            if got is not None:
                break
            if ws.nonblocking:
                raise _Fail(C.WSAEWOULDBLOCK)
            left = None if deadline is None else deadline - self._now()
            if left is not None and left <= 0:
                raise _Fail(C.WSAETIMEDOUT)
            outcome = self._block(ws, lambda: bool(s.readable) or s.error is not None or ws.shut_rd, left)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
            if ws.shut_rd:
                raise _Fail(C.WSAESHUTDOWN)
        data, addr, port = got
        data = bytes(data)
        _write_out(buf, data[:n])
        self._tls.last_from = (addr, port)
        if len(data) > n:
            raise _Fail(C.WSAEMSGSIZE)  # item 58: truncated, the rest discarded
        return len(data), addr, port

    @_api(zero=True)
    def recvfrom(self, s: int, buf: Any, len: int, flags: int = 0, from_: Any = None,  # noqa: A002
                 fromlen: Any = None) -> int:
        ws = self._get(s)
        _out_check(buf, len)
        if ws.is_tcp:  # from and fromlen are neither checked nor written (sock.c)
            return self._tcp_recv(ws, buf, len, flags)
        if from_ is not None:
            fl = _len_value(fromlen)
            if fl is None or fl < SOCKADDR_IN_SIZE:
                raise _Fail(C.WSAEFAULT)
        self._tls.last_from = None
        try:
            n, addr, port = self._udp_recv(ws, buf, len, flags)
        except _Fail as f:
            if f.code == C.WSAEMSGSIZE and from_ is not None and self._tls.last_from is not None:
                _write_sockaddr(from_, fromlen, *self._tls.last_from)
            raise
        if from_ is not None:
            _write_sockaddr(from_, fromlen, addr, port)
        return n

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
        _write_sockaddr(name, namelen, *loc)
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
        _write_sockaddr(name, namelen, int(remote[0]), int(remote[1]))  # WSAEFAULT: short *namelen
        return 0

    # == select ===================================================================================
    @_api()
    def select(self, nfds: int, readfds: FD_SET | None, writefds: FD_SET | None,
               exceptfds: FD_SET | None, timeout: TIMEVAL | None) -> int:
        """nfds is ignored. Sets are rewritten in place. The result counts the entries written:
        a socket listed twice in a set appears once, and one FD_SET passed as two of the sets
        holds (and counts) each ready socket once (sock.c test_select). A socket closed by
        another thread during the wait wakes select: listed in readfds it is reported there;
        if nothing is reported, select fails with WSAENOTSOCK and empties the sets."""
        sets = (readfds, writefds, exceptfds)
        if all(fs is None or len(fs) == 0 for fs in sets):
            raise _Fail(C.WSAEINVAL)  # ≠L
        members = [[self._get(h) for h in fs.fd_array] if fs is not None else [] for fs in sets]
        if timeout is None:
            wait_s: float | None = None
        else:
            if timeout.tv_sec < 0 or timeout.tv_usec < 0:
                raise _Fail(C.WSAEINVAL)
            wait_s = timeout.tv_sec + timeout.tv_usec / 1e6
        checks = (R.readable, R.writable, R.excepted)
        result: list[list[int]] = [[], [], []]

        def scan() -> bool:
            for group in members:
                for ws in group:
                    self._refresh(ws)
            result[:] = [[ws.handle for ws in group if not ws.closed and check(ws)]
                         for group, check in zip(members, checks, strict=True)]
            return any(result) or any(ws.closed for group in members for ws in group)

        if not self._call(scan) and wait_s != 0:
            outcome = self._block(None, scan, wait_s)
            if outcome in ("cancelled", "down"):
                raise self._blocked_fail(outcome)
        result[0] += [ws.handle for ws in members[0] if ws.closed]
        written: dict[int, tuple[FD_SET, list[int]]] = {}
        for fs, ready in zip(sets, result, strict=True):
            if fs is not None:
                out = written.setdefault(id(fs), (fs, []))[1]
                for h in ready:
                    if h not in out:
                        out.append(h)
        if not any(out for _fs, out in written.values()) and any(
                ws.closed for group in members for ws in group):
            for fs, _out in written.values():
                fs.fd_array[:] = []
            raise _Fail(C.WSAENOTSOCK)
        for fs, out in written.values():
            fs.fd_array[:] = out
        return sum(len(out) for _fs, out in written.values())

    # == WSAPoll =================================================================================
    @_api(zero=True)
    def WSAPoll(self, fdArray: Any, fds: int, timeout: int) -> int:  # noqa: N802, N803
        """poll(): fills each entry's revents; returns how many entries have events, 0 on
        timeout (milliseconds; negative waits forever). As sock.c test_WSAPoll shows: no array
        -> WSAEINVAL for 0 entries, WSAEFAULT otherwise; `events` may hold only POLLRDNORM,
        POLLRDBAND and POLLWRNORM (anything else -> WSAEINVAL, checked for every entry but
        INVALID_SOCKET ones); a handle that is not a socket gets POLLNVAL and is not counted,
        unless every entry is one (-> WSAENOTSOCK); a socket closed by another thread during the
        wait gets POLLNVAL and is counted."""
        if fds <= 0:
            raise _Fail(C.WSAEINVAL)
        try:
            entries = list(fdArray)[:fds] if fdArray is not None else []
        except TypeError:
            raise _Fail(C.WSAEFAULT) from None
        if len(entries) < fds or not all(isinstance(e, WSAPOLLFD) for e in entries):
            raise _Fail(C.WSAEFAULT)
        socks: list[WSocket | None] = []
        for e in entries:
            e.revents = 0
            ws = self._sockets.get(int(e.fd))
            socks.append(None if ws is None or ws.closed else ws)
        if all(ws is None for ws in socks):
            for e in entries:
                e.revents = C.POLLNVAL
            raise _Fail(C.WSAENOTSOCK)
        for e in entries:
            if int(e.fd) != C.INVALID_SOCKET and e.events & 0xFFFF & ~C.POLL_EVENTS:
                raise _Fail(C.WSAEINVAL)
        found: list[int] = [0] * len(entries)

        def scan() -> bool:
            for i, (e, ws) in enumerate(zip(entries, socks, strict=True)):
                if ws is None:
                    found[i] = 0
                elif ws.closed:
                    found[i] = C.POLLNVAL
                else:
                    self._refresh(ws)
                    found[i] = R.poll_revents(ws, e.events & 0xFFFF)
            return any(found)

        if not self._call(scan) and timeout != 0:
            wait_s = None if timeout < 0 else timeout / 1000.0
            outcome = self._block(None, scan, wait_s)
            if outcome in ("cancelled", "down"):
                raise self._blocked_fail(outcome)
        for e, ws, got in zip(entries, socks, found, strict=True):
            e.revents = C.POLLNVAL if ws is None else got
        return sum(1 for got in found if got)

    # == ioctlsocket / WSAIoctl ===================================================================
    @_api()
    def ioctlsocket(self, s: int, cmd: int, argp: Any) -> int:
        ws = self._get(s)
        cmd &= 0xFFFFFFFF
        if argp is None:
            raise _Fail(C.WSAEFAULT)
        if cmd == C.FIONBIO:
            on = bool(_len_value(argp))
            if not on and ws.reg_kind is not None and ws.reg_events:
                raise _Fail(C.WSAEINVAL)  # item 38: not while WSAAsyncSelect/WSAEventSelect is on
            ws.nonblocking = on
            return 0
        if cmd == C.FIONREAD:

            def pending() -> int:
                sk = ws.sock
                if ws.is_tcp:
                    return OOB.normal_bytes(ws) if ws.phase is Phase.CONNECTED else 0
                return sk.pending_bytes

            _len_store(argp, self._call(pending))
            return 0
        if cmd == C.SIOCATMARK:
            if not ws.is_tcp:
                raise _Fail(C.WSAEINVAL)
            _len_store(argp, int(self._call(OOB.at_mark, ws)))
            return 0
        if cmd == C.SIO_UDP_CONNRESET:
            if ws.is_tcp:
                raise _Fail(C.WSAEINVAL)
            ws.opts.udp_connreset = bool(_len_value(argp))
            return 0
        raise _Fail(C.WSAEINVAL)

    @_api(zero=True)
    def WSAIoctl(self, s: int, dwIoControlCode: int, lpvInBuffer: Any, cbInBuffer: int,  # noqa: N802, N803
                 lpvOutBuffer: Any = None, cbOutBuffer: int = 0, lpcbBytesReturned: Any = None,  # noqa: N803
                 lpOverlapped: Any = None, lpCompletionRoutine: Any = None) -> int:  # noqa: N803
        """The ioctls of ioctlsocket through WSAIoctl's buffers (with an overlapped:
        overlapped_calls.py `_ov_ioctl`). As sock.c
        shows: without lpOverlapped, a NULL lpcbBytesReturned is WSAEFAULT; a short buffer is
        WSAEFAULT and leaves *lpcbBytesReturned alone; an unknown code is WSAEOPNOTSUPP with
        *lpcbBytesReturned = 0; success sets the last error to 0."""
        ws = self._get(s)
        code = dwIoControlCode & 0xFFFFFFFF
        if code == K.SIO_GET_EXTENSION_FUNCTION_POINTER:
            return self._extension_pointer(ws, lpvInBuffer, cbInBuffer, lpvOutBuffer, cbOutBuffer,
                                           lpcbBytesReturned)
        if lpOverlapped is not None or lpCompletionRoutine is not None:
            return self._ov_ioctl(ws, code, lpvInBuffer, cbInBuffer, lpvOutBuffer, cbOutBuffer,
                                  lpcbBytesReturned, lpOverlapped, lpCompletionRoutine)
        if lpcbBytesReturned is None:
            raise _Fail(C.WSAEFAULT)
        if code in (C.FIONBIO, C.SIO_UDP_CONNRESET):
            raw = _in_bytes(lpvInBuffer, None)
            if cbInBuffer < 4 or len(raw) < 4:
                raise _Fail(C.WSAEFAULT)
            value = u_long(struct.unpack_from("<I", raw)[0])
            _len_store(lpcbBytesReturned, 0)
            if self.ioctlsocket(s, code, value) == C.SOCKET_ERROR:
                raise _Fail(self.WSAGetLastError())
            return 0
        if code == C.SIO_BASE_HANDLE:  # no layered providers: the socket is its own base
            if cbOutBuffer < 8:
                raise _Fail(C.WSAEFAULT)
            _out_check(lpvOutBuffer, 8)
            _write_out(lpvOutBuffer, struct.pack("<Q", ws.handle))
            _len_store(lpcbBytesReturned, 8)
            return 0
        if code == C.SIO_KEEPALIVE_VALS:
            _len_store(lpcbBytesReturned, 0)
            raw = _in_bytes(lpvInBuffer, None) if lpvInBuffer is not None else b""
            if cbInBuffer < 12 or len(raw) < 12:
                raise _Fail(C.WSAEFAULT)
            if not ws.is_tcp:
                raise _Fail(C.WSAEOPNOTSUPP)
            onoff, time_ms, interval_ms = struct.unpack_from("<III", raw)
            o = ws.opts
            o.keepalive = bool(onoff)
            o.keepalive_time_ms = time_ms or o.keepalive_time_ms  # 0 keeps the current value
            o.keepalive_interval_ms = interval_ms or o.keepalive_interval_ms
            self._call(self._apply_tcp_options, ws)
            return 0
        if code in (C.FIONREAD, C.SIOCATMARK):
            if cbOutBuffer < 4:
                raise _Fail(C.WSAEFAULT)
            _out_check(lpvOutBuffer, 4)
            value = u_long(0)
            if self.ioctlsocket(ws.handle, code, value) == C.SOCKET_ERROR:
                raise _Fail(self.WSAGetLastError())
            _write_out(lpvOutBuffer, struct.pack("<I", value.value))
            _len_store(lpcbBytesReturned, 4)
            return 0
        _len_store(lpcbBytesReturned, 0)
        raise _Fail(C.WSAEOPNOTSUPP)

    # == options (encoding and rules in options.py) ==============================================
    @_api(zero=True)
    def setsockopt(self, s: int, level: int, optname: int, optval: Any, optlen: int) -> int:
        ws = self._get(s)
        O.check_level(level)
        if level == C.SOL_SOCKET and optname in (K.SO_UPDATE_ACCEPT_CONTEXT, K.SO_UPDATE_CONNECT_CONTEXT):
            return self._ov_update_context(ws, optname, optval, optlen)
        if optval is None:
            raise _Fail(C.WSAEFAULT)
        # only the bytes the option needs are read: a long optlen is not checked against the
        # buffer (sock.c: TCP_NODELAY with optlen 42 works)
        raw = _in_bytes(optval, None)[:optlen if optlen >= 0 else 4]
        pushes = O.set_option(ws, level & 0xFFFFFFFF, optname, raw, optlen)
        if pushes:
            self._call(O.push, ws, pushes)
        return 0

    @_api(zero=True)
    def getsockopt(self, s: int, level: int, optname: int, optval: Any, optlen: Any) -> int:
        ws = self._get(s)
        O.check_level(level)
        n = _len_value(optlen)
        if optval is None or n is None:
            raise _Fail(C.WSAEFAULT)
        if optname == C.SO_ERROR:
            self._call(self._refresh, ws)  # a connect outcome may be due
        level &= 0xFFFFFFFF
        try:
            data, size = O.get_option(ws, level, optname, n)
        except _Fail:
            if (fill := O.short_fill(ws, level, optname, n)):
                _out_check(optval, len(fill))
                _write_out(optval, fill)
            raise
        _out_check(optval, len(data))
        _write_out(optval, data)
        _len_store(optlen, size)
        return 0

    # == WSAAsyncSelect / WSAEventSelect ==========================================================
    def create_window(self, name: str = "") -> Window:
        """A window handle for WSAAsyncSelect: a message queue the application reads."""
        return Window(self.host, name)

    CreateWindow = create_window

    @_api()
    def WSAAsyncSelect(self, s: int, hWnd: Window | None, wMsg: int, lEvent: int) -> int:  # noqa: N802, N803
        ws = self._get(s)
        if lEvent and not isinstance(hWnd, Window):
            raise _Fail(C.WSAEINVAL)

        def do() -> None:
            ws.nonblocking = True  # item 38
            if not lEvent:
                ws.reg_kind, ws.reg_events, ws.hwnd, ws.event = None, 0, None, None
                return
            ws.reg_kind, ws.reg_events, ws.hwnd, ws.wmsg, ws.event = "async", lEvent, hWnd, wMsg, None
            ws.enabled |= ~C.FD_CONNECT & ((1 << C.FD_MAX_EVENTS) - 1)  # item 42: all re-posted
            self._refresh(ws)

        self._call(do)
        return 0

    @_api()
    def WSAEventSelect(self, s: int, hEventObject: WSAEVENT | None, lNetworkEvents: int) -> int:  # noqa: N802, N803
        ws = self._get(s)
        if lNetworkEvents and not is_valid_event(hEventObject):
            raise _Fail(C.WSAEINVAL)

        def do() -> None:
            ws.nonblocking = True  # item 38
            if not lNetworkEvents:
                ws.reg_kind, ws.reg_events, ws.hwnd, ws.event = None, 0, None, None
                return
            # item 42: nothing is re-enabled, so what was already reported is not signalled
            # again, even after a registration with 0 (sock.c test_events); recorded events not
            # yet enumerated signal the event when selected again
            ws.reg_kind, ws.reg_events, ws.event, ws.hwnd = "event", lNetworkEvents, hEventObject, None
            if ws.record & lNetworkEvents and not hEventObject.closed:
                hEventObject.signaled = True
            self._refresh(ws)  # item 48: the event object is never reset here

        self._call(do)
        return 0

    @_api()
    def WSAEnumNetworkEvents(self, s: int, hEventObject: WSAEVENT | None,  # noqa: N802, N803
                             lpNetworkEvents: WSANETWORKEVENTS | None) -> int:  # noqa: N803
        ws = self._get(s)
        if lpNetworkEvents is None:
            raise _Fail(C.WSAEFAULT)
        if hEventObject is not None and not is_valid_event(hEventObject):
            raise _Fail(C.WSAEINVAL)

        def do() -> None:
            self._refresh(ws)
            bits = ws.record & ws.reg_events  # events not selected now stay recorded (sock.c)
            lpNetworkEvents.lNetworkEvents = bits
            for i in range(C.FD_MAX_EVENTS):
                if bits & (1 << i):  # item 47: only the entries of reported events are written
                    lpNetworkEvents.iErrorCode[i] = ws.record_errors[i]
            ws.record &= ~bits
            if hEventObject is not None:
                hEventObject.signaled = False

        self._call(do)
        return 0

    # -- event objects (no WSAStartup needed: they are plain kernel objects) -----------------------
    def WSACreateEvent(self) -> WSAEVENT:  # noqa: N802
        return WSAEVENT()

    def WSACloseEvent(self, hEvent: WSAEVENT) -> bool:  # noqa: N802, N803
        return self._event_op(hEvent, "close")

    def WSASetEvent(self, hEvent: WSAEVENT) -> bool:  # noqa: N802, N803
        return self._event_op(hEvent, "set")

    def WSAResetEvent(self, hEvent: WSAEVENT) -> bool:  # noqa: N802, N803
        return self._event_op(hEvent, "reset")

    def _event_op(self, ev: Any, op: str) -> bool:
        if not is_valid_event(ev):
            self._set_error(C.WSA_INVALID_HANDLE)
            return False

        def do() -> None:
            if op == "close":
                ev.closed = True
            else:
                ev.signaled = op == "set"

        self._call(do)
        return True

    def WSAWaitForMultipleEvents(self, cEvents: int, lphEvents: Any, fWaitAll: bool,  # noqa: N802, N803
                                 dwTimeout: int, fAlertable: bool = False) -> int:  # noqa: N803
        """Lowest signalled index (WSA_WAIT_EVENT_0 + i), WSA_WAIT_TIMEOUT or WSA_WAIT_FAILED."""
        if not 0 < cEvents <= C.WSA_MAXIMUM_WAIT_EVENTS or lphEvents is None:
            self._set_error(C.WSA_INVALID_PARAMETER)
            return C.WSA_WAIT_FAILED
        events = list(lphEvents)[:cEvents]
        if len(events) < cEvents:
            self._set_error(C.WSA_INVALID_PARAMETER)
            return C.WSA_WAIT_FAILED
        if not all(is_valid_event(ev) for ev in events):
            self._set_error(C.WSA_INVALID_HANDLE)
            return C.WSA_WAIT_FAILED
        found: list[int] = []

        def pred() -> bool:
            if fWaitAll:
                if all(ev.signaled for ev in events):
                    found[:] = [0]
            else:
                for i, ev in enumerate(events):
                    if ev.signaled:
                        found[:] = [i]
                        break
            return bool(found)

        timeout_s = None if dwTimeout == C.WSA_INFINITE else dwTimeout / 1000.0
        if fAlertable:  # completion routines of this thread run first (overlapped_calls.py)
            outcome = self._alertable_wait(pred, timeout_s)
            if outcome == "apc":
                return C.WSA_WAIT_IO_COMPLETION
            return C.WSA_WAIT_EVENT_0 + found[0] if outcome == "ready" else C.WSA_WAIT_TIMEOUT
        if self._call(pred):
            return C.WSA_WAIT_EVENT_0 + found[0]
        if timeout_s == 0:
            return C.WSA_WAIT_TIMEOUT
        if self.host.wait(pred, timeout_s):
            return C.WSA_WAIT_EVENT_0 + found[0]
        return C.WSA_WAIT_TIMEOUT

    # == helpers named like the Windows ones =======================================================
    # the byte-order and address helpers themselves (structs.py), reachable as Winsock methods
    inet_addr = staticmethod(_structs.inet_addr)
    inet_ntoa = staticmethod(_structs.inet_ntoa)
    htons = staticmethod(_structs.htons)
    ntohs = staticmethod(_structs.ntohs)
    htonl = staticmethod(_structs.htonl)
    ntohl = staticmethod(_structs.ntohl)

    # == introspection for tests and tools (not Winsock) ==========================================
    def readiness(self, s: int) -> tuple[bool, bool, bool]:
        """select()'s three answers for socket s now (readable, writable, excepted), without
        blocking; all False for a closed or unknown handle. Call it under the host lock."""
        ws = self._sockets.get(s)
        if ws is None or ws.closed:
            return (False, False, False)
        self._refresh(ws)
        return (R.readable(ws), R.writable(ws), R.excepted(ws))

    def stack_socket(self, s: int) -> Any:
        """The stack socket behind a handle (for tests and diagnostics)."""
        return self._sockets[s].sock

    def options(self, s: int) -> Options:
        return self._sockets[s].opts


__all__ = ["MSG", "Winsock"]
