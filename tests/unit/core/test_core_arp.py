"""Ethernet medium and ARP (RFC 826): replies, learning, retries, expiry, queue bound, GARP."""

import pytest
from corehelpers import ME, OTHER, PEER, PEER_MAC, eth, ips, make, udp_frame
from scapy.layers.l2 import ARP, Ether

from ustack.core import Reason
from ustack.wire import ArpPacket, EthernetFrame
from ustack.wire.arp import OP_REPLY, OP_REQUEST

BC = b"\xff" * 6


def arp_frame(op, sha, spa, tha, tpa, dst=BC):
    return eth(dst, ArpPacket(op, sha, spa, tha, tpa).emit(), src_mac=sha, ethertype=0x0806)


def decode_arp(frame):
    e = EthernetFrame.parse(frame)
    assert e.ethertype == 0x0806
    return e, ArpPacket.parse(e.payload)


def resolve(s, ip=PEER, mac=PEER_MAC, now=0.0):
    """Answer the stack's outstanding request for `ip`."""
    s.receive(arp_frame(OP_REPLY, mac, ip, s.mac, ME, dst=s.mac), now)


def test_mac_random_locally_administered_unicast_and_seeded():
    a, b = make(medium="ethernet", seed=1), make(medium="ethernet", seed=1)
    c = make(medium="ethernet", seed=2)
    assert a.mac == b.mac != c.mac
    assert a.mac[0] & 0x02 and not a.mac[0] & 0x01
    assert make(medium="ethernet", mac=bytes.fromhex("020102030405")).mac == bytes.fromhex("020102030405")


def test_gratuitous_arp_on_start(estack):
    estack.start(0.0)
    (f,) = estack.poll(0.0)
    e, a = decode_arp(f)
    assert e.dst == BC and e.src == estack.mac
    assert (a.op, a.sha, a.spa, a.tpa) == (OP_REQUEST, estack.mac, ME, ME)
    sc = Ether(f)  # scapy agrees
    assert sc[ARP].psrc == sc[ARP].pdst == "198.18.0.2" and sc[ARP].op == 1
    assert estack.counters.get("arp.gratuitous_out") == 1


def test_tun_start_sends_nothing(stack):
    stack.start(0.0)
    assert stack.poll(0.0) == []


def test_reply_to_request_for_us_and_learn_sender(estack):
    estack.receive(arp_frame(OP_REQUEST, PEER_MAC, PEER, b"\0" * 6, ME), 0.0)
    (f,) = estack.poll(0.0)
    e, a = decode_arp(f)
    assert e.dst == PEER_MAC
    assert (a.op, a.sha, a.spa, a.tha, a.tpa) == (OP_REPLY, estack.mac, ME, PEER_MAC, PEER)
    sc = Ether(f)
    assert sc[ARP].op == 2 and sc[ARP].hwsrc == ":".join(f"{x:02x}" for x in estack.mac)
    # learned: sending to PEER needs no request now
    estack.send_ip(PEER, 253, b"x", 0.1)
    (f,) = estack.poll(0.1)
    assert EthernetFrame.parse(f).dst == PEER_MAC
    assert estack.counters.get("arp.requests_out") == 0


def test_request_for_someone_else_ignored_and_not_learned(estack):
    estack.receive(arp_frame(OP_REQUEST, PEER_MAC, PEER, b"\0" * 6, OTHER), 0.0)
    assert estack.poll(0.0) == []
    estack.send_ip(PEER, 253, b"x", 0.0)
    (f,) = estack.poll(0.0)
    assert decode_arp(f)[1].op == OP_REQUEST  # not learned from a request aimed elsewhere


def test_unsolicited_reply_ignored(estack):
    estack.receive(arp_frame(OP_REPLY, PEER_MAC, OTHER, estack.mac, ME, dst=estack.mac), 0.0)
    assert estack.counters.get("arp.unsolicited") == 1
    assert OTHER not in estack.arp.entries


def test_conflicting_claim_of_our_address_counted(estack):
    estack.receive(arp_frame(OP_REQUEST, PEER_MAC, ME, b"\0" * 6, ME), 0.0)
    assert estack.counters.get("arp.addr_conflict") == 1
    assert estack.poll(0.0) == []


def test_resolution_then_queued_packets_flushed_in_order(estack):
    for i in range(3):
        assert estack.send_ip(PEER, 253, bytes([i]), 0.0) is None
    (req,) = estack.poll(0.0)
    e, a = decode_arp(req)
    assert (e.dst, a.op, a.tpa, a.spa, a.sha) == (BC, OP_REQUEST, PEER, ME, estack.mac)
    resolve(estack, now=0.2)
    out = estack.poll(0.2)
    assert [bytes(p.payload) for p in ips(out, "ethernet")] == [b"\0", b"\1", b"\2"]
    assert all(EthernetFrame.parse(f).dst == PEER_MAC for f in out)
    assert estack.poll_at() is None


