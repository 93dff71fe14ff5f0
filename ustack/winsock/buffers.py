"""Caller memory as Winsock sees it: char* + length buffers and SOCKADDR_IN names.

Buffers may be bytes, bytearray, memoryview or ctypes objects; lengths are ints or ctypes
c_int "pointers" (in/out). Whatever does not fit raises `WsaFail(WSAEFAULT)` (or
WSAEAFNOSUPPORT for a name of another family), the way the real API reports bad pointers.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

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


def parse_sockaddr(name: Any, namelen: int | None, *, allow_unspec: bool = False) -> Any:
    """(addr:int host order, port) from a SOCKADDR_IN or its bytes; WSAEFAULT / WSAEAFNOSUPPORT."""
    if name is None or namelen is None:
        raise WsaFail(C.WSAEFAULT)
    try:
        raw = bytes(name)
    except TypeError:
        raise WsaFail(C.WSAEFAULT) from None
    if namelen < 2 or namelen > len(raw):
        raise WsaFail(C.WSAEFAULT)
    (family,) = struct.unpack_from("<h", raw, 0)
    if family == C.AF_UNSPEC and allow_unspec:
        return UNSPEC_NAME
    if namelen < SOCKADDR_IN_SIZE:
        raise WsaFail(C.WSAEFAULT)
    if family != C.AF_INET:
        raise WsaFail(C.WSAEAFNOSUPPORT)
    port, addr = struct.unpack_from("!HI", raw, 2)
    return addr, port


def sockaddr_bytes(addr: int, port: int) -> bytes:
    return struct.pack("<h", C.AF_INET) + struct.pack("!HI", port, addr) + bytes(8)


def write_sockaddr(name: Any, namelen: Any, addr: int, port: int) -> None:
    """Fill an output SOCKADDR_IN; WSAEFAULT when *namelen is short or the buffer is."""
    n = len_value(namelen)
    if name is None or n is None or n < SOCKADDR_IN_SIZE:
        raise WsaFail(C.WSAEFAULT)
    out_check(name, SOCKADDR_IN_SIZE)
    write_out(name, sockaddr_bytes(addr, port))
    len_store(namelen, SOCKADDR_IN_SIZE)
