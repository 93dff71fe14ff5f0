"""The Winsock API over a ustack runtime host: one `Winsock` object per host.

Method names and arguments follow Winsock: integer handles, SOCKET_ERROR / INVALID_SOCKET
returns, the code in WSAGetLastError (per thread), SOCKADDR_IN structures or their bytes with an
explicit length, option values as bytes/ctypes with optlen. Blocking calls block the calling
thread through `host.wait` (virtual time in the Simulator); nonblocking calls never block.

Errors from the stack are translated in exactly one place, `errors.py`.

This module holds the `Winsock` class itself: its per-host state, the shared helpers the call
families use (`_get`, `_call`, `_block`, readiness bookkeeping), startup and the Winsock 1.1
blocking model. The calls are mixins by family, composed into `Winsock`:
connection_calls.py (socket ... shutdown, getsockname/getpeername), transfer_calls.py (send,
recv, sendto, recvfrom), select_calls.py (select, WSAPoll), control_calls.py (ioctlsocket,
WSAIoctl, setsockopt, getsockopt), event_calls.py (WSAAsyncSelect, WSAEventSelect, event
objects), overlapped_calls.py (overlapped I/O, completion ports), names.py (name resolution),
address_calls.py (inet_pton/inet_ntop, WSAStringToAddress/WSAAddressToString; IPv6 text and
SOCKADDR_IN6 in addr6.py).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ustack.core.errors import UsageError
from ustack.core.family import is_v4mapped, unmap, v4mapped

from . import constants as C
from . import options as O
from . import readiness as R
from . import structs as _structs
from .address_calls import AddressCalls
from .buffers import WsaFail as _Fail
from .callwrap import api_call as _api
from .callwrap import usage_fail as _usage
from .connection_calls import ConnectionCalls
from .control_calls import ControlCalls
from .event_calls import EventCalls
from .names import NameResolution
from .objects import MSG
from .overlapped_calls import OverlappedCalls
from .select_calls import SelectCalls
from .structs import WSADATA
from .transfer_calls import TransferCalls
from .wsocket import Options, WSocket

T = TypeVar("T")

_SUPPORTED = ((1, 1), (2, 2))
_HOOK_SLICE_S = 0.05  # how often a Winsock 1.1 blocking hook runs while a call blocks


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.last_error = 0
        self.blocking = False  # a Winsock 1.1 blocking call is outstanding in this thread
        self.cancelled = False
        self.in_hook = False
        self.last_from: tuple[int, int] | None = None


_registry_lock = threading.Lock()


class Winsock(ConnectionCalls, TransferCalls, SelectCalls, ControlCalls, EventCalls, OverlappedCalls,
              NameResolution, AddressCalls):
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
        self._names_setup()

    @classmethod
    def for_host(cls, host: Any) -> Winsock:
        """The host's shared Winsock, started (version 2.2) if it was not. Kept in the host's
        public `winsock` attribute (runtime contract, docs/contracts.md; None until first use),
        so it lives exactly as long as the host."""
        with _registry_lock:
            ws = getattr(host, "winsock", None)
            if ws is None:
                ws = cls(host)
                host.winsock = ws
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
        peer = remote[0]
        if ws.is_v6:  # a dual-mode socket's IPv4 peer is v4-mapped; IPv6 routes: the transport's
            if not is_v4mapped(peer):
                return loc
            peer = unmap(peer)
        stack = self.host.stack
        if stack.is_local(peer):
            src = peer  # loopback and our own addresses: the peer's address is ours
        else:
            route = stack.route(peer)
            if route is None:
                return loc
            src = int(route[0])
        return (v4mapped(src) if ws.is_v6 else src, loc[1])

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
        lpWSAData.iMaxUdpDg = 0 if version >= (2, 0) else O.MAX_UDP_MSG
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
