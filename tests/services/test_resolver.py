"""DNS stub resolver in virtual time: tiny DNS servers in the Simulator (answers, NXDOMAIN,
SERVFAIL, truncation forcing TCP, a silent server forcing the retry to the second)."""

from __future__ import annotations

import pytest

from tests.services.simservers import DnsTestServer
from ustack.runtime import Simulator
from ustack.services.resolver import (
    NO_DATA,
    NOT_FOUND,
    TRY_AGAIN,
    HostsTable,
    ResolveError,
    Resolver,
    ResolverConfig,
)
from ustack.wire import dns as N

RECORDS = {"www.example.test": ["198.18.0.80", "198.18.0.81", "2001:2::80"], "v6only.test": ["2001:2::6"]}


def net(seed: int = 3):
    sim = Simulator(seed=seed, latency_s=0.001)
    dns1 = sim.add_host("198.18.0.1/24", name="dns1")
    dns2 = sim.add_host("198.18.0.3/24", name="dns2")
    client = sim.add_host("198.18.0.2/24", name="client")
    s1 = dns1.call(lambda: DnsTestServer(dns1.stack, RECORDS))
    s2 = dns2.call(lambda: DnsTestServer(dns2.stack, RECORDS))
    client.stack.dns_servers = [dns1.stack.addr, dns2.stack.addr]
    return sim, client, s1, s2


def test_a_and_aaaa_from_the_first_server():
    sim, client, s1, s2 = net()
    r = Resolver(client)
    assert r.resolve("www.example.test") == ["198.18.0.80", "198.18.0.81"]
    assert r.resolve("WWW.example.test.", N.TYPE_AAAA) == ["2001:2::80"]
    assert [q.questions[0].qtype for _, q in s1.udp_queries] == [N.TYPE_A, N.TYPE_AAAA]
    assert s1.udp_queries[0][1].flags & N.FLAG_RD and s2.udp_queries == []
    assert sim.now < 0.1  # answered in round trips, no timeout waited


def test_answers_are_cached_for_their_ttl():
    sim, client, s1, _ = net()
    r = Resolver(client)
    r.resolve("www.example.test")
    r.resolve("www.example.test")
    assert len(s1.udp_queries) == 1
    sim.run_for(61)
    r.resolve("www.example.test")
    assert len(s1.udp_queries) == 2


def test_nxdomain_is_final_and_no_data_is_distinct():
    sim, client, s1, s2 = net()
    r = Resolver(client)
    with pytest.raises(ResolveError) as e:
        r.resolve("nope.test")
    assert e.value.kind == NOT_FOUND and s2.udp_queries == []  # NXDOMAIN: no second server
    with pytest.raises(ResolveError) as e:
        r.resolve("v6only.test")
    assert e.value.kind == NO_DATA


def test_silent_first_server_retry_goes_to_the_second_after_the_timeout():
    sim, client, s1, s2 = net()
    s1.silent = True
    r = Resolver(client, config=ResolverConfig(timeout_s=2.0))
    t0 = sim.now
    assert r.resolve("www.example.test")[0] == "198.18.0.80"
    assert len(s1.udp_queries) == 0 and len(s2.udp_queries) == 1
    assert 2.0 <= s2.udp_queries[0][0] - t0 < 2.1
    assert client.stack.counters.get("dns.timeout") == 1


def test_every_server_silent_is_try_again_after_all_attempts():
    sim, client, s1, s2 = net()
    s1.silent = s2.silent = True
    r = Resolver(client, config=ResolverConfig(timeout_s=1.5, attempts=2))
    t0 = sim.now
    with pytest.raises(ResolveError) as e:
        r.resolve("www.example.test")
    assert e.value.kind == TRY_AGAIN
    assert [(srv, round(t - t0, 3)) for t, _, srv, _ in r.log] == [
        ("198.18.0.1", 0.0), ("198.18.0.3", 1.5), ("198.18.0.1", 3.0), ("198.18.0.3", 4.5)]


