"""The Microsoft extension functions (issue 14, item 2) in the Simulator: AcceptEx,
GetAcceptExSockaddrs, ConnectEx, DisconnectEx through WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER),
and SO_UPDATE_ACCEPT_CONTEXT / SO_UPDATE_CONNECT_CONTEXT. Ported from Wine's sock.c
test_AcceptEx, test_connect, test_DisconnectEx, test_get_extension_func and test_accept_events
(run on real Windows; `todo_wine` checks are Windows' behaviour); the code is ours."""

from __future__ import annotations

import ctypes
import struct
import uuid

import pytest

from ustack.winsock import (
    ERROR_CONNECTION_REFUSED,
    ERROR_INSUFFICIENT_BUFFER,
    ERROR_INVALID_PARAMETER,
    ERROR_OPERATION_ABORTED,
    FD_ACCEPT,
    INVALID_SOCKET,
    SIO_GET_EXTENSION_FUNCTION_POINTER,
    SO_UPDATE_ACCEPT_CONTEXT,
    SO_UPDATE_CONNECT_CONTEXT,
    SOCKADDR_IN,
    SOL_SOCKET,
    STATUS_BUFFER_TOO_SMALL,
    STATUS_PENDING,
    STATUS_SUCCESS,
    WSA_IO_PENDING,
    WSA_WAIT_EVENT_0,
    WSA_WAIT_TIMEOUT,
    WSAEFAULT,
    WSAEINVAL,
    WSAEISCONN,
    WSAENOTCONN,
    WSAENOTSOCK,
    WSAESHUTDOWN,
    WSAID_ACCEPTEX,
    WSAID_CONNECTEX,
    WSAID_DISCONNECTEX,
    WSAID_GETACCEPTEXSOCKADDRS,
    WSANETWORKEVENTS,
    WSAOVERLAPPED,
    Ref,
)

from .wsutil import (
    Net,
    bind,
    fail,
    name_of,
    peer_of,
    recv_some,
    sa,
    send_all,
    set_nonblocking,
    tcp,
    tcp_socketpair,
    udp,
)

LOOP = "127.0.0.1"
ADDR = 16 + 16  # sizeof(struct sockaddr_in) + 16, what sock.c passes


def _fn(ws, s, guid):
    out, n = Ref(), ctypes.c_ulong(0xDEAD)
    assert ws.WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, guid.bytes_le, 16, out, 8, n) == 0
    assert n.value == 8 and callable(out.value)
    return out.value


def _listener(ws):
    lst = tcp(ws)
    bind(ws, lst, LOOP, 0)
    assert ws.listen(lst, 5) == 0
    return lst, name_of(ws, lst)


def _ov(ws):
    return WSAOVERLAPPED(ws.WSACreateEvent())


def _wait(ws, ov, ms=1000):
    return ws.WSAWaitForMultipleEvents(1, [ov.hEvent], False, ms, False)


def _overlapped_result(ws, s, ov):
    n = ctypes.c_ulong(0xDEAD)
    ok = ws.GetOverlappedResult(s, ov, n, False)
    return ok, n.value


def test_item_104_get_extension_func(net: Net) -> None:
    """sock.c test_get_extension_func / test_connect: each GUID gives its function and 8 bytes
    returned, on TCP and UDP sockets; an unknown GUID is WSAEINVAL; a NULL
    lpcbBytesReturned is WSAEFAULT."""
    ws = net.ws
    for s in (tcp(ws), udp(ws)):
        for guid in (WSAID_ACCEPTEX, WSAID_CONNECTEX, WSAID_DISCONNECTEX, WSAID_GETACCEPTEXSOCKADDRS):
            _fn(ws, s, guid)
        fail(ws, ws.WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, uuid.uuid4().bytes_le, 16, Ref(),
                             8, ctypes.c_ulong()), WSAEINVAL)
        fail(ws, ws.WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, WSAID_ACCEPTEX.bytes_le, 16, Ref(),
                             8, None), WSAEFAULT)


