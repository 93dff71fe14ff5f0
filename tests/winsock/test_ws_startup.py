"""Section B (startup, last error, handles), C (socket()) and L (Winsock 1.1 blocking model)."""

from __future__ import annotations

import ctypes
import threading

from ustack.winsock import (
    AF_INET,
    AF_INET6,
    INVALID_SOCKET,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SO_TYPE,
    SOCK_DGRAM,
    SOCK_RAW,
    SOCK_STREAM,
    SOCKET_ERROR,
    SOL_SOCKET,
    WSADATA,
    WSAEAFNOSUPPORT,
    WSAEINPROGRESS,
    WSAEINTR,
    WSAEINVAL,
    WSAENOTSOCK,
    WSAEOPNOTSUPP,
    WSAEPROTONOSUPPORT,
    WSAESOCKTNOSUPPORT,
    WSANOTINITIALISED,
    WSAVERNOTSUPPORTED,
    Winsock,
)

from .wsutil import PEER, bind, fail, getopt_int, sa, tcp, udp


def test_item_7_socket_before_startup(net) -> None:
    """socket() before WSAStartup fails with WSANOTINITIALISED."""
    ws = Winsock(net.me)
    fail(ws, ws.socket(AF_INET, SOCK_DGRAM, 0), WSANOTINITIALISED)


def test_item_7_unmatched_cleanup(net) -> None:
    """An unmatched WSACleanup fails with WSANOTINITIALISED."""
    ws = net.ws
    assert ws.WSACleanup() == 0
    fail(ws, ws.WSACleanup(), WSANOTINITIALISED)


def test_item_7_old_handles_after_last_cleanup(net) -> None:
    """After the last WSACleanup, old handles are WSAENOTSOCK (after a new WSAStartup)."""
    ws = net.ws
    s = udp(ws)
    assert ws.WSAStartup(0x0202, WSADATA()) == 0  # count 2
    assert ws.WSACleanup() == 0
    assert getopt_int(ws, s, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM  # still alive: count is 1
    assert ws.WSACleanup() == 0
    fail(ws, ws.closesocket(s), WSANOTINITIALISED)
    assert ws.WSAStartup(0x0202, WSADATA()) == 0
    fail(ws, ws.closesocket(s), WSAENOTSOCK)


def test_item_7_version_negotiation() -> None:
    """WSAStartup negotiates 1.1 or 2.2; version 0.x is WSAVERNOTSUPPORTED; a NULL WSADATA is WSAEFAULT."""
    from tests.winsock.wsutil import make_net

    n = make_net()
    try:
        ws = Winsock(n.me)
        assert ws.WSAStartup(0x0000, WSADATA()) == WSAVERNOTSUPPORTED
        d = WSADATA()
        assert ws.WSAStartup(0x0101, d) == 0 and d.wVersion == 0x0101 and d.wHighVersion == 0x0202
        assert ws.version == (1, 1)
        d = WSADATA()
        assert ws.WSAStartup(0x0303, d) == 0 and d.wVersion == 0x0202
        assert ws.version == (2, 2)
        assert ws.WSAStartup(0x0202, None) == 10014
    finally:
        n.close()


def test_item_8_success_clears_last_error(net) -> None:
    """Successful bind/getsockname/shutdown/setsockopt/getsockopt/sendto/connect set the last error to 0."""
    ws = net.ws
    s = udp(ws)
    checks = [
        lambda: ws.bind(s, sa("0.0.0.0", 0), 16),
        lambda: ws.getsockname(s, sa("0.0.0.0", 0), ctypes.c_int(16)),
        lambda: ws.setsockopt(s, SOL_SOCKET, 0x20, ctypes.c_int(1), 4),
        lambda: ws.getsockopt(s, SOL_SOCKET, SO_TYPE, ctypes.c_int(), ctypes.c_int(4)),
        lambda: ws.sendto(s, b"x", 1, 0, sa(PEER, 9), 16),
        lambda: ws.connect(s, sa(PEER, 9), 16),
        lambda: ws.send(s, b"x", 1, 0),
        lambda: ws.shutdown(s, 1),
    ]
    for call in checks:
        ws.WSASetLastError(12345)
        assert call() == 0 or call is checks[4] or call is checks[6]
        assert ws.WSAGetLastError() == 0


def test_item_8_last_error_is_per_thread(net) -> None:
    """WSAGetLastError is per thread: another thread's failure does not change ours."""
    ws = net.ws
    ws.WSASetLastError(0)
    seen = {}

    def other() -> None:
        fail(ws, ws.closesocket(0xBAD0), WSAENOTSOCK)
        seen["other"] = ws.WSAGetLastError()

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert seen["other"] == WSAENOTSOCK
    assert ws.WSAGetLastError() == 0


def test_item_9_closed_or_unknown_handle(net) -> None:
    """A closed or never-issued handle is WSAENOTSOCK."""
    ws = net.ws
    s = udp(ws)
    assert ws.closesocket(s) == 0
    fail(ws, ws.closesocket(s), WSAENOTSOCK)
    fail(ws, ws.bind(s, sa("0.0.0.0", 0), 16), WSAENOTSOCK)
    fail(ws, ws.send(0x7777, b"x", 1, 0), WSAENOTSOCK)
    fail(ws, ws.closesocket(INVALID_SOCKET), WSAENOTSOCK)


def test_item_10_socket_argument_checks(net) -> None:
    """socket(): bad family/type/protocol codes; STREAM+UDP and DGRAM+TCP mismatch; (AF_INET, 0, 0) is TCP."""
    ws = net.ws
    fail(ws, ws.socket(99, SOCK_STREAM, 0), WSAEAFNOSUPPORT)
    fail(ws, ws.socket(AF_INET6, 77, 0), WSAESOCKTNOSUPPORT)  # the type before the family
    fail(ws, ws.socket(AF_INET6, SOCK_STREAM, IPPROTO_UDP), WSAEPROTONOSUPPORT)
    fail(ws, ws.socket(AF_INET, 77, 0), WSAESOCKTNOSUPPORT)
    fail(ws, ws.socket(AF_INET, SOCK_RAW, 0), WSAESOCKTNOSUPPORT)
    fail(ws, ws.socket(AF_INET, SOCK_STREAM, 200), WSAEPROTONOSUPPORT)
    fail(ws, ws.socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), WSAEPROTONOSUPPORT)
    fail(ws, ws.socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP), WSAEPROTONOSUPPORT)
    s = ws.socket(AF_INET, 0, 0)
    assert s != INVALID_SOCKET
    assert getopt_int(ws, s, SOL_SOCKET, SO_TYPE) == SOCK_STREAM
    assert getopt_int(ws, udp(ws), SOL_SOCKET, SO_TYPE) == SOCK_DGRAM
    assert getopt_int(ws, tcp(ws), SOL_SOCKET, SO_TYPE) == SOCK_STREAM


