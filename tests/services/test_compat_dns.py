"""The CPython-socket layer (ustack.compat) asks the host's DNS servers for names /etc/hosts
does not know, over ustack's own UDP; without DNS servers it stays as before (EAI_NONAME)."""

from __future__ import annotations

import socket as pysocket

import pytest

from tests.services.simservers import DnsTestServer
from ustack.compat import socket_module
from ustack.runtime import Simulator


@pytest.fixture
def env():
    sim = Simulator(seed=5, latency_s=0.001)
    dns = sim.add_host("198.18.0.1/24", name="dns")
    me = sim.add_host("198.18.0.2/24", name="me")
    records = {"echo.test": ["198.18.0.1"], "v6.test": ["2001:2::1"]}
    server = dns.call(lambda: DnsTestServer(dns.stack, records))
    yield sim, dns, me, server
    sim.close()


def test_no_dns_servers_means_no_dns(env):
    sim, dns, me, server = env
    mod = socket_module(me)
    with pytest.raises(pysocket.gaierror) as e:
        mod.getaddrinfo("echo.test", 7)
    assert e.value.errno == pysocket.EAI_NONAME and server.udp_queries == []


def test_getaddrinfo_and_connect_by_name(env):
    sim, dns, me, server = env
    me.stack.dns_servers = [dns.stack.addr]
    mod = socket_module(me)
    infos = mod.getaddrinfo("echo.test", 7, type=pysocket.SOCK_DGRAM)
    assert infos == [(pysocket.AF_INET, pysocket.SOCK_DGRAM, 17, "", ("198.18.0.1", 7))]
    assert mod.gethostbyname("echo.test") == "198.18.0.1"
    assert mod.gethostbyname("localhost") == "127.0.0.1"  # still no DNS for that
    with pytest.raises(pysocket.gaierror) as e:
        mod.gethostbyname("nope.test")
    assert e.value.errno == pysocket.EAI_NONAME
    with pytest.raises(pysocket.gaierror) as e:
        mod.gethostbyname("v6.test")
    assert e.value.errno == pysocket.EAI_NODATA
    # a UDP sendto by name goes where DNS says
    echo = dns.call(dns.stack.udp.open)
    dns.call(echo.bind, 0, 7)
    s = mod.socket(pysocket.AF_INET, pysocket.SOCK_DGRAM)
    s.sendto(b"hi", ("echo.test", 7))
    sim.run_for(0.1)
    assert dns.call(echo.recvfrom)[0] == b"hi"
    s.close()
    server.silent = True
    with pytest.raises(pysocket.gaierror) as e:
        mod.gethostbyname("slow.test")
    assert e.value.errno == pysocket.EAI_AGAIN