def test_item_105_acceptex_argument_checks(net: Net) -> None:
    """sock.c test_AcceptEx: each bad argument fails at once with its code, and Internal is
    STATUS_PENDING even then."""
    ws = net.ws
    lst, _name = _listener(ws)
    idle = tcp(ws)  # bound, not listening
    bind(ws, idle, LOOP, 0)
    acc = tcp(ws)
    accept_ex = _fn(ws, lst, WSAID_ACCEPTEX)
    buf = bytearray(1024)
    ov = _ov(ws)

    def check(result_args, code):
        ov.Internal = 0xDEADBEEF
        assert accept_ex(*result_args) is False
        assert ws.WSAGetLastError() == code
        assert ov.Internal == STATUS_PENDING

    n = ctypes.c_ulong()
    check((INVALID_SOCKET, acc, buf, 0, ADDR, ADDR, n, ov), WSAENOTSOCK)
    check((idle, acc, buf, 0, ADDR, ADDR, n, ov), WSAEINVAL)
    check((lst, INVALID_SOCKET, buf, 0, ADDR, ADDR, n, ov), WSAENOTSOCK)
    check((lst, acc, None, 0, ADDR, ADDR, n, ov), WSAEFAULT)
    check((lst, udp(ws), buf, 0, 0, ADDR, n, ov), WSAEINVAL)
    bound = tcp(ws)
    bind(ws, bound, LOOP, 0)
    check((lst, bound, buf, 0, 0, ADDR, n, ov), WSAEINVAL)
    c1, c2 = tcp_socketpair(ws)
    check((lst, c1, buf, 0, 0, ADDR, n, ov), WSAEINVAL)
    check((lst, c2, buf, 0, 0, ADDR, n, ov), WSAEINVAL)
    check((lst, acc, buf, 0, ADDR, 0, n, ov), WSAEFAULT)
    assert accept_ex(lst, acc, buf, 0, ADDR, ADDR, n, None) is False
    assert ws.WSAGetLastError() == ERROR_INVALID_PARAMETER
    assert accept_ex(lst, acc, buf, 0, 0, 0, n, None) is False  # NULL overlapped checked first
    assert ws.WSAGetLastError() == ERROR_INVALID_PARAMETER


def test_item_105_acceptex_completes_and_update_context(net: Net) -> None:
    """sock.c test_AcceptEx: a pending AcceptEx completes when a client connects (0 bytes);
    a second AcceptEx into the same socket, connect() and ConnectEx on it are WSAEINVAL while
    it is pending; GetAcceptExSockaddrs decodes both names; getsockname on the accepted socket
    needs SO_UPDATE_ACCEPT_CONTEXT (getpeername and shutdown too: Microsoft, AcceptEx remarks)."""
    ws = net.ws
    lst, name = _listener(ws)
    acc = tcp(ws)
    accept_ex = _fn(ws, lst, WSAID_ACCEPTEX)
    get_addrs = _fn(ws, lst, WSAID_GETACCEPTEXSOCKADDRS)
    connect_ex = _fn(ws, lst, WSAID_CONNECTEX)
    buf, n, ov = bytearray(256), ctypes.c_ulong(), _ov(ws)
    assert accept_ex(lst, acc, buf, 0, ADDR, ADDR, n, ov) is False
    assert ws.WSAGetLastError() == WSA_IO_PENDING and ov.Internal == STATUS_PENDING
    assert accept_ex(lst, acc, buf, 0, ADDR, ADDR, n, _ov(ws)) is False
    assert ws.WSAGetLastError() == WSAEINVAL
    fail(ws, ws.connect(acc, sa(*name), 16), WSAEINVAL)
    assert connect_ex(acc, sa(*name), 16, None, 0, n, _ov(ws)) is False
    assert ws.WSAGetLastError() == WSAEINVAL
    client = tcp(ws)
    assert ws.connect(client, sa(*name), 16) == 0
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0 and ov.Internal == STATUS_SUCCESS
    assert _overlapped_result(ws, lst, ov) == (True, 0)
    local, remote = SOCKADDR_IN(), SOCKADDR_IN()
    llen, rlen = ctypes.c_int(0), ctypes.c_int(0)
    get_addrs(buf, 0, ADDR, ADDR, local, llen, remote, rlen)
    assert (local.addr, local.port) == name and llen.value == 16
    assert (remote.addr, remote.port) == name_of(ws, client) and rlen.value == 16
    out, ol = SOCKADDR_IN(), ctypes.c_int(16)
    fail(ws, ws.getsockname(acc, out, ol), WSAEINVAL)
    fail(ws, ws.getpeername(acc, out, ol), WSAENOTCONN)
    fail(ws, ws.shutdown(acc, 1), WSAENOTCONN)
    handle = struct.pack("<Q", lst)
    assert ws.setsockopt(acc, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, handle, 8) == 0
    assert name_of(ws, acc) == name and peer_of(ws, acc) == name_of(ws, client)
    send_all(ws, client, b"over")
    assert recv_some(ws, acc) == b"over"
    assert ws.shutdown(acc, 1) == 0


