"""I/O completion ports (issue 14, item 2) in the Simulator: CreateIoCompletionPort,
GetQueuedCompletionStatus(Ex), PostQueuedCompletionStatus, SetFileCompletionNotificationModes,
CloseHandle, and how overlapped socket calls post to a port. Each test names the Wine sock.c
function (run on real Windows) or the Microsoft page it checks; the code is ours."""

from __future__ import annotations

import ctypes

from ustack.winsock import (
    ERROR_ABANDONED_WAIT_0,
    ERROR_INVALID_HANDLE,
    ERROR_INVALID_PARAMETER,
    ERROR_NETNAME_DELETED,
    ERROR_OPERATION_ABORTED,
    FILE_SKIP_COMPLETION_PORT_ON_SUCCESS,
    INVALID_HANDLE_VALUE,
    LINGER,
    OVERLAPPED_ENTRY,
    SO_LINGER,
    SOL_SOCKET,
    STATUS_CANCELLED,
    STATUS_SUCCESS,
    WAIT_TIMEOUT,
    WSA_IO_PENDING,
    WSABUF,
    WSAECONNRESET,
    WSAEINVAL,
    WSAOVERLAPPED,
    Ref,
)

from .wsutil import Net, fail, send_all, tcp_socketpair


def _port(ws):
    port = ws.CreateIoCompletionPort(INVALID_HANDLE_VALUE, None, 0, 0)
    assert port is not None
    return port


def _gqcs(ws, port, ms=0):
    n, key, ov = ctypes.c_ulong(0xDEAD), ctypes.c_size_t(0xBEEF), Ref("untouched")
    ok = ws.GetQueuedCompletionStatus(port, n, key, ov, ms)
    return ok, n.value, key.value, ov.value


def _recv(ws, s, n=16):
    buf, ov = bytearray(n), WSAOVERLAPPED()
    r = ws.WSARecv(s, [WSABUF(n, buf)], 1, ctypes.c_ulong(), ctypes.c_ulong(0), ov, None)
    return r, ov, buf


def test_item_103_timeout_and_posted_packets(net: Net) -> None:
    """sock.c test_completion_port: an empty port times out with WAIT_TIMEOUT, *lpOverlapped
    set to NULL and the bytes and key untouched; PostQueuedCompletionStatus packets come back
    in order, as posted."""
    ws = net.ws
    port = _port(ws)
    assert _gqcs(ws, port) == (False, 0xDEAD, 0xBEEF, None)
    assert ws.GetLastError() == WAIT_TIMEOUT
    t0 = net.me.now()
    assert _gqcs(ws, port, 250)[0] is False and net.me.now() - t0 >= 0.25
    ov = WSAOVERLAPPED()
    assert ws.PostQueuedCompletionStatus(port, 7, 42, ov) is True
    assert ws.PostQueuedCompletionStatus(port, 0, 43, None) is True
    assert _gqcs(ws, port) == (True, 7, 42, ov)
    assert _gqcs(ws, port) == (True, 0, 43, None)


def test_item_103_socket_operations_post_to_the_port(net: Net) -> None:
    """sock.c test_completion_port: a pending WSARecv posts (bytes, key, overlapped) when it
    completes; one that completes at once returns 0 and still posts a packet."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    port = _port(ws)
    assert ws.CreateIoCompletionPort(c, port, 125, 0) is port
    r, ov, buf = _recv(ws, c)
    fail(ws, r, WSA_IO_PENDING)
    assert _gqcs(ws, port)[0] is False
    send_all(ws, a, b"ping")
    assert _gqcs(ws, port, 1000) == (True, 4, 125, ov) and bytes(buf[:4]) == b"ping"
    send_all(ws, a, b"now")
    net.sim.run_for(0.05)
    r, ov2, _ = _recv(ws, c)
    assert r == 0
    assert _gqcs(ws, port) == (True, 3, 125, ov2)


def test_item_103_skip_completion_port_on_success(net: Net) -> None:
    """Microsoft (SetFileCompletionNotificationModes): with FILE_SKIP_COMPLETION_PORT_ON_SUCCESS
    a call that completes at once posts nothing; a pending one still does."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    port = _port(ws)
    ws.CreateIoCompletionPort(c, port, 1, 0)
    assert ws.SetFileCompletionNotificationModes(c, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS) is True
    send_all(ws, a, b"x")
    net.sim.run_for(0.05)
    assert _recv(ws, c)[0] == 0
    assert _gqcs(ws, port)[0] is False
    r, ov, _ = _recv(ws, c)
    fail(ws, r, WSA_IO_PENDING)
    send_all(ws, a, b"y")
    assert _gqcs(ws, port, 1000) == (True, 1, 1, ov)


