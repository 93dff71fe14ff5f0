"""Helpers shared by the Winsock tests (the simulated network, address and buffer shorthands)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

from ustack.runtime.simulator import SimHost, Simulator
from ustack.winsock import (
    AF_INET,
    FD_SET,
    INVALID_SOCKET,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SOCK_DGRAM,
    SOCK_STREAM,
    SOCKADDR_IN,
    SOCKET_ERROR,
    TIMEVAL,
    WSADATA,
    Winsock,
)

ME = "198.18.0.2"
PEER = "198.18.0.1"
SILENT = "198.18.0.99"  # on the link, nobody answers
OFFNET = "198.19.7.7"  # no route from "me" (no gateway)
BCAST = "198.18.0.255"


@dataclass
class Net:
    sim: Simulator
    me: SimHost
    peer: SimHost
    ws: Winsock  # Winsock of "me"
    pws: Winsock  # Winsock of "peer"

    def close(self) -> None:
        self.sim.close()


def make_net(seed: int = 1, medium: str = "ip", version: int = 0x0202, **ws_kw: Any) -> Net:
    sim = Simulator(seed)
    me = sim.add_host(f"{ME}/24", name="me", medium=medium)
    peer = sim.add_host(f"{PEER}/24", name="peer", medium=medium)
    ws = Winsock(me, **ws_kw)
    pws = Winsock(peer)
    assert ws.WSAStartup(version, WSADATA()) == 0
    assert pws.WSAStartup(0x0202, WSADATA()) == 0
    return Net(sim, me, peer, ws, pws)


def sa(addr: str, port: int) -> SOCKADDR_IN:
    return SOCKADDR_IN.make(addr, port)


def fail(ws: Winsock, result: int, code: int) -> None:
    """Assert the call failed (SOCKET_ERROR / INVALID_SOCKET) with WSAGetLastError() == code."""
    assert result in (SOCKET_ERROR, INVALID_SOCKET), f"call succeeded ({result}), expected {code}"
    got = ws.WSAGetLastError()
    assert got == code, f"WSAGetLastError() = {got}, expected {code}"


def tcp(ws: Winsock) -> int:
    s = ws.socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)
    assert s != INVALID_SOCKET, ws.WSAGetLastError()
    return s


def udp(ws: Winsock) -> int:
    s = ws.socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP)
    assert s != INVALID_SOCKET, ws.WSAGetLastError()
    return s


def bind(ws: Winsock, s: int, addr: str = "0.0.0.0", port: int = 0) -> None:
    assert ws.bind(s, sa(addr, port), 16) == 0, ws.WSAGetLastError()


def name_of(ws: Winsock, s: int) -> tuple[str, int]:
    out = SOCKADDR_IN()
    n = ctypes.c_int(16)
    assert ws.getsockname(s, out, n) == 0, ws.WSAGetLastError()
    return out.addr, out.port


def peer_of(ws: Winsock, s: int) -> tuple[str, int]:
    out = SOCKADDR_IN()
    n = ctypes.c_int(16)
    assert ws.getpeername(s, out, n) == 0, ws.WSAGetLastError()
    return out.addr, out.port


def listener(ws: Winsock, port: int, backlog: int = 5, addr: str = "0.0.0.0") -> int:
    s = tcp(ws)
    bind(ws, s, addr, port)
    assert ws.listen(s, backlog) == 0, ws.WSAGetLastError()
    return s


def set_nonblocking(ws: Winsock, s: int, on: bool = True) -> None:
    from ustack.winsock import FIONBIO

    assert ws.ioctlsocket(s, FIONBIO, ctypes.c_ulong(int(on))) == 0, ws.WSAGetLastError()


def setopt_int(ws: Winsock, s: int, level: int, name: int, value: int) -> int:
    v = ctypes.c_int(value)
    return ws.setsockopt(s, level, name, v, 4)


def getopt_int(ws: Winsock, s: int, level: int, name: int) -> int:
    """The option's value, decoded from the size getsockopt reports (1 for the 1-byte options)."""
    v = ctypes.c_int(-12345)
    n = ctypes.c_int(4)
    assert ws.getsockopt(s, level, name, v, n) == 0, ws.WSAGetLastError()
    return int.from_bytes(bytes(v)[:n.value], "little", signed=n.value == 4)


def send_all(ws: Winsock, s: int, data: bytes) -> None:
    assert ws.send(s, data, len(data), 0) == len(data), ws.WSAGetLastError()


def recv_some(ws: Winsock, s: int, n: int = 4096) -> bytes:
    buf = bytearray(n)
    r = ws.recv(s, buf, n, 0)
    assert r != SOCKET_ERROR, ws.WSAGetLastError()
    return bytes(buf[:r])


def recv_from(ws: Winsock, s: int, n: int = 4096) -> tuple[bytes, tuple[str, int]]:
    buf = bytearray(n)
    frm = SOCKADDR_IN()
    fl = ctypes.c_int(16)
    r = ws.recvfrom(s, buf, n, 0, frm, fl)
    assert r != SOCKET_ERROR, ws.WSAGetLastError()
    return bytes(buf[:r]), (frm.addr, frm.port)


def sendto(ws: Winsock, s: int, data: bytes, addr: str, port: int) -> int:
    return ws.sendto(s, data, len(data), 0, sa(addr, port), 16)


def select1(ws: Winsock, s: int, timeout: float | None = 0.0) -> tuple[bool, bool, bool]:
    """(readable, writable, excepted) for one socket."""
    r, w, x = FD_SET(s), FD_SET(s), FD_SET(s)
    tv = None if timeout is None else TIMEVAL(int(timeout), int((timeout % 1) * 1e6))
    n = ws.select(0, r, w, x, tv)
    assert n != SOCKET_ERROR, ws.WSAGetLastError()
    return s in r, s in w, s in x


def tcp_socketpair(ws: Winsock, nonblocking: bool = False) -> tuple[int, int]:
    """(client, accepted server) over 127.0.0.1 on one host, as sock.c's tcp_socketpair."""
    lst = tcp(ws)
    bind(ws, lst, "127.0.0.1", 0)
    assert ws.listen(lst, 1) == 0
    c = tcp(ws)
    assert ws.connect(c, sa(*name_of(ws, lst)), 16) == 0, ws.WSAGetLastError()
    a = ws.accept(lst, None, None)
    assert a != INVALID_SOCKET, ws.WSAGetLastError()
    assert ws.closesocket(lst) == 0
    if nonblocking:
        set_nonblocking(ws, c)
        set_nonblocking(ws, a)
    return c, a


def accept_in_task(net: Net, lsock: int, count: int = 1) -> Any:
    """Start a peer task accepting `count` connections; its result is the accepted handles."""

    def run() -> list[int]:
        got = []
        for _ in range(count):
            c = net.pws.accept(lsock, None, None)
            assert c != INVALID_SOCKET, net.pws.WSAGetLastError()
            got.append(c)
        return got

    return net.sim.spawn(run, name="acceptor")