def test_item_105_acceptex_with_receive_waits_for_data(net: Net) -> None:
    """sock.c test_AcceptEx "short reads": with a receive length the AcceptEx does not complete
    on the connection, only when the first data arrives; the bytes count in the result and the
    buffer holds the data, then the local and remote names."""
    ws = net.ws
    lst, name = _listener(ws)
    acc, client = tcp(ws), tcp(ws)
    accept_ex = _fn(ws, lst, WSAID_ACCEPTEX)
    get_addrs = _fn(ws, lst, WSAID_GETACCEPTEXSOCKADDRS)
    buf, n, ov = bytearray(2 + 2 * ADDR), ctypes.c_ulong(), _ov(ws)
    assert accept_ex(lst, acc, buf, 2, ADDR, ADDR, n, ov) is False
    assert ws.connect(client, sa(*name), 16) == 0
    assert _wait(ws, ov, 100) == WSA_WAIT_TIMEOUT and ov.Internal == STATUS_PENDING
    send_all(ws, client, b"Z")
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0 and ov.Internal == STATUS_SUCCESS
    assert _overlapped_result(ws, lst, ov) == (True, 1) and buf[0:1] == b"Z"
    local, remote = SOCKADDR_IN(), SOCKADDR_IN()
    get_addrs(buf, 2, ADDR, ADDR, local, ctypes.c_int(), remote, ctypes.c_int())
    assert (local.addr, local.port) == name
    assert (remote.addr, remote.port) == name_of(ws, client)


def test_item_105_acceptex_client_closes_before_data(net: Net) -> None:
    """sock.c test_AcceptEx "disconnect during receive": the client closing before sending
    completes the AcceptEx successfully with 0 bytes."""
    ws = net.ws
    lst, name = _listener(ws)
    acc, client = tcp(ws), tcp(ws)
    accept_ex = _fn(ws, lst, WSAID_ACCEPTEX)
    buf, n, ov = bytearray(1024), ctypes.c_ulong(), _ov(ws)
    assert accept_ex(lst, acc, buf, 1024 - 2 * ADDR, ADDR, ADDR, n, ov) is False
    assert ws.connect(client, sa(*name), 16) == 0
    assert ws.closesocket(client) == 0
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0
    assert _overlapped_result(ws, lst, ov) == (True, 0)


@pytest.mark.parametrize("local_len", [3, 16 + 4])
def test_item_105_acceptex_short_local_space(net: Net, local_len: int) -> None:
    """sock.c test_AcceptEx: a local address space below sizeof(sockaddr_in) + 16 pends, then
    fails with STATUS_BUFFER_TOO_SMALL / ERROR_INSUFFICIENT_BUFFER when a client connects; the
    connection is not taken (accept() gets it)."""
    ws = net.ws
    lst, name = _listener(ws)
    acc, client = tcp(ws), tcp(ws)
    accept_ex = _fn(ws, lst, WSAID_ACCEPTEX)
    buf, n, ov = bytearray(256), ctypes.c_ulong(), _ov(ws)
    assert accept_ex(lst, acc, buf, 0, local_len, ADDR, n, ov) is False
    assert ws.WSAGetLastError() == WSA_IO_PENDING
    assert ws.connect(client, sa(*name), 16) == 0
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0
    assert _overlapped_result(ws, lst, ov) == (False, 0)
    assert ws.GetLastError() == ERROR_INSUFFICIENT_BUFFER and ov.Internal == STATUS_BUFFER_TOO_SMALL
    got = ws.accept(lst, None, None)
    assert got != INVALID_SOCKET and peer_of(ws, got) == name_of(ws, client)


