"""Winsock socket control: ioctlsocket, WSAIoctl, setsockopt, getsockopt (option encoding and
rules in options.py, ioctl codes in ioconstants.py).

`ControlCalls` is a part of the `Winsock` class (api.py), split off by concern: it uses the same
per-host state and helpers (`_get`, `_call`) as the rest of the class.
"""

from __future__ import annotations

import struct
from typing import Any

from . import constants as C
from . import ioconstants as K
from . import oob as OOB
from . import options as O
from .buffers import WsaFail as _Fail
from .buffers import in_bytes as _in_bytes
from .buffers import len_store as _len_store
from .buffers import len_value as _len_value
from .buffers import out_check as _out_check
from .buffers import write_out as _write_out
from .callwrap import api_call as _api
from .structs import u_long
from .wsocket import Phase


class ControlCalls:
    """The control calls of `Winsock` (see the module docstring)."""

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
