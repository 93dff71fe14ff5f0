"""Winsock name resolution (ustack/winsock/names.py) in virtual time against tiny DNS servers:
gethostbyname, getaddrinfo/GetAddrInfoW, WSAAsyncGetHostByName, with Windows' error codes."""

from __future__ import annotations

import pytest

from tests.services.simservers import DnsTestServer
from ustack.runtime import Simulator
from ustack.winsock import SOCK_DGRAM, SOCK_STREAM, WSADATA, Window, Winsock
from ustack.winsock import names as W

RECORDS = {"www.example.test": ["198.18.0.80", "198.18.0.81"], "v6only.test": ["2001:2::6"]}


@pytest.fixture
def env():
    sim = Simulator(seed=8, latency_s=0.001)
    dns = sim.add_host("198.18.0.1/24", name="dns")
    me = sim.add_host("198.18.0.2/24", name="me")
    server = dns.call(lambda: DnsTestServer(dns.stack, RECORDS))
    me.stack.dns_servers = [dns.stack.addr]
    ws = Winsock(me)
    assert ws.WSAStartup(0x0202, WSADATA()) == 0
    yield sim, me, ws, server
    sim.close()


def test_windows_code_values():
    wsa = (W.WSAHOST_NOT_FOUND, W.WSATRY_AGAIN, W.WSANO_RECOVERY, W.WSANO_DATA)
    assert wsa == (11001, 11002, 11003, 11004)
    assert (W.EAI_NONAME, W.EAI_AGAIN, W.EAI_FAIL, W.EAI_NODATA) == (11001, 11002, 11003, 11001)
    eai = (W.EAI_FAMILY, W.EAI_SOCKTYPE, W.EAI_SERVICE, W.EAI_BADFLAGS, W.EAI_MEMORY)
    assert eai == (10047, 10044, 10109, 10022, 8)


def test_gethostbyname_answers_and_errors(env):
    sim, me, ws, server = env
    h = ws.gethostbyname("www.example.test")
    assert h.h_addrtype == 2 and h.h_length == 4
    assert h.h_addr_list == [bytes([198, 18, 0, 80]), bytes([198, 18, 0, 81])]
    assert ws.gethostbyname("198.18.0.7").h_addr_list == [bytes([198, 18, 0, 7])]  # no DNS for literals
    assert len(server.udp_queries) == 1
    assert ws.gethostbyname("nope.test") is None and ws.WSAGetLastError() == W.WSAHOST_NOT_FOUND
    assert ws.gethostbyname("v6only.test") is None and ws.WSAGetLastError() == W.WSANO_DATA
    server.silent = True
    assert ws.gethostbyname("slow.test") is None and ws.WSAGetLastError() == W.WSATRY_AGAIN
    server.silent = False
    server.servfail = True
    assert ws.gethostbyname("bad.test") is None and ws.WSAGetLastError() == W.WSATRY_AGAIN


def test_gethostbyname_before_startup():
    sim = Simulator(seed=1)
    ws = Winsock(sim.add_host("198.18.0.2/24"))
    assert ws.gethostbyname("x.test") is None and ws.WSAGetLastError() == 10093  # WSANOTINITIALISED
    sim.close()


def test_getaddrinfo_chain_ports_and_hints(env):
    sim, me, ws, server = env
    rc, ai = ws.getaddrinfo("www.example.test", "80", W.ADDRINFO(0, 2, SOCK_STREAM, 0, 0, None, None))
    assert rc == 0 and ws.WSAGetLastError() == 0
    got = []
    while ai is not None:
        sa = ai.ai_addr
        got.append((ai.ai_family, ai.ai_socktype, ai.ai_protocol, sa.addr, sa.port, ai.ai_addrlen))
        ai = ai.ai_next
    assert got == [(2, SOCK_STREAM, 6, "198.18.0.80", 80, 16), (2, SOCK_STREAM, 6, "198.18.0.81", 80, 16)]
    rc, ai = ws.GetAddrInfoW("www.example.test", "http", None)  # no hints: TCP and UDP entries
    assert rc == 0 and [(a.ai_socktype, a.ai_addr.port) for a in _chain(ai)][:2] == [(SOCK_STREAM, 80),
                                                                                    (SOCK_DGRAM, 80)]
    ws.freeaddrinfo(ai)
    rc, ai = ws.getaddrinfo(None, "7", W.ADDRINFO(W.AI_PASSIVE, 0, SOCK_DGRAM, 0, 0, None, None))
    assert rc == 0 and ai.ai_addr.addr == "0.0.0.0" and ai.ai_next is None


@pytest.mark.parametrize(("node", "service", "hints", "code"), [
    ("nope.test", None, None, 11001),
    ("v6only.test", None, None, 11004),
    ("www.example.test", None, (0, 99, 0), 10047),  # an unknown family
    ("www.example.test", None, (0, 0, 99), 10044),
    ("www.example.test", "no-such-service", None, 10109),
    ("www.example.test", None, (W.AI_NUMERICHOST, 0, 0), 11001),
    (None, None, None, 11001),
])
def test_getaddrinfo_errors(env, node, service, hints, code):
    sim, me, ws, server = env
    h = W.ADDRINFO(hints[0], hints[1], hints[2], 0, 0, None, None) if hints else None
    rc, ai = ws.getaddrinfo(node, service, h)
    assert (rc, ai, ws.WSAGetLastError()) == (code, None, code)


def test_async_gethostbyname_posts_the_message(env):
    sim, me, ws, server = env
    wnd = Window(me)
    buf = W.empty_hostent()
    handle = ws.WSAAsyncGetHostByName(wnd, 0x0401, "www.example.test", buf, W.MAXGETHOSTSTRUCT)
    assert handle > 0
    msg = wnd.GetMessage(5.0)
    assert (msg.message, msg.wParam, msg.lParam >> 16) == (0x0401, handle, 0)
    assert buf.h_addr_list[0] == bytes([198, 18, 0, 80])
    bad = ws.WSAAsyncGetHostByName(wnd, 0x0402, "nope.test", W.empty_hostent(), W.MAXGETHOSTSTRUCT)
    msg = wnd.GetMessage(5.0)
    assert (msg.message, msg.wParam, msg.lParam >> 16) == (0x0402, bad, W.WSAHOST_NOT_FOUND)
    small = ws.WSAAsyncGetHostByName(wnd, 0x0403, "www.example.test", W.empty_hostent(), 16)
    msg = wnd.GetMessage(5.0)
    assert (msg.wParam, msg.lParam >> 16, msg.lParam & 0xFFFF) == (small, 10055, W.MAXGETHOSTSTRUCT)


def test_async_cancel_posts_nothing(env):
    sim, me, ws, server = env
    server.silent = True
    wnd = Window(me)
    handle = ws.WSAAsyncGetHostByName(wnd, 0x0401, "www.example.test", W.empty_hostent(), 1024)
    assert ws.WSACancelAsyncRequest(handle) == 0
    sim.run_for(20)
    assert wnd.PeekMessage() is None
    assert ws.WSACancelAsyncRequest(handle) == -1 and ws.WSAGetLastError() == 10022


def _chain(ai):
    while ai is not None:
        yield ai
        ai = ai.ai_next
