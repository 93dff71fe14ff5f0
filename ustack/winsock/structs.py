"""Winsock structures as ctypes (same layout as on Windows) and the byte-order helpers.

Addresses cross the API as `SOCKADDR_IN` (or its 16 raw bytes) with an explicit length, so the
WSAEFAULT and WSAEAFNOSUPPORT paths of the real API exist here too.
"""

from __future__ import annotations

import ctypes
import socket as _pysocket
import struct

from .constants import AF_INET, FD_MAX_EVENTS, FD_SETSIZE, INADDR_NONE

SOCKADDR_IN_SIZE = 16

# Windows' LONG and u_long are 32 bits even on 64-bit Windows (LLP64); ctypes.c_long follows the
# host (64 bits on Linux), so the structures spell the width out.
LONG = ctypes.c_int32
u_long = ctypes.c_uint32  # noqa: N816 - the Windows type name (ioctlsocket's argp points at one)


class IN_ADDR(ctypes.Structure):  # noqa: N801 - Windows name
    # S_addr holds the address in network byte order, exactly as in memory on Windows.
    _fields_ = [("S_addr", ctypes.c_uint32)]


class SOCKADDR_IN(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("sin_family", ctypes.c_short),
        ("sin_port", ctypes.c_ushort),  # network byte order
        ("sin_addr", IN_ADDR),
        ("sin_zero", ctypes.c_char * 8),
    ]

    @classmethod
    def make(cls, addr: str | int, port: int, family: int = AF_INET) -> SOCKADDR_IN:
        """Build from "a.b.c.d" (or a host-order int) and a host-order port."""
        n = addr if isinstance(addr, int) else int.from_bytes(_pysocket.inet_aton(addr), "big")
        s = cls()
        s.sin_family = family
        s.sin_port = htons(port)
        s.sin_addr.S_addr = htonl(n)
        return s

    @property
    def addr(self) -> str:
        return inet_ntoa(self.sin_addr)

    @property
    def port(self) -> int:
        return ntohs(self.sin_port)

    def __repr__(self) -> str:
        return f"SOCKADDR_IN(family={self.sin_family}, {self.addr}:{self.port})"


SOCKADDR = SOCKADDR_IN


class IP_MREQ(ctypes.Structure):  # noqa: N801 - ip_mreq, the IP_ADD/DROP_MEMBERSHIP argument
    _fields_ = [("imr_multiaddr", IN_ADDR), ("imr_interface", IN_ADDR)]

    @classmethod
    def make(cls, group: str, interface: str = "0.0.0.0") -> IP_MREQ:
        m = cls()
        m.imr_multiaddr.S_addr = htonl(int.from_bytes(_pysocket.inet_aton(group), "big"))
        m.imr_interface.S_addr = htonl(int.from_bytes(_pysocket.inet_aton(interface), "big"))
        return m


class TIMEVAL(ctypes.Structure):
    _fields_ = [("tv_sec", LONG), ("tv_usec", LONG)]


class LINGER(ctypes.Structure):
    _fields_ = [("l_onoff", ctypes.c_ushort), ("l_linger", ctypes.c_ushort)]


class WSADATA(ctypes.Structure):
    # 64-bit layout: the version words, then the max fields, then the descriptions.
    _fields_ = [
        ("wVersion", ctypes.c_ushort),
        ("wHighVersion", ctypes.c_ushort),
        ("iMaxSockets", ctypes.c_ushort),
        ("iMaxUdpDg", ctypes.c_ushort),
        ("lpVendorInfo", ctypes.c_void_p),
        ("szDescription", ctypes.c_char * 257),
        ("szSystemStatus", ctypes.c_char * 129),
    ]


class WSANETWORKEVENTS(ctypes.Structure):
    _fields_ = [("lNetworkEvents", LONG), ("iErrorCode", ctypes.c_int * FD_MAX_EVENTS)]


