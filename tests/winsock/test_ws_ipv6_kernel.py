"""Winsock AF_INET6 against the Linux kernel over a real TUN, in a private netns (issue 12).

ustack has 198.18.0.2/24 and 2001:2::2/64 on the TUN; the kernel side has 198.18.0.1/24 and
2001:2::1/64 (IPv6 left on, the address without DAD). The kernel plays the peer with ordinary
sockets. Every wait is bounded; only 198.18.0.0/15 and 2001:2::/48 are used. Under CI=true these
tests fail (not skip) when namespaces or TUN are unavailable.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket as pysocket
import threading
import time

import pytest

from ustack.runtime.host import Host, build_stack
from ustack.winsock import (
    AF_INET6,
    INVALID_SOCKET,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV6_UNICAST_HOPS,
    IPV6_V6ONLY,
    SO_RCVTIMEO,
    SOCK_DGRAM,
    SOCK_STREAM,
    SOCKADDR_IN6,
    SOL_SOCKET,
    WSADATA,
    WSAECONNREFUSED,
    Winsock,
)

from .wsutil import fail, setopt_int

pytestmark = pytest.mark.netns

KERNEL6, US6 = "2001:2::1", "2001:2::2"
KERNEL4, US4 = "198.18.0.1", "198.18.0.2"
IFNAME = "wsk6"
_TEST_NET6 = ipaddress.ip_network("2001:2::/48")


@pytest.fixture
def kernel6(netns):
    """(host, ws): a ustack Host on a TUN with IPv4 and IPv6 addresses, Winsock 2.2 started."""
    from ustack import drivers

    for a in (KERNEL6, US6):
        assert ipaddress.ip_address(a) in _TEST_NET6
    raw = drivers.TunDevice(IFNAME, mtu=1500)
    host = None
    try:
        drivers.kernel_side_up(raw.name, f"{KERNEL4}/24", 1500, disable_ipv6=False)
        netns.ip("-6", "addr", "add", f"{KERNEL6}/64", "dev", IFNAME, "nodad")
        stack = build_stack(addr=f"{US4}/24", gateway=None, mtu=1500, medium=raw.medium, mac=None,
                            seed=11, addr6=f"{US6}/64")
        host = Host(stack, raw, time.monotonic, name=IFNAME)
        ws = Winsock(host)
        assert ws.WSAStartup(0x0202, WSADATA()) == 0
        yield host, ws
        assert host.stack.counters.get("stack.internal_error") == 0
    finally:
        if host is not None:
            host.close()
        else:
            raw.close()


def _sock(ws: Winsock, kind: int, dual: bool = False) -> int:
    s = ws.socket(AF_INET6, kind, IPPROTO_TCP if kind == SOCK_STREAM else IPPROTO_UDP)
    assert s != INVALID_SOCKET, ws.WSAGetLastError()
    assert setopt_int(ws, s, SOL_SOCKET, SO_RCVTIMEO, 5000) == 0  # bounded waits
    if dual:
        assert setopt_int(ws, s, IPPROTO_IPV6, IPV6_V6ONLY, 0) == 0
    return s


def _bounded(fn, limit_s: float = 10.0):
    """fn() run in a helper thread, bounded in real time; its result."""
    out: list = []

    def run() -> None:
        out.append(fn())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit_s)
    if not out:
        pytest.fail(f"still running after {limit_s} s")
    return out[0]


def _name(ws: Winsock, s: int, peer: bool = False) -> tuple[str, int]:
    out, n = SOCKADDR_IN6(), ctypes.c_int(28)
    assert (ws.getpeername if peer else ws.getsockname)(s, out, n) == 0, ws.WSAGetLastError()
    return out.addr, out.port


def _recvfrom6(ws: Winsock, s: int) -> tuple[bytes, str, int]:
    buf, frm, n = bytearray(100), SOCKADDR_IN6(), ctypes.c_int(28)
    r = ws.recvfrom(s, buf, 100, 0, frm, n)
    assert r >= 0, ws.WSAGetLastError()
    return bytes(buf[:r]), frm.addr, frm.port


def test_item_120_kernel_tcp_over_ipv6(kernel6) -> None:
    """Over TUN: a Winsock AF_INET6 connect to a kernel listener on [2001:2::1] succeeds, both
    sides name each other alike, data flows both ways; the kernel connecting to a ustack [::]
    listener is accepted as 2001:2::1; a closed kernel port is WSAECONNREFUSED."""
    host, ws = kernel6
    with pysocket.socket(pysocket.AF_INET6, pysocket.SOCK_STREAM) as k:
        k.bind((KERNEL6, 7200))
        k.listen(4)
        k.settimeout(5.0)
        s = _sock(ws, SOCK_STREAM)
        assert _bounded(lambda: ws.connect(s, SOCKADDR_IN6.make(KERNEL6, 7200), 28)) == 0
        conn, addr = k.accept()
        with conn:
            conn.settimeout(5.0)
            assert addr[:2] == _name(ws, s) and addr[0] == US6
            assert _name(ws, s, peer=True) == (KERNEL6, 7200)
            data = bytes(range(256)) * 64
            assert ws.send(s, data, len(data), 0) == len(data)
            got = b""
            while len(got) < len(data):
                chunk = conn.recv(65536)
                assert chunk
                got += chunk
            assert got == data
            conn.sendall(b"hello ustack over six")
            buf = bytearray(100)
            n = _bounded(lambda: ws.recv(s, buf, 100, 0))
            assert bytes(buf[:n]) == b"hello ustack over six"
        assert ws.closesocket(s) == 0

    lst = _sock(ws, SOCK_STREAM)
    assert ws.bind(lst, SOCKADDR_IN6.make("::", 7201), 28) == 0 and ws.listen(lst, 4) == 0
    with pysocket.create_connection((US6, 7201), timeout=5) as c:
        frm, n = SOCKADDR_IN6(), ctypes.c_int(28)
        a = _bounded(lambda: ws.accept(lst, frm, n))
        assert a != INVALID_SOCKET
        assert (frm.addr, frm.port) == c.getsockname()[:2] and frm.addr == KERNEL6
        c.sendall(b"from the kernel")
        buf = bytearray(100)
        r = _bounded(lambda: ws.recv(a, buf, 100, 0))
        assert bytes(buf[:r]) == b"from the kernel"
    s = _sock(ws, SOCK_STREAM)
    r = _bounded(lambda: (ws.connect(s, SOCKADDR_IN6.make(KERNEL6, 7202), 28), ws.WSAGetLastError()))
    ws.WSASetLastError(r[1])
    fail(ws, r[0], WSAECONNREFUSED)


def test_item_121_kernel_udp_hop_limit_and_dual_mode(kernel6) -> None:
    """Over TUN: a datagram from a Winsock AF_INET6 socket with IPV6_UNICAST_HOPS 9 reaches a
    kernel socket with hop limit 9 (IPV6_RECVHOPLIMIT) from 2001:2::2; the kernel's reply comes
    back named 2001:2::1; a dual-mode ustack socket gets the kernel's IPv4 and IPv6 datagrams on
    one port, the IPv4 one named ::ffff:198.18.0.1."""
    host, ws = kernel6
    with pysocket.socket(pysocket.AF_INET6, pysocket.SOCK_DGRAM) as k:
        k.bind((KERNEL6, 7300))
        k.settimeout(5.0)
        k.setsockopt(pysocket.IPPROTO_IPV6, pysocket.IPV6_RECVHOPLIMIT, 1)
        u = _sock(ws, SOCK_DGRAM)
        assert setopt_int(ws, u, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 9) == 0
        assert ws.sendto(u, b"six", 3, 0, SOCKADDR_IN6.make(KERNEL6, 7300), 28) == 3
        data, anc, _flags, addr = k.recvmsg(100, pysocket.CMSG_SPACE(4))
        hops = [int.from_bytes(d[:4], "little") for lvl, typ, d in anc
                if lvl == pysocket.IPPROTO_IPV6 and typ == pysocket.IPV6_HOPLIMIT]
        assert data == b"six" and addr[0] == US6 and hops == [9]
        k.sendto(b"reply", addr)
        buf, frm, n = bytearray(100), SOCKADDR_IN6(), ctypes.c_int(28)
        r = _bounded(lambda: ws.recvfrom(u, buf, 100, 0, frm, n))
        assert (bytes(buf[:r]), frm.addr, frm.port) == (b"reply", KERNEL6, 7300)

    d = _sock(ws, SOCK_DGRAM, dual=True)
    assert ws.bind(d, SOCKADDR_IN6.make("::", 7301), 28) == 0
    seen = set()
    with pysocket.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM) as k4, \
            pysocket.socket(pysocket.AF_INET6, pysocket.SOCK_DGRAM) as k6:
        k4.bind((KERNEL4, 7302))
        k6.bind((KERNEL6, 7303))
        k4.sendto(b"four", (US4, 7301))
        k6.sendto(b"six", (US6, 7301))
        for _ in range(2):
            seen.add(_bounded(lambda: _recvfrom6(ws, d)))
    assert seen == {(b"four", "::ffff:198.18.0.1", 7302), (b"six", KERNEL6, 7303)}
