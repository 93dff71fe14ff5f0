"""DHCPv4 client (RFC 2131) in virtual time: a Simulator LAN with a tiny DHCP server
(tests/services/simservers.py), the client running inside the client host's stack."""

from __future__ import annotations

import random

import pytest

from tests.services.simservers import DhcpTestServer
from ustack.runtime import Simulator
from ustack.services.dhcp import (
    BOUND,
    INIT,
    REBINDING,
    REBOOTING,
    RENEWING,
    SELECTING,
    DhcpClient,
    DhcpConfig,
    DhcpService,
)
from ustack.wire import dhcp as D
from ustack.wire.ipv4 import ip_int

SERVER = "198.18.0.1"
FAST_PROBE = DhcpConfig(probe_wait_s=0.2, probe_num=2, probe_min_s=0.2, probe_max_s=0.4, announce_wait_s=0.5)


def lan(seed: int = 1, pool: tuple[str, ...] = ("198.18.0.50", "198.18.0.51"), **server_kw):
    sim = Simulator(seed=seed)
    srv_host = sim.add_host(f"{SERVER}/24", name="server", medium="ethernet", link="lan")
    cli_host = sim.add_host("0.0.0.0/32", name="client", medium="ethernet", link="lan")
    server = srv_host.call(lambda: DhcpTestServer(srv_host.stack, list(pool), **server_kw))
    return sim, srv_host, cli_host, server


def start(host, config=FAST_PROBE, **kw) -> DhcpService:
    svc = DhcpService(host.stack, config=config, **kw)
    host.call(svc.start, host.now())
    return svc


def states(client: DhcpClient) -> list[str]:
    return [s for _, s in client.log]


def test_acquires_address_router_and_dns():
    sim, _, h, server = lan(lease_s=600)
    svc = start(h)
    sim.run_for(10)
    c = svc.client
    assert c.state == BOUND and states(c) == [INIT, SELECTING, "REQUESTING", "PROBING", BOUND]
    assert h.stack.addr == ip_int("198.18.0.50") and h.stack.routes.prefix == 24
    assert h.stack.routes.gateway == ip_int(SERVER)
    assert h.stack.dns_servers == [ip_int(SERVER)]
    (t, discover, dst), = server.received(D.DISCOVER)
    assert discover.flags & D.FLAG_BROADCAST and discover.options[D.OPT_CLIENT_ID] == b"\x01" + h.stack.mac
    assert set(discover.options[D.OPT_PARAM_LIST]) >= {1, 3, 6, 51}
    (_, request, _), = server.received(D.REQUEST)
    assert request.address(D.OPT_SERVER_ID) == ip_int(SERVER)
    assert request.address(D.OPT_REQUESTED_ADDR) == ip_int("198.18.0.50")
    assert request.xid == discover.xid and request.ciaddr == 0
    assert h.stack.counters.get("dhcp.probe_out") == 2 and h.stack.counters.get("dhcp.bound") == 1
    # the address works: the server host reaches us by unicast
    assert h.stack.counters.get("stack.internal_error") == 0


def test_discover_retransmission_backoff_4_8_16_with_jitter():
    sim, _, h, server = lan(lease_s=600)
    server.drop_discovers = 3
    svc = start(h)
    sim.run_for(60)
    times = [t for t, _, _ in server.received(D.DISCOVER)]
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    for gap, base in zip(gaps, (4, 8, 16), strict=True):
        assert base - 1 <= gap <= base + 1
    assert len({round(g - b, 6) for g, b in zip(gaps, (4, 8, 16), strict=True)}) > 1  # randomised
    assert svc.client.state == BOUND
    # the secs field counts from the first DISCOVER
    assert server.received(D.DISCOVER)[-1][1].secs == int(times[-1] - times[0])


def test_backoff_is_capped_at_64s_and_seeded():
    def run(seed):
        c = DhcpClient(b"\x02" * 6, random.Random(seed))
        c.start(0.0)
        sends = []
        t = 0.0
        for _ in range(9):
            sends.append(t)
            c.take_actions()
            t = c.poll_at()
            c.poll(t)
        return sends

    a = run(5)
    gaps = [y - x for x, y in zip(a, a[1:], strict=False)]
    assert all(63 <= g <= 65 for g in gaps[4:]) and 3 <= gaps[0] <= 5
    assert run(5) == a and run(6) != a


