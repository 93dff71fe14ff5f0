"""Bad input never raises out of the Winsock API: every failure is SOCKET_ERROR plus a WSA code."""

from __future__ import annotations

import ctypes
import random

from tests.invariants import assert_no_internal_error
from ustack.winsock import (
    FD_SET,
    INVALID_SOCKET,
    SOCKET_ERROR,
    TIMEVAL,
    WSAPOLLFD,
)
from ustack.winsock.errors import WSA_NAMES

from .wsutil import PEER, SILENT, sa

CODES = set(WSA_NAMES)


def test_random_calls_fail_cleanly(net) -> None:
    """800 calls with random handles, buffers, lengths, names and options (WSAPoll and WSAIoctl
    included): no exception escapes, every failure sets a known WSA code, and the stack keeps
    working afterwards."""
    ws = net.ws
    rng = random.Random(2024)
    handles = [INVALID_SOCKET, 0, 1, 0x7777]
    names = [None, sa(PEER, 9), sa(SILENT, 80), sa("0.0.0.0", 0), b"\x02\x00", bytes(16), b"x" * 40,
             sa("255.255.255.255", 7), bytearray(16), "not a buffer", 12345]
    bufs = [None, b"", b"data", bytearray(8), bytearray(0), ctypes.c_int(5), "str", memoryview(b"ro")]
    lens = [-1, 0, 1, 4, 8, 16, 100, 1 << 20]
    polls = [None, 42, [], [WSAPOLLFD(0x7777, 0x100, 0)], (WSAPOLLFD * 2)(), b"\x00" * 16]
    codes = [0x8004667E, 0x4004667F, 0x40047307, 0x98000004, 0x48000022, 0xDEADBEEF, 0x9800000C]
    for _ in range(800):
        op = rng.randrange(14)
        h = rng.choice(handles)
        ws.WSASetLastError(0)
        if op == 0:
            af, kind = rng.choice([2, 23, 0, 99]), rng.choice([1, 2, 3, 0, 9])
            r = ws.socket(af, kind, rng.choice([0, 6, 17, 255]))
            if r != INVALID_SOCKET:
                handles.append(r)
        elif op == 1:
            r = ws.bind(h, rng.choice(names), rng.choice(lens))
        elif op == 2:
            s = rng.choice(handles)
            ws.ioctlsocket(s, 0x8004667E, ctypes.c_ulong(1))  # never block in this test
            r = ws.connect(s, rng.choice(names), rng.choice(lens))
        elif op == 3:
            r = ws.send(h, rng.choice(bufs), rng.choice(lens), rng.choice([0, 1, 2]))
        elif op == 4:
            ws.ioctlsocket(h, 0x8004667E, ctypes.c_ulong(1))
            r = ws.recv(h, rng.choice(bufs), rng.choice(lens), rng.choice([0, 1, 2, 8]))
        elif op == 5:
            r = ws.setsockopt(h, rng.choice([0xFFFF, 6, 0, 1234]), rng.choice([4, -5, 0x80, 0x1002, 1, 77]),
                              rng.choice(bufs), rng.choice(lens))
        elif op == 6:
            r = ws.getsockopt(h, rng.choice([0xFFFF, 6, 1234]), rng.choice([4, 0x1007, 0x80, 1, 77]),
                              rng.choice(bufs), rng.choice([None, 0, ctypes.c_int(2), ctypes.c_int(16)]))
        elif op == 7:
            r = ws.getsockname(h, rng.choice(names), rng.choice([None, 0, ctypes.c_int(8), ctypes.c_int(16)]))
        elif op == 8:
            r = ws.select(0, FD_SET(*rng.sample(handles, min(3, len(handles)))), None, None, TIMEVAL(0, 0))
        elif op == 9:
            r = ws.sendto(h, rng.choice(bufs), rng.choice(lens), 0, rng.choice(names), rng.choice(lens))
        elif op == 10:
            r = ws.shutdown(h, rng.choice([0, 1, 2, 3, -1]))
        elif op == 12:
            fds = rng.choice(polls)
            if isinstance(fds, ctypes.Array):
                for e in fds:
                    e.fd, e.events = rng.choice(handles), rng.choice([0, 0x100, 0x310, 0x1, -1])
            r = ws.WSAPoll(fds, rng.choice([-1, 0, 1, 2, 3]), 0)
        elif op == 13:
            out = rng.choice([None, ctypes.c_uint32(), ctypes.c_uint64(), bytearray(2), "str"])
            r = ws.WSAIoctl(h, rng.choice(codes), rng.choice(bufs), rng.choice(lens), out,
                            rng.choice(lens), rng.choice([None, ctypes.c_uint32()]))
        else:
            r = ws.listen(h, rng.choice([0, 1, -5, 0x7FFFFFFF]))
        if r in (SOCKET_ERROR, INVALID_SOCKET):
            assert ws.WSAGetLastError() in CODES, (op, ws.WSAGetLastError())
    assert ws.callback_errors == []
    assert net.me.errors == 0
    assert_no_internal_error(net.me.stack)
    # still fully functional
    from .wsutil import recv_from, sendto, udp

    a, b = udp(ws), udp(net.pws)
    assert net.pws.bind(b, sa(PEER, 9999), 16) == 0
    assert sendto(ws, a, b"alive", PEER, 9999) == 5
    assert recv_from(net.pws, b)[0] == b"alive"
