"""Winsock AF_INET6 end to end over ustack's IPv6 layer in the Simulator (virtual time): UDP and
TCP between two hosts with static 2001:2::/64 addresses, a dual-mode socket taking both
families, getaddrinfo's AF_UNSPEC on a host with a global IPv6 address, and ustack.socket."""

from __future__ import annotations

import ctypes

import pytest

from tests.services.simservers import DnsTestServer
from ustack import socket as us
from ustack.runtime import Simulator
from ustack.runtime.host import build_stack
from ustack.winsock import (
    AF_INET,
    AF_INET6,
    INVALID_SOCKET,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV6_V6ONLY,
    SOCK_DGRAM,
    SOCK_STREAM,
    SOCKADDR_IN,
    SOCKADDR_IN6,
    WSADATA,
    Winsock,
)
from ustack.winsock import names as W
from ustack.wire import dns as N

ME6, PEER6 = "2001:2::2", "2001:2::1"


@pytest.fixture
def net6():
    sim = Simulator(seed=5, latency_s=0.001)
    hosts = []
    for i, (a4, a6, name) in enumerate([("198.18.0.2/24", ME6, "me"), ("198.18.0.1/24", PEER6, "peer")]):
        stack = build_stack(addr=a4, gateway=None, mtu=1500, medium="ip", mac=None, seed=40 + i,
                            addr6=f"{a6}/64")
        hosts.append(sim.add_host(a4, name=name, stack=stack))
    me, peer = hosts
    ws, pws = Winsock(me), Winsock(peer)
    assert ws.WSAStartup(0x0202, WSADATA()) == 0 and pws.WSAStartup(0x0202, WSADATA()) == 0
    sim.run_for(2.0)  # duplicate address detection, if any, is over
    yield sim, me, peer, ws, pws
    for h in (me, peer):
        assert h.stack.counters.get("stack.internal_error") == 0
    sim.close()


def _sock(ws: Winsock, kind: int, dual: bool = False) -> int:
    s = ws.socket(AF_INET6, kind, IPPROTO_TCP if kind == SOCK_STREAM else IPPROTO_UDP)
    assert s != INVALID_SOCKET, ws.WSAGetLastError()
    if dual:
        v = ctypes.c_int(0)
        assert ws.setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, v, 4) == 0
    return s


def _name(ws: Winsock, s: int, peer: bool = False) -> tuple[str, int]:
    out, n = SOCKADDR_IN6(), ctypes.c_int(28)
    assert (ws.getpeername if peer else ws.getsockname)(s, out, n) == 0, ws.WSAGetLastError()
    return out.addr, out.port


def _recvfrom6(ws: Winsock, s: int) -> tuple[bytes, str, int]:
    buf, frm, n = bytearray(2000), SOCKADDR_IN6(), ctypes.c_int(28)
    r = ws.recvfrom(s, buf, 2000, 0, frm, n)
    assert r >= 0, ws.WSAGetLastError()
    return bytes(buf[:r]), frm.addr, frm.port


def test_item_120_udp_and_tcp_over_ipv6(net6) -> None:
    """UDP and TCP over IPv6 between two ustack hosts through Winsock: sendto/recvfrom name the
    peer by its IPv6 address; a TCP connect to [2001:2::1]:80 is accepted with the client's
    address, getsockname/getpeername give both ends, data flows both ways; a dual-mode socket
    gets IPv6 and IPv4 datagrams on one port (the IPv4 sender v4-mapped)."""
    sim, me, peer, ws, pws = net6
    srv = _sock(pws, SOCK_DGRAM, dual=True)
    assert pws.bind(srv, SOCKADDR_IN6.make("::", 7000), 28) == 0
    cli = _sock(ws, SOCK_DGRAM)
    assert ws.sendto(cli, b"over six", 8, 0, SOCKADDR_IN6.make(PEER6, 7000), 28) == 8
    sim.run_for(0.1)
    data, addr, port = _recvfrom6(pws, srv)
    assert (data, addr, port) == (b"over six", ME6, _name(ws, cli)[1])
    assert _name(ws, cli)[0] == "::"  # bound to the wildcard by sendto
    assert pws.sendto(srv, b"back", 4, 0, SOCKADDR_IN6.make(ME6, port), 28) == 4
    sim.run_for(0.1)
    assert _recvfrom6(ws, cli) == (b"back", PEER6, 7000)
    v4 = ws.socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP)
    assert ws.sendto(v4, b"over four", 9, 0, SOCKADDR_IN.make("198.18.0.1", 7000), 16) == 9
    sim.run_for(0.1)
    assert _recvfrom6(pws, srv)[:2] == (b"over four", "::ffff:198.18.0.2")

    lst = _sock(pws, SOCK_STREAM)
    assert pws.bind(lst, SOCKADDR_IN6.make("::", 80), 28) == 0 and pws.listen(lst, 4) == 0
    c = _sock(ws, SOCK_STREAM)
    task = sim.spawn(lambda: pws.accept(lst, None, None), name="acceptor")
    assert ws.connect(c, SOCKADDR_IN6.make(PEER6, 80), 28) == 0, ws.WSAGetLastError()
    a = task.result()
    assert a != INVALID_SOCKET
    local = _name(ws, c)
    assert local[0] == ME6 and _name(ws, c, peer=True) == (PEER6, 80)
    assert _name(pws, a, peer=True) == local and _name(pws, a) == (PEER6, 80)
    payload = bytes(range(256)) * 40
    assert ws.send(c, payload, len(payload), 0) == len(payload)
    got = bytearray()
    while len(got) < len(payload):
        buf = bytearray(65536)
        r = pws.recv(a, buf, 65536, 0)
        assert r > 0, pws.WSAGetLastError()
        got += buf[:r]
    assert bytes(got) == payload
    assert pws.send(a, b"ok", 2, 0) == 2
    buf = bytearray(8)
    assert ws.recv(c, buf, 8, 0) == 2 and bytes(buf[:2]) == b"ok"
    for w, s in ((ws, c), (pws, a), (pws, lst)):
        assert w.closesocket(s) == 0