def test_item_103_association_rules(net: Net) -> None:
    """Microsoft (CreateIoCompletionPort): a socket belongs to one port (a second association is
    ERROR_INVALID_PARAMETER); a bad handle is ERROR_INVALID_HANDLE; a completion routine on a
    socket bound to a port is WSAEINVAL (sock.c test_WSARecv)."""
    ws = net.ws
    c, _a = tcp_socketpair(ws)
    port, other = _port(ws), _port(ws)
    assert ws.CreateIoCompletionPort(c, port, 1, 0) is port
    assert ws.CreateIoCompletionPort(c, other, 2, 0) is None
    assert ws.GetLastError() == ERROR_INVALID_PARAMETER
    assert ws.CreateIoCompletionPort(0x7FFF0, port, 3, 0) is None
    assert ws.GetLastError() == ERROR_INVALID_HANDLE
    r = ws.WSARecv(c, [WSABUF(4, bytearray(4))], 1, ctypes.c_ulong(), ctypes.c_ulong(0),
                   WSAOVERLAPPED(), lambda *a: None)
    fail(ws, r, WSAEINVAL)


def test_item_103_close_posts_aborted(net: Net) -> None:
    """sock.c test_completion_port: closing a socket with a pending receive posts a packet that
    GetQueuedCompletionStatus returns as FALSE / ERROR_OPERATION_ABORTED with its key and
    overlapped."""
    ws = net.ws
    c, _a = tcp_socketpair(ws)
    port = _port(ws)
    ws.CreateIoCompletionPort(c, port, 9, 0)
    r, ov, _ = _recv(ws, c)
    fail(ws, r, WSA_IO_PENDING)
    assert ws.closesocket(c) == 0
    assert _gqcs(ws, port) == (False, 0, 9, ov)
    assert ws.GetLastError() == ERROR_OPERATION_ABORTED and ov.Internal == STATUS_CANCELLED


def test_item_103_reset_fails_send_without_a_packet(net: Net) -> None:
    """sock.c test_completion_port: on a reset connection an overlapped WSASend fails at once
    with WSAECONNRESET and posts nothing; a pending receive completes with
    ERROR_NETNAME_DELETED."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    port = _port(ws)
    ws.CreateIoCompletionPort(c, port, 5, 0)
    r, ov, _ = _recv(ws, c)
    fail(ws, r, WSA_IO_PENDING)
    assert ws.setsockopt(a, SOL_SOCKET, SO_LINGER, LINGER(1, 0), ctypes.sizeof(LINGER)) == 0
    assert ws.closesocket(a) == 0
    assert _gqcs(ws, port, 1000) == (False, 0, 5, ov)
    assert ws.GetLastError() == ERROR_NETNAME_DELETED
    sov = WSAOVERLAPPED()
    fail(ws, ws.WSASend(c, [WSABUF(3, b"abc")], 1, ctypes.c_ulong(), 0, sov, None), WSAECONNRESET)
    assert _gqcs(ws, port)[0] is False and ws.GetLastError() == WAIT_TIMEOUT


def test_item_103_get_queued_completion_status_ex(net: Net) -> None:
    """Microsoft (GetQueuedCompletionStatusEx): several packets in one call, a failed operation
    included as an entry whose Internal holds its status."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    port = _port(ws)
    ws.CreateIoCompletionPort(c, port, 77, 0)
    _, ov1, _ = _recv(ws, c)
    _, ov2, _ = _recv(ws, c)
    assert ws.CancelIoEx(c, ov2) is True
    send_all(ws, a, b"data")
    net.sim.run_for(0.05)
    entries = [OVERLAPPED_ENTRY() for _ in range(4)]
    removed = ctypes.c_ulong(0)
    assert ws.GetQueuedCompletionStatusEx(port, entries, 4, removed, 0, False) is True
    assert removed.value == 2
    got = {(e.lpOverlapped, e.Internal, e.dwNumberOfBytesTransferred, e.lpCompletionKey)
           for e in entries[:2]}
    assert got == {(ov2, STATUS_CANCELLED, 0, 77), (ov1, STATUS_SUCCESS, 4, 77)}
    assert ws.GetQueuedCompletionStatusEx(port, entries, 4, removed, 0, False) is False
    assert removed.value == 0 and ws.GetLastError() == WAIT_TIMEOUT


