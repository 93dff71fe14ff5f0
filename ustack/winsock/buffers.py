"""Caller memory as Winsock sees it: char* + length buffers and SOCKADDR_IN / SOCKADDR_IN6 names.

Buffers may be bytes, bytearray, memoryview or ctypes objects; lengths are ints or ctypes
c_int "pointers" (in/out). Whatever does not fit raises `WsaFail(WSAEFAULT)` (or
WSAEAFNOSUPPORT for a name of another family), the way the real API reports bad pointers.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from . import addr6 as A6
from . import constants as C
from .structs import SOCKADDR_IN_SIZE

UNSPEC_NAME = object()  # parse_sockaddr's answer for an AF_UNSPEC name (UDP dis-connect)
_CTYPES = (ctypes._SimpleCData, ctypes.Structure, ctypes.Array, ctypes.Union)


class WsaFail(Exception):  # noqa: N818 - control flow: "this call fails with code"
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def in_bytes(buf: Any, length: int | None) -> bytes:
    """The first `length` bytes of a caller buffer; WSAEFAULT if it is NULL or too short."""
    if buf is None:
        raise WsaFail(C.WSAEFAULT)
    try:
        data = bytes(buf) if not isinstance(buf, bytes) else buf
    except TypeError:
        raise WsaFail(C.WSAEFAULT) from None
    if length is None:
        return data
    if length < 0 or length > len(data):
        raise WsaFail(C.WSAEFAULT)
    return data[:length]


def buf_size(buf: Any) -> int:
    if isinstance(buf, _CTYPES):
        return ctypes.sizeof(buf)
    return memoryview(buf).nbytes


def out_check(buf: Any, length: int) -> None:
    if buf is None or length < 0:
        raise WsaFail(C.WSAEFAULT)
    try:
        size = buf_size(buf)
        if not isinstance(buf, _CTYPES):
            if memoryview(buf).readonly:
                raise WsaFail(C.WSAEFAULT)
    except TypeError:
        raise WsaFail(C.WSAEFAULT) from None
    if length > size:
        raise WsaFail(C.WSAEFAULT)


def write_out(buf: Any, data: bytes, offset: int = 0) -> None:
    if isinstance(buf, _CTYPES):
        ctypes.memmove(ctypes.addressof(buf) + offset, data, len(data))
    else:
        mv = memoryview(buf).cast("B")
        mv[offset:offset + len(data)] = data


def len_value(namelen: Any) -> int | None:
    """An int* in/out length: ctypes c_int (or anything with .value), a plain int, or None."""
    if namelen is None:
        return None
    if isinstance(namelen, int):
        return namelen
    return int(namelen.value)


def len_store(namelen: Any, value: int) -> None:
    if namelen is not None and not isinstance(namelen, int):
        namelen.value = value


def sockaddr_size(family: int) -> int:
    """The size of a socket's address structure: 16 (SOCKADDR_IN) or 28 (SOCKADDR_IN6)."""
    return A6.SOCKADDR_IN6_SIZE if family == C.AF_INET6 else SOCKADDR_IN_SIZE


def parse_sockaddr(name: Any, namelen: int | None, *, allow_unspec: bool = False,
                   family: int = C.AF_INET) -> Any:
    """(addr:int host order, port) from a name for a socket of `family`: a SOCKADDR_IN (32-bit
    address) or SOCKADDR_IN6 (128-bit; flowinfo and scope id are not used), or their bytes.
    namelen below the family's structure: WSAEFAULT (the length first, as Windows checks it);
    a name of another family: WSAEAFNOSUPPORT."""
    if name is None or namelen is None:
        raise WsaFail(C.WSAEFAULT)
    try:
        raw = bytes(name)
    except TypeError:
        raise WsaFail(C.WSAEFAULT) from None
    if namelen < 2 or namelen > len(raw):
        raise WsaFail(C.WSAEFAULT)
    (given,) = struct.unpack_from("<h", raw, 0)
    if given == C.AF_UNSPEC and allow_unspec:
        return UNSPEC_NAME
    if namelen < sockaddr_size(family):
        raise WsaFail(C.WSAEFAULT)
    if given != family:
        raise WsaFail(C.WSAEAFNOSUPPORT)
    if family == C.AF_INET6:
        addr6, port, _flow, _scope = A6.unpack_sockaddr6(raw)
        return addr6, port
    port, addr = struct.unpack_from("!HI", raw, 2)
    return addr, port


def sockaddr_bytes(addr: int, port: int, family: int = C.AF_INET) -> bytes:
    if family == C.AF_INET6:
        return A6.sockaddr6_bytes(addr, port)
    return struct.pack("<h", C.AF_INET) + struct.pack("!HI", port, addr) + bytes(8)


def write_sockaddr(name: Any, namelen: Any, addr: int, port: int, family: int = C.AF_INET) -> None:
    """Fill an output SOCKADDR_IN / SOCKADDR_IN6; WSAEFAULT when *namelen or the buffer is short."""
    size = sockaddr_size(family)
    n = len_value(namelen)
    if name is None or n is None or n < size:
        raise WsaFail(C.WSAEFAULT)
    out_check(name, size)
    write_out(name, sockaddr_bytes(addr, port, family))
    len_store(namelen, size)