def _blocking_recv_with_hook(ws: Winsock, hook) -> tuple[int, int]:
    s = udp(ws)
    bind(ws, s, "0.0.0.0", 5555)
    ws.WSASetBlockingHook(hook)
    buf = bytearray(10)
    r = ws.recv(s, buf, 10, 0)
    return r, ws.WSAGetLastError()


def test_item_72_one_blocking_call_per_thread(net11) -> None:
    """Winsock 1.1: while a blocking call is outstanding, other calls from its thread (the hook) fail with
    WSAEINPROGRESS."""
    ws = net11.ws
    seen: list[tuple[int, int, bool]] = []

    other = udp(ws)
    others: list[tuple[int, int]] = []

    def hook() -> bool:
        if not seen:
            r = ws.socket(AF_INET, SOCK_DGRAM, 0)
            seen.append((r, ws.WSAGetLastError(), ws.WSAIsBlocking()))
            for call in (lambda: ws.bind(other, sa("0.0.0.0", 0), 16),
                         lambda: ws.connect(other, sa(PEER, 9), 16),
                         lambda: ws.sendto(other, b"x", 1, 0, sa(PEER, 9), 16),
                         lambda: ws.setsockopt(other, SOL_SOCKET, 0x20, ctypes.c_int(1), 4),
                         lambda: ws.closesocket(other)):
                ws.WSASetLastError(0)
                others.append((call(), ws.WSAGetLastError()))
            ws.WSACancelBlockingCall()
        return False

    r, err = _blocking_recv_with_hook(ws, hook)
    assert seen == [(INVALID_SOCKET, WSAEINPROGRESS, True)]
    assert others == [(SOCKET_ERROR, WSAEINPROGRESS)] * 5
    assert ws.closesocket(other) == 0  # the hook's closesocket did nothing
    assert (r, err) == (SOCKET_ERROR, WSAEINTR)
    assert not ws.WSAIsBlocking()


def test_item_73_cancel_blocking_call(net11) -> None:
    """Winsock 1.1: WSACancelBlockingCall makes the outstanding call fail with WSAEINTR; with none
    outstanding, WSAEINVAL."""
    ws = net11.ws
    fail(ws, ws.WSACancelBlockingCall(), WSAEINVAL)
    calls = []

    def hook() -> bool:
        calls.append(net11.me.now())
        if len(calls) == 3:
            assert ws.WSACancelBlockingCall() == 0
        return False

    t0 = net11.me.now()
    r, err = _blocking_recv_with_hook(ws, hook)
    assert (r, err) == (SOCKET_ERROR, WSAEINTR)
    assert len(calls) == 3 and calls[-1] > t0  # the hook ran while virtual time passed


def test_item_73_cancel_is_11_only(net) -> None:
    """Winsock 2.2 applications: WSACancelBlockingCall and WSASetBlockingHook are WSAEOPNOTSUPP."""
    ws = net.ws
    fail(ws, ws.WSACancelBlockingCall(), WSAEOPNOTSUPP)
    assert ws.WSASetBlockingHook(lambda: False) is None
    assert ws.WSAGetLastError() == WSAEOPNOTSUPP
    assert ws.WSAIsBlocking() is False


def test_item_7_last_cleanup_resets_open_connections(net) -> None:
    """The last WSACleanup closes every socket abortively (Microsoft: they are reset): the peer's recv
    fails with WSAECONNRESET."""
    from ustack.winsock import WSAECONNRESET

    from .wsutil import accept_in_task, listener

    ws, pws = net.ws, net.pws
    acc = accept_in_task(net, listener(pws, 5600))
    s = tcp(ws)
    assert ws.connect(s, sa(PEER, 5600), 16) == 0
    (a,) = acc.result()
    assert ws.WSACleanup() == 0
    net.peer.sleep(0.1)
    fail(pws, pws.recv(a, bytearray(8), 8, 0), WSAECONNRESET)


def test_for_host_keeps_one_started_winsock_in_the_hosts_attribute(net) -> None:
    """Winsock.for_host makes one Winsock per host, kept in the host's public `winsock`
    attribute (None before first use), started at 2.2; a second call returns the same one."""
    assert net.me.winsock is None
    ws = Winsock.for_host(net.me)
    assert net.me.winsock is ws
    assert Winsock.for_host(net.me) is ws
    assert ws.version == (2, 2)
    s = ws.socket(AF_INET, SOCK_DGRAM, 0)
    assert s != INVALID_SOCKET
    assert ws.closesocket(s) == 0
