"""Winsock data transfer without overlapped I/O: send, sendto, recv, recvfrom (TCP, UDP, OOB).

`TransferCalls` is a part of the `Winsock` class (api.py), split off by concern: it uses the
same per-host state and helpers (`_get`, `_call`, `_block`) as the rest of the class; the
overlapped WSASend/WSARecv paths (overlapped_calls.py) share its `_tcp_send`/`_udp_send`.
"""

from __future__ import annotations

from typing import Any

from . import constants as C
from . import errors as E
from . import oob as OOB
from . import options as O
from . import readiness as R
from .buffers import WsaFail as _Fail
from .buffers import in_bytes as _in_bytes
from .buffers import len_value as _len_value
from .buffers import out_check as _out_check
from .buffers import parse_sockaddr as _parse_sockaddr
from .buffers import sockaddr_size as _sockaddr_size
from .buffers import write_out as _write_out
from .buffers import write_sockaddr as _write_sockaddr
from .callwrap import api_call as _api
from .wsocket import Phase, WSocket


class TransferCalls:
    """The transfer calls of `Winsock` (see the module docstring)."""

    # == send / recv ==============================================================================
    @_api(zero=True)
    def send(self, s: int, buf: Any, len: int, flags: int = 0) -> int:  # noqa: A002
        ws = self._get(s)
        data = _in_bytes(buf, len)
        if flags & C.MSG_OOB and not ws.is_tcp:
            raise _Fail(C.WSAEOPNOTSUPP)
        if not ws.is_tcp:
            return self._udp_send(ws, data, None)
        return self._tcp_send(ws, data, urgent=bool(flags & C.MSG_OOB))

    def _tcp_send(self, ws: WSocket, data: bytes, urgent: bool = False) -> int:
        """urgent (MSG_OOB): the last byte goes as TCP urgent data (oob.py)."""
        if ws.phase is not Phase.CONNECTED:
            raise _Fail(C.WSAENOTCONN)
        if ws.shut_wr:
            raise _Fail(C.WSAESHUTDOWN)
        s = ws.sock

        def broken() -> int | None:
            err = s.error
            if err is not None:
                return E.broken_error(err)
            if self._tcp_state(ws) not in R.CAN_SEND:
                return C.WSAESHUTDOWN if ws.shut_wr else C.WSAECONNABORTED
            return None

        def try_all() -> int:
            """Nonblocking: all or nothing (item 70); -1 = would block.

            As in Windows' AFD, a send is taken whole whenever the send buffer is not full,
            even if it is larger than the free space (the buffer is overcommitted until it
            drains); WSAEWOULDBLOCK only when it is full. That failure re-enables FD_WRITE,
            which is then posted once space frees up (item 43), not at once."""
            code = broken()
            if code is not None:
                raise _Fail(code)
            if not data:
                return 0
            free = s.writable_bytes
            if free <= 0:
                self._reenable(ws, C.FD_WRITE)
                return -1
            return self._send_overcommit(ws, data, urgent)

        if ws.nonblocking or not data:
            n = self._call(try_all)
            if n < 0:
                raise _Fail(C.WSAEWOULDBLOCK)
            return n
        sent = 0
        view = memoryview(data)  # slices of the rest without copying it each round
        timeout = ws.opts.sndtimeo_ms / 1000.0 if ws.opts.sndtimeo_ms else None
        deadline = None if timeout is None else self._now() + timeout
        while sent < len(data):

            def push(rest: memoryview) -> int:
                """Like a nonblocking send: the whole rest as soon as the buffer is not full."""
                code = broken()
                if code is not None:
                    raise _Fail(code)
                free = s.writable_bytes
                return self._send_overcommit(ws, rest, urgent) if free > 0 else 0

            sent += self._call(push, view[sent:])
            if sent >= len(data):
                break
            left = None if deadline is None else deadline - self._now()
            if left is not None and left <= 0:
                raise _Fail(C.WSAETIMEDOUT)
            outcome = self._block(ws, lambda: s.writable_bytes > 0 or broken() is not None, left)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
        return sent

    def _send_overcommit(self, ws: WSocket, data: bytes | memoryview, urgent: bool = False) -> int:
        """Queue all of data on the TCP socket (lock held; the buffer is not full), letting it
        exceed SO_SNDBUF; it stays unwritable until it has drained below."""
        return ws.sock.send(data, self._now(), overcommit=True, urgent=urgent)

    def _udp_send(self, ws: WSocket, data: bytes, dest: tuple[int, int] | None) -> int:
        if ws.shut_wr:
            raise _Fail(C.WSAESHUTDOWN)
        if len(data) > O.MAX_UDP_MSG:
            raise _Fail(C.WSAEMSGSIZE)
        s = ws.sock

        def do() -> int:
            if dest is None:
                if ws.phase is not Phase.CONNECTED or s.remote is None:
                    raise _Fail(C.WSAENOTCONN)  # item 50 (≠L: EDESTADDRREQ)
                if ws.udp_broadcast_peer and not ws.opts.broadcast:
                    s.broadcast = True  # send() to a connected broadcast peer works (item 55)
                try:
                    n = s.send(data, self._now())
                finally:
                    s.broadcast = ws.opts.broadcast
            else:
                n = s.sendto(data, dest[0], dest[1], self._now())
                if ws.phase is Phase.FRESH:
                    ws.phase = Phase.BOUND  # item 57: sendto binds implicitly
            return len(data) if n is None else n

        return self._call(do)

    @_api(zero=True)
    def sendto(self, s: int, buf: Any, len: int, flags: int, to: Any, tolen: int) -> int:  # noqa: A002
        ws = self._get(s)
        data = _in_bytes(buf, len)
        if ws.is_tcp:  # the address is ignored on a connection-oriented socket
            return self._tcp_send(ws, data, urgent=bool(flags & C.MSG_OOB))
        if flags & C.MSG_OOB:
            raise _Fail(C.WSAEOPNOTSUPP)
        if to is None:
            return self._udp_send(ws, data, None)
        dest = _parse_sockaddr(to, tolen, family=ws.family)
        if dest[0] == 0:
            raise _Fail(C.WSAEADDRNOTAVAIL)
        return self._udp_send(ws, data, dest)

    @_api(zero=True)
    def recv(self, s: int, buf: Any, len: int, flags: int = 0) -> int:  # noqa: A002
        ws = self._get(s)
        try:
            _out_check(buf, len)
        except _Fail:
            if ws.reg_kind == "async":  # a failed recv still re-enables FD_READ there (sock.c)
                self._call(self._reenable, ws, C.FD_READ)
            raise
        if ws.is_tcp:
            return self._tcp_recv(ws, buf, len, flags)
        if ws.udp_disconnected:
            raise _Fail(C.WSAENOTCONN)
        data, _addr, _port = self._udp_recv(ws, buf, len, flags)
        return data

    def _tcp_recv(self, ws: WSocket, buf: Any, n: int, flags: int) -> int:
        if flags & C.MSG_OOB:
            return self._tcp_recv_oob(ws, buf, n, flags)
        if ws.phase is not Phase.CONNECTED:
            raise _Fail(C.WSAENOTCONN)
        if ws.shut_rd:
            raise _Fail(C.WSAESHUTDOWN)
        s = ws.sock
        peek = bool(flags & C.MSG_PEEK)
        waitall = bool(flags & C.MSG_WAITALL) and not ws.nonblocking and not peek
        got = bytearray()

        def take() -> int | None:
            """Bytes moved, 0 at EOF, None = would block; raises _Fail on a broken connection."""
            try:
                if OOB.normal_bytes(ws) > 0:
                    chunk = OOB.read_normal(ws, n - len(got), peek)  # stops at an urgent byte
                    got.extend(chunk)
                    return len(chunk)
                if s.error is not None:
                    raise _Fail(E.broken_error(s.error))
                if s.at_eof:
                    return 0
                return None
            finally:
                self._reenable(ws, C.FD_READ | C.FD_OOB)

        if n == 0:
            return 0
        timeout = ws.opts.rcvtimeo_ms / 1000.0 if ws.opts.rcvtimeo_ms else None
        deadline = None if timeout is None else self._now() + timeout
        while True:
            r = self._call(take)
            if r is not None and (r == 0 or not waitall or len(got) >= n):
                break
            if ws.nonblocking:
                if got:
                    break
                raise _Fail(C.WSAEWOULDBLOCK)
            left = None if deadline is None else deadline - self._now()
            if left is not None and left <= 0:
                if got:
                    break
                raise _Fail(C.WSAETIMEDOUT)  # item 69 (≠L EAGAIN)
            outcome = self._block(ws, lambda: OOB.normal_bytes(ws) > 0 or s.at_eof or s.error is not None,
                                  left)
            if outcome == "timeout" and got:
                break
            if outcome != "ready":
                raise self._blocked_fail(outcome)
        _write_out(buf, bytes(got))
        return len(got)

    def _tcp_recv_oob(self, ws: WSocket, buf: Any, n: int, flags: int) -> int:
        """recv(MSG_OOB): the one urgent byte (oob.py). WSAEINVAL with SO_OOBINLINE (Microsoft,
        recv); none waiting: WSAEWOULDBLOCK on a nonblocking socket, else wait for one."""
        if ws.phase is not Phase.CONNECTED:
            raise _Fail(C.WSAENOTCONN)
        if ws.opts.oobinline:
            raise _Fail(C.WSAEINVAL)
        if n == 0:
            return 0
        peek = bool(flags & C.MSG_PEEK)

        def take() -> bytes | None:
            try:
                return OOB.read_oob(ws, peek)
            finally:
                self._reenable(ws, C.FD_OOB)

        timeout = ws.opts.rcvtimeo_ms / 1000.0 if ws.opts.rcvtimeo_ms else None
        s = ws.sock
        while (data := self._call(take)) is None:
            if ws.nonblocking:
                raise _Fail(C.WSAEWOULDBLOCK)
            outcome = self._block(ws, lambda: OOB.pending(ws) or s.error is not None or s.at_eof, timeout)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
            if s.error is not None:
                raise _Fail(E.broken_error(s.error))
            if s.at_eof and not OOB.pending(ws):
                return 0
        _write_out(buf, data)
        return len(data)

    def _udp_recv(self, ws: WSocket, buf: Any, n: int, flags: int) -> tuple[int, int, int]:
        if flags & C.MSG_OOB:
            raise _Fail(C.WSAEOPNOTSUPP)
        if ws.shut_rd:
            raise _Fail(C.WSAESHUTDOWN)
        s = ws.sock
        if self._call(self._local, ws) is None:
            raise _Fail(C.WSAEINVAL)  # item 51 (≠L)
        peek = bool(flags & C.MSG_PEEK)

        def take() -> tuple[bytes, int, int] | None:
            try:
                if s.error is not None:
                    reason = s.error
                    s.clear_error()
                    if ws.opts.udp_connreset:
                        raise _Fail(E.wsa_code(reason))  # item 56: WSAECONNRESET, stays usable
                if peek:
                    return s.peekfrom() if s.readable else None
                return s.recvfrom()
            finally:
                self._reenable(ws, C.FD_READ)

        timeout = ws.opts.rcvtimeo_ms / 1000.0 if ws.opts.rcvtimeo_ms else None
        deadline = None if timeout is None else self._now() + timeout
        while True:
            got = self._call(take)
            if got is not None:
                break
            if ws.nonblocking:
                raise _Fail(C.WSAEWOULDBLOCK)
            left = None if deadline is None else deadline - self._now()
            if left is not None and left <= 0:
                raise _Fail(C.WSAETIMEDOUT)
            outcome = self._block(ws, lambda: bool(s.readable) or s.error is not None or ws.shut_rd, left)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
            if ws.shut_rd:
                raise _Fail(C.WSAESHUTDOWN)
        data, addr, port = got
        data = bytes(data)
        _write_out(buf, data[:n])
        self._tls.last_from = (addr, port)
        if len(data) > n:
            raise _Fail(C.WSAEMSGSIZE)  # item 58: truncated, the rest discarded
        return len(data), addr, port

    @_api(zero=True)
    def recvfrom(self, s: int, buf: Any, len: int, flags: int = 0, from_: Any = None,  # noqa: A002
                 fromlen: Any = None) -> int:
        ws = self._get(s)
        _out_check(buf, len)
        if ws.is_tcp:  # from and fromlen are neither checked nor written (sock.c)
            return self._tcp_recv(ws, buf, len, flags)
        if from_ is not None:
            fl = _len_value(fromlen)
            if fl is None or fl < _sockaddr_size(ws.family):
                raise _Fail(C.WSAEFAULT)
        self._tls.last_from = None
        try:
            n, addr, port = self._udp_recv(ws, buf, len, flags)
        except _Fail as f:
            if f.code == C.WSAEMSGSIZE and from_ is not None and self._tls.last_from is not None:
                _write_sockaddr(from_, fromlen, *self._tls.last_from, ws.family)
            raise
        if from_ is not None:
            _write_sockaddr(from_, fromlen, addr, port, ws.family)
        return n
