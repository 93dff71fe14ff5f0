"""Socket options: which (level, name) pairs exist, their encodings, and Winsock's rules.

Values cross the API as little-endian bytes of the Windows type. `set_option` validates and
stores into the socket's `Options`, and returns the stack socket attributes to update (the
caller applies them under the host lock); `get_option` encodes the current value for a given
*optlen. Failures raise `WsaFail` with Winsock's code.

The length rules are Windows' as Wine's sock.c test_set_getsockopt shows them on real Windows:
- BOOL options (SO_REUSEADDR, SO_EXCLUSIVEADDRUSE, SO_BROADCAST, SO_OOBINLINE, SO_DONTLINGER,
  SO_DEBUG) take any optlen >= 0 on set (0 changes nothing); get writes 4 bytes when *optlen >=
  4, else the *optlen bytes asked for and reports a size of 1.
- 1-byte options (SO_KEEPALIVE, SO_DONTROUTE, TCP_NODELAY) read only the first byte on set (so
  0x100 is FALSE) and write exactly 1 byte on get, reporting a size of 1, whatever *optlen is.
- int/DWORD options and LINGER need 4 bytes: shorter -> WSAEFAULT (get zeroes the short buffer
  for SO_RCVBUF, SO_SNDBUF and SO_LINGER); longer lengths are accepted and 4 is reported.
- A negative optlen on set: 4-byte SOL_SOCKET options accept it (4 bytes are read); the 1-byte
  options and other levels fail with WSAENOBUFS. A *optlen <= 0 on get is WSAEFAULT.
- IP_MULTICAST_TTL and IP_MULTICAST_LOOP (sock.c test_optsize, sizes {1, 1, 4}): set reads the
  first min(optlen, 4) bytes (optlen 0 -> WSAEFAULT); get writes 4 bytes when *optlen >= 4, else
  1 byte and reports 1. A TTL above 255 is WSAEINVAL; LOOP takes any value as a BOOL (0x100 reads
  back 1). IP_MULTICAST_IF takes and gives an IN_ADDR (4 bytes, else WSAEFAULT).
- IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP take an ip_mreq (8 bytes, else WSAEFAULT); the
  interface must be INADDR_ANY or our address (WSAEADDRNOTAVAIL). Microsoft's "Multicast Socket
  Option Behavior" table: joining a group twice is WSAEADDRNOTAVAIL, dropping one the socket is
  not in WSAEINVAL; a non-multicast group is WSAEINVAL. They are set-only (get:
  WSAENOPROTOOPT) and, like the other multicast options, only for datagram sockets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from . import constants as C
from .buffers import WsaFail
from .wsocket import Phase, WSocket

LEVELS = frozenset({C.SOL_SOCKET, C.IPPROTO_TCP, C.IPPROTO_IP, C.IPPROTO_UDP, C.IPPROTO_IPV6})
IPV6_OPTIONS = {C.IPV6_V6ONLY: "v6only", C.IPV6_UNICAST_HOPS: "hop_limit"}
LINGER_SIZE = 4
MAX_UDP_MSG = 65507  # SO_MAX_MSG_SIZE of a UDP socket over IPv4


@dataclass(frozen=True)
class Kind:
    """How an option's value is sized: `byte` (1-byte BOOL), `bool` (4-byte BOOL, short lengths
    accepted) or `int` (4 bytes needed); `zero_short`: a failed short get zeroes the buffer."""

    name: str
    zero_short: bool = False


BOOL, BYTE, INT, INT_Z = Kind("bool"), Kind("byte"), Kind("int"), Kind("int", zero_short=True)
IPINT, ADDR, MREQ = Kind("ipint"), Kind("addr"), Kind("mreq")  # IPPROTO_IP multicast options

# IPPROTO_IP options: Options attribute and kind
IP_OPTS: dict[int, tuple[str | None, Kind]] = {
    C.IP_MULTICAST_TTL: ("mcast_ttl", IPINT), C.IP_MULTICAST_LOOP: ("mcast_loop", IPINT),
    C.IP_MULTICAST_IF: ("mcast_if", ADDR),
    C.IP_ADD_MEMBERSHIP: (None, MREQ), C.IP_DROP_MEMBERSHIP: (None, MREQ),
}
# option pushes that are calls on the stack socket (value, now) rather than attributes
CALLS = frozenset({"join_group", "leave_group", "set_multicast_interface"})

# SOL_SOCKET options: Options attribute (None: handled by name below) and kind
SOL: dict[int, tuple[str | None, Kind]] = {
    C.SO_REUSEADDR: ("reuseaddr", BOOL), C.SO_EXCLUSIVEADDRUSE: ("exclusive", BOOL),
    C.SO_BROADCAST: ("broadcast", BOOL), C.SO_OOBINLINE: ("oobinline", BOOL),
    C.SO_DEBUG: ("debug", BOOL), C.SO_DONTLINGER: (None, BOOL),
    C.SO_KEEPALIVE: ("keepalive", BYTE), C.SO_DONTROUTE: ("dontroute", BYTE),
    C.SO_RCVBUF: ("rcvbuf", INT_Z), C.SO_SNDBUF: ("sndbuf", INT_Z), C.SO_LINGER: (None, INT_Z),
    C.SO_RCVTIMEO: ("rcvtimeo_ms", INT), C.SO_SNDTIMEO: ("sndtimeo_ms", INT),
    C.SO_ERROR: (None, INT), C.SO_TYPE: (None, INT), C.SO_ACCEPTCONN: (None, INT),
    C.SO_MAX_MSG_SIZE: (None, INT), C.SO_CONNECT_TIME: (None, INT),
}
READ_ONLY = frozenset({C.SO_TYPE, C.SO_ACCEPTCONN, C.SO_MAX_MSG_SIZE, C.SO_CONNECT_TIME})
TCP_ONLY = frozenset({C.SO_LINGER, C.SO_DONTLINGER})


def check_level(level: int) -> None:
    if level & 0xFFFFFFFF not in LEVELS:
        raise WsaFail(C.WSAEINVAL)  # item 67: an invalid level


def _spec(ws: WSocket, level: int, optname: int) -> tuple[str | None, Kind]:
    if level == C.IPPROTO_IPV6:
        if not ws.is_v6:
            raise WsaFail(C.WSAEINVAL)  # an IPv6 option on an AF_INET socket
        if optname not in IPV6_OPTIONS:
            raise WsaFail(C.WSAENOPROTOOPT)
        return IPV6_OPTIONS[optname], INT
    if level == C.IPPROTO_TCP:
        if optname != C.TCP_NODELAY or not ws.is_tcp:
            raise WsaFail(C.WSAENOPROTOOPT)
        return "nodelay", BYTE
    if level == C.IPPROTO_IP:
        if optname not in IP_OPTS or ws.is_tcp:
            raise WsaFail(C.WSAENOPROTOOPT)
        return IP_OPTS[optname]
    if level != C.SOL_SOCKET or optname not in SOL:
        raise WsaFail(C.WSAENOPROTOOPT)
    if optname in TCP_ONLY and not ws.is_tcp:
        raise WsaFail(C.WSAENOPROTOOPT)  # item 67: SO_LINGER on UDP
    if optname == C.SO_MAX_MSG_SIZE and ws.is_tcp:
        raise WsaFail(C.WSAENOPROTOOPT)
    return SOL[optname]


def _value(kind: Kind, level: int, raw: bytes, optlen: int) -> int | None:
    """The integer a set call passes, by Windows' length rules; None: optlen 0 on a BOOL."""
    if optlen < 0:
        if kind is BYTE or level != C.SOL_SOCKET:
            raise WsaFail(C.WSAENOBUFS)
        optlen = 4
    if len(raw) < min(optlen, 1 if kind is BYTE else 4):
        raise WsaFail(C.WSAEFAULT)  # the caller's buffer is shorter than it says
    if kind is BYTE:
        if optlen == 0:
            raise WsaFail(C.WSAEFAULT)
        return raw[0]
    if kind is BOOL:
        if optlen == 0:
            return None
        return int.from_bytes(raw[:min(optlen, 4)], "little")
    if optlen < 4:
        raise WsaFail(C.WSAEFAULT)  # item 67: short optlen
    return struct.unpack_from("<i", raw)[0]