def test_item_121_unicast_hops_reach_the_wire(net6) -> None:
    """IPV6_UNICAST_HOPS set on a socket is the hop limit of its IPv6 packets; -1 gives the
    stack's default (64) again."""
    sim, me, peer, ws, pws = net6
    seen: list[int] = []
    orig = peer.stack.ipv6.deliver

    def spy(ip, now, rx=0, *a, **kw):
        if ip.proto == 17:
            seen.append(ip.hop_limit)
        return orig(ip, now, rx, *a, **kw)

    peer.stack.ipv6.deliver = spy
    srv = _sock(pws, SOCK_DGRAM)
    assert pws.bind(srv, SOCKADDR_IN6.make("::", 7100), 28) == 0
    cli = _sock(ws, SOCK_DGRAM)
    dst = SOCKADDR_IN6.make(PEER6, 7100)
    assert ws.setsockopt(cli, IPPROTO_IPV6, 4, ctypes.c_int(9), 4) == 0  # IPV6_UNICAST_HOPS
    assert ws.sendto(cli, b"a", 1, 0, dst, 28) == 1
    assert ws.setsockopt(cli, IPPROTO_IPV6, 4, ctypes.c_int(-1), 4) == 0
    assert ws.sendto(cli, b"b", 1, 0, dst, 28) == 1
    sim.run_for(0.1)
    assert seen == [9, 64]


def test_item_128_unspec_with_an_ipv6_address(net6) -> None:
    """On a host with a global IPv6 address, getaddrinfo AF_UNSPEC asks AAAA and A and returns
    the IPv6 entries first (RFC 6724's default order), and a NULL node gives [::] then 0.0.0.0."""
    sim, me, peer, ws, pws = net6
    server = peer.call(lambda: DnsTestServer(peer.stack, {"both.test": ["198.18.0.1", PEER6]}))
    me.stack.dns_servers = [peer.stack.addr]
    rc, ai = ws.getaddrinfo("both.test", "80", W.ADDRINFO(0, 0, SOCK_STREAM, 0, 0, None, None))
    assert rc == 0
    got = []
    while ai is not None:
        got.append((ai.ai_family, ai.ai_addr.addr))
        ai = ai.ai_next
    assert got == [(AF_INET6, PEER6), (AF_INET, "198.18.0.1")]
    assert sorted(q.questions[0].qtype for _, q in server.udp_queries) == [N.TYPE_A, N.TYPE_AAAA]
    rc, ai = ws.getaddrinfo(None, "5", W.ADDRINFO(W.AI_PASSIVE, 0, SOCK_DGRAM, 0, 0, None, None))
    assert (ai.ai_family, ai.ai_addr.addr, ai.ai_next.ai_family, ai.ai_next.ai_addr.addr) == (
        AF_INET6, "::", AF_INET, "0.0.0.0")


def test_item_129_pythonic_layer_over_ipv6(net6) -> None:
    """ustack.socket over IPv6: create_connection to an IPv6 literal opens an AF_INET6 socket;
    accept and getpeername give 4-tuples with the IPv6 addresses."""
    sim, me, peer, ws, pws = net6
    lst = us.socket(peer, us.AF_INET6, us.SOCK_STREAM)
    lst.bind(("::", 8080))
    lst.listen(2)
    task = sim.spawn(lst.accept, name="accept")
    c = us.create_connection(me, (PEER6, 8080), timeout=5)
    conn, addr = task.result()
    assert c.family == us.AF_INET6 and c.getpeername() == (PEER6, 8080, 0, 0)
    assert addr == (ME6, c.getsockname()[1], 0, 0) and conn.getsockname() == (PEER6, 8080, 0, 0)
    c.sendall(b"hello six")
    assert conn.recv(100) == b"hello six"
    for s in (c, conn, lst):
        s.close()


def _ext(ws: Winsock, s: int, guid) -> object:
    from ustack.winsock import SIO_GET_EXTENSION_FUNCTION_POINTER, Ref

    out, n = Ref(), ctypes.c_ulong(0)
    assert ws.WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, guid.bytes_le, 16, out, 8, n) == 0
    return out.value


