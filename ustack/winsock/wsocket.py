"""Winsock's view of one socket: the handle's state machine, options and event registration.

The stack socket (`ustack.core` UdpSocket / `ustack.tcp` TcpSocket) does the networking; this
object adds what Winsock defines on top: the connect phases as Windows reports them, SO_ERROR,
shutdown flags, the nonblocking flag, and the WSAAsyncSelect / WSAEventSelect bookkeeping
(which events are enabled, the WSAEventSelect record). Everything here is touched under the
host's lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from . import constants as C
from .objects import WSAEVENT, Window


class Phase(Enum):
    """Where a socket is in Winsock's terms (not TCP's)."""

    FRESH = "fresh"  # created, not bound
    BOUND = "bound"
    LISTENING = "listening"
    CONNECTING = "connecting"  # TCP: SYN sent, outcome pending
    CONNECTED = "connected"  # TCP: was established (stays so after shutdown/reset); UDP: has a peer
    FAILED = "failed"  # TCP: the last connect attempt failed (SO_ERROR holds the code)


@dataclass
class Options:
    reuseaddr: bool = False
    exclusive: bool = False
    broadcast: bool = False
    keepalive: bool = False
    nodelay: bool = False
    linger_on: int = 0  # LINGER.l_onoff as set (any nonzero value means on)
    linger_s: int = 0
    rcvbuf: int = 65536
    sndbuf: int = 65536
    rcvtimeo_ms: int = 0  # 0: wait forever
    sndtimeo_ms: int = 0
    udp_connreset: bool = True  # SIO_UDP_CONNRESET (on by default)
    dontroute: bool = False
    oobinline: bool = False
    debug: bool = False
    keepalive_time_ms: int = 0  # SIO_KEEPALIVE_VALS; 0: the stack's default
    keepalive_interval_ms: int = 0
    mcast_ttl: int = 1  # IP_MULTICAST_TTL
    mcast_loop: bool = True  # IP_MULTICAST_LOOP (Windows: on by default)
    mcast_if: int = 0  # IP_MULTICAST_IF, host order (0: the route's interface)
    v6only: bool = True  # IPV6_V6ONLY (AF_INET6 sockets): TRUE by default on Windows
    hop_limit: int | None = None  # IPV6_UNICAST_HOPS as set; None: the stack's default

    def copy(self) -> Options:
        return Options(**vars(self))


@dataclass
class WSocket:
    handle: int
    type: int  # SOCK_STREAM / SOCK_DGRAM
    proto: int  # IPPROTO_TCP / IPPROTO_UDP
    sock: Any  # the stack socket
    phase: Phase = Phase.FRESH
    nonblocking: bool = False
    opts: Options = field(default_factory=Options)
    so_error: int = 0  # SO_ERROR: the failed connect's code; reading does not clear it (≠L)
    connect_failed: bool = False  # TCP: a connect failed and none succeeded since (exceptfds)
    blocking_connect: bool = False  # the pending connect was started by a blocking call
    connect_error: int = 0  # the last connect attempt's failure code
    shut_rd: bool = False
    shut_wr: bool = False
    udp_disconnected: bool = False  # UDP: dis-connected by an all-zero connect (send/recv: ENOTCONN)
    udp_broadcast_peer: bool = False  # UDP: connected to a broadcast address without SO_BROADCAST
    was_bound_before_connect: bool = False
    stack_sndbuf: int = 65536  # the stack socket's own send buffer size (SO_SNDBUF 0 keeps it)
    closed: bool = False
    blockers: int = 0  # threads blocked in a call on this socket
    # notification registration: None, "async" (WSAAsyncSelect) or "event" (WSAEventSelect)
    reg_kind: str | None = None
    reg_events: int = 0
    hwnd: Window | None = None
    wmsg: int = 0
    event: WSAEVENT | None = None
    # FD bits that may be reported now: all at first; a report disables its bit until a call of
    # item 43 (or a WSAAsyncSelect registration) re-enables it. Kept across registrations.
    enabled: int = (1 << C.FD_MAX_EVENTS) - 1
    record: int = 0  # WSAEventSelect: network events recorded since WSAEnumNetworkEvents
    record_errors: list[int] = field(default_factory=lambda: [0] * C.FD_MAX_EVENTS)
    connect_event: int | None = None  # a completed connect's FD_CONNECT code, not yet reported
    seen_rx: int = 0  # bytes (or datagram bytes) queued at the last refresh: arrivals show as growth
    seen_accept: int = 0  # connections waiting at the last refresh
    connected_at: float | None = None  # TCP: host time the connection was established
    oob_done: int | None = None  # stream index of the urgent byte already returned (oob.py)
    oob_byte: bytes | None = None  # an urgent byte a normal read took out, for MSG_OOB
    clock: Callable[[], float] = field(default=lambda: 0.0, repr=False)  # the host's now()
    family: int = C.AF_INET  # AF_INET (32-bit addresses, SOCKADDR_IN) or AF_INET6 (128-bit, SOCKADDR_IN6)

    @property
    def is_tcp(self) -> bool:
        return self.type == C.SOCK_STREAM

    @property
    def is_v6(self) -> bool:
        return self.family == C.AF_INET6

    @property
    def is_bound(self) -> bool:
        return self.phase is not Phase.FRESH

    def __repr__(self) -> str:
        kind = "TCP" if self.is_tcp else "UDP"
        return f"<WSocket {self.handle:#x} {kind} {self.phase.value}{' closed' if self.closed else ''}>"