def set_option(ws: WSocket, level: int, optname: int, raw: bytes, optlen: int) -> dict[str, Any]:
    """Store the option; returns {stack socket attribute: value} to apply. `raw`: the
    caller's buffer (its first optlen bytes, or up to 4 for a negative optlen)."""
    if (level, optname) == (C.IPPROTO_IPV6, C.IPV6_V6ONLY) and not ws.is_v6 and ws.phase is Phase.FRESH:
        return {}  # accepted and ignored on an unbound AF_INET socket (Wine's AFD, as Windows)
    attr, kind = _spec(ws, level, optname)
    if level == C.IPPROTO_IP:
        return _set_ip(ws, optname, attr, kind, raw, optlen)
    if optname in READ_ONLY and level == C.SOL_SOCKET:
        raise WsaFail(C.WSAENOPROTOOPT)
    value = _value(kind, level, raw, optlen)
    if value is None:
        return {}  # a BOOL with optlen 0: accepted, nothing changes
    o = ws.opts
    if optname == C.SO_LINGER and level == C.SOL_SOCKET:
        onoff, secs = struct.unpack_from("<HH", raw)
        o.linger_on, o.linger_s = onoff, secs  # l_onoff kept as given (0x100 reads back 0x100)
        return {}  # applied by closesocket
    if optname == C.SO_DONTLINGER and level == C.SOL_SOCKET:
        o.linger_on = int(not value)
        return {}
    if level == C.IPPROTO_IPV6:
        return _set_ipv6(ws, optname, value)
    if optname == C.SO_ERROR and level == C.SOL_SOCKET:
        ws.so_error = value  # Windows lets SO_ERROR be set (sock.c test_set_getsockopt)
        return {}
    if kind is BOOL or kind is BYTE:
        flag = bool(value)
        if optname == C.SO_REUSEADDR and flag and o.exclusive:
            raise WsaFail(C.WSAEINVAL)  # item 15
        if optname == C.SO_EXCLUSIVEADDRUSE and flag and o.reuseaddr:
            raise WsaFail(C.WSAEINVAL)
        setattr(o, attr, flag)
        if optname == C.SO_BROADCAST and level == C.SOL_SOCKET and not ws.is_tcp:
            return {"broadcast": flag}
        if attr in ("keepalive", "nodelay") and ws.is_tcp:
            return {attr: flag}
        return {}  # reuse/exclusive apply at bind; the others have no stack effect
    if optname in (C.SO_RCVBUF, C.SO_SNDBUF):
        if value < 0:
            raise WsaFail(C.WSAEINVAL)
        setattr(o, attr, value)
        if optname == C.SO_RCVBUF:
            return {"rcvbuf": max(value, 1)}
        # SO_SNDBUF 0 turns Winsock's own buffering off; the TCP layer's send buffer (its
        # default size) still takes the data, so nonblocking sends keep succeeding (sock.c
        # test_set_getsockopt, test_send)
        return {"sndbuf": value if value > 0 else ws.stack_sndbuf} if ws.is_tcp else {}
    setattr(o, attr, value & 0xFFFFFFFF)  # SO_RCVTIMEO / SO_SNDTIMEO: DWORD ms, 0 = forever
    return {}


