"""Overlapped I/O, completion ports, alertable waits and the Microsoft extension functions
(AcceptEx, ConnectEx, DisconnectEx, GetAcceptExSockaddrs) as methods of `Winsock`.

`OverlappedCalls` is a part of the `Winsock` class (api.py), split off by concern: it uses
the same per-host state and helpers (`_get`, `_call`, `_block`) as the rest of the class.
An operation is an `overlapped.Op` kept per socket in issue order; `_ov_progress` (under the
host lock, on every stack event of the socket and at issue) moves data between the stack
socket and the caller's buffers and ends operations with `overlapped.finish`. Readiness
events are computed after it, so data a pending WSARecv took raises no FD_READ, and a
connection a pending AcceptEx took raises no FD_ACCEPT (sock.c test_read_events,
test_accept_events). docs/winsock-overlapped.md lists the behaviour and its tests.
"""

from __future__ import annotations

import itertools
import struct
import threading
import uuid
from collections.abc import Callable
from typing import Any

from . import constants as C
from . import errors as E
from . import ioconstants as K
from . import oob as OOB
from . import readiness as R
from .buffers import (
    WsaFail,
    in_bytes,
    len_store,
    len_value,
    out_check,
    parse_sockaddr,
    sockaddr_bytes,
    sockaddr_size,
    write_out,
)
from .callwrap import api_call
from .overlapped import (
    WSABUF,
    WSAOVERLAPPED,
    ApcQueues,
    Binding,
    CompletionPort,
    CompletionRoutine,
    Op,
    Ref,
    capacity,
    finish,
    scatter,
    status_of,
    win32_of,
    wsa_of,
)
from .structs import SOCKADDR_IN_SIZE
from .wsocket import Phase, WSocket

_KINDS = ("recv", "send", "accept", "connect")
_ADDR_SPACE = 16  # what AcceptEx needs per address beyond its structure (MSDN: sizeof + 16)


class OVERLAPPED_ENTRY:  # noqa: N801 - Windows name
    """One entry GetQueuedCompletionStatusEx fills."""

    __slots__ = ("lpCompletionKey", "lpOverlapped", "Internal", "dwNumberOfBytesTransferred")

    def __init__(self) -> None:
        self.lpCompletionKey = 0
        self.lpOverlapped: WSAOVERLAPPED | None = None
        self.Internal = 0
        self.dwNumberOfBytesTransferred = 0


