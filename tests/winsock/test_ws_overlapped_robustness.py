"""Bad input never raises out of the overlapped calls either: random handles, buffers, overlapped
objects, ports and lengths give a failure value and a known code, and the host keeps working."""

from __future__ import annotations

import ctypes
import random

from tests.invariants import assert_no_internal_error
from ustack.winsock import (
    INVALID_SOCKET,
    SOCKET_ERROR,
    WSABUF,
    WSAID_ACCEPTEX,
    WSAID_CONNECTEX,
    WSAID_DISCONNECTEX,
    WSAID_GETACCEPTEXSOCKADDRS,
    WSAOVERLAPPED,
    Ref,
)
from ustack.winsock.errors import WSA_NAMES

from .wsutil import PEER, listener, recv_from, sa, sendto, tcp, tcp_socketpair, udp

CODES = set(WSA_NAMES)


def test_item_100_random_overlapped_calls_fail_cleanly(net) -> None:
    """600 overlapped calls with random arguments (sockets of every kind, closed handles, bad
    buffers, wrong objects as overlapped or port): no exception escapes, every failure sets a
    known code (WSA or Win32), and the stack keeps working."""
    ws = net.ws
    rng = random.Random(77)
    c, a = tcp_socketpair(ws, nonblocking=True)
    lst = listener(ws, 7300, addr="127.0.0.1")
    handles = [INVALID_SOCKET, 0, 0x7777, c, a, lst, tcp(ws), udp(ws)]
    bufs = [None, [], [WSABUF(4, bytearray(4))], [WSABUF(8, b"readonly")], [WSABUF(-1, bytearray(2))],
            [WSABUF(100, bytearray(2))], "str", [b"not a WSABUF"], [WSABUF(0, bytearray(0))]]
    ovs = [None, WSAOVERLAPPED(), WSAOVERLAPPED(ws.WSACreateEvent()), "ov", 5]
    counts = [None, ctypes.c_ulong(), 7, "x"]
    names = [None, sa(PEER, 9), sa("127.0.0.1", 7300), b"\x02\x00", bytes(16), "name"]
    port = ws.CreateIoCompletionPort(-1, None, 0, 0)
    ports = [None, port, "port", 3]
    fns = {}
    for guid in (WSAID_ACCEPTEX, WSAID_CONNECTEX, WSAID_DISCONNECTEX, WSAID_GETACCEPTEXSOCKADDRS):
        out = Ref()
        assert ws.WSAIoctl(c, 0xC8000006, guid.bytes_le, 16, out, 8, ctypes.c_ulong()) == 0
        fns[guid] = out.value
    for _ in range(600):
        op = rng.randrange(12)
        h = rng.choice(handles)
        ws.WSASetLastError(0)
        routine = rng.choice([None, lambda *args: None])
        if op == 0:
            r = ws.WSARecv(h, rng.choice(bufs), rng.choice([-1, 0, 1, 3]), rng.choice(counts),
                           rng.choice([None, ctypes.c_ulong(0), ctypes.c_ulong(1), ctypes.c_ulong(2)]),
                           rng.choice(ovs), routine)
        elif op == 1:
            r = ws.WSASend(h, rng.choice(bufs), rng.choice([-1, 0, 1, 3]), rng.choice(counts),
                           rng.choice([0, 1, 2]), rng.choice(ovs), routine)
        elif op == 2:
            r = ws.WSARecvFrom(h, rng.choice(bufs), 1, rng.choice(counts), ctypes.c_ulong(0),
                               rng.choice([None, bytearray(16), b"ro" * 8]),
                               rng.choice([None, ctypes.c_int(16), ctypes.c_int(2)]), rng.choice(ovs),
                               routine)
        elif op == 3:
            r = ws.WSASendTo(h, rng.choice(bufs), 1, rng.choice(counts), 0, rng.choice(names),
                             rng.choice([-1, 0, 16]), rng.choice(ovs), routine)
        elif op == 4:
            r = ws.WSAGetOverlappedResult(h, rng.choice(ovs), rng.choice(counts), False,
                                          rng.choice([None, ctypes.c_ulong()]))
        elif op == 5:
            r = ws.CancelIoEx(h, rng.choice(ovs)) if rng.random() < 0.5 else ws.CancelIo(h)
        elif op == 6:
            r = ws.CreateIoCompletionPort(h, rng.choice(ports), rng.randrange(5), 0)
        elif op == 7:
            r = ws.GetQueuedCompletionStatus(rng.choice(ports), rng.choice(counts),
                                             rng.choice([None, ctypes.c_size_t()]),
                                             rng.choice([None, Ref()]), 0)
        elif op == 8:
            r = fns[WSAID_ACCEPTEX](h, rng.choice(handles), rng.choice([None, bytearray(64), b"ro" * 40]),
                                    rng.choice([0, 4]), rng.choice([0, 3, 32]), rng.choice([0, 16, 32]),
                                    rng.choice(counts), rng.choice(ovs))
        elif op == 9:
            r = fns[WSAID_CONNECTEX](h, rng.choice(names), rng.choice([-1, 0, 16]),
                                     rng.choice([None, b"hi", "str"]), rng.choice([0, 2, 99]),
                                     rng.choice(counts), rng.choice(ovs))
        elif op == 10:
            r = fns[WSAID_DISCONNECTEX](h, rng.choice(ovs), rng.choice([0, 2]), rng.choice([0, 1]))
        else:
            fns[WSAID_GETACCEPTEXSOCKADDRS](rng.choice([None, bytearray(64), "s"]), rng.choice([0, 4, 99]),
                                            rng.choice([0, 32]), 32, rng.choice([None, bytearray(16)]),
                                            ctypes.c_int(), rng.choice([None, bytearray(16)]), ctypes.c_int())
            r = "void"
        if r is False or r is None or (type(r) is int and r in (SOCKET_ERROR, INVALID_SOCKET)):
            assert ws.WSAGetLastError() in CODES, (op, ws.WSAGetLastError())
        ws.SleepEx(0, True)  # let queued completion routines run
    assert ws.callback_errors == []
    assert net.me.errors == 0
    assert_no_internal_error(net.me.stack)
    u, v = udp(ws), udp(net.pws)
    assert net.pws.bind(v, sa(PEER, 9998), 16) == 0
    assert sendto(ws, u, b"alive", PEER, 9998) == 5
    assert recv_from(net.pws, v)[0] == b"alive"
