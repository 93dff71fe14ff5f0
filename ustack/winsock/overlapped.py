"""Overlapped operations: WSABUF / WSAOVERLAPPED, one `Op` per call, how an operation ends
(`finish`), the NTSTATUS tables, completion ports and the per-thread APC queues that run
completion routines.

Everything here runs under the host lock except `ApcQueues.run`, which the waiting thread
calls without it (a completion routine may call Winsock). The rules follow what Wine's
dlls/ws2_32/tests/sock.c records on real Windows (docs/winsock-overlapped.md): an operation
that completes at once still signals its event, queues its completion routine and posts its
completion packet; a failed or cancelled one carries its NTSTATUS in `Internal`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import constants as C
from . import ioconstants as K
from .objects import WSAEVENT
from .wsocket import WSocket

# WSA code of a failed operation -> (NTSTATUS in Internal, the Win32 error GetQueuedCompletionStatus
# and GetOverlappedResult report). WSAGetOverlappedResult reports the WSA code itself.
_BY_WSA: dict[int, tuple[int, int]] = {
    0: (K.STATUS_SUCCESS, K.ERROR_SUCCESS),
    C.WSAECONNRESET: (K.STATUS_CONNECTION_RESET, K.ERROR_NETNAME_DELETED),
    C.WSAECONNABORTED: (K.STATUS_CONNECTION_ABORTED, K.ERROR_CONNECTION_ABORTED),
    C.WSAECONNREFUSED: (K.STATUS_CONNECTION_REFUSED, K.ERROR_CONNECTION_REFUSED),
    C.WSAETIMEDOUT: (K.STATUS_IO_TIMEOUT, K.ERROR_SEM_TIMEOUT),
    C.WSAEMSGSIZE: (K.STATUS_BUFFER_OVERFLOW, K.ERROR_MORE_DATA),
    K.WSA_OPERATION_ABORTED: (K.STATUS_CANCELLED, K.ERROR_OPERATION_ABORTED),
    C.WSAEOPNOTSUPP: (K.STATUS_NOT_SUPPORTED, K.ERROR_NOT_SUPPORTED),
    C.WSAENETUNREACH: (K.STATUS_NETWORK_UNREACHABLE, K.ERROR_NETWORK_UNREACHABLE),
    C.WSAEHOSTUNREACH: (K.STATUS_HOST_UNREACHABLE, K.ERROR_HOST_UNREACHABLE),
    C.WSAESHUTDOWN: (K.STATUS_PIPE_DISCONNECTED, K.ERROR_NO_DATA),
    C.WSAENOTCONN: (K.STATUS_INVALID_CONNECTION, K.ERROR_CONNECTION_INVALID),
    C.WSAEFAULT: (K.STATUS_BUFFER_TOO_SMALL, K.ERROR_INSUFFICIENT_BUFFER),
}
_WSA_BY_STATUS = {status: wsa for wsa, (status, _win32) in _BY_WSA.items()}
_WIN32_BY_STATUS = {status: win32 for _wsa, (status, win32) in _BY_WSA.items()}


def status_of(wsa: int) -> int:
    """The NTSTATUS an operation failing with WSA code `wsa` leaves in Internal."""
    return _BY_WSA.get(wsa, (K.STATUS_INVALID_PARAMETER, 0))[0]


def wsa_of(status: int) -> int:
    """WSAGetOverlappedResult's code for a finished operation's status (sock.c map_status)."""
    if status == K.STATUS_PENDING:
        return K.WSA_IO_INCOMPLETE
    return _WSA_BY_STATUS.get(status, C.WSAEINVAL)


def win32_of(status: int) -> int:
    """GetQueuedCompletionStatus' / GetOverlappedResult's last error for a status."""
    if status == K.STATUS_PENDING:
        return K.ERROR_IO_INCOMPLETE
    return _WIN32_BY_STATUS.get(status, K.ERROR_INVALID_PARAMETER)


class WSABUF:
    """One scatter/gather buffer: `len` bytes of `buf` (a bytearray, memoryview or ctypes array)."""

    __slots__ = ("len", "buf")

    def __init__(self, len: int, buf: Any) -> None:  # noqa: A002 - Windows name
        self.len = len
        self.buf = buf

    def __repr__(self) -> str:
        return f"<WSABUF len={self.len}>"


class WSAOVERLAPPED:
    """The caller's OVERLAPPED: `Internal` (NTSTATUS), `InternalHigh` (bytes transferred),
    `Offset`/`OffsetHigh` (unused by sockets), `hEvent` (a WSAEVENT or None). `flags` keeps
    the receive flags WSAGetOverlappedResult reports (Windows keeps them in the request)."""

    __slots__ = ("Internal", "InternalHigh", "Offset", "OffsetHigh", "hEvent", "flags")

    def __init__(self, hEvent: WSAEVENT | None = None) -> None:  # noqa: N803 - Windows name
        self.Internal = 0
        self.InternalHigh = 0
        self.Offset = 0
        self.OffsetHigh = 0
        self.hEvent = hEvent
        self.flags = 0

    def __repr__(self) -> str:
        return f"<WSAOVERLAPPED Internal={self.Internal:#x} InternalHigh={self.InternalHigh}>"


class Ref:
    """An out-pointer for values that are not numbers: GetQueuedCompletionStatus' overlapped,
    the function pointer SIO_GET_EXTENSION_FUNCTION_POINTER returns."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Ref({self.value!r})"