def test_renew_at_t1_unicast_then_bound_again():
    sim, _, h, server = lan(lease_s=100, t1_s=50, t2_s=90)
    svc = start(h)
    sim.run_for(5)
    t_req = svc.client.lease.start
    sim.run_for(50)
    renewals = [(t, m, dst) for t, m, dst in server.received(D.REQUEST) if m.ciaddr]
    (t, m, src), = renewals
    assert t == pytest.approx(t_req + 50, abs=0.01)
    assert src == ip_int("198.18.0.50")  # sent from our address
    assert D.OPT_SERVER_ID not in m.options and D.OPT_REQUESTED_ADDR not in m.options
    assert not m.flags & D.FLAG_BROADCAST
    assert RENEWING in states(svc.client) and svc.client.state == BOUND
    assert svc.client.lease.start == pytest.approx(t)  # lease now counts from the renewal
    assert h.stack.counters.get("dhcp.renewed") == 1 and h.stack.counters.get("dhcp.bound") == 1


def test_rebind_at_t2_broadcast_when_server_ignores_renewal():
    sim, _, h, server = lan(lease_s=200, t1_s=100, t2_s=175)
    observer = sim.add_host("198.18.0.9/24", name="observer", medium="ethernet", link="lan")
    heard = observer.call(observer.stack.udp.open)  # another host hears only broadcasts
    observer.call(heard.bind, 0, D.SERVER_PORT)
    svc = start(h)
    sim.run_for(5)
    t0 = svc.client.lease.start
    server.ignore_renewals = 2
    sim.run_for(180)
    reqs = [(t, m) for t, m, _ in server.received(D.REQUEST) if m.ciaddr]
    times = [round(t - t0, 3) for t, _ in reqs]
    # RENEWING at T1=100, retry after max(half of 75 s, 60 s) = 160, then REBINDING at T2=175
    assert times[:3] == [100.0, 160.0, 175.0]
    broadcasts = []
    while (item := observer.call(heard.recvfrom)) is not None:
        broadcasts.append(D.DhcpMessage.parse(item[0]))
    rebinds = [m.ciaddr for m in broadcasts if m.message_type == D.REQUEST and m.ciaddr]
    assert rebinds == [ip_int("198.18.0.50")]
    assert REBINDING in states(svc.client) and svc.client.state == BOUND
    assert h.stack.counters.get("dhcp.rebind_out") == 1 and h.stack.counters.get("dhcp.renew_out") == 2


def test_lease_expiry_removes_address_and_restarts():
    sim, _, h, server = lan(lease_s=120)
    svc = start(h)
    sim.run_for(5)
    start_t = svc.client.lease.start
    server.silent = True
    sim.run_for(120)
    assert h.stack.addr == 0 and h.stack.routes.gateway is None and h.stack.dns_servers == []
    assert h.stack.counters.get("dhcp.lease_expired") == 1
    assert svc.client.state == SELECTING  # back to INIT, DISCOVER sent at once
    expired_at = [t for t, s in svc.client.log if s == INIT][-1]
    assert expired_at == pytest.approx(start_t + 120)
    assert svc.client.lease is None


def test_init_reboot_with_remembered_address():
    sim, _, h, server = lan(lease_s=600)
    svc = start(h, remembered="198.18.0.51")
    sim.run_for(10)
    assert server.received(D.DISCOVER) == []
    (_, m, _), = server.received(D.REQUEST)
    assert m.address(D.OPT_REQUESTED_ADDR) == ip_int("198.18.0.51") and D.OPT_SERVER_ID not in m.options
    assert states(svc.client)[:1] == [REBOOTING] and svc.client.state == BOUND
    assert h.stack.addr == ip_int("198.18.0.51")


def test_nak_on_reboot_goes_back_to_init_and_gets_a_new_address():
    sim, _, h, server = lan(lease_s=600)
    svc = start(h, remembered="198.18.0.99")  # not in the server's pool
    sim.run_for(20)
    assert h.stack.counters.get("dhcp.nak_in") == 1
    assert states(svc.client)[:3] == [REBOOTING, INIT, SELECTING]
    assert svc.client.state == BOUND and h.stack.addr == ip_int("198.18.0.50")


def test_nak_on_renewal_drops_the_address():
    sim, _, h, server = lan(lease_s=100, t1_s=50, t2_s=90)
    svc = start(h)
    sim.run_for(5)
    server.nak_all = True
    server.bindings.clear()
    sim.run_for(50)
    renew_t = next(t for t, m, _ in server.received(D.REQUEST) if m.ciaddr)
    assert h.stack.counters.get("dhcp.nak_in") >= 1
    assert [t for t, s in svc.client.log if s == INIT][1] == pytest.approx(renew_t)  # dropped at once
    assert h.stack.addr == 0 and svc.client.state != BOUND


