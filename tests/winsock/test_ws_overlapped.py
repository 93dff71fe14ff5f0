"""Overlapped I/O (issue 14, item 1) in the Simulator: WSARecv/WSASend/WSARecvFrom/WSASendTo
with an event or a completion routine, alertable waits, WSAGetOverlappedResult, CancelIo(Ex),
WSASocket's WSA_FLAG_OVERLAPPED. Each test names the Wine sock.c function (run on real Windows)
or the Microsoft page whose behaviour it checks; the code is ours."""

from __future__ import annotations

import ctypes

from ustack.winsock import (
    AF_INET,
    ERROR_INVALID_HANDLE,
    ERROR_NETNAME_DELETED,
    ERROR_NOT_FOUND,
    FD_READ,
    IPPROTO_TCP,
    LINGER,
    MSG_PARTIAL,
    SO_LINGER,
    SO_SNDBUF,
    SOCK_STREAM,
    SOCKET_ERROR,
    SOL_SOCKET,
    STATUS_CANCELLED,
    STATUS_PENDING,
    STATUS_SUCCESS,
    WAIT_IO_COMPLETION,
    WSA_FLAG_OVERLAPPED,
    WSA_IO_INCOMPLETE,
    WSA_IO_PENDING,
    WSA_OPERATION_ABORTED,
    WSA_WAIT_EVENT_0,
    WSA_WAIT_IO_COMPLETION,
    WSA_WAIT_TIMEOUT,
    WSABUF,
    WSAECONNRESET,
    WSAEINVAL,
    WSAEMSGSIZE,
    WSAENOTCONN,
    WSAEWOULDBLOCK,
    WSANETWORKEVENTS,
    WSAOVERLAPPED,
)

from .wsutil import (
    PEER,
    Net,
    bind,
    fail,
    listener,
    name_of,
    recv_some,
    sa,
    send_all,
    setopt_int,
    tcp,
    tcp_socketpair,
    udp,
)


def _recv(ws, s, n=64, ev=None, routine=None, ov=None):
    """Issue an overlapped WSARecv; (result, overlapped, buffer, count, flags)."""
    buf = bytearray(n)
    ov = ov if ov is not None else WSAOVERLAPPED(ev)
    count, flags = ctypes.c_ulong(12345), ctypes.c_ulong(0)
    r = ws.WSARecv(s, [WSABUF(n, buf)], 1, count, flags, ov, routine)
    return r, ov, buf, count, flags


def _result(ws, s, ov, wait=False):
    n, flags = ctypes.c_ulong(0), ctypes.c_ulong(0)
    ok = ws.WSAGetOverlappedResult(s, ov, n, wait, flags)
    return ok, n.value, flags.value