def _set_ip(ws: WSocket, optname: int, attr: str | None, kind: Kind, raw: bytes,
            optlen: int) -> dict[str, Any]:
    """The IPPROTO_IP multicast options (rules in the module docstring)."""
    if optlen < 0:
        raise WsaFail(C.WSAENOBUFS)
    need = {IPINT: 1, ADDR: 4, MREQ: 8}[kind]
    if optlen < need or len(raw) < need:
        raise WsaFail(C.WSAEFAULT)
    o = ws.opts
    if kind is MREQ:
        group, interface = struct.unpack_from("!II", raw)
        call = "join_group" if optname == C.IP_ADD_MEMBERSHIP else "leave_group"
        return {call: (group, interface)}
    if kind is ADDR:
        return {"set_multicast_interface": struct.unpack_from("!I", raw)[0]}
    value = int.from_bytes(raw[:min(optlen, 4)], "little")
    if optname == C.IP_MULTICAST_TTL:
        if value > 255:
            raise WsaFail(C.WSAEINVAL)
        o.mcast_ttl = value
        return {"mcast_ttl": value}
    o.mcast_loop = value != 0
    return {"mcast_loop": value != 0}


def _set_ipv6(ws: WSocket, optname: int, value: int) -> dict[str, Any]:
    """IPV6_V6ONLY only before bind or connect (WSAEINVAL after, as the stack refuses it too);
    IPV6_UNICAST_HOPS 0..255, -1 for the default."""
    o = ws.opts
    if optname == C.IPV6_V6ONLY:
        if ws.phase is not Phase.FRESH:
            raise WsaFail(C.WSAEINVAL)
        o.v6only = bool(value)
        return {"v6only": o.v6only}
    if not -1 <= value <= 255:
        raise WsaFail(C.WSAEINVAL)
    o.hop_limit = None if value == -1 else value
    return {"hop_limit": o.hop_limit}