def test_decline_after_arp_conflict_then_next_address():
    sim, _, h, server = lan(lease_s=600)
    squatter = sim.add_host("198.18.0.50/24", name="squatter", medium="ethernet", link="lan")
    svc = start(h)
    sim.run_for(5)
    (_, decline, _), = server.received(D.DECLINE)
    assert decline.address(D.OPT_REQUESTED_ADDR) == ip_int("198.18.0.50")
    assert decline.address(D.OPT_SERVER_ID) == ip_int(SERVER)
    assert h.stack.counters.get("dhcp.conflict") == 1 and h.stack.addr == 0
    assert squatter.stack.counters.get("arp.addr_conflict") == 0  # probes never claim the address
    decline_t = server.received(D.DECLINE)[0][0]
    sim.run_for(15)
    assert server.received(D.DISCOVER)[1][0] >= decline_t + 10  # RFC 2131: wait 10 s
    assert svc.client.state == BOUND and h.stack.addr == ip_int("198.18.0.51")


def test_release_frees_the_lease():
    sim, _, h, server = lan(lease_s=600)
    svc = start(h)
    sim.run_for(5)
    h.call(svc.release, h.now())
    sim.run_for(1)
    assert server.released == [ip_int("198.18.0.50")] and h.stack.addr == 0
    (_, m, src), = server.received(D.RELEASE)
    assert src == ip_int("198.18.0.50") and m.ciaddr == src
    assert svc.client.poll_at() is None


def test_request_timeout_returns_to_init():
    sim, _, h, server = lan(lease_s=600)
    svc = start(h, remembered="198.18.0.51")
    server.silent = True
    sim.run_for(4 + 8 + 16 + 32 + 5)
    assert len(server.received(D.REQUEST)) == 4
    assert h.stack.counters.get("dhcp.request_timeout") == 1
    assert svc.client.state == SELECTING and server.received(D.DISCOVER)


def test_foreign_and_malformed_replies_are_counted_drops():
    c = DhcpClient(b"\x02\0\0\0\0\1", random.Random(1), probe=False)
    c.start(0.0)
    (send,) = c.take_actions()
    offer = D.DhcpMessage(D.BOOTREPLY, send.message.xid ^ 1, c.mac, {
        D.OPT_MESSAGE_TYPE: bytes((D.OFFER,)), D.OPT_SERVER_ID: bytes(4)}, yiaddr=5)
    c.on_message(offer.emit(), 1.0)
    c.on_message(b"\x02" * 50, 1.0)
    no_server_id = offer._replace(xid=send.message.xid, options={D.OPT_MESSAGE_TYPE: bytes((D.OFFER,))})
    c.on_message(no_server_id.emit(), 1.0)
    assert c.counters.get("dhcp.not_ours") == 1 and c.counters.get("dhcp.truncated") == 1
    assert c.counters.get("dhcp.bad_offer") == 1 and c.state == SELECTING


def test_every_service_counter_is_described():
    import re
    from pathlib import Path

    import ustack.services
    from ustack.core.counters import describe

    src = "".join(p.read_text() for p in Path(ustack.services.__file__).parent.glob("*.py"))
    names = set(re.findall(r'inc\("([a-z0-9_]+\.[a-z0-9_.]+)"', src))
    assert len(names) > 20 and [n for n in names if not describe(n)] == []


@pytest.mark.parametrize("yiaddr", ["0.1.2.3", "127.0.0.5", "224.0.0.9", "240.0.0.1", "198.18.0.255",
                                    "198.18.0.0"])
def test_ack_with_an_unusable_address_is_refused(yiaddr):
    """A hostile or broken server cannot make us loopback, multicast, class E or the subnet's
    network/broadcast address: the ACK is a counted drop and the client keeps waiting."""
    c = DhcpClient(b"\x02\0\0\0\0\1", random.Random(1), probe=False)
    c.start(0.0)
    (send,) = c.take_actions()
    server = ip_int("198.18.0.1").to_bytes(4, "big")
    offer = D.DhcpMessage(D.BOOTREPLY, send.message.xid, c.mac, {
        D.OPT_MESSAGE_TYPE: bytes((D.OFFER,)), D.OPT_SERVER_ID: server}, yiaddr=ip_int("198.18.0.50"))
    c.on_message(offer.emit(), 0.1)
    (req,) = c.take_actions()
    ack = offer._replace(xid=req.message.xid, yiaddr=ip_int(yiaddr), options={
        D.OPT_MESSAGE_TYPE: bytes((D.ACK,)), D.OPT_SERVER_ID: server,
        D.OPT_SUBNET_MASK: bytes([255, 255, 255, 0]), D.OPT_LEASE_TIME: (600).to_bytes(4, "big")})
    c.on_message(ack.emit(), 0.2)
    assert c.counters.get("dhcp.bad_ack") == 1 and c.state == "REQUESTING" and c.take_actions() == []
    good = ack._replace(yiaddr=ip_int("198.18.0.50"))
    c.on_message(good.emit(), 0.3)
    assert c.state == BOUND and c.lease.cidr == "198.18.0.50/24"
