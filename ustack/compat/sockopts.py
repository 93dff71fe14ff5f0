"""Socket options as a Linux program names them, on Winsock's options.

Linux's option numbers (SOL_SOCKET 1, SO_REUSEADDR 2, ...) and encodings (SO_LINGER as two
ints) differ from Windows'; `to_winsock` and `get` translate one option either way. Options
not in the table fail with ENOPROTOOPT, as an unknown option does on Linux. SO_ERROR holds the
Linux errno of the failed connect and is cleared by reading it (Winsock keeps it).
"""

from __future__ import annotations

import _socket
import errno as E
import struct
from collections.abc import Callable
from typing import Any

from ustack.winsock import constants as C

from .errors import Op, linux_error, plain

# Linux (level, option) -> (Winsock level, option, kind); kind says how the value is encoded
_OPTIONS: dict[tuple[int, int], tuple[int, int, str]] = {
    (_socket.SOL_SOCKET, _socket.SO_REUSEADDR): (C.SOL_SOCKET, C.SO_REUSEADDR, "bool"),
    (_socket.SOL_SOCKET, _socket.SO_KEEPALIVE): (C.SOL_SOCKET, C.SO_KEEPALIVE, "bool"),
    (_socket.SOL_SOCKET, _socket.SO_BROADCAST): (C.SOL_SOCKET, C.SO_BROADCAST, "bool"),
    (_socket.SOL_SOCKET, _socket.SO_RCVBUF): (C.SOL_SOCKET, C.SO_RCVBUF, "int"),
    (_socket.SOL_SOCKET, _socket.SO_SNDBUF): (C.SOL_SOCKET, C.SO_SNDBUF, "int"),
    (_socket.SOL_SOCKET, _socket.SO_ERROR): (C.SOL_SOCKET, C.SO_ERROR, "error"),
    (_socket.SOL_SOCKET, _socket.SO_TYPE): (C.SOL_SOCKET, C.SO_TYPE, "int"),
    (_socket.SOL_SOCKET, _socket.SO_ACCEPTCONN): (C.SOL_SOCKET, C.SO_ACCEPTCONN, "bool"),
    (_socket.SOL_SOCKET, _socket.SO_LINGER): (C.SOL_SOCKET, C.SO_LINGER, "linger"),
    (_socket.IPPROTO_TCP, _socket.TCP_NODELAY): (C.IPPROTO_TCP, C.TCP_NODELAY, "bool"),
    (_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY): (C.IPPROTO_IPV6, C.IPV6_V6ONLY, "bool"),
    (_socket.IPPROTO_IPV6, _socket.IPV6_UNICAST_HOPS): (C.IPPROTO_IPV6, C.IPV6_UNICAST_HOPS, "int"),
}
_LINGER = struct.Struct("ii")  # Linux struct linger; Winsock's is two u_shorts


def to_winsock(level: int, optname: int, value: Any) -> tuple[int, int, Any]:
    """(Winsock level, option, value for ustack.socket's setsockopt) for a Linux setsockopt."""
    spec = _OPTIONS.get((level, optname))
    if spec is None or spec[2] == "error":
        raise plain(E.ENOPROTOOPT)
    wlevel, wname, kind = spec
    if kind == "linger":
        onoff, secs = _LINGER.unpack(bytes(value)[:_LINGER.size])
        return wlevel, wname, struct.pack("<HH", int(bool(onoff)), max(0, min(secs, 0xFFFF)))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return wlevel, wname, struct.pack("<i", int.from_bytes(bytes(value)[:4].ljust(4, b"\0"), "little",
                                                               signed=True))
    raw = int(value)
    if wname in (C.SO_RCVBUF, C.SO_SNDBUF):
        raw = max(raw, 0)
    return wlevel, wname, raw


def get(level: int, optname: int, buflen: int, *, udp: bool,
        read: Callable[[int, int, int], Any], clear: Callable[[int, int], None],
        family: int = _socket.AF_INET) -> Any:
    """A Linux getsockopt: `read(wlevel, wname, size)` is ustack.socket's getsockopt (size 0:
    an int), `clear(wlevel, wname)` resets SO_ERROR."""
    if level == _socket.SOL_SOCKET and optname == getattr(_socket, "SO_DOMAIN", -1):
        value = family
    elif level == _socket.SOL_SOCKET and optname == getattr(_socket, "SO_PROTOCOL", -1):
        value = _socket.IPPROTO_UDP if udp else _socket.IPPROTO_TCP
    else:
        spec = _OPTIONS.get((level, optname))
        if spec is None:
            raise plain(E.ENOPROTOOPT)
        wlevel, wname, kind = spec
        if kind == "linger":
            onoff, secs = struct.unpack("<HH", read(wlevel, wname, 4))
            packed = _LINGER.pack(onoff, secs)
            return packed[:buflen] if buflen else struct.unpack("i", packed[:4])[0]
        value = read(wlevel, wname, 0)
        if kind == "error":
            if value:
                clear(wlevel, wname)  # Linux clears SO_ERROR when it is read
                value = linux_error(value, Op.CONNECT).errno or E.EIO
        elif kind == "bool":
            value = int(bool(value))
        elif wname == C.SO_TYPE:
            value = _socket.SOCK_DGRAM if udp else _socket.SOCK_STREAM
    if buflen:
        return struct.pack("i", value)[:buflen]
    return value