def test_item_103_waiting_thread_wakes_on_packet_and_on_close(net: Net) -> None:
    """A thread blocked in GetQueuedCompletionStatus wakes when a packet is posted; closing the
    port wakes waiters with ERROR_ABANDONED_WAIT_0 (Microsoft, GetQueuedCompletionStatus)."""
    ws = net.ws
    port = _port(ws)

    def waiter():
        first = _gqcs(ws, port, 10_000)
        second = _gqcs(ws, port, 10_000)
        return first, second, ws.GetLastError()

    task = net.sim.spawn(waiter)
    ws.SleepEx(100, False)
    assert ws.PostQueuedCompletionStatus(port, 1, 2, None) is True
    ws.SleepEx(100, False)
    assert ws.CloseHandle(port) is True
    first, second, err = task.result(20)
    assert first == (True, 1, 2, None)
    assert second[0] is False and second[3] is None and err == ERROR_ABANDONED_WAIT_0
    assert ws.PostQueuedCompletionStatus(port, 0, 0, None) is False
    assert ws.GetLastError() == ERROR_INVALID_HANDLE


def test_item_103_overlapped_wsaioctl(net: Net) -> None:
    """sock.c test_unsupported_ioctls / test_fionbio: WSAIoctl with an overlapped: a supported
    code returns 0 and still posts a packet (0 bytes) and signals the event; an unsupported one
    returns WSA_IO_PENDING and completes with STATUS_NOT_SUPPORTED (ERROR_NOT_SUPPORTED from
    the port, WSAEOPNOTSUPP from WSAGetOverlappedResult); a NULL lpcbBytesReturned is WSAEFAULT."""
    from ustack.winsock import (
        ERROR_NOT_SUPPORTED,
        FIONBIO,
        STATUS_NOT_SUPPORTED,
        WSAEFAULT,
        WSAEOPNOTSUPP,
    )

    ws = net.ws
    c, _a = tcp_socketpair(ws)
    port = _port(ws)
    ws.CreateIoCompletionPort(c, port, 4, 0)
    on = ctypes.c_ulong(1)
    ov = WSAOVERLAPPED(ws.WSACreateEvent())
    n = ctypes.c_ulong(0xDEAD)
    assert ws.WSAIoctl(c, FIONBIO, on, 4, None, 0, n, ov, None) == 0
    assert ov.hEvent.signaled and ov.Internal == STATUS_SUCCESS
    assert _gqcs(ws, port) == (True, 0, 4, ov)
    bad = WSAOVERLAPPED(ws.WSACreateEvent())
    fail(ws, ws.WSAIoctl(c, 0xDEADBEEF, None, 0, None, 0, n, bad, None), WSA_IO_PENDING)
    assert bad.Internal == STATUS_NOT_SUPPORTED and bad.hEvent.signaled
    assert _gqcs(ws, port) == (False, 0, 4, bad) and ws.GetLastError() == ERROR_NOT_SUPPORTED
    got, flags = ctypes.c_ulong(), ctypes.c_ulong()
    assert ws.WSAGetOverlappedResult(c, bad, got, False, flags) is False
    assert ws.WSAGetLastError() == WSAEOPNOTSUPP
    fail(ws, ws.WSAIoctl(c, FIONBIO, on, 4, None, 0, None, WSAOVERLAPPED(), None), WSAEFAULT)


def test_item_103_gqcs_ex_alertable(net: Net) -> None:
    """Microsoft (GetQueuedCompletionStatusEx): an alertable wait runs the thread's completion
    routines and returns FALSE with WAIT_IO_COMPLETION and no entries; a non-alertable one
    leaves them queued and times out."""
    from ustack.winsock import WAIT_IO_COMPLETION

    ws = net.ws
    c, a = tcp_socketpair(ws)
    port = _port(ws)
    calls = []
    r = ws.WSARecv(c, [WSABUF(4, bytearray(4))], 1, ctypes.c_ulong(), ctypes.c_ulong(0), WSAOVERLAPPED(),
                   lambda *args: calls.append(args[1]))
    fail(ws, r, WSA_IO_PENDING)
    send_all(ws, a, b"ab")
    net.sim.run_for(0.05)
    entries, removed = [OVERLAPPED_ENTRY()], ctypes.c_ulong(9)
    assert ws.GetQueuedCompletionStatusEx(port, entries, 1, removed, 50, False) is False
    assert ws.GetLastError() == WAIT_TIMEOUT and calls == []
    assert ws.GetQueuedCompletionStatusEx(port, entries, 1, removed, 5000, True) is False
    assert ws.GetLastError() == WAIT_IO_COMPLETION and removed.value == 0 and calls == [2]