CompletionRoutine = Callable[[int, int, WSAOVERLAPPED, int], Any]


@dataclass(eq=False)
class Op:
    """One overlapped call in flight."""

    ws: WSocket
    kind: str  # "recv", "send", "accept", "connect", "disconnect"
    overlapped: WSAOVERLAPPED
    routine: CompletionRoutine | None
    thread: int  # the issuing thread: its alertable waits run the routine; CancelIo cancels
    buffers: list[WSABUF] = field(default_factory=list)
    data: bytes = b""  # what a send still has to queue
    from_: Any = None  # WSARecvFrom's name and length out-pointers
    fromlen: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    done: bool = False


@dataclass
class CompletionPort:
    """A completion port: a FIFO of packets (bytes, key, overlapped, status)."""

    name: str
    packets: deque[tuple[int, int, WSAOVERLAPPED | None, int]] = field(default_factory=deque)
    closed: bool = False

    def post(self, nbytes: int, key: int, ov: WSAOVERLAPPED | None, status: int) -> None:
        self.packets.append((nbytes, key, ov, status))


@dataclass
class Binding:
    """A socket's completion port association and notification modes."""

    port: CompletionPort
    key: int
    skip_on_success: bool = False


class ApcQueues:
    """Completion routines waiting for their thread's alertable wait (thread ident -> calls)."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[Callable[[], Any]]] = {}

    def queue(self, thread: int, call: Callable[[], Any]) -> None:
        self._queues.setdefault(thread, deque()).append(call)

    def pending(self, thread: int | None = None) -> bool:
        q = self._queues.get(threading.get_ident() if thread is None else thread)
        return bool(q)

    def take(self) -> list[Callable[[], Any]]:
        """The calling thread's queued routines, oldest first (lock held)."""
        q = self._queues.pop(threading.get_ident(), None)
        return list(q) if q else []


def scatter(buffers: list[WSABUF], data: bytes) -> None:
    """Copy data across the buffers in order (the caller checked they hold it)."""
    from .buffers import write_out

    at = 0
    for b in buffers:
        if at >= len(data):
            break
        n = min(b.len, len(data) - at)
        if n:
            write_out(b.buf, data[at:at + n])
        at += n


def capacity(buffers: list[WSABUF]) -> int:
    return sum(b.len for b in buffers)


def finish(op: Op, wsa: int, nbytes: int, apcs: ApcQueues, binding: Binding | None, *,
           flags: int = 0, at_once: bool = False) -> None:
    """End an operation: fill the overlapped, signal its event, queue its completion routine
    or its completion packet. `at_once`: it completed inside the call that issued it (a port
    with FILE_SKIP_COMPLETION_PORT_ON_SUCCESS gets no packet then)."""
    if op.done:
        return
    op.done = True
    ov = op.overlapped
    status = status_of(wsa)
    ov.Internal = status
    ov.InternalHigh = nbytes
    ov.flags = flags
    ev = ov.hEvent
    if isinstance(ev, WSAEVENT) and not ev.closed:
        ev.signaled = True
    if op.routine is not None:
        routine = op.routine
        apcs.queue(op.thread, lambda: routine(wsa, nbytes, ov, flags))
    elif binding is not None and not (at_once and wsa == 0 and binding.skip_on_success):
        binding.port.post(nbytes, binding.key, ov, status)