class WSAPOLLFD(ctypes.Structure):
    """One WSAPoll entry: a SOCKET (pointer-sized), the events asked for, the events found."""

    _fields_ = [("fd", ctypes.c_uint64), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


class FD_SET:  # noqa: N801
    """fd_set: a counted array of up to FD_SETSIZE sockets; select rewrites it in place."""

    __slots__ = ("fd_array",)

    def __init__(self, *sockets: int) -> None:
        self.fd_array: list[int] = []
        for s in sockets:
            FD_SET_ADD(s, self)

    @property
    def fd_count(self) -> int:
        return len(self.fd_array)

    def __contains__(self, s: object) -> bool:
        return s in self.fd_array

    def __len__(self) -> int:
        return len(self.fd_array)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self.fd_array))

    def __repr__(self) -> str:
        return f"FD_SET({', '.join(hex(s) for s in self.fd_array)})"


fd_set = FD_SET


def FD_SET_ADD(s: int, fds: FD_SET) -> None:  # noqa: N802 - the C macro is FD_SET, a clash here
    """The FD_SET(s, set) macro: add once, silently ignore beyond FD_SETSIZE (as the macro does)."""
    if s not in fds.fd_array and len(fds.fd_array) < FD_SETSIZE:
        fds.fd_array.append(s)


def FD_CLR(s: int, fds: FD_SET) -> None:  # noqa: N802
    while s in fds.fd_array:
        fds.fd_array.remove(s)


def FD_ZERO(fds: FD_SET) -> None:  # noqa: N802
    fds.fd_array.clear()


def FD_ISSET(s: int, fds: FD_SET) -> bool:  # noqa: N802
    return s in fds.fd_array


# -- byte order --------------------------------------------------------------------------------
def htons(x: int) -> int:
    return struct.unpack("<H", struct.pack(">H", x & 0xFFFF))[0]


def htonl(x: int) -> int:
    return struct.unpack("<I", struct.pack(">I", x & 0xFFFFFFFF))[0]


ntohs = htons
ntohl = htonl


def MAKEWORD(low: int, high: int) -> int:  # noqa: N802
    return (low & 0xFF) | ((high & 0xFF) << 8)


def LOBYTE(w: int) -> int:  # noqa: N802
    return w & 0xFF


def HIBYTE(w: int) -> int:  # noqa: N802
    return (w >> 8) & 0xFF


def WSAMAKESELECTREPLY(event: int, error: int) -> int:  # noqa: N802
    return (event & 0xFFFF) | ((error & 0xFFFF) << 16)


def WSAGETSELECTEVENT(lparam: int) -> int:  # noqa: N802
    return lparam & 0xFFFF


def WSAGETSELECTERROR(lparam: int) -> int:  # noqa: N802
    return (lparam >> 16) & 0xFFFF


# -- inet_addr / inet_ntoa (the classic, permissive parser) ------------------------------------
def _parse_part(text: str) -> int:
    if text.lower().startswith("0x"):
        return int(text[2:], 16) if text[2:] else 0
    if len(text) > 1 and text.startswith("0"):
        return int(text[1:], 8)
    return int(text, 10)


def inet_addr(cp: str | bytes | None) -> int:
    """Dotted text to an IN_ADDR value (network order in memory), INADDR_NONE if invalid.

    Accepts the BSD forms a, a.b, a.b.c, a.b.c.d with decimal, octal (0..) or hex (0x..) parts.
    """
    if cp is None:
        return INADDR_NONE
    if isinstance(cp, bytes):
        cp = cp.decode("latin-1")
    cp = cp.strip()
    parts = cp.split(".")
    if not cp or len(parts) > 4:
        return INADDR_NONE
    try:
        nums = [_parse_part(p) for p in parts]
    except ValueError:
        return INADDR_NONE
    if any(n < 0 for n in nums):
        return INADDR_NONE
    last_bits = 32 - 8 * (len(nums) - 1)
    if any(n > 0xFF for n in nums[:-1]) or nums[-1] >= (1 << last_bits):
        return INADDR_NONE
    value = 0
    for n in nums[:-1]:
        value = (value << 8) | n
    value = (value << last_bits) | nums[-1]
    return htonl(value)


def inet_ntoa(addr: IN_ADDR | int) -> str:
    """IN_ADDR (or its S_addr value, network order in memory) to "a.b.c.d"."""
    value = addr.S_addr if isinstance(addr, IN_ADDR) else addr
    return _pysocket.inet_ntoa(struct.pack("<I", value & 0xFFFFFFFF))


def host_order_addr(sin: SOCKADDR_IN) -> int:
    return ntohl(sin.sin_addr.S_addr)
