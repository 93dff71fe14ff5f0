"""Socket options: which (level, name) pairs exist, their encodings, and Winsock's rules.

Values cross the API as little-endian bytes of the Windows type (BOOL/int/DWORD: 4 bytes,
LINGER: two u_shorts). `set_option` validates and stores into the socket's `Options`, and
returns the stack socket attributes to update (the caller applies them under the host lock);
`get_option` encodes the current value. Failures raise `WsaFail` with Winsock's code.
"""

from __future__ import annotations

import struct
from typing import Any

from . import constants as C
from .buffers import WsaFail
from .wsocket import Phase, WSocket

LEVELS = frozenset({C.SOL_SOCKET, C.IPPROTO_TCP, C.IPPROTO_IP, C.IPPROTO_UDP})
BOOL_SOL = {C.SO_REUSEADDR: "reuseaddr", C.SO_EXCLUSIVEADDRUSE: "exclusive",
            C.SO_BROADCAST: "broadcast", C.SO_KEEPALIVE: "keepalive",
            C.SO_DONTROUTE: "dontroute", C.SO_OOBINLINE: "oobinline"}
LINGER_SIZE = 4


def check_level(level: int) -> None:
    if level & 0xFFFFFFFF not in LEVELS:
        raise WsaFail(C.WSAEINVAL)  # item 67: an invalid level


def _int(raw: bytes) -> int:
    if len(raw) < 4:
        raise WsaFail(C.WSAEFAULT)  # item 67: short optlen
    return struct.unpack_from("<i", raw)[0]


def set_option(ws: WSocket, level: int, optname: int, raw: bytes) -> dict[str, Any]:
    """Store the option; returns {stack socket attribute: value} to apply."""
    o = ws.opts
    if level == C.IPPROTO_TCP:
        if optname != C.TCP_NODELAY or not ws.is_tcp:
            raise WsaFail(C.WSAENOPROTOOPT)
        o.nodelay = bool(_int(raw))
        return {"nodelay": o.nodelay}
    if level != C.SOL_SOCKET:
        raise WsaFail(C.WSAENOPROTOOPT)
    if optname in BOOL_SOL:
        value = bool(_int(raw))
        if optname == C.SO_REUSEADDR and value and o.exclusive:
            raise WsaFail(C.WSAEINVAL)  # item 15
        if optname == C.SO_EXCLUSIVEADDRUSE and value and o.reuseaddr:
            raise WsaFail(C.WSAEINVAL)
        setattr(o, BOOL_SOL[optname], value)
        if optname == C.SO_BROADCAST and not ws.is_tcp:
            return {"broadcast": value}
        if optname == C.SO_KEEPALIVE and ws.is_tcp:
            return {"keepalive": value}
        return {}  # reuse/exclusive apply at bind; the others have no stack effect
    if optname == C.SO_LINGER:
        if not ws.is_tcp:
            raise WsaFail(C.WSAENOPROTOOPT)  # item 67
        if len(raw) < LINGER_SIZE:
            raise WsaFail(C.WSAEFAULT)
        onoff, secs = struct.unpack_from("<HH", raw)
        o.linger_on, o.linger_s = bool(onoff), secs
        return {}  # applied by closesocket
    if optname == C.SO_DONTLINGER:
        if not ws.is_tcp:
            raise WsaFail(C.WSAENOPROTOOPT)
        o.linger_on = not bool(_int(raw))
        return {}
    if optname in (C.SO_RCVBUF, C.SO_SNDBUF):
        value = _int(raw)
        if value < 0:
            raise WsaFail(C.WSAEINVAL)
        if optname == C.SO_RCVBUF:
            o.rcvbuf = value
            return {"rcvbuf": max(value, 1)}
        o.sndbuf = value
        return {"sndbuf": max(value, 1)} if ws.is_tcp else {}
    if optname in (C.SO_RCVTIMEO, C.SO_SNDTIMEO):
        value = _int(raw) & 0xFFFFFFFF  # a DWORD of milliseconds; 0 waits forever
        if optname == C.SO_RCVTIMEO:
            o.rcvtimeo_ms = value
        else:
            o.sndtimeo_ms = value
        return {}
    if optname == C.SO_ERROR:
        ws.so_error = _int(raw)  # Windows lets SO_ERROR be set
        return {}
    raise WsaFail(C.WSAENOPROTOOPT)  # SO_TYPE, SO_ACCEPTCONN (read-only) and unknown names


def push(ws: WSocket, attrs: dict[str, Any]) -> None:
    """Apply option values to the stack socket (host lock held)."""
    for name, value in attrs.items():
        setattr(ws.sock, name, value)


def get_option(ws: WSocket, level: int, optname: int) -> bytes:
    o = ws.opts
    if level == C.IPPROTO_TCP:
        if optname != C.TCP_NODELAY or not ws.is_tcp:
            raise WsaFail(C.WSAENOPROTOOPT)
        return struct.pack("<i", int(o.nodelay))
    if level != C.SOL_SOCKET:
        raise WsaFail(C.WSAENOPROTOOPT)
    if optname in BOOL_SOL:
        return struct.pack("<i", int(getattr(o, BOOL_SOL[optname])))
    if optname in (C.SO_LINGER, C.SO_DONTLINGER) and not ws.is_tcp:
        raise WsaFail(C.WSAENOPROTOOPT)
    if optname == C.SO_LINGER:
        return struct.pack("<HH", int(o.linger_on), o.linger_s)
    if optname == C.SO_DONTLINGER:
        return struct.pack("<i", int(not o.linger_on))
    simple = {
        C.SO_RCVBUF: ("<i", o.rcvbuf), C.SO_SNDBUF: ("<i", o.sndbuf),
        C.SO_RCVTIMEO: ("<I", o.rcvtimeo_ms), C.SO_SNDTIMEO: ("<I", o.sndtimeo_ms),
        C.SO_ERROR: ("<i", ws.so_error),  # item 29: reading does not clear it (≠L)
        C.SO_TYPE: ("<i", ws.type),
        C.SO_ACCEPTCONN: ("<i", int(ws.phase is Phase.LISTENING)),
    }
    if optname not in simple:
        raise WsaFail(C.WSAENOPROTOOPT)
    fmt, value = simple[optname]
    return struct.pack(fmt, value)
