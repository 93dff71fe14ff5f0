"""getaddrinfo / GetAddrInfoW for IPv6 (issue 12) in virtual time against a tiny DNS server:
AF_INET6 (AAAA), AI_V4MAPPED, AI_ALL, IPv6 literals with scope ids, AF_UNSPEC, gethostbyname
staying IPv4-only."""

from __future__ import annotations

import pytest

from tests.services.simservers import DnsTestServer
from ustack.runtime import Simulator
from ustack.winsock import AF_INET, AF_INET6, SOCK_STREAM, WSADATA, Winsock
from ustack.winsock import names as W
from ustack.wire import dns as N

RECORDS = {"both.test": ["198.18.0.80", "2001:2::80", "2001:2::81"], "v4.test": ["198.18.0.7"],
           "v6.test": ["2001:2::6"]}


@pytest.fixture
def env():
    sim = Simulator(seed=8, latency_s=0.001)
    dns = sim.add_host("198.18.0.1/24", name="dns")
    me = sim.add_host("198.18.0.2/24", name="me")
    server = dns.call(lambda: DnsTestServer(dns.stack, RECORDS))
    me.stack.dns_servers = [dns.stack.addr]
    ws = Winsock(me)
    assert ws.WSAStartup(0x0202, WSADATA()) == 0
    yield ws, server
    sim.close()


def _hints(family: int, flags: int = 0) -> W.ADDRINFO:
    return W.ADDRINFO(flags, family, SOCK_STREAM, 0, 0, None, None)


def _entries(ai) -> list[tuple[int, int, str, int, int]]:
    out = []
    while ai is not None:
        sa = ai.ai_addr
        scope = getattr(sa, "sin6_scope_id", 0)
        out.append((ai.ai_family, ai.ai_addrlen, sa.addr, sa.port, scope))
        ai = ai.ai_next
    return out


def _qtypes(server) -> list[int]:
    return [q.questions[0].qtype for _, q in server.udp_queries]


def test_item_128_getaddrinfo_inet6(env) -> None:
    """getaddrinfo / GetAddrInfoW with AF_INET6: AAAA answers as 28-byte SOCKADDR_IN6 entries;
    AI_V4MAPPED maps A answers to ::ffff:a.b.c.d only when there is no AAAA, AI_ALL|AI_V4MAPPED
    returns both; no AAAA and no AI_V4MAPPED is WSANO_DATA; an IPv4 literal needs AI_V4MAPPED
    (else WSAHOST_NOT_FOUND); IPv6 literals (with a %scope) need no query; NULL node gives [::]
    with AI_PASSIVE, else [::1]; "localhost" is ::1."""
    ws, server = env
    rc, ai = ws.getaddrinfo("both.test", "80", _hints(AF_INET6))
    assert rc == 0 and ws.WSAGetLastError() == 0
    assert _entries(ai) == [(AF_INET6, 28, "2001:2::80", 80, 0), (AF_INET6, 28, "2001:2::81", 80, 0)]
    assert _qtypes(server) == [N.TYPE_AAAA]
    rc, ai = ws.GetAddrInfoW("v4.test", "7", _hints(AF_INET6, W.AI_V4MAPPED))
    assert rc == 0 and _entries(ai) == [(AF_INET6, 28, "::ffff:198.18.0.7", 7, 0)]
    rc, ai = ws.getaddrinfo("both.test", None, _hints(AF_INET6, W.AI_V4MAPPED))
    assert [e[2] for e in _entries(ai)] == ["2001:2::80", "2001:2::81"]  # AAAA found: no mapping
    rc, ai = ws.getaddrinfo("both.test", None, _hints(AF_INET6, W.AI_V4MAPPED | W.AI_ALL))
    assert [e[2] for e in _entries(ai)] == ["2001:2::80", "2001:2::81", "::ffff:198.18.0.80"]
    rc, ai = ws.getaddrinfo("v4.test", None, _hints(AF_INET6))
    assert (rc, ai, ws.WSAGetLastError()) == (W.WSANO_DATA, None, W.WSANO_DATA)
    rc, ai = ws.getaddrinfo("nope.test", None, _hints(AF_INET6, W.AI_V4MAPPED))
    assert (rc, ai) == (W.WSAHOST_NOT_FOUND, None)
    asked = len(server.udp_queries)
    rc, ai = ws.getaddrinfo("198.18.0.9", "1", _hints(AF_INET6, W.AI_V4MAPPED))
    assert _entries(ai) == [(AF_INET6, 28, "::ffff:198.18.0.9", 1, 0)]
    assert ws.getaddrinfo("198.18.0.9", "1", _hints(AF_INET6)) == (W.EAI_NONAME, None)
    rc, ai = ws.getaddrinfo("fe80::1%3", "22", _hints(0))
    assert _entries(ai) == [(AF_INET6, 28, "fe80::1", 22, 3)]
    rc, ai = ws.getaddrinfo("2001:2::1", None, _hints(AF_INET6, W.AI_NUMERICHOST))
    assert _entries(ai) == [(AF_INET6, 28, "2001:2::1", 0, 0)]
    assert ws.getaddrinfo("2001:2::1", None, _hints(AF_INET)) == (W.EAI_NONAME, None)
    rc, ai = ws.getaddrinfo(None, "5", _hints(AF_INET6, W.AI_PASSIVE))
    assert _entries(ai) == [(AF_INET6, 28, "::", 5, 0)]
    rc, ai = ws.getaddrinfo(None, "5", _hints(AF_INET6))
    assert _entries(ai) == [(AF_INET6, 28, "::1", 5, 0)]
    rc, ai = ws.getaddrinfo("localhost", "5", _hints(AF_INET6))
    assert _entries(ai) == [(AF_INET6, 28, "::1", 5, 0)]
    assert len(server.udp_queries) == asked  # literals, NULL and localhost: no DNS


def test_item_128_unspec_without_ipv6_address(env) -> None:
    """AF_UNSPEC on a host without a global IPv6 address asks A only and returns IPv4 entries
    (Windows' resolver sends AAAA queries only with one); IPv6 literals still come back as
    AF_INET6; gethostbyname stays IPv4-only (an IPv6-only name is WSANO_DATA, an IPv6 literal
    WSAHOST_NOT_FOUND)."""
    ws, server = env
    rc, ai = ws.getaddrinfo("both.test", "80", _hints(0))
    assert rc == 0 and _entries(ai) == [(AF_INET, 16, "198.18.0.80", 80, 0)]
    assert _qtypes(server) == [N.TYPE_A]
    assert ws.getaddrinfo("v6.test", None, _hints(0)) == (W.WSANO_DATA, None)
    rc, ai = ws.getaddrinfo("2001:2::5", "9", _hints(0))
    assert _entries(ai) == [(AF_INET6, 28, "2001:2::5", 9, 0)]
    h = ws.gethostbyname("both.test")
    assert (h.h_addrtype, h.h_length, h.h_addr_list) == (AF_INET, 4, [bytes([198, 18, 0, 80])])
    assert ws.gethostbyname("v6.test") is None and ws.WSAGetLastError() == W.WSANO_DATA
    before = len(server.udp_queries)
    assert ws.gethostbyname("2001:2::5") is None and ws.WSAGetLastError() == W.WSAHOST_NOT_FOUND
    assert len(server.udp_queries) == before