def test_item_105_acceptex_without_local_space(net: Net) -> None:
    """sock.c test_AcceptEx: a local address length of 0 is accepted; GetAcceptExSockaddrs then
    leaves the local name and its length alone and decodes the remote one."""
    ws = net.ws
    lst, name = _listener(ws)
    acc, client = tcp(ws), tcp(ws)
    accept_ex = _fn(ws, lst, WSAID_ACCEPTEX)
    get_addrs = _fn(ws, lst, WSAID_GETACCEPTEXSOCKADDRS)
    buf, n, ov = bytearray(ADDR), ctypes.c_ulong(), _ov(ws)
    assert accept_ex(lst, acc, buf, 0, 0, ADDR, n, ov) is False
    assert ws.connect(client, sa(*name), 16) == 0
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0 and _overlapped_result(ws, lst, ov) == (True, 0)
    local, remote = SOCKADDR_IN.make("1.2.3.4", 5), SOCKADDR_IN()
    llen, rlen = ctypes.c_int(0xBEEF), ctypes.c_int(0)
    get_addrs(buf, 0, 0, ADDR, local, llen, remote, rlen)
    assert (local.addr, local.port, llen.value) == ("1.2.3.4", 5, 0xBEEF)
    assert (remote.addr, remote.port, rlen.value) == (*name_of(ws, client), 16)


def test_item_105_acceptex_cancel_and_close(net: Net) -> None:
    """sock.c test_AcceptEx: CancelIo on the accept socket does not cancel an AcceptEx (it was
    issued on the listener); closing the accept socket or the listener ends it with
    ERROR_OPERATION_ABORTED."""
    ws = net.ws
    lst, _name = _listener(ws)
    accept_ex = _fn(ws, lst, WSAID_ACCEPTEX)
    buf, n = bytearray(256), ctypes.c_ulong()
    acc, ov = tcp(ws), _ov(ws)
    assert accept_ex(lst, acc, buf, 0, ADDR, ADDR, n, ov) is False
    assert ws.CancelIo(acc) is True
    assert _wait(ws, ov, 100) == WSA_WAIT_TIMEOUT
    assert ws.closesocket(acc) == 0
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0
    assert _overlapped_result(ws, lst, ov) == (False, 0) and ws.GetLastError() == ERROR_OPERATION_ABORTED
    acc, ov = tcp(ws), _ov(ws)
    assert accept_ex(lst, acc, buf, 0, ADDR, ADDR, n, ov) is False
    assert ws.closesocket(lst) == 0
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0
    assert ov.Internal != STATUS_PENDING and ws.GetOverlappedResult(acc, ov, n, False) is False
    assert ws.GetLastError() == ERROR_OPERATION_ABORTED


def test_item_105_acceptex_takes_connection_without_fd_accept(net: Net) -> None:
    """sock.c test_accept_events: a connection a pending AcceptEx takes raises no FD_ACCEPT."""
    ws = net.ws
    lst, name = _listener(ws)
    ev = ws.WSACreateEvent()
    assert ws.WSAEventSelect(lst, ev, FD_ACCEPT) == 0
    accept_ex = _fn(ws, lst, WSAID_ACCEPTEX)
    acc, ov = tcp(ws), _ov(ws)
    assert accept_ex(lst, acc, bytearray(256), 0, ADDR, ADDR, ctypes.c_ulong(), ov) is False
    client = tcp(ws)
    set_nonblocking(ws, client)
    ws.connect(client, sa(*name), 16)
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0 and ov.Internal == STATUS_SUCCESS
    ne = WSANETWORKEVENTS()
    assert ws.WSAEnumNetworkEvents(lst, None, ne) == 0 and ne.lNetworkEvents == 0