def push(ws: WSocket, attrs: dict[str, Any]) -> None:
    """Apply option values to the stack socket (host lock held). Membership and the multicast
    interface are calls that may raise UsageError (the caller maps it to the WSA code)."""
    for name, value in attrs.items():
        if name in CALLS:
            if name == "set_multicast_interface":
                ws.sock.set_multicast_interface(value)
                ws.opts.mcast_if = value
            else:
                getattr(ws.sock, name)(value[0], ws.clock(), interface=value[1])
        else:
            setattr(ws.sock, name, value)


def _current(ws: WSocket, level: int, optname: int, attr: str | None) -> bytes:
    o = ws.opts
    if level == C.IPPROTO_IP:
        if optname == C.IP_MULTICAST_IF:
            return struct.pack("!I", o.mcast_if)  # an IN_ADDR: network byte order
        if optname not in (C.IP_MULTICAST_TTL, C.IP_MULTICAST_LOOP):
            raise WsaFail(C.WSAENOPROTOOPT)  # membership options are set-only
    if level == C.SOL_SOCKET:
        if optname == C.SO_LINGER:
            return struct.pack("<HH", int(o.linger_on), o.linger_s)
        if optname == C.SO_DONTLINGER:
            return struct.pack("<i", int(not o.linger_on))
        if optname == C.SO_ERROR:
            return struct.pack("<i", ws.so_error)  # item 29: reading does not clear it (≠L)
        if optname == C.SO_TYPE:
            return struct.pack("<i", ws.type)
        if optname == C.SO_ACCEPTCONN:
            return struct.pack("<i", int(ws.phase is Phase.LISTENING))
        if optname == C.SO_MAX_MSG_SIZE:
            return struct.pack("<i", MAX_UDP_MSG)
        if optname == C.SO_CONNECT_TIME:  # whole seconds connected; ~0 when not (UDP: always)
            since = ws.connected_at
            if not ws.is_tcp or since is None or ws.phase is not Phase.CONNECTED:
                return struct.pack("<I", 0xFFFFFFFF)
            return struct.pack("<I", int(ws.clock() - since))
    if level == C.IPPROTO_IPV6 and optname == C.IPV6_UNICAST_HOPS:
        hops = o.hop_limit if o.hop_limit is not None else ws.sock.stack.ipv6.hop_limit  # the default
        return struct.pack("<I", hops)
    assert attr is not None
    return struct.pack("<I", int(getattr(o, attr)) & 0xFFFFFFFF)


def get_option(ws: WSocket, level: int, optname: int, optlen: int) -> tuple[bytes, int]:
    """(bytes to write into the caller's buffer, size to report in *optlen); WSAEFAULT for a
    short *optlen on a 4-byte option (see `short_fill` for what that leaves behind)."""
    attr, kind = _spec(ws, level, optname)
    if optlen <= 0:
        raise WsaFail(C.WSAEFAULT)
    data = _current(ws, level, optname, attr)
    if kind is BYTE:
        return data[:1], 1
    if kind is IPINT:
        return (data, 4) if optlen >= 4 else (data[:1], 1)
    if kind is BOOL:
        return (data, 4) if optlen >= 4 else (data[:optlen], 1)
    if optlen < 4:
        raise WsaFail(C.WSAEFAULT)
    return data, 4


def short_fill(ws: WSocket, level: int, optname: int, optlen: int) -> bytes:
    """What a failing short get leaves in the caller's buffer: zeros for SO_RCVBUF, SO_SNDBUF
    and SO_LINGER (Windows clears them), nothing for the others."""
    try:
        _attr, kind = _spec(ws, level, optname)
    except WsaFail:
        return b""
    return bytes(optlen) if kind.zero_short and 0 < optlen < 4 else b""