def test_three_tries_one_second_apart_then_host_unreach(estack):
    u = estack.udp.open()
    u.sendto(b"hello", OTHER, 53, 0.0)
    reqs = estack.poll(0.0)
    assert len(reqs) == 1
    assert estack.poll_at() == 1.0
    assert estack.poll(0.5) == []
    assert len(estack.poll(1.0)) == 1
    assert estack.poll_at() == 2.0
    assert len(estack.poll(2.0)) == 1
    assert u.error is None
    assert estack.poll(3.0) == []  # third request unanswered for 1 s: give up
    assert u.error is Reason.HOST_UNREACH
    assert estack.counters.get("arp.requests_out") == 3
    assert estack.counters.get("arp.resolve_failed") == 1
    assert estack.poll_at() is None


def test_arp_failure_reaches_transport_hook(estack):
    calls = []

    class Fake:
        proto = 200

        def on_packet(self, ip, now, rx): ...

        def on_icmp_error(self, kind, quoted, payload, mtu, now):
            calls.append((kind, quoted.dst, quoted.proto, payload, mtu, now))

        def poll(self, now): ...

        def poll_at(self):
            return None

    estack.register(Fake())
    estack.send_ip(OTHER, 200, b"syn-ish!", 0.0)
    for t in (0.0, 1.0, 2.0, 3.0):
        estack.poll(t)
    assert calls == [(Reason.HOST_UNREACH, OTHER, 200, b"syn-ish!", 0, 3.0)]


def test_queue_bounded_oldest_dropped():
    s = make(medium="ethernet", arp_queue_limit=4)
    for i in range(10):
        s.send_ip(PEER, 253, bytes([i]), 0.0)
    s.poll(0.0)
    assert s.counters.get("arp.queue_overflow") == 6
    resolve(s)
    assert [bytes(p.payload) for p in ips(s.poll(0.0), "ethernet")] == [bytes([i]) for i in range(6, 10)]


def test_cache_expiry_triggers_new_request():
    s = make(medium="ethernet", arp_cache_ttl_s=60.0, arp_refresh_s=0)
    s.send_ip(PEER, 253, b"a", 0.0)
    s.poll(0.0)
    resolve(s)
    s.poll(0.0)
    s.send_ip(PEER, 253, b"b", 59.0)
    (f,) = s.poll(59.0)
    assert EthernetFrame.parse(f).ethertype == 0x0800  # still cached
    s.send_ip(PEER, 253, b"c", 60.5)
    (f,) = s.poll(60.5)
    assert decode_arp(f)[1].op == OP_REQUEST
    assert s.counters.get("arp.expired") == 1


def learned(**kw):
    s = make(medium="ethernet", arp_cache_ttl_s=60.0, **kw)
    s.send_ip(PEER, 253, b"a", 0.0)
    s.poll(0.0)
    resolve(s)
    s.poll(0.0)
    return s


def test_entry_in_use_is_refreshed_by_unicast_before_it_expires():
    s = learned()
    s.send_ip(PEER, 253, b"b", 54.0)  # more than 5 s left: used as is
    (f,) = s.poll(54.0)
    assert EthernetFrame.parse(f).ethertype == 0x0800
    s.send_ip(PEER, 253, b"c", 55.5)  # inside the refresh window
    probe, data = s.poll(55.5)
    assert EthernetFrame.parse(data).dst == PEER_MAC  # the packet does not wait
    e, a = decode_arp(probe)
    assert e.dst == PEER_MAC and (a.op, a.tpa, a.spa) == (OP_REQUEST, PEER, ME)  # unicast, not BC
    s.send_ip(PEER, 253, b"d", 56.0)  # a probe is outstanding: none more within arp_retry_s
    assert len(s.poll(56.0)) == 1
    resolve(s, now=56.1)  # the peer answers: the entry lives 60 s from now
    assert s.arp.entries[PEER][1] == pytest.approx(116.1) and not s.arp.refreshing
    s.send_ip(PEER, 253, b"e", 100.0)
    (f,) = s.poll(100.0)
    assert EthernetFrame.parse(f).dst == PEER_MAC
    c = s.counters
    assert (c.get("arp.refresh_out"), c.get("arp.requests_out"), c.get("arp.expired")) == (1, 2, 0)


def test_unanswered_refresh_repeats_each_retry_then_the_entry_expires():
    s = learned()
    probes = 0
    for t in (55.0, 55.5, 56.0, 57.0, 59.9):
        s.send_ip(PEER, 253, b"x", t)
        probes += sum(EthernetFrame.parse(f).ethertype == 0x0806 for f in s.poll(t))
    assert probes == 4  # 55.0, 56.0, 57.0, 59.9 (55.5 is within arp_retry_s of the first)
    s.send_ip(PEER, 253, b"y", 60.0)
    (f,) = s.poll(60.0)
    e, a = decode_arp(f)
    assert e.dst == BC and a.op == OP_REQUEST  # expired: resolved from scratch
    assert s.counters.get("arp.expired") == 1 and not s.arp.refreshing


