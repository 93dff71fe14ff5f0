"""Public configuration changes the DHCP client relies on: set_address, attach, ARP probes."""

import pytest
from corehelpers import PEER, PEER_MAC, eth, make, udp_frame
from scapy.layers.l2 import ARP, Ether

from ustack.core import Reason
from ustack.wire import ArpPacket, Ipv4Packet, ip_int
from ustack.wire.arp import OP_REPLY

NEW = ip_int("198.18.5.9")


def test_unconfigured_host_reaches_only_the_limited_broadcast():
    s = make(addr="0.0.0.0/32")
    assert s.route(0xFFFFFFFF) == (0, 0xFFFFFFFF)
    assert s.route(PEER) is None
    assert s.send_ip(PEER, 17, b"x", 0.0) is Reason.NET_UNREACH
    assert s.send_ip(0xFFFFFFFF, 17, b"x", 0.0) is None
    (pkt,) = s.poll(0.0)
    ip = Ipv4Packet.parse(pkt)
    assert (ip.src, ip.dst) == (0, 0xFFFFFFFF)


def test_set_address_changes_routing_and_delivery():
    s = make(addr="198.18.0.2/24")
    sock = s.udp.open()
    sock.bind(0, 5000)
    assert s.route(NEW) is None or s.route(NEW)[1] == NEW
    s.set_address("198.18.5.9/16", "198.18.0.1")
    assert s.addr == NEW and s.config.addr == "198.18.5.9/16"
    assert s.route(ip_int("203.0.113.1")) == (NEW, ip_int("198.18.0.1"))  # via the new gateway
    s.receive(udp_frame(PEER, NEW, 1, 5000, b"hi"), 1.0)
    assert sock.recvfrom() == (b"hi", PEER, 1)
    s.receive(udp_frame(PEER, ip_int("198.18.0.2"), 1, 5000, b"old"), 1.0)
    assert sock.recvfrom() is None and s.counters.get("ipv4.not_for_us") == 1
    with pytest.raises(ValueError):
        s.set_address("198.18.5.9/24", "198.19.0.1")  # gateway off the prefix: nothing changes
    assert s.config.addr == "198.18.5.9/16"


def test_set_address_announces_on_ethernet():
    s = make(addr="0.0.0.0/32", medium="ethernet")
    s.set_address("198.18.5.9/24")
    (f,) = s.poll(0.0)
    a = Ether(f)[ARP]
    assert a.op == 1 and a.psrc == a.pdst == "198.18.5.9"


def test_probe_has_zero_sender_and_listeners_see_the_answer():
    s = make(addr="0.0.0.0/32", medium="ethernet")
    seen = []
    s.arp.listeners.append(lambda arp, now: seen.append((arp.op, arp.spa, now)))
    s.arp.probe(NEW)
    (f,) = s.poll(0.0)
    a = Ether(f)[ARP]
    assert Ether(f).dst == "ff:ff:ff:ff:ff:ff"
    assert (a.op, a.psrc, a.pdst, a.hwdst) == (1, "0.0.0.0", "198.18.5.9", "00:00:00:00:00:00")
    reply = ArpPacket(OP_REPLY, PEER_MAC, NEW, s.mac, 0).emit()
    s.receive(eth(s.mac, reply, ethertype=0x0806), 2.0)
    assert seen == [(OP_REPLY, NEW, 2.0)]
    assert s.counters.get("arp.addr_conflict") == 0 and NEW not in s.arp.entries


def test_attached_service_is_polled():
    s = make()

    class Svc:
        def __init__(self):
            self.polls = []

        def poll(self, now):
            self.polls.append(now)

        def poll_at(self):
            return 42.0

    svc = Svc()
    s.attach(svc)
    s.attach(svc)  # once only
    assert s.poll_at() == 42.0
    s.poll(42.0)
    assert svc.polls == [42.0]
    s.detach(svc)
    assert s.poll_at() is None
