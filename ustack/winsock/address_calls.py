"""Winsock's address text calls: inet_pton / InetPtonW, inet_ntop / InetNtopW,
WSAStringToAddressA/W and WSAAddressToStringA/W, for AF_INET and AF_INET6 (rules in addr6.py).

Text crosses the API as Python strings (or bytes for the A calls); output buffers are a ctypes
char array / bytearray for the A calls and a ctypes c_wchar array / bytearray (UTF-16LE) for
the W calls, with lengths in characters including the terminating NUL, as on Windows. The codes
are the ones Wine's protocol.c sees on real Windows: a NULL string is WSAEFAULT, an unknown
family WSAEAFNOSUPPORT (inet_pton/ntop) or WSAEINVAL (WSAStringToAddress/WSAAddressToString), a
text that is not an address 0 from inet_pton (InetPtonW also sets WSAEINVAL), a too short output
WSAEINVAL from inet_ntop (Windows 7's code; later versions report STATUS_INVALID_PARAMETER) and
WSAEFAULT with the needed length from WSAAddressToString.

`AddressCalls` is a part of the `Winsock` class (api.py), split off by concern.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from . import addr6 as A
from . import constants as C
from .buffers import WsaFail as _Fail
from .buffers import buf_size as _buf_size
from .buffers import len_store as _len_store
from .buffers import len_value as _len_value
from .buffers import write_out as _write_out
from .callwrap import api_call as _api
from .structs import SOCKADDR_IN_SIZE

_SIZES = {C.AF_INET: SOCKADDR_IN_SIZE, C.AF_INET6: A.SOCKADDR_IN6_SIZE}


def _text(s: str | bytes) -> str:
    return s.decode("latin-1") if isinstance(s, bytes) else s


def _capacity(buf: Any, wide: bool) -> int:
    """Characters the output buffer holds."""
    if isinstance(buf, ctypes.Array) and buf._type_ is ctypes.c_wchar:
        return len(buf)
    return _buf_size(buf) // (2 if wide else 1)


def _write_text(buf: Any, text: str, wide: bool) -> None:
    """text and its NUL into an A (bytes) or W (UTF-16) output buffer."""
    if isinstance(buf, ctypes.Array) and buf._type_ is ctypes.c_wchar:
        buf.value = text
        return
    data = (text + "\0").encode("utf-16-le" if wide else "latin-1")
    _write_out(buf, data)


class AddressCalls:
    """The address text calls of `Winsock` (see the module docstring)."""

    # == inet_pton / InetPtonW ====================================================================
    def _pton(self, family: int, text: Any, out: Any, wide: bool) -> int:
        if text is None or out is None:
            self._set_error(C.WSAEFAULT)
            return -1
        if family not in (C.AF_INET, C.AF_INET6):
            self._set_error(C.WSAEAFNOSUPPORT)
            return -1
        s = _text(text)
        if family == C.AF_INET:
            v4 = A.parse_ipv4_strict(s)
            raw = None if v4 is None else v4.to_bytes(4, "big")
        else:
            v6 = A.parse_ipv6(s)
            raw = None if v6 is None else v6.to_bytes(16, "big")
        if raw is None:
            if wide:
                self._set_error(C.WSAEINVAL)  # InetPtonW sets it; inet_pton leaves it alone
            return 0
        try:
            _write_out(out, raw)
        except (TypeError, ValueError):
            self._set_error(C.WSAEFAULT)
            return -1
        return 1

    def inet_pton(self, Family: int, pszAddrString: str | bytes | None, pAddrBuf: Any) -> int:  # noqa: N803
        """1 and the address in pAddrBuf (4 or 16 network-order bytes); 0 if the text is not
        an address of that family; -1 with WSAEFAULT (NULL) or WSAEAFNOSUPPORT."""
        return self._pton(Family, pszAddrString, pAddrBuf, wide=False)

    def InetPtonW(self, Family: int, pszAddrString: str | None, pAddrBuf: Any) -> int:  # noqa: N802, N803
        return self._pton(Family, pszAddrString, pAddrBuf, wide=True)

    # == inet_ntop / InetNtopW ====================================================================
    def _ntop(self, family: int, addr: Any, buf: Any, size: int, wide: bool) -> str | None:
        if family not in (C.AF_INET, C.AF_INET6):
            self._set_error(C.WSAEAFNOSUPPORT)
            return None
        n = 4 if family == C.AF_INET else 16
        try:
            raw = bytes(addr)[:n] if addr is not None else b""
        except TypeError:
            raw = b""
        if len(raw) < n or buf is None or size <= 0:
            self._set_error(C.WSAEINVAL)
            return None
        value = int.from_bytes(raw, "big")
        text = A.format_ipv4(value) if family == C.AF_INET else A.format_ipv6(value)
        if size < len(text) + 1 or _capacity(buf, wide) < len(text) + 1:
            self._set_error(C.WSAEINVAL)
            return None
        _write_text(buf, text, wide)
        return text

    def inet_ntop(self, Family: int, pAddr: Any, pStringBuf: Any, StringBufSize: int) -> str | None:  # noqa: N803
        """The address as text (also written, with its NUL, into pStringBuf), or None with
        WSAEAFNOSUPPORT / WSAEINVAL (NULL buffer, size 0 or too small)."""
        return self._ntop(Family, pAddr, pStringBuf, StringBufSize, wide=False)

    def InetNtopW(self, Family: int, pAddr: Any, pStringBuf: Any, StringBufSize: int) -> str | None:  # noqa: N802, N803
        return self._ntop(Family, pAddr, pStringBuf, StringBufSize, wide=True)

    # == WSAStringToAddressA/W ====================================================================
    def _string_to_address(self, text: Any, family: int, lpAddress: Any, lpAddressLength: Any) -> int:  # noqa: N803
        if text is None:
            raise _Fail(C.WSAEINVAL)
        if family not in _SIZES:
            raise _Fail(C.WSAEINVAL)
        size = _SIZES[family]
        n = _len_value(lpAddressLength)
        if lpAddress is None or n is None or n < size or _buf_size(lpAddress) < size:
            _len_store(lpAddressLength, size)
            raise _Fail(C.WSAEFAULT)
        addr, port, scope, ok = A.parse_address_string(_text(text), family)
        if not ok:  # the structure is zeroed; a valid address part stays in it
            port, scope = 0, 0
        shown = family if ok else 0
        if family == C.AF_INET:
            out = struct.pack("<h", shown) + struct.pack("!HI", port, addr or 0) + bytes(8)
        else:
            out = A.sockaddr6_bytes(addr or 0, port, 0, scope, shown)
        _write_out(lpAddress, out)
        if not ok:
            raise _Fail(C.WSAEINVAL)
        _len_store(lpAddressLength, size)
        return 0

    @_api(zero=True)
    def WSAStringToAddressA(self, AddressString: str | bytes | None, AddressFamily: int,  # noqa: N802, N803
                            lpProtocolInfo: Any, lpAddress: Any, lpAddressLength: Any) -> int:  # noqa: N803
        """Fill a SOCKADDR_IN / SOCKADDR_IN6 from text ("1.2.3.4:80", "[2001:2::1%3]:80", ...);
        *lpAddressLength below the structure's size: WSAEFAULT and the size needed; a text
        that does not parse: WSAEINVAL, the structure zeroed (the address part kept when it
        was valid)."""
        return self._string_to_address(AddressString, AddressFamily, lpAddress, lpAddressLength)

    @_api(zero=True)
    def WSAStringToAddressW(self, AddressString: str | None, AddressFamily: int,  # noqa: N802, N803
                            lpProtocolInfo: Any, lpAddress: Any, lpAddressLength: Any) -> int:  # noqa: N803
        return self._string_to_address(AddressString, AddressFamily, lpAddress, lpAddressLength)

    # == WSAAddressToStringA/W ====================================================================
    def _address_to_string(self, sa: Any, sa_len: int, out: Any, out_len: Any, wide: bool) -> int:
        if sa is None:
            raise _Fail(C.WSAEFAULT)
        try:
            raw = bytes(sa)
        except TypeError:
            raise _Fail(C.WSAEFAULT) from None
        if sa_len < 2 or len(raw) < min(sa_len, 2):
            raise _Fail(C.WSAEFAULT)
        (family,) = struct.unpack_from("<h", raw, 0)
        if family not in _SIZES:
            raise _Fail(C.WSAEINVAL)
        if sa_len < _SIZES[family] or len(raw) < _SIZES[family]:
            raise _Fail(C.WSAEFAULT)
        if family == C.AF_INET:
            port, v4 = struct.unpack_from("!HI", raw, 2)
            text = A.format_ipv4(v4, port)
        else:
            v6, port, _flow, scope = A.unpack_sockaddr6(raw)
            text = A.format_ipv6(v6, scope, port)
        n = _len_value(out_len)
        need = len(text) + 1
        if n is None:
            raise _Fail(C.WSAEFAULT)
        if out is None or n < need or _capacity(out, wide) < need:
            _len_store(out_len, need)
            raise _Fail(C.WSAEFAULT)
        _write_text(out, text, wide)
        _len_store(out_len, need)
        return 0

    @_api(zero=True)
    def WSAAddressToStringA(self, lpsaAddress: Any, dwAddressLength: int, lpProtocolInfo: Any,  # noqa: N802, N803
                            lpszAddressString: Any, lpdwAddressStringLength: Any) -> int:  # noqa: N803
        """A SOCKADDR_IN / SOCKADDR_IN6 as text ("a.b.c.d[:port]", "addr[%scope]",
        "[addr[%scope]]:port"); *lpdwAddressStringLength (characters, with the NUL) too small
        or a NULL buffer: WSAEFAULT and the length needed."""
        return self._address_to_string(lpsaAddress, dwAddressLength, lpszAddressString,
                                       lpdwAddressStringLength, wide=False)

    @_api(zero=True)
    def WSAAddressToStringW(self, lpsaAddress: Any, dwAddressLength: int, lpProtocolInfo: Any,  # noqa: N802, N803
                            lpszAddressString: Any, lpdwAddressStringLength: Any) -> int:  # noqa: N803
        return self._address_to_string(lpsaAddress, dwAddressLength, lpszAddressString,
                                       lpdwAddressStringLength, wide=True)