def test_servfail_moves_on_and_is_try_again_when_all_fail():
    sim, client, s1, s2 = net()
    s1.servfail = True
    r = Resolver(client)
    assert r.resolve("www.example.test")[0] == "198.18.0.80"
    assert len(s2.udp_queries) == 1
    s2.servfail = True
    with pytest.raises(ResolveError) as e:
        r.resolve("other.test")
    assert e.value.kind == TRY_AGAIN


def test_truncated_udp_answer_is_asked_again_over_tcp():
    sim, client, s1, _ = net()
    s1.truncate_udp = True
    r = Resolver(client)
    assert r.resolve("www.example.test") == ["198.18.0.80", "198.18.0.81"]
    assert len(s1.udp_queries) == 1 and len(s1.tcp_queries) == 1
    assert [t for _, t, _, _ in r.log] == ["udp", "tcp"]
    assert s1.tcp_queries[0][1].questions == s1.udp_queries[0][1].questions


def test_port_unreachable_moves_on_at_once():
    sim = Simulator(seed=4, latency_s=0.001)
    sim.add_host("198.18.0.1/24", name="nodns")  # no DNS server: answers ICMP port unreachable
    dns2 = sim.add_host("198.18.0.3/24", name="dns2")
    client = sim.add_host("198.18.0.2/24", name="client")
    s2 = dns2.call(lambda: DnsTestServer(dns2.stack, RECORDS))
    r = Resolver(client, servers=["198.18.0.1", "198.18.0.3"])
    assert r.resolve("www.example.test")[0] == "198.18.0.80"
    assert sim.now < 0.1 and len(s2.udp_queries) == 1
    assert client.stack.counters.get("dns.server_unreachable") == 1


def test_static_table_literals_and_no_servers():
    sim, client, s1, _ = net()
    client.stack.dns_servers = []
    table = HostsTable.parse("# comment\n198.18.0.9 box box.lan\n2001:2::9 box\nbad line\n")
    r = Resolver(client, hosts=table)
    assert r.resolve("BOX") == ["198.18.0.9"] and r.resolve("box", N.TYPE_AAAA) == ["2001:2::9"]
    assert r.resolve("198.18.0.44") == ["198.18.0.44"] and r.resolve("localhost") == ["127.0.0.1"]
    with pytest.raises(ResolveError) as e:
        r.resolve("www.example.test")
    assert e.value.kind == NOT_FOUND and s1.udp_queries == []
    with_server = Resolver(client, servers=["198.18.0.1"])
    for bad in ("a" * 70 + ".test", "", ".", "bad..name", "\udcff.test"):
        with pytest.raises(ResolveError) as e:
            with_server.resolve(bad)
        assert e.value.kind == NOT_FOUND
    assert s1.udp_queries == []


def test_mismatched_reply_is_ignored():
    """A reply with another id (a spoofing attempt, RFC 5452) is dropped and counted; the
    resolver keeps waiting for the real one."""
    sim, client, s1, _ = net()
    orig = s1.answer

    def forged_first(q, *, udp):
        s1.answer = orig
        s1.sock.sendto(N.DnsMessage(q.id ^ 0xFFFF, N.FLAG_QR, q.questions,
                                    (N.DnsRecord(q.questions[0].name, 1, 60, "198.18.0.66"),)).emit(),
                       client.stack.addr, s1.last_port, sim.now)
        return orig(q, udp=udp)

    s1.answer = forged_first
    s1.last_port = None

    real_poll = s1.poll

    def poll(now):
        item = s1.sock.peekfrom()
        if item is not None:
            s1.last_port = item[2]
        real_poll(now)

    s1.poll = poll
    r = Resolver(client)
    assert r.resolve("www.example.test")[0] == "198.18.0.80"
    assert client.stack.counters.get("dns.mismatched_reply") == 1