def test_item_100_pending_recv_completes_with_event(net: Net) -> None:
    """sock.c test_WSARecv / test_overlapped: nothing queued -> SOCKET_ERROR + WSA_IO_PENDING,
    Internal STATUS_PENDING, WSAGetOverlappedResult(fWait FALSE) -> WSA_IO_INCOMPLETE; the data
    then signals the event and the result gives the bytes."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    ev = ws.WSACreateEvent()
    ev.signaled = True  # issuing resets it
    r, ov, buf, count, _ = _recv(ws, c, ev=ev)
    fail(ws, r, WSA_IO_PENDING)
    assert ov.Internal == STATUS_PENDING and not ev.signaled
    assert count.value == 12345  # untouched while pending
    ok, _, _ = _result(ws, c, ov)
    assert ok is False and ws.WSAGetLastError() == WSA_IO_INCOMPLETE
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 0, False) == WSA_WAIT_TIMEOUT
    send_all(ws, a, b"hello")
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 1000, False) == WSA_WAIT_EVENT_0
    assert _result(ws, c, ov) == (True, 5, 0)
    assert ov.Internal == STATUS_SUCCESS and ov.InternalHigh == 5 and bytes(buf[:5]) == b"hello"


def test_item_100_immediate_completion_still_signals(net: Net) -> None:
    """sock.c test_completion_port (and Microsoft's WSARecv page): data already queued ->
    0 at once, the count written, and the event still signalled."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    send_all(ws, a, b"ready")
    net.sim.run_for(0.01)
    ev = ws.WSACreateEvent()
    r, ov, buf, count, flags = _recv(ws, c, ev=ev)
    assert r == 0 and ws.WSAGetLastError() == 0
    assert count.value == 5 and flags.value == 0 and bytes(buf[:5]) == b"ready"
    assert ev.signaled and ov.Internal == STATUS_SUCCESS and ov.InternalHigh == 5


def test_item_101_completion_routine_runs_only_in_alertable_wait(net: Net) -> None:
    """Microsoft (WSARecv, SleepEx): the routine runs in the issuing thread's alertable wait
    (SleepEx -> WAIT_IO_COMPLETION, WSAWaitForMultipleEvents(TRUE) -> WSA_WAIT_IO_COMPLETION),
    never in a non-alertable one; an immediate completion still queues it."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    calls = []

    def routine(err, n, ov, flags):
        calls.append((err, n, ov, flags))

    r, ov, buf, _, _ = _recv(ws, c, routine=routine)
    fail(ws, r, WSA_IO_PENDING)
    send_all(ws, a, b"abc")
    assert ws.SleepEx(100, False) == 0
    assert calls == [] and ov.Internal == STATUS_SUCCESS  # done, routine not yet run
    assert ws.SleepEx(100, True) == WAIT_IO_COMPLETION
    assert calls == [(0, 3, ov, 0)] and bytes(buf[:3]) == b"abc"
    assert ws.SleepEx(10, True) == 0  # nothing more queued: the time runs out
    # immediate completion: 0 returned, the routine queued all the same
    send_all(ws, a, b"xy")
    net.sim.run_for(0.01)
    r, ov2, _, count, _ = _recv(ws, c, routine=routine)
    assert r == 0 and count.value == 2 and len(calls) == 1
    ev = ws.WSACreateEvent()
    assert ws.WSAWaitForMultipleEvents(1, [ev], False, 1000, True) == WSA_WAIT_IO_COMPLETION
    assert calls[1] == (0, 2, ov2, 0)


def test_item_101_routine_of_another_thread_is_not_run_here(net: Net) -> None:
    """Microsoft (QueueUserAPC / alertable waits): a completion routine is queued to the thread
    that issued the call; another thread's alertable wait does not run it."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    calls = []

    def issuer():
        r, _ov, _b, _c, _f = _recv(ws, c, routine=lambda *args: calls.append(args))
        assert r == SOCKET_ERROR
        return ws.SleepEx(5000, True)

    task = net.sim.spawn(issuer)
    net.sim.run_for(0.01)
    send_all(ws, a, b"q")
    assert ws.SleepEx(50, True) == 0  # this thread has nothing to run: its time runs out
    assert task.result(10) == WAIT_IO_COMPLETION and len(calls) == 1  # the issuer ran it


def test_item_100_get_overlapped_result_waits(net: Net) -> None:
    """WSAGetOverlappedResult with fWait TRUE blocks until the operation ends."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    r, ov, buf, _, _ = _recv(ws, c, ev=ws.WSACreateEvent())
    fail(ws, r, WSA_IO_PENDING)

    def later():
        ws.SleepEx(500, False)
        send_all(ws, a, b"late")

    net.sim.spawn(later)
    t0 = net.me.now()
    assert _result(ws, c, ov, wait=True) == (True, 4, 0)
    assert net.me.now() - t0 >= 0.5 and bytes(buf[:4]) == b"late"


def test_item_100_two_pending_receives_complete_in_order(net: Net) -> None:
    """sock.c test_simultaneous_async_recv: two pending receives take the data in issue order."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    r1, ov1, b1, _, _ = _recv(ws, c, 4)
    r2, ov2, b2, _, _ = _recv(ws, c, 4)
    assert r1 == r2 == SOCKET_ERROR
    send_all(ws, a, b"firstsecond")
    net.sim.run_for(0.05)
    assert _result(ws, c, ov1) == (True, 4, 0) and bytes(b1) == b"firs"
    assert _result(ws, c, ov2) == (True, 4, 0) and bytes(b2) == b"tsec"


def test_item_100_pending_recv_takes_data_before_fd_read(net: Net) -> None:
    """sock.c test_read_events: data a pending WSARecv took raises no FD_READ."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(c, ev, FD_READ) == 0
    r, ov, _, _, _ = _recv(ws, c)
    fail(ws, r, WSA_IO_PENDING)
    send_all(ws, a, b"data")
    net.sim.run_for(0.05)
    assert ov.InternalHigh == 4
    ne = WSANETWORKEVENTS()
    assert ws.WSAEnumNetworkEvents(c, None, ne) == 0 and ne.lNetworkEvents == 0
    send_all(ws, a, b"more")  # nothing pending now: this data is an FD_READ
    net.sim.run_for(0.05)
    assert ws.WSAEnumNetworkEvents(c, None, ne) == 0 and ne.lNetworkEvents == FD_READ


def test_item_102_cancel_io(net: Net) -> None:
    """CancelIo / CancelIoEx (Microsoft; sock.c test_completion_port): the operation ends
    with WSA_OPERATION_ABORTED and its event is signalled; CancelIoEx with nothing to cancel
    is ERROR_NOT_FOUND; CancelIoEx(ov) cancels only that operation."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    ev = ws.WSACreateEvent()
    r, ov, _, _, _ = _recv(ws, c, ev=ev)
    fail(ws, r, WSA_IO_PENDING)
    assert ws.CancelIo(c) is True
    assert ev.signaled and ov.Internal == STATUS_CANCELLED
    ok, n, _ = _result(ws, c, ov)
    assert ok is False and n == 0 and ws.WSAGetLastError() == WSA_OPERATION_ABORTED
    assert ws.CancelIoEx(c, None) is False and ws.WSAGetLastError() == ERROR_NOT_FOUND
    _, ov1, _, _, _ = _recv(ws, c)
    _, ov2, b2, _, _ = _recv(ws, c)
    assert ws.CancelIoEx(c, ov1) is True
    assert ov1.Internal == STATUS_CANCELLED and ov2.Internal == STATUS_PENDING
    send_all(ws, a, b"ok")
    net.sim.run_for(0.05)
    assert _result(ws, c, ov2) == (True, 2, 0) and bytes(b2[:2]) == b"ok"
    assert ws.CancelIo(0x7FFF0) is False and ws.WSAGetLastError() == ERROR_INVALID_HANDLE


def test_item_102_cancel_io_is_per_thread(net: Net) -> None:
    """Microsoft (CancelIo): only the calling thread's operations are cancelled; CancelIoEx
    cancels those of every thread."""
    ws = net.ws
    c, _a = tcp_socketpair(ws)
    ov = WSAOVERLAPPED()
    task = net.sim.spawn(lambda: _recv(ws, c, ov=ov)[0])
    assert task.result(1) == SOCKET_ERROR
    assert ws.CancelIo(c) is True and ov.Internal == STATUS_PENDING
    assert ws.CancelIoEx(c) is True and ov.Internal == STATUS_CANCELLED


def test_item_102_closesocket_aborts_pending(net: Net) -> None:
    """sock.c test_completion_port: closing a socket ends its pending operations as aborted."""
    ws = net.ws
    c, _a = tcp_socketpair(ws)
    ev = ws.WSACreateEvent()
    r, ov, _, _, _ = _recv(ws, c, ev=ev)
    fail(ws, r, WSA_IO_PENDING)
    assert ws.closesocket(c) == 0
    assert ev.signaled and ov.Internal == STATUS_CANCELLED


def test_item_100_reset_completes_pending_recv(net: Net) -> None:
    """sock.c test_tcp_reset: a reset completes a pending receive (WSAECONNRESET, and
    ERROR_NETNAME_DELETED from GetOverlappedResult)."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    r, ov, _, _, _ = _recv(ws, c, ev=ws.WSACreateEvent())
    fail(ws, r, WSA_IO_PENDING)
    assert ws.setsockopt(a, SOL_SOCKET, SO_LINGER, LINGER(1, 0), ctypes.sizeof(LINGER)) == 0
    assert ws.closesocket(a) == 0
    net.sim.run_for(0.05)
    ok, _, _ = _result(ws, c, ov)
    assert ok is False and ws.WSAGetLastError() == WSAECONNRESET
    n = ctypes.c_ulong(0)
    assert ws.GetOverlappedResult(c, ov, n, False) is False
    assert ws.WSAGetLastError() == ERROR_NETNAME_DELETED


def test_item_100_eof_completes_pending_recv_with_zero(net: Net) -> None:
    """A graceful close of the peer completes a pending receive with 0 bytes."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    r, ov, _, _, _ = _recv(ws, c)
    fail(ws, r, WSA_IO_PENDING)
    assert ws.shutdown(a, 1) == 0
    net.sim.run_for(0.05)
    assert _result(ws, c, ov) == (True, 0, 0)


def test_item_100_zero_length_recv_leaves_data(net: Net) -> None:
    """sock.c test_empty_recv: a zero-length receive pends, completes with 0 bytes when data
    arrives, and the data stays queued."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    ov = WSAOVERLAPPED()
    r = ws.WSARecv(c, [WSABUF(0, bytearray(0))], 1, ctypes.c_ulong(), ctypes.c_ulong(0), ov, None)
    fail(ws, r, WSA_IO_PENDING)
    send_all(ws, a, b"kept")
    net.sim.run_for(0.05)
    assert _result(ws, c, ov) == (True, 0, 0)
    buf = bytearray(8)
    assert ws.recv(c, buf, 8, 0) == 4 and bytes(buf[:4]) == b"kept"


def test_item_100_scatter_over_several_buffers(net: Net) -> None:
    """WSARecv fills its WSABUFs in order; WSASend gathers them."""
    ws = net.ws
    c, a = tcp_socketpair(ws)
    sent = ctypes.c_ulong(0)
    assert ws.WSASend(a, [WSABUF(3, b"abc"), WSABUF(4, b"defg")], 2, sent, 0, None, None) == 0
    assert sent.value == 7
    net.sim.run_for(0.05)
    b1, b2 = bytearray(2), bytearray(10)
    n, fl = ctypes.c_ulong(0), ctypes.c_ulong(0)
    assert ws.WSARecv(c, [WSABUF(2, b1), WSABUF(10, b2)], 2, n, fl, None, None) == 0
    assert n.value == 7 and bytes(b1) == b"ab" and bytes(b2[:5]) == b"cdefg"


def test_item_100_non_overlapped_calls(net: Net) -> None:
    """sock.c test_WSARecv: without an overlapped a nonblocking socket gives WSAEWOULDBLOCK,
    a receive with data returns 0 and sets the last error to 0; no buffers is WSAEINVAL;
    an unconnected TCP socket is WSAENOTCONN for the overlapped call."""
    ws = net.ws
    c, a = tcp_socketpair(ws, nonblocking=True)
    n, fl = ctypes.c_ulong(0), ctypes.c_ulong(0)
    fail(ws, ws.WSARecv(c, [WSABUF(8, bytearray(8))], 1, n, fl, None, None), WSAEWOULDBLOCK)
    fail(ws, ws.WSARecv(c, [], 0, n, fl, WSAOVERLAPPED(), None), WSAEINVAL)
    send_all(ws, a, b"12")
    net.sim.run_for(0.05)
    ws.WSASetLastError(12345)
    assert ws.WSARecv(c, [WSABUF(8, bytearray(8))], 1, n, fl, None, None) == 0
    assert n.value == 2 and ws.WSAGetLastError() == 0
    fresh = tcp(ws)
    fail(ws, _recv(ws, fresh)[0], WSAENOTCONN)


def test_item_100_pending_send_completes_when_buffer_drains(net: Net) -> None:
    """An overlapped send on a full send buffer pends (WSA_IO_PENDING) and completes, with all
    its bytes, once the peer reads and the buffer drains; the first one fits and completes at
    once."""
    ws, pws = net.ws, net.pws
    lst = listener(pws, 7000)
    c = tcp(ws)
    assert setopt_int(ws, c, SOL_SOCKET, SO_SNDBUF, 65536) == 0
    assert ws.connect(c, sa(PEER, 7000), 16) == 0
    srv = pws.accept(lst, None, None)
    big = b"x" * 300_000
    ov1, ov2 = WSAOVERLAPPED(ws.WSACreateEvent()), WSAOVERLAPPED(ws.WSACreateEvent())
    n1, n2 = ctypes.c_ulong(0), ctypes.c_ulong(0)
    assert ws.WSASend(c, [WSABUF(len(big), big)], 1, n1, 0, ov1, None) == 0 and n1.value == len(big)
    fail(ws, ws.WSASend(c, [WSABUF(len(big), big)], 1, n2, 0, ov2, None), WSA_IO_PENDING)
    assert ov2.Internal == STATUS_PENDING

    def drain():
        got, buf = 0, bytearray(65536)
        while got < 2 * len(big):
            r = pws.recv(srv, buf, len(buf), 0)
            assert r > 0, pws.WSAGetLastError()
            got += r
        return got

    task = net.sim.spawn(drain)
    assert ws.WSAWaitForMultipleEvents(1, [ov2.hEvent], False, 60_000, False) == WSA_WAIT_EVENT_0
    assert _result(ws, c, ov2) == (True, len(big), 0)
    assert task.result(60) == 2 * len(big)


def test_item_100_udp_overlapped(net: Net) -> None:
    """WSARecvFrom pends until a datagram arrives and fills the sender's address; a datagram
    longer than the buffers completes with WSAEMSGSIZE and MSG_PARTIAL (Microsoft,
    WSARecvFrom); WSASendTo completes at once."""
    ws, pws = net.ws, net.pws
    u = udp(ws)
    bind(ws, u, "0.0.0.0", 5300)
    pu = udp(pws)
    bind(pws, pu, "0.0.0.0", 5301)
    buf = bytearray(4)
    frm, fromlen = (ctypes.c_char * 16)(), ctypes.c_int(16)
    ov = WSAOVERLAPPED(ws.WSACreateEvent())
    n, fl = ctypes.c_ulong(0), ctypes.c_ulong(0)
    fail(ws, ws.WSARecvFrom(u, [WSABUF(4, buf)], 1, n, fl, frm, fromlen, ov, None), WSA_IO_PENDING)
    sent, pov = ctypes.c_ulong(0), WSAOVERLAPPED(pws.WSACreateEvent())
    msg = b"toolong"
    assert pws.WSASendTo(pu, [WSABUF(len(msg), msg)], 1, sent, 0, sa("198.18.0.2", 5300), 16,
                         pov, None) == 0
    assert sent.value == len(msg) and pov.hEvent.signaled and pov.InternalHigh == len(msg)
    assert ws.WSAWaitForMultipleEvents(1, [ov.hEvent], False, 1000, False) == WSA_WAIT_EVENT_0
    ok, got, flags = _result(ws, u, ov)
    assert ok is False and ws.WSAGetLastError() == WSAEMSGSIZE
    assert got == 4 and flags == MSG_PARTIAL and bytes(buf) == b"tool"
    from ustack.winsock import SOCKADDR_IN

    src = SOCKADDR_IN.from_buffer_copy(bytes(frm))
    assert (src.addr, src.port) == (PEER, 5301) and fromlen.value == 16


def test_item_100_wsasocket_without_overlapped_flag_waits(net: Net) -> None:
    """WSASocket without WSA_FLAG_OVERLAPPED (Microsoft: no overlapped I/O on it): the call
    with an overlapped waits for its outcome and returns 0; with the flag it pends."""
    ws = net.ws
    lst = listener(ws, 7100, addr="127.0.0.1")
    plain = ws.WSASocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, None, 0, 0)
    over = ws.WSASocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, None, 0, WSA_FLAG_OVERLAPPED)
    for s in (plain, over):
        assert ws.connect(s, sa(*name_of(ws, lst)), 16) == 0
    a1, a2 = ws.accept(lst, None, None), ws.accept(lst, None, None)
    fail(ws, _recv(ws, over)[0], WSA_IO_PENDING)

    def later():
        ws.SleepEx(200, False)
        send_all(ws, a1, b"sync")
        send_all(ws, a2, b"async")

    net.sim.spawn(later)
    r, ov, buf, count, _ = _recv(ws, plain)
    assert r == 0 and count.value == 4 and bytes(buf[:4]) == b"sync" and ov.InternalHigh == 4


def test_item_100_sndbuf_zero_send_pends_until_acknowledged(net: Net) -> None:
    """sock.c test_send (docs/winsock-overlapped.md): with SO_SNDBUF 0 nothing is buffered on
    the application's behalf, so an overlapped send pends until the peer acknowledged its data;
    with the default buffer the same send completes at once."""
    ws, pws = net.ws, net.pws
    lst = listener(pws, 7200)
    c = tcp(ws)
    assert ws.connect(c, sa(PEER, 7200), 16) == 0
    srv = pws.accept(lst, None, None)
    data = b"z" * 3000
    ov, n = WSAOVERLAPPED(ws.WSACreateEvent()), ctypes.c_ulong(0)
    assert ws.WSASend(c, [WSABUF(len(data), data)], 1, n, 0, ov, None) == 0
    assert setopt_int(ws, c, SOL_SOCKET, SO_SNDBUF, 0) == 0
    ov = WSAOVERLAPPED(ws.WSACreateEvent())
    before = ws.stack_socket(c).send_progress[1]
    fail(ws, ws.WSASend(c, [WSABUF(len(data), data)], 1, n, 0, ov, None), WSA_IO_PENDING)
    acked, queued = ws.stack_socket(c).send_progress
    assert ov.Internal == STATUS_PENDING and acked < queued == before + len(data)
    assert ws.WSAWaitForMultipleEvents(1, [ov.hEvent], False, 5000, False) == WSA_WAIT_EVENT_0
    assert _result(ws, c, ov) == (True, len(data), 0)
    acked, queued = ws.stack_socket(c).send_progress
    assert acked == queued  # completed only once all of it was acknowledged
    got = b""
    while len(got) < 2 * len(data):
        got += recv_some(pws, srv, 65536)
    assert got == data * 2


def test_item_101_blocking_recv_runs_routines_while_it_waits(net: Net) -> None:
    """sock.c test_WSARecv / test_accept / test_select: a blocking call that really blocks waits
    alertably: a completion routine of the same thread runs during the wait, and the call then
    still returns its own result. A non-alertable wait (SleepEx FALSE) runs none."""
    ws = net.ws
    c1, a1 = tcp_socketpair(ws)
    c2, a2 = tcp_socketpair(ws)
    calls = []
    r, _ov, buf, _n, _f = _recv(ws, c1, routine=lambda *args: calls.append((args[1], net.me.now())))
    fail(ws, r, WSA_IO_PENDING)

    def peer():
        ws.SleepEx(100, False)
        send_all(ws, a1, b"one")
        ws.SleepEx(100, False)
        send_all(ws, a2, b"two")

    net.sim.spawn(peer)
    assert ws.SleepEx(50, False) == 0 and calls == []
    got = bytearray(8)
    assert ws.recv(c2, got, 8, 0) == 3 and bytes(got[:3]) == b"two"
    assert len(calls) == 1 and calls[0][0] == 3 and bytes(buf[:3]) == b"one"
    assert calls[0][1] < net.me.now()  # it ran during the recv's wait, before "two" came