def test_item_106_connectex(net: Net) -> None:
    """sock.c test_connect: ConnectEx on a listener is WSAEINVAL (Internal STATUS_PENDING), on an
    invalid handle WSAENOTSOCK, on an unbound socket WSAEINVAL, with a NULL overlapped
    ERROR_INVALID_PARAMETER; it pends and completes, counting the bytes of its send buffer;
    afterwards connect() is WSAEINVAL and ConnectEx WSAEISCONN."""
    ws = net.ws
    lst, name = _listener(ws)
    conn = tcp(ws)
    connect_ex = _fn(ws, conn, WSAID_CONNECTEX)
    n, ov = ctypes.c_ulong(), _ov(ws)
    ov.Internal = 0xDEADBEEF
    assert connect_ex(lst, sa(*name), 16, None, 0, n, ov) is False
    assert ws.WSAGetLastError() == WSAEINVAL and ov.Internal == STATUS_PENDING
    assert connect_ex(INVALID_SOCKET, sa(*name), 16, None, 0, n, ov) is False
    assert ws.WSAGetLastError() == WSAENOTSOCK
    assert connect_ex(conn, sa(*name), 16, None, 0, n, ov) is False
    assert ws.WSAGetLastError() == WSAEINVAL
    bind(ws, conn, LOOP, 0)
    assert connect_ex(conn, sa(*name), 16, None, 0, n, None) is False
    assert ws.WSAGetLastError() == ERROR_INVALID_PARAMETER
    assert connect_ex(conn, sa(*name), 16, b"123", 3, n, ov) is False
    assert ws.WSAGetLastError() == WSA_IO_PENDING
    assert _wait(ws, ov) == WSA_WAIT_EVENT_0
    assert _overlapped_result(ws, conn, ov) == (True, 3)
    acc = ws.accept(lst, None, None)
    assert recv_some(ws, acc) == b"123"
    fail(ws, ws.connect(conn, sa(*name), 16), WSAEINVAL)
    assert connect_ex(conn, sa(*name), 16, None, 0, n, _ov(ws)) is False
    assert ws.WSAGetLastError() == WSAEISCONN
    fail(ws, ws.connect(acc, sa(*name), 16), WSAEISCONN)
    assert ws.setsockopt(conn, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, None, 0) == 0
    assert peer_of(ws, conn) == name
    fail(ws, ws.connect(conn, sa(*name), 16), WSAEISCONN)


def test_item_106_connectex_refused_and_port(net: Net) -> None:
    """sock.c test_connect: a refused ConnectEx completes with ERROR_CONNECTION_REFUSED
    (GetOverlappedResult); test_connect_completion_port: its completion is posted to the
    socket's port."""
    ws = net.ws
    port = ws.CreateIoCompletionPort(-1, None, 0, 0)
    conn = tcp(ws)
    bind(ws, conn, LOOP, 0)
    ws.CreateIoCompletionPort(conn, port, 31, 0)
    connect_ex = _fn(ws, conn, WSAID_CONNECTEX)
    ov = _ov(ws)
    assert connect_ex(conn, sa(LOOP, 1), 16, None, 0, ctypes.c_ulong(), ov) is False
    assert ws.WSAGetLastError() == WSA_IO_PENDING
    assert _wait(ws, ov, 15_000) == WSA_WAIT_EVENT_0
    assert _overlapped_result(ws, conn, ov) == (False, 0)
    assert ws.GetLastError() == ERROR_CONNECTION_REFUSED
    bytes_, key, got = ctypes.c_ulong(), ctypes.c_size_t(), Ref()
    assert ws.GetQueuedCompletionStatus(port, bytes_, key, got, 0) is False
    assert ws.GetLastError() == ERROR_CONNECTION_REFUSED and key.value == 31 and got.value is ov


def test_item_107_disconnectex(net: Net) -> None:
    """sock.c test_DisconnectEx: not connected -> WSAENOTCONN; on a connection it completes (at
    once here), the peer reads end of stream, send is then WSAESHUTDOWN and connect WSAEISCONN."""
    ws = net.ws
    disconnect_ex = _fn(ws, tcp(ws), WSAID_DISCONNECTEX)
    ov = _ov(ws)
    assert disconnect_ex(tcp(ws), ov, 0, 0) is False and ws.WSAGetLastError() == WSAENOTCONN
    c, a = tcp_socketpair(ws)
    assert disconnect_ex(c, ov, 0, 0) is True
    assert ov.hEvent.signaled and ov.Internal == STATUS_SUCCESS
    buf = bytearray(4)
    assert ws.recv(a, buf, 4, 0) == 0
    fail(ws, ws.send(c, b"x", 1, 0), WSAESHUTDOWN)
    fail(ws, ws.connect(c, sa(*name_of(ws, a)), 16), WSAEISCONN)
    c2, _a2 = tcp_socketpair(ws)
    assert disconnect_ex(c2, None, 0, 0) is True  # NULL overlapped: synchronous