def test_item_120_overlapped_calls_over_ipv6(net6) -> None:
    """The overlapped calls on AF_INET6 sockets: AcceptEx on an IPv6 listener needs 28 + 16 bytes
    per address (a 32-byte local space, enough for IPv4, fails with STATUS_BUFFER_TOO_SMALL /
    ERROR_INSUFFICIENT_BUFFER), GetAcceptExSockaddrs
    decodes 28-byte SOCKADDR_IN6 names; WSARecvFrom fills a SOCKADDR_IN6 (fromlen 28, 16 is
    WSAEFAULT) and WSASendTo takes one."""
    from ustack.winsock import (
        ERROR_INSUFFICIENT_BUFFER,
        STATUS_BUFFER_TOO_SMALL,
        STATUS_SUCCESS,
        WSA_IO_PENDING,
        WSA_WAIT_EVENT_0,
        WSABUF,
        WSAEFAULT,
        WSAID_ACCEPTEX,
        WSAID_GETACCEPTEXSOCKADDRS,
        WSAOVERLAPPED,
    )

    sim, me, peer, ws, pws = net6
    lst = _sock(ws, SOCK_STREAM)
    assert ws.bind(lst, SOCKADDR_IN6.make("::", 9000), 28) == 0 and ws.listen(lst, 4) == 0
    accept_ex, get_addrs = _ext(ws, lst, WSAID_ACCEPTEX), _ext(ws, lst, WSAID_GETACCEPTEXSOCKADDRS)
    space = 28 + 16
    acc, buf, n = _sock(ws, SOCK_STREAM), bytearray(256), ctypes.c_ulong()
    ov = WSAOVERLAPPED(ws.WSACreateEvent())
    assert accept_ex(lst, acc, buf, 0, space, space, n, ov) is False
    assert ws.WSAGetLastError() == WSA_IO_PENDING
    c = _sock(pws, SOCK_STREAM)
    task = sim.spawn(lambda: pws.connect(c, SOCKADDR_IN6.make(ME6, 9000), 28), name="client")
    assert ws.WSAWaitForMultipleEvents(1, [ov.hEvent], False, 1000, False) == WSA_WAIT_EVENT_0
    assert task.result() == 0 and ov.Internal == STATUS_SUCCESS
    local, remote, llen, rlen = SOCKADDR_IN6(), SOCKADDR_IN6(), ctypes.c_int(0), ctypes.c_int(0)
    get_addrs(buf, 0, space, space, local, llen, remote, rlen)
    assert (local.addr, local.port, llen.value) == (ME6, 9000, 28)
    assert (remote.addr, remote.port, rlen.value) == (PEER6, _name(pws, c)[1], 28)
    small = _sock(ws, SOCK_STREAM)
    ov2 = WSAOVERLAPPED(ws.WSACreateEvent())
    assert accept_ex(lst, small, bytearray(256), 0, 32, space, n, ov2) is False
    c2 = _sock(pws, SOCK_STREAM)
    sim.spawn(lambda: pws.connect(c2, SOCKADDR_IN6.make(ME6, 9000), 28), name="client2")
    assert ws.WSAWaitForMultipleEvents(1, [ov2.hEvent], False, 1000, False) == WSA_WAIT_EVENT_0
    assert ws.GetOverlappedResult(lst, ov2, ctypes.c_ulong(), False) is False
    assert ws.GetLastError() == ERROR_INSUFFICIENT_BUFFER and ov2.Internal == STATUS_BUFFER_TOO_SMALL

    u, pu = _sock(ws, SOCK_DGRAM), _sock(pws, SOCK_DGRAM)
    assert ws.bind(u, SOCKADDR_IN6.make("::", 9100), 28) == 0
    assert pws.bind(pu, SOCKADDR_IN6.make("::", 9101), 28) == 0
    data, frm = bytearray(16), SOCKADDR_IN6()
    got, flags = ctypes.c_ulong(0), ctypes.c_ulong(0)
    assert ws.WSARecvFrom(u, [WSABUF(16, data)], 1, got, flags, frm, ctypes.c_int(16), None, None) == -1
    assert ws.WSAGetLastError() == WSAEFAULT
    rov, fromlen = WSAOVERLAPPED(ws.WSACreateEvent()), ctypes.c_int(28)
    assert ws.WSARecvFrom(u, [WSABUF(16, data)], 1, got, flags, frm, fromlen, rov, None) == -1
    assert ws.WSAGetLastError() == WSA_IO_PENDING
    sent = ctypes.c_ulong(0)
    assert pws.WSASendTo(pu, [WSABUF(3, b"six")], 1, sent, 0, SOCKADDR_IN6.make(ME6, 9100), 28,
                         None, None) == 0 and sent.value == 3
    assert ws.WSAWaitForMultipleEvents(1, [rov.hEvent], False, 1000, False) == WSA_WAIT_EVENT_0
    assert (bytes(data[:3]), frm.addr, frm.port, fromlen.value) == (b"six", PEER6, 9101, 28)