def test_idle_entry_is_not_refreshed():
    s = learned()
    for t in (50.0, 56.0, 59.0):
        assert s.poll(t) == []
    assert s.poll_at() is None
    assert s.counters.get("arp.refresh_out") == 0


def test_broadcast_needs_no_arp(estack):
    estack.send_ip(0xFFFFFFFF, 253, b"b", 0.0)
    estack.send_ip(ip_bcast := (ME | 0xFF), 253, b"d", 0.0)
    out = estack.poll(0.0)
    assert [EthernetFrame.parse(f).dst for f in out] == [BC, BC]
    assert ip_bcast == 0xC61200FF


def test_frame_for_other_mac_dropped(estack):
    u = estack.udp.open()
    u.bind(0, 9)
    estack.receive(eth(b"\x02\0\0\0\0\x99", udp_frame(PEER, ME, 1, 9, b"x")), 0.0)
    assert estack.counters.get("ethernet.not_for_us") == 1
    assert u.recvfrom() is None
    estack.receive(eth(estack.mac, udp_frame(PEER, ME, 1, 9, b"x")), 0.0)
    assert u.recvfrom() == (b"x", PEER, 1)


def test_unicast_ip_in_link_broadcast_dropped(estack):
    u = estack.udp.open()
    u.bind(0, 9)
    estack.receive(eth(BC, udp_frame(PEER, ME, 1, 9, b"x")), 0.0)
    assert estack.counters.get("ipv4.link_broadcast_unicast") == 1
    assert u.recvfrom() is None
    estack.receive(eth(BC, udp_frame(PEER, 0xFFFFFFFF, 1, 9, b"y")), 0.0)
    assert u.recvfrom() == (b"y", PEER, 1)


@pytest.mark.parametrize("frame,counter", [
    (b"\x01" * 10, "ethernet.truncated"),
    (eth(b"\xff" * 6, b"", ethertype=0x0100), "ethernet.not_ethernet_ii"),
    (eth(b"\xff" * 6, b"x" * 40, ethertype=0x86DD), "ipv6.disabled"),  # no addr6: IPv6 off on TAP
    (eth(b"\xff" * 6, b"x" * 40, ethertype=0x88CC), "ethernet.unknown_type"),
    (eth(b"\xff" * 6, b"x" * 10, ethertype=0x0806), "arp.truncated"),
])
def test_bad_ethernet_frames_counted(estack, frame, counter):
    estack.receive(frame, 0.0)
    assert estack.counters.get(counter) == 1
    assert estack.poll(0.0) == []


def test_own_reflected_frame_dropped(estack):
    estack.receive(arp_frame(OP_REQUEST, estack.mac, ME, b"\0" * 6, ME), 0.0)
    assert estack.counters.get("ethernet.own_frame") == 1


def test_arp_probe_for_our_address_is_defended(estack):
    # RFC 5227 probe: sender IP 0.0.0.0 asks who has our address; we answer, learn nothing
    estack.receive(arp_frame(OP_REQUEST, PEER_MAC, 0, b"\0" * 6, ME), 0.0)
    (f,) = estack.poll(0.0)
    e, a = decode_arp(f)
    assert (a.op, a.spa, a.tha, a.tpa, e.dst) == (OP_REPLY, ME, PEER_MAC, 0, PEER_MAC)
    assert 0 not in estack.arp.entries


def test_gratuitous_arp_updates_known_entry(estack):
    estack.receive(arp_frame(OP_REQUEST, PEER_MAC, PEER, b"\0" * 6, ME), 0.0)
    estack.poll(0.0)
    new_mac = bytes.fromhex("020000000042")
    estack.receive(arp_frame(OP_REQUEST, new_mac, PEER, b"\0" * 6, PEER), 1.0)
    assert estack.poll(1.0) == []  # a gratuitous ARP is not answered
    estack.send_ip(PEER, 253, b"x", 1.0)
    (f,) = estack.poll(1.0)
    assert EthernetFrame.parse(f).dst == new_mac


def test_multicast_sender_mac_rejected(estack):
    estack.receive(arp_frame(OP_REQUEST, b"\x01\0\x5e\0\0\1", PEER, b"\0" * 6, ME), 0.0)
    assert estack.counters.get("arp.bad_sender") == 1
    assert estack.poll(0.0) == []


def test_cache_and_pending_are_bounded():
    s = make(medium="ethernet", arp_cache_limit=8, arp_pending_limit=4)
    for i in range(20):
        mac = bytes([2, 0, 0, 0, 1, i])
        s.receive(arp_frame(OP_REQUEST, mac, 0xC6120100 + i, b"\0" * 6, ME), float(i))
    assert len(s.arp.entries) == 8
    assert s.counters.get("arp.cache_evicted") == 12
    assert 0xC6120100 + 19 in s.arp.entries and 0xC6120100 not in s.arp.entries
    s.poll(20.0)
    for i in range(10):
        s.send_ip(0xC6120010 + i, 253, b"x", 20.0)
    assert len(s.arp.pending) == 4
    assert s.counters.get("arp.pending_overflow") == 6