class OverlappedCalls:
    """The overlapped half of `Winsock` (see the module docstring)."""

    def _ov_setup(self) -> None:
        self._ov_ops: dict[int, list[Op]] = {}  # socket handle -> operations in issue order
        self._ov_bindings: dict[int, Binding] = {}  # socket handle -> its completion port
        self._ov_apcs = ApcQueues()
        self._ov_plain: set[int] = set()  # WSASocket without WSA_FLAG_OVERLAPPED
        self._ov_no_context: dict[int, str] = {}  # AcceptEx/ConnectEx sockets before SO_UPDATE_*
        self._ov_accepting: dict[int, Op] = {}  # accept socket handle -> the AcceptEx aimed at it
        self._ov_port_names = itertools.count(1)

    # == progress (host lock held) ===============================================================
    def _ov_busy(self, ws: WSocket) -> bool:
        return bool(self._ov_ops.get(ws.handle))

    def _ov_progress(self, ws: WSocket, issuing: Op | None = None) -> None:
        """Advance the socket's pending operations, oldest first per kind."""
        ops = self._ov_ops.get(ws.handle)
        if not ops:
            return
        if any(op.kind == "connect" for op in ops):
            self._refresh(ws)  # the connect outcome lives in the readiness bookkeeping
        for kind in _KINDS:
            for op in [o for o in ops if o.kind == kind and not o.done]:
                result = self._ov_step(op)
                if result is None:
                    break
                self._ov_end(op, *result, issuing=issuing)
        ops[:] = [op for op in ops if not op.done]
        if not ops:
            self._ov_ops.pop(ws.handle, None)

    def _ov_step(self, op: Op) -> tuple[int, int, int] | None:
        """(WSA code, bytes, flags) when the operation can end now, else None."""
        if op.kind == "recv":
            return self._ov_step_recv(op)
        if op.kind == "send":
            return self._ov_step_send(op)
        if op.kind == "accept":
            return self._ov_step_accept(op)
        return self._ov_step_connect(op)

    def _ov_step_recv(self, op: Op) -> tuple[int, int, int] | None:
        ws, s = op.ws, op.ws.sock
        cap = capacity(op.buffers)
        peek = bool(op.extra.get("flags", 0) & C.MSG_PEEK)
        if not ws.is_tcp:
            if s.error is not None:
                reason = s.clear_error()
                if ws.opts.udp_connreset and reason is not None:
                    return (E.wsa_code(reason), 0, 0)
            got = s.peekfrom() if peek else s.recvfrom()
            if got is None:
                return None
            data, addr, port = got
            data = bytes(data)
            scatter(op.buffers, data[:cap])
            if op.from_ is not None:
                write_out(op.from_, sockaddr_bytes(addr, port, ws.family))
                len_store(op.fromlen, sockaddr_size(ws.family))
            self._reenable(ws, C.FD_READ)
            if len(data) > cap:
                return (C.WSAEMSGSIZE, cap, K.MSG_PARTIAL)
            return (0, len(data), 0)
        if OOB.normal_bytes(ws) > 0:
            if cap == 0:
                return (0, 0, 0)  # a zero-length receive completes and leaves the data (sock.c)
            data = OOB.read_normal(ws, cap, peek)
            scatter(op.buffers, data)
            self._reenable(ws, C.FD_READ | C.FD_OOB)
            return (0, len(data), 0)
        if s.error is not None:
            return (E.broken_error(s.error), 0, 0)
        if s.at_eof:
            return (0, 0, 0)
        return None

    def _ov_step_send(self, op: Op) -> tuple[int, int, int] | None:
        ws, s = op.ws, op.ws.sock
        if s.error is not None:
            return (E.broken_error(s.error), 0, 0)
        if R.tcp_state(ws) not in R.CAN_SEND:
            return (C.WSAESHUTDOWN if ws.shut_wr else C.WSAECONNABORTED, 0, 0)
        if "acked_at" in op.extra:  # SO_SNDBUF 0: queued, waiting for the acknowledgement
            return (0, len(op.data), 0) if s.send_progress[0] >= op.extra["acked_at"] else None
        if not op.data:
            return (0, 0, 0)
        if s.writable_bytes <= 0:
            return None
        n = self._send_overcommit(ws, op.data, op.extra.get("urgent", False))
        if ws.opts.sndbuf == 0:  # no send buffering: done when the peer has it (sock.c test_send)
            op.extra["acked_at"] = s.send_progress[1]
            return None
        return (0, n, 0)

    def _ov_step_accept(self, op: Op) -> tuple[int, int, int] | None:
        lst: WSocket = op.extra["listener"]
        aws: WSocket = op.extra["accept"]
        if not op.extra.get("connected"):
            if not lst.sock.accept_pending:
                return None
            if 0 < op.extra["local_len"] < sockaddr_size(lst.family) + _ADDR_SPACE:
                return (C.WSAEFAULT, 0, 0)  # STATUS_BUFFER_TOO_SMALL; the connection stays
            sock = lst.sock.accept()
            self._reenable(lst, C.FD_ACCEPT)
            if sock is None:
                return None
            old = aws.sock
            old.watch(None)
            old.close(self._now())
            aws.sock = sock
            aws.phase = Phase.CONNECTED
            aws.connected_at = self._now()
            self._apply_tcp_options(aws)
            self._watch(aws)
            self._ov_no_context[aws.handle] = "accept"
            op.extra["connected"] = True
            if op.extra["recv_len"] > 0:  # now waits for the first data on the new socket
                self._ov_ops.setdefault(aws.handle, []).append(op)
        s = aws.sock
        want = op.extra["recv_len"]
        data = b""
        if want > 0:
            if s.readable_bytes > 0:
                data = s.recv(want)
            elif s.error is not None:
                return (E.broken_error(s.error), 0, 0)
            elif not s.at_eof:
                return None
        out = op.extra["out"]
        loc, rem = R.local(aws), s.remote
        write_out(out, data)
        if op.extra["local_len"]:  # 0: no local address wanted (sock.c test_AcceptEx)
            write_out(out, sockaddr_bytes(*loc, aws.family), want)
        write_out(out, sockaddr_bytes(int(rem[0]), int(rem[1]), aws.family), want + op.extra["local_len"])
        return (0, len(data), 0)

    def _ov_step_connect(self, op: Op) -> tuple[int, int, int] | None:
        ws = op.ws
        if ws.phase is Phase.CONNECTING:
            return None
        if ws.phase is Phase.FAILED:
            return (ws.connect_error, 0, 0)
        self._ov_no_context[ws.handle] = "connect"
        sent = self._send_overcommit(ws, op.data) if op.data else 0
        return (0, sent, 0)

    def _ov_end(self, op: Op, wsa: int, nbytes: int, flags: int, *, issuing: Op | None) -> None:
        if op is issuing and wsa != 0:  # failed inside the call: no event, routine or packet
            op.done = True
            op.overlapped.Internal = status_of(wsa)
            op.extra["fail"] = wsa
            return
        finish(op, wsa, nbytes, self._ov_apcs, self._ov_bindings.get(op.extra.get("port_of", op.ws.handle)),
               flags=flags, at_once=op is issuing)

    def _ov_cancel(self, match: Callable[[Op], bool]) -> int:
        """End every pending operation `match` accepts with WSA_OPERATION_ABORTED (lock held)."""
        count = 0
        for handle, ops in list(self._ov_ops.items()):
            for op in ops:
                if not op.done and match(op):
                    finish(op, K.WSA_OPERATION_ABORTED, 0, self._ov_apcs,
                           self._ov_bindings.get(op.extra.get("port_of", op.ws.handle)))
                    count += 1
            ops[:] = [op for op in ops if not op.done]
            if not ops:
                self._ov_ops.pop(handle, None)
        return count

    def _ov_closing(self, ws: WSocket) -> None:
        """closesocket: the socket's operations (and AcceptEx calls aimed at it) are cancelled."""
        h = ws.handle
        self._ov_cancel(lambda op: op.ws.handle == h or op.extra.get("accept") is ws)
        self._ov_bindings.pop(h, None)
        self._ov_plain.discard(h)
        self._ov_no_context.pop(h, None)
        self._ov_accepting.pop(h, None)

    def _ov_blocks_connect(self, ws: WSocket) -> bool:
        """connect() is WSAEINVAL on a socket a pending AcceptEx accepts into (sock.c
        test_AcceptEx) and on one ConnectEx connected, before SO_UPDATE_CONNECT_CONTEXT
        (sock.c test_connect)."""
        if self._ov_no_context.get(ws.handle) == "connect":
            return True
        return self._ov_accept_pending(ws)

    def _ov_accept_pending(self, ws: WSocket) -> bool:
        op = self._ov_accepting.get(ws.handle)
        return op is not None and not op.done

    def _ov_context_missing(self, ws: WSocket) -> bool:
        """An AcceptEx/ConnectEx socket before SO_UPDATE_ACCEPT/CONNECT_CONTEXT is in the
        'default state' Microsoft documents: getpeername, getsockname and shutdown fail."""
        return ws.handle in self._ov_no_context

    # == issuing =================================================================================
    def _ov_issue(self, op: Op, *, always_pends: bool = False) -> tuple[bool, int]:
        """Queue op and try it at once: (completed now, bytes); raises WsaFail if it failed
        inside the call. A socket made without WSA_FLAG_OVERLAPPED waits for the outcome.
        always_pends: the call reports WSA_IO_PENDING even if the operation is already done
        (ConnectEx, like a nonblocking connect, never completes inside the call on Windows,
        even to a local peer); it is then completed asynchronously right away."""
        ws = op.ws

        def start() -> None:
            if op.routine is not None and op.extra.get("port_of", ws.handle) in self._ov_bindings:
                raise WsaFail(C.WSAEINVAL)  # a routine on a port-bound socket (sock.c test_WSARecv)
            ov = op.overlapped
            ev = ov.hEvent
            if ev is not None and not ev.closed:
                ev.signaled = False  # the I/O manager resets the event as the request starts
            ov.Internal, ov.InternalHigh, ov.flags = K.STATUS_PENDING, 0, 0
            self._ov_ops.setdefault(ws.handle, []).append(op)
            self._ov_progress(ws, issuing=None if always_pends else op)

        self._call(start)
        if always_pends:
            return False, 0
        if "fail" in op.extra:
            raise WsaFail(op.extra["fail"])
        if not op.done and ws.handle in self._ov_plain:
            self._block(None, lambda: op.done, None, alertable=False)
            return True, op.overlapped.InternalHigh
        return op.done, op.overlapped.InternalHigh

    def _ov_buffers(self, lpBuffers: Any, count: int) -> list[WSABUF]:  # noqa: N803
        if lpBuffers is None or count <= 0:
            raise WsaFail(C.WSAEINVAL if count <= 0 else C.WSAEFAULT)
        bufs = list(lpBuffers)[:count]
        if len(bufs) < count or not all(isinstance(b, WSABUF) and b.len >= 0 for b in bufs):
            raise WsaFail(C.WSAEFAULT)
        return bufs

    def _ov_op(self, ws: WSocket, kind: str, ov: Any, routine: Any, **kw: Any) -> Op:
        if not isinstance(ov, WSAOVERLAPPED):
            raise WsaFail(C.WSAEFAULT)
        return Op(ws, kind, ov, routine, threading.get_ident(), **kw)

    def _ov_done(self, done: bool, nbytes: int, count_out: Any, flags_out: Any = None,
                 ov: WSAOVERLAPPED | None = None) -> int:
        if not done:
            raise WsaFail(C.WSA_IO_PENDING)
        len_store(count_out, nbytes)
        if flags_out is not None and ov is not None:
            len_store(flags_out, ov.flags)
        if ov is not None and ov.Internal != K.STATUS_SUCCESS:
            raise WsaFail(wsa_of(ov.Internal))
        return 0

    def GetLastError(self) -> int:  # noqa: N802
        """kernel32's last error: on Windows the same per-thread slot as WSAGetLastError."""
        return self.WSAGetLastError()

    # == WSASocket ===============================================================================
    def WSASocket(self, af: int, type: int, protocol: int, lpProtocolInfo: Any = None,  # noqa: N802, N803, A002
                  g: int = 0, dwFlags: int = K.WSA_FLAG_OVERLAPPED) -> int:  # noqa: N803
        """socket() with flags: without WSA_FLAG_OVERLAPPED an overlapped call waits for its
        own outcome (Microsoft: such a socket does not do overlapped I/O)."""
        if lpProtocolInfo is not None:
            self._set_error(C.WSAEINVAL)
            return C.INVALID_SOCKET
        s = self.socket(af, type, protocol)
        if s != C.INVALID_SOCKET and not dwFlags & K.WSA_FLAG_OVERLAPPED:
            self._ov_plain.add(s)
        return s

    # == WSARecv / WSARecvFrom / WSASend / WSASendTo =============================================
    @api_call(zero=True)
    def WSARecv(self, s: int, lpBuffers: Any, dwBufferCount: int, lpNumberOfBytesRecvd: Any,  # noqa: N802, N803
                lpFlags: Any, lpOverlapped: WSAOVERLAPPED | None = None,  # noqa: N803
                lpCompletionRoutine: CompletionRoutine | None = None) -> int:  # noqa: N803
        """Without lpOverlapped, recv into the buffers (WSAEWOULDBLOCK when nonblocking);
        with it, 0 if it completed at once (the event is still signalled, the routine or the
        packet still queued), else SOCKET_ERROR / WSA_IO_PENDING."""
        ws = self._get(s)
        bufs = self._ov_buffers(lpBuffers, dwBufferCount)
        flags = len_value(lpFlags) if lpFlags is not None else None
        if flags is None:
            raise WsaFail(C.WSAEFAULT)
        if lpOverlapped is None and lpCompletionRoutine is None:  # MSG_OOB goes to recv
            return self._ov_plain_recv(ws, bufs, lpNumberOfBytesRecvd, lpFlags, flags, None, None)
        if flags & C.MSG_OOB:
            raise WsaFail(C.WSAEOPNOTSUPP)  # an overlapped out-of-band receive: not supported
        self._ov_check_recv(ws)
        op = self._ov_op(ws, "recv", lpOverlapped, lpCompletionRoutine, buffers=bufs,
                         extra={"flags": flags})
        done, n = self._ov_issue(op)
        return self._ov_done(done, n, lpNumberOfBytesRecvd, lpFlags, lpOverlapped)

    @api_call(zero=True)
    def WSARecvFrom(self, s: int, lpBuffers: Any, dwBufferCount: int, lpNumberOfBytesRecvd: Any,  # noqa: N802, N803
                    lpFlags: Any, lpFrom: Any, lpFromlen: Any, lpOverlapped: WSAOVERLAPPED | None = None,  # noqa: N803
                    lpCompletionRoutine: CompletionRoutine | None = None) -> int:  # noqa: N803
        ws = self._get(s)
        bufs = self._ov_buffers(lpBuffers, dwBufferCount)
        flags = len_value(lpFlags) if lpFlags is not None else None
        if flags is None:
            raise WsaFail(C.WSAEFAULT)
        if lpFrom is not None:
            n = len_value(lpFromlen)
            if n is None or n < sockaddr_size(ws.family):
                raise WsaFail(C.WSAEFAULT)
            out_check(lpFrom, sockaddr_size(ws.family))
        if lpOverlapped is None and lpCompletionRoutine is None:
            return self._ov_plain_recv(ws, bufs, lpNumberOfBytesRecvd, lpFlags, flags, lpFrom, lpFromlen)
        self._ov_check_recv(ws)
        op = self._ov_op(ws, "recv", lpOverlapped, lpCompletionRoutine, buffers=bufs,
                         from_=None if ws.is_tcp else lpFrom, fromlen=lpFromlen, extra={"flags": flags})
        done, n = self._ov_issue(op)
        return self._ov_done(done, n, lpNumberOfBytesRecvd, lpFlags, lpOverlapped)

    def _ov_check_recv(self, ws: WSocket) -> None:
        if ws.is_tcp and ws.phase is not Phase.CONNECTED:
            raise WsaFail(C.WSAENOTCONN)
        if ws.shut_rd:
            raise WsaFail(C.WSAESHUTDOWN)
        if not ws.is_tcp and self._call(self._local, ws) is None:
            raise WsaFail(C.WSAEINVAL)

    def _ov_plain_recv(self, ws: WSocket, bufs: list[WSABUF], count_out: Any, flags_out: Any,
                       flags: int, from_: Any, fromlen: Any) -> int:
        """The non-overlapped WSARecv(From): recv(from) into one buffer, then scattered."""
        tmp = bytearray(capacity(bufs))
        if from_ is not None and not ws.is_tcp:
            n = self.recvfrom(ws.handle, tmp, len(tmp), flags, from_, fromlen)
        else:
            n = self.recv(ws.handle, tmp, len(tmp), flags)
        if n == C.SOCKET_ERROR:
            code = self.WSAGetLastError()
            if code == C.WSAEMSGSIZE:
                scatter(bufs, bytes(tmp))
                len_store(count_out, len(tmp))
                len_store(flags_out, K.MSG_PARTIAL)
            raise WsaFail(code)
        scatter(bufs, bytes(tmp[:n]))
        len_store(count_out, n)
        len_store(flags_out, 0)
        return 0

    @api_call(zero=True)
    def WSASend(self, s: int, lpBuffers: Any, dwBufferCount: int, lpNumberOfBytesSent: Any,  # noqa: N802, N803
                dwFlags: int, lpOverlapped: WSAOVERLAPPED | None = None,  # noqa: N803
                lpCompletionRoutine: CompletionRoutine | None = None) -> int:  # noqa: N803
        """Gathers the buffers; an overlapped TCP send completes once its data is queued on
        the connection (pending while the send buffer is full), a UDP send at once."""
        return self._ov_send(s, lpBuffers, dwBufferCount, lpNumberOfBytesSent, dwFlags, None, 0,
                             lpOverlapped, lpCompletionRoutine)

    @api_call(zero=True)
    def WSASendTo(self, s: int, lpBuffers: Any, dwBufferCount: int, lpNumberOfBytesSent: Any,  # noqa: N802, N803
                  dwFlags: int, lpTo: Any, iTolen: int, lpOverlapped: WSAOVERLAPPED | None = None,  # noqa: N803
                  lpCompletionRoutine: CompletionRoutine | None = None) -> int:  # noqa: N803
        return self._ov_send(s, lpBuffers, dwBufferCount, lpNumberOfBytesSent, dwFlags, lpTo, iTolen,
                             lpOverlapped, lpCompletionRoutine)

    def _ov_send(self, s: int, lpBuffers: Any, count: int, sent_out: Any, flags: int, to: Any,  # noqa: N803
                 tolen: int, ov: WSAOVERLAPPED | None, routine: CompletionRoutine | None) -> int:
        ws = self._get(s)
        bufs = self._ov_buffers(lpBuffers, count)
        data = b"".join(in_bytes(b.buf, b.len) for b in bufs)
        overlapped = ov is not None or routine is not None
        if not ws.is_tcp or not overlapped:
            if overlapped:
                op = self._ov_op(ws, "send", ov, routine)
            n = (self.sendto(s, data, len(data), flags, to, tolen) if to is not None and not ws.is_tcp
                 else self.send(s, data, len(data), flags))
            if n == C.SOCKET_ERROR:
                raise WsaFail(self.WSAGetLastError())
            if overlapped:  # a datagram is sent inside the call: complete at once
                def end() -> None:
                    op.overlapped.Internal = K.STATUS_PENDING
                    self._ov_end(op, 0, n, 0, issuing=op)

                self._call(end)
            len_store(sent_out, n)
            return 0
        if ws.phase is not Phase.CONNECTED:
            raise WsaFail(C.WSAENOTCONN)
        if ws.shut_wr:
            raise WsaFail(C.WSAESHUTDOWN)
        op = self._ov_op(ws, "send", ov, routine, data=data, extra={"urgent": bool(flags & C.MSG_OOB)})
        done, n = self._ov_issue(op)
        return self._ov_done(done, n, sent_out, None, ov)

    # == results ================================================================================
    @api_call(fail=False)
    def WSAGetOverlappedResult(self, s: int, lpOverlapped: WSAOVERLAPPED | None, lpcbTransfer: Any,  # noqa: N802, N803
                               fWait: bool, lpdwFlags: Any) -> bool:  # noqa: N803
        """TRUE with the bytes and flags of a finished operation; FALSE with WSA_IO_INCOMPLETE
        while it is pending and fWait is FALSE, or with the operation's WSA code."""
        self._get(s)
        if not isinstance(lpOverlapped, WSAOVERLAPPED) or lpcbTransfer is None or lpdwFlags is None:
            raise WsaFail(C.WSAEFAULT)
        ov = lpOverlapped
        if ov.Internal == K.STATUS_PENDING:
            if not fWait:
                raise WsaFail(K.WSA_IO_INCOMPLETE)
            outcome = self._block(None, lambda: ov.Internal != K.STATUS_PENDING, None, alertable=False)
            if outcome != "ready":
                raise self._blocked_fail(outcome)
        len_store(lpcbTransfer, ov.InternalHigh)
        len_store(lpdwFlags, ov.flags)
        if ov.Internal != K.STATUS_SUCCESS:
            raise WsaFail(wsa_of(ov.Internal))
        return True

    def GetOverlappedResult(self, hFile: int, lpOverlapped: WSAOVERLAPPED, lpNumberOfBytesTransferred: Any,  # noqa: N802, N803
                            bWait: bool) -> bool:  # noqa: N803
        """kernel32's version: the same with Win32 codes (ERROR_NETNAME_DELETED for a reset,
        ERROR_IO_INCOMPLETE while pending)."""
        ov = lpOverlapped
        if not isinstance(ov, WSAOVERLAPPED):
            self._set_error(K.ERROR_INVALID_PARAMETER)
            return False
        if ov.Internal == K.STATUS_PENDING:
            if not bWait:
                self._set_error(K.ERROR_IO_INCOMPLETE)
                return False
            self._block(None, lambda: ov.Internal != K.STATUS_PENDING, None, alertable=False)
        len_store(lpNumberOfBytesTransferred, ov.InternalHigh)
        if ov.Internal != K.STATUS_SUCCESS:
            self._set_error(win32_of(ov.Internal))
            return False
        return True

    # == cancelling =============================================================================
    def CancelIo(self, hFile: int) -> bool:  # noqa: N802, N803
        """Cancel the calling thread's pending operations on the socket (Microsoft: CancelIo
        is per thread); they end with WSA_OPERATION_ABORTED. TRUE even if none was pending."""
        ws = self._sockets.get(hFile)
        if ws is None or ws.closed:
            self._set_error(K.ERROR_INVALID_HANDLE)
            return False
        me = threading.get_ident()
        self._call(self._ov_cancel, lambda op: op.ws is ws and op.thread == me)
        return True

    def CancelIoEx(self, hFile: int, lpOverlapped: WSAOVERLAPPED | None = None) -> bool:  # noqa: N802, N803
        """Cancel the socket's operations of any thread (only the one using lpOverlapped if
        given); ERROR_NOT_FOUND when nothing matched."""
        ws = self._sockets.get(hFile)
        if ws is None or ws.closed:
            self._set_error(K.ERROR_INVALID_HANDLE)
            return False
        n = self._call(self._ov_cancel, lambda op: op.ws is ws and (
            lpOverlapped is None or op.overlapped is lpOverlapped))
        if not n:
            self._set_error(K.ERROR_NOT_FOUND)
            return False
        return True

    # == alertable waits ========================================================================
    def _ov_run_apcs(self) -> bool:
        calls = self._call(self._ov_apcs.take)
        for call in calls:
            call()
        return bool(calls)

    def _alertable_wait(self, ready: Callable[[], bool], timeout_s: float | None) -> str:
        """Wait for ready() or a completion routine of this thread: "apc" (routines ran),
        "ready", "timeout" or another _block outcome. Routines already queued run first."""
        me = threading.get_ident()
        apcs = self._ov_apcs
        if self._ov_run_apcs():
            return "apc"
        if self._call(ready):
            return "ready"
        if timeout_s == 0:
            return "timeout"
        outcome = self._block(None, lambda: apcs.pending(me) or ready(), timeout_s, alertable=False)
        if self._ov_run_apcs():
            return "apc"
        return outcome

    def SleepEx(self, dwMilliseconds: int, bAlertable: bool) -> int:  # noqa: N802, N803
        """Sleep (virtual time in the Simulator); alertable: WAIT_IO_COMPLETION as soon as
        this thread's completion routines ran, else 0 when the time is up."""
        timeout_s = None if dwMilliseconds == K.INFINITE else dwMilliseconds / 1000.0
        if not bAlertable:
            if timeout_s is None:
                raise ValueError("SleepEx(INFINITE, FALSE) would never return")
            self._block(None, lambda: False, timeout_s, alertable=False)
            return 0
        return K.WAIT_IO_COMPLETION if self._alertable_wait(lambda: False, timeout_s) == "apc" else 0

    # == completion ports =======================================================================
    def CreateIoCompletionPort(self, FileHandle: int, ExistingCompletionPort: CompletionPort | None,  # noqa: N802, N803
                               CompletionKey: int,  # noqa: N803
                               NumberOfConcurrentThreads: int = 0) -> CompletionPort | None:  # noqa: N803
        """A new port (FileHandle INVALID_HANDLE_VALUE), or the socket associated with a port
        (new or existing) and CompletionKey; None with ERROR_INVALID_PARAMETER for a socket
        that already has one, ERROR_INVALID_HANDLE for a bad handle."""
        if FileHandle == K.INVALID_HANDLE_VALUE:
            if ExistingCompletionPort is not None:
                self._set_error(K.ERROR_INVALID_PARAMETER)
                return None
            return CompletionPort(f"port{next(self._ov_port_names)}")
        ws = self._sockets.get(FileHandle)
        if ws is None or ws.closed or (ExistingCompletionPort is not None and (
                not isinstance(ExistingCompletionPort, CompletionPort) or ExistingCompletionPort.closed)):
            self._set_error(K.ERROR_INVALID_HANDLE)
            return None
        port = ExistingCompletionPort or CompletionPort(f"port{next(self._ov_port_names)}")

        def bind() -> bool:
            if ws.handle in self._ov_bindings:
                return False
            self._ov_bindings[ws.handle] = Binding(port, CompletionKey)
            return True

        if not self._call(bind):
            self._set_error(K.ERROR_INVALID_PARAMETER)
            return None
        return port

    def SetFileCompletionNotificationModes(self, FileHandle: int, Flags: int) -> bool:  # noqa: N802, N803
        """FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: an operation that completes inside its call
        queues no packet."""
        ws = self._sockets.get(FileHandle)
        if ws is None or ws.closed:
            self._set_error(K.ERROR_INVALID_HANDLE)
            return False

        def do() -> None:
            b = self._ov_bindings.get(ws.handle)
            if b is not None:
                b.skip_on_success = bool(Flags & K.FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)

        self._call(do)
        return True

    def PostQueuedCompletionStatus(self, CompletionPort: CompletionPort, dwNumberOfBytesTransferred: int,  # noqa: N802, N803
                                   dwCompletionKey: int, lpOverlapped: WSAOVERLAPPED | None) -> bool:  # noqa: N803
        if not self._ov_port_ok(CompletionPort):
            return False
        self._call(CompletionPort.post, dwNumberOfBytesTransferred, dwCompletionKey, lpOverlapped,
                   K.STATUS_SUCCESS)
        return True

    def _ov_port_ok(self, port: Any) -> bool:
        if not isinstance(port, CompletionPort) or port.closed:
            self._set_error(K.ERROR_INVALID_HANDLE)
            return False
        return True

    def GetQueuedCompletionStatus(self, CompletionPort: CompletionPort, lpNumberOfBytes: Any,  # noqa: N802, N803
                                  lpCompletionKey: Any, lpOverlapped: Ref, dwMilliseconds: int) -> bool:  # noqa: N803
        """The oldest packet: TRUE for a successful operation; FALSE with its Win32 error
        (bytes, key and overlapped filled) for a failed one; FALSE with WAIT_TIMEOUT and
        *lpOverlapped NULL (bytes and key untouched) when none came in time (sock.c)."""
        if not self._ov_port_ok(CompletionPort) or lpOverlapped is None:
            if lpOverlapped is None:
                self._set_error(K.ERROR_INVALID_PARAMETER)
            return False
        port = CompletionPort
        timeout_s = None if dwMilliseconds == K.INFINITE else dwMilliseconds / 1000.0
        got: list[tuple[int, int, WSAOVERLAPPED | None, int]] = []

        def take() -> bool:
            if port.packets and not got:
                got.append(port.packets.popleft())
            return bool(got) or port.closed

        if not self._call(take) and timeout_s != 0:
            self._block(None, take, timeout_s, alertable=False)
        if not got:
            lpOverlapped.value = None
            self._set_error(K.ERROR_ABANDONED_WAIT_0 if port.closed else K.WAIT_TIMEOUT)
            return False
        nbytes, key, ov, status = got[0]
        len_store(lpNumberOfBytes, nbytes)
        len_store(lpCompletionKey, key)
        lpOverlapped.value = ov
        if status != K.STATUS_SUCCESS:
            self._set_error(win32_of(status))
            return False
        return True

    def GetQueuedCompletionStatusEx(self, CompletionPort: CompletionPort, lpCompletionPortEntries: Any,  # noqa: N802, N803
                                    ulCount: int, ulNumEntriesRemoved: Any, dwMilliseconds: int,  # noqa: N803
                                    fAlertable: bool) -> bool:  # noqa: N803
        """Up to ulCount packets at once into OVERLAPPED_ENTRY items; a failed operation is
        still TRUE (its status is in Internal). FALSE with WAIT_TIMEOUT, or WAIT_IO_COMPLETION
        when an alertable wait ran completion routines."""
        if not self._ov_port_ok(CompletionPort):
            return False
        entries = list(lpCompletionPortEntries or [])[:ulCount]
        if ulCount <= 0 or len(entries) < ulCount or ulNumEntriesRemoved is None:
            self._set_error(K.ERROR_INVALID_PARAMETER)
            return False
        port = CompletionPort
        timeout_s = None if dwMilliseconds == K.INFINITE else dwMilliseconds / 1000.0
        if fAlertable:
            outcome = self._alertable_wait(lambda: bool(port.packets), timeout_s)
            if outcome == "apc":
                len_store(ulNumEntriesRemoved, 0)
                self._set_error(K.WAIT_IO_COMPLETION)
                return False
        elif not self._call(lambda: bool(port.packets)) and timeout_s != 0:
            self._block(None, lambda: bool(port.packets), timeout_s, alertable=False)

        def take() -> list[tuple[int, int, WSAOVERLAPPED | None, int]]:
            out = []
            while port.packets and len(out) < ulCount:
                out.append(port.packets.popleft())
            return out

        got = self._call(take)
        len_store(ulNumEntriesRemoved, len(got))
        if not got:
            self._set_error(K.WAIT_TIMEOUT)
            return False
        for entry, (nbytes, key, ov, status) in zip(entries, got, strict=False):
            entry.dwNumberOfBytesTransferred, entry.lpCompletionKey = nbytes, key
            entry.lpOverlapped, entry.Internal = ov, status
        return True

    def CloseHandle(self, hObject: Any) -> bool:  # noqa: N802, N803
        """Closes a completion port: threads waiting on it return ERROR_ABANDONED_WAIT_0."""
        if not self._ov_port_ok(hObject):
            return False

        def close() -> None:
            hObject.closed = True
            hObject.packets.clear()

        self._call(close)
        return True

    # == the extension functions ================================================================
    def _extension_pointer(self, ws: WSocket, lpvInBuffer: Any, cbInBuffer: int, lpvOutBuffer: Any,  # noqa: N803
                           cbOutBuffer: int, lpcbBytesReturned: Any) -> int:  # noqa: N803
        """WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER): the GUID (a uuid.UUID or its 16
        bytes, little-endian fields as in memory) -> a callable in lpvOutBuffer (a Ref)."""
        if lpcbBytesReturned is None:
            raise WsaFail(C.WSAEFAULT)
        if isinstance(lpvInBuffer, uuid.UUID):
            guid = lpvInBuffer
        else:
            raw = in_bytes(lpvInBuffer, None)
            if cbInBuffer < 16 or len(raw) < 16:
                raise WsaFail(C.WSAEFAULT)
            guid = uuid.UUID(bytes_le=raw[:16])
        table = {K.WSAID_ACCEPTEX: self.AcceptEx, K.WSAID_CONNECTEX: self.ConnectEx,
                 K.WSAID_DISCONNECTEX: self.DisconnectEx,
                 K.WSAID_GETACCEPTEXSOCKADDRS: self.GetAcceptExSockaddrs}
        fn = table.get(guid)
        if fn is None:
            raise WsaFail(C.WSAEINVAL)
        if cbOutBuffer < 8 or not isinstance(lpvOutBuffer, Ref):
            raise WsaFail(C.WSAEFAULT)
        lpvOutBuffer.value = fn
        len_store(lpcbBytesReturned, 8)
        return 0

    @api_call(fail=False, zero=True)
    def AcceptEx(self, sListenSocket: int, sAcceptSocket: int, lpOutputBuffer: Any,  # noqa: N802, N803
                 dwReceiveDataLength: int, dwLocalAddressLength: int, dwRemoteAddressLength: int,  # noqa: N803
                 lpdwBytesReceived: Any, lpOverlapped: WSAOVERLAPPED | None) -> bool:  # noqa: N803
        """Accept into the unbound socket sAcceptSocket: TRUE if a connection (and, with a
        receive length, its first data) was there, else FALSE / ERROR_IO_PENDING. The output
        buffer gets the data, then the local address, then the remote one (GetAcceptExSockaddrs
        decodes them). The order of the checks is sock.c test_AcceptEx's."""
        if isinstance(lpOverlapped, WSAOVERLAPPED):
            lpOverlapped.Internal = K.STATUS_PENDING  # even when a check below fails (sock.c)
        lst = self._get(sListenSocket)
        if not lst.is_tcp or lst.phase is not Phase.LISTENING:
            raise WsaFail(C.WSAEINVAL)
        aws = self._get(sAcceptSocket)
        if lpOutputBuffer is None:
            raise WsaFail(C.WSAEFAULT)
        busy = self._ov_accept_pending(aws)
        if not aws.is_tcp or aws.is_bound or aws.phase is not Phase.FRESH or busy:
            raise WsaFail(C.WSAEINVAL)
        if lpOverlapped is None:
            raise WsaFail(K.ERROR_INVALID_PARAMETER)
        if dwRemoteAddressLength < sockaddr_size(lst.family):
            raise WsaFail(C.WSAEFAULT)
        need = dwReceiveDataLength + dwLocalAddressLength + dwRemoteAddressLength
        out_check(lpOutputBuffer, need)
        op = self._ov_op(lst, "accept", lpOverlapped, None, extra={
            "listener": lst, "accept": aws, "out": lpOutputBuffer, "recv_len": dwReceiveDataLength,
            "local_len": dwLocalAddressLength, "port_of": lst.handle})
        self._ov_accepting[aws.handle] = op
        done, n = self._ov_issue(op)
        self._ov_done(done, n, lpdwBytesReceived, None, lpOverlapped)
        return True

    def GetAcceptExSockaddrs(self, lpOutputBuffer: Any, dwReceiveDataLength: int,  # noqa: N802, N803
                             dwLocalAddressLength: int, dwRemoteAddressLength: int,  # noqa: N803
                             LocalSockaddr: Any, LocalSockaddrLength: Any,  # noqa: N803
                             RemoteSockaddr: Any, RemoteSockaddrLength: Any) -> None:  # noqa: N803
        """Decode AcceptEx's output buffer into two SOCKADDR_IN out-structures and lengths. It
        returns nothing (void on Windows); bad buffers leave the outputs alone and set WSAEFAULT."""
        try:
            self._ov_sockaddrs(lpOutputBuffer, dwReceiveDataLength, dwLocalAddressLength,
                               LocalSockaddr, LocalSockaddrLength, RemoteSockaddr, RemoteSockaddrLength)
        except (WsaFail, TypeError, ValueError):
            self._set_error(C.WSAEFAULT)
        del dwRemoteAddressLength

    def _ov_sockaddrs(self, lpOutputBuffer: Any, dwReceiveDataLength: int, dwLocalAddressLength: int,  # noqa: N803
                      LocalSockaddr: Any, LocalSockaddrLength: Any, RemoteSockaddr: Any,  # noqa: N803
                      RemoteSockaddrLength: Any) -> None:  # noqa: N803
        raw = in_bytes(lpOutputBuffer, None)
        wanted = [(dwReceiveDataLength + dwLocalAddressLength, RemoteSockaddr, RemoteSockaddrLength)]
        if dwLocalAddressLength >= SOCKADDR_IN_SIZE:  # else left alone (sock.c test_AcceptEx)
            wanted.insert(0, (dwReceiveDataLength, LocalSockaddr, LocalSockaddrLength))
        for at, name, namelen in wanted:
            family = int.from_bytes(raw[at:at + 2], "little") if at >= 0 else 0
            size = sockaddr_size(family)  # the address AcceptEx wrote there says its family
            piece = raw[at:at + size]
            if at < 0 or len(piece) < size:
                raise WsaFail(C.WSAEFAULT)
            out_check(name, size)
            write_out(name, piece)
            len_store(namelen, size)

    @api_call(fail=False, zero=True)
    def ConnectEx(self, s: int, name: Any, namelen: int, lpSendBuffer: Any, dwSendDataLength: int,  # noqa: N802
                  lpdwBytesSent: Any, lpOverlapped: WSAOVERLAPPED | None) -> bool:  # noqa: N803
        """Connect a bound TCP socket, then send lpSendBuffer; FALSE / ERROR_IO_PENDING until
        the connection is up (the bytes sent count in the result)."""
        if isinstance(lpOverlapped, WSAOVERLAPPED):
            lpOverlapped.Internal = K.STATUS_PENDING  # even when a check below fails (sock.c)
        ws = self._get(s)
        if not ws.is_tcp or ws.phase is Phase.LISTENING:
            raise WsaFail(C.WSAEINVAL)
        if ws.phase is Phase.CONNECTED:
            raise WsaFail(C.WSAEISCONN)  # also before SO_UPDATE_CONNECT_CONTEXT (sock.c)
        if self._ov_blocks_connect(ws):
            raise WsaFail(C.WSAEINVAL)
        if not ws.is_bound:
            raise WsaFail(C.WSAEINVAL)
        if lpOverlapped is None:
            raise WsaFail(K.ERROR_INVALID_PARAMETER)
        data = in_bytes(lpSendBuffer, dwSendDataLength) if dwSendDataLength else b""
        parse_sockaddr(name, namelen, family=ws.family)
        was_nonblocking = ws.nonblocking
        ws.nonblocking = True  # one connect path: connect() starts it without waiting
        try:
            if self.connect(s, name, namelen) == C.SOCKET_ERROR:
                code = self.WSAGetLastError()
                if code != C.WSAEWOULDBLOCK:
                    raise WsaFail(code)
        finally:
            ws.nonblocking = was_nonblocking
        op = self._ov_op(ws, "connect", lpOverlapped, None, data=data)
        done, n = self._ov_issue(op, always_pends=True)
        self._ov_done(done, n, lpdwBytesSent, None, lpOverlapped)
        return True

    @api_call(fail=False, zero=True)
    def DisconnectEx(self, s: int, lpOverlapped: WSAOVERLAPPED | None, dwFlags: int,  # noqa: N802, N803
                     dwReserved: int = 0) -> bool:  # noqa: N803
        """Graceful disconnect (a FIN, as shutdown(SD_SEND)); completes at once. Afterwards
        send is WSAESHUTDOWN and connect WSAEISCONN (sock.c test_DisconnectEx).
        TF_REUSE_SOCKET is not supported (WSAEOPNOTSUPP)."""
        ws = self._get(s)
        if dwReserved:
            raise WsaFail(C.WSAEINVAL)
        if dwFlags & K.TF_REUSE_SOCKET:
            raise WsaFail(C.WSAEOPNOTSUPP)
        if not ws.is_tcp or ws.phase is not Phase.CONNECTED:
            raise WsaFail(C.WSAENOTCONN)

        def do() -> None:
            if not ws.shut_wr:
                ws.shut_wr = True
                ws.sock.shutdown(C.SD_SEND, self._now())

        self._call(do)
        if lpOverlapped is not None:
            op = self._ov_op(ws, "disconnect", lpOverlapped, None)

            def end() -> None:
                op.overlapped.Internal = K.STATUS_PENDING
                self._ov_end(op, 0, 0, 0, issuing=op)

            self._call(end)
        return True

    def _ov_ioctl(self, ws: WSocket, code: int, lpvInBuffer: Any, cbInBuffer: int, lpvOutBuffer: Any,  # noqa: N803
                  cbOutBuffer: int, lpcbBytesReturned: Any, lpOverlapped: Any,  # noqa: N803
                  lpCompletionRoutine: Any) -> int:  # noqa: N803
        """WSAIoctl with an overlapped (sock.c test_unsupported_ioctls, test_fionbio,
        test_keepalive_vals): a NULL lpcbBytesReturned is still WSAEFAULT; a code the socket
        supports runs at once, returns 0 and completes the overlapped with 0 bytes (event,
        routine, packet); an unsupported one returns WSA_IO_PENDING and completes with
        STATUS_NOT_SUPPORTED (WSAEOPNOTSUPP); any other failure is returned as it is."""
        if lpcbBytesReturned is None:
            raise WsaFail(C.WSAEFAULT)
        op = self._ov_op(ws, "ioctl", lpOverlapped, lpCompletionRoutine)
        if lpCompletionRoutine is not None and ws.handle in self._ov_bindings:
            raise WsaFail(C.WSAEINVAL)
        result = self.WSAIoctl(ws.handle, code, lpvInBuffer, cbInBuffer, lpvOutBuffer, cbOutBuffer,
                               lpcbBytesReturned)
        err = self.WSAGetLastError() if result == C.SOCKET_ERROR else 0
        if err not in (0, C.WSAEOPNOTSUPP):
            raise WsaFail(err)

        def end() -> None:
            ev = op.overlapped.hEvent
            if ev is not None and not ev.closed:
                ev.signaled = False
            op.overlapped.Internal = K.STATUS_PENDING
            self._ov_end(op, err, 0, 0, issuing=None if err else op)

        self._call(end)
        if err:
            raise WsaFail(C.WSA_IO_PENDING)
        return 0

    def _ov_update_context(self, ws: WSocket, optname: int, optval: Any, optlen: int) -> int:
        """setsockopt(SO_UPDATE_ACCEPT_CONTEXT / SO_UPDATE_CONNECT_CONTEXT): the socket leaves
        the default state (names, shutdown work); the accept one takes the listener's options."""
        kind = self._ov_no_context.get(ws.handle)
        if optname == K.SO_UPDATE_ACCEPT_CONTEXT:
            if optval is None:
                raise WsaFail(C.WSAEFAULT)
            raw = in_bytes(optval, None)
            if optlen < 8 or len(raw) < 8:
                raise WsaFail(C.WSAEFAULT)
            (handle,) = struct.unpack_from("<Q", raw)
            lst = self._get(handle)
            if kind == "accept":
                ws.opts = lst.opts.copy()
                self._call(self._apply_tcp_options, ws)
        if kind is None and not (ws.is_tcp and ws.phase is Phase.CONNECTED):
            raise WsaFail(C.WSAENOTCONN)  # ours: nothing to update on an unconnected socket
        self._ov_no_context.pop(ws.handle, None)
        return 0
