"""IPv6 on TAP (sans-I/O, virtual time): neighbour discovery (RFC 4861), DAD and SLAAC
(RFC 4862), RFC 7217 identifiers. Frames are crafted and decoded with scapy."""

from __future__ import annotations

import scapy.all as sc
from corehelpers import assert_no_internal_error
from ipv6helpers import (
    EXPERIMENTAL,
    ME6,
    MY_LL6,
    MY_MAC,
    PEER,
    PEER6,
    PEER_LL6,
    PEER_MAC,
    Recorder,
    checksum_ok,
    make_tap,
    tap_frame,
    v6,
)

from ustack.core import Reason
from ustack.core.addrconf import stable_iid
from ustack.core.ndp import DELAY, PROBE, REACHABLE, STALE
from ustack.wire.ipv6 import ip6_int, ip6_str

SOLICITED_PEER = "ff02::1:ff00:1"


def frames(s, now):
    return [sc.Ether(f) for f in s.poll(now)]


def na(target: str, s=1, o=1, r=0, mac=PEER_MAC, dst=ME6, src=None, hlim=255):
    return tap_frame(v6(src=src or target, dst=dst, hlim=hlim) / sc.ICMPv6ND_NA(tgt=target, S=s, O=o, R=r)
                     / sc.ICMPv6NDOptDstLLAddr(lladdr=mac))


def test_neighbor_solicitation_for_our_address_answered() -> None:
    s = make_tap(dad_transmits=0)
    s.receive(tap_frame(v6(dst="ff02::1:ff00:2", hlim=255) / sc.ICMPv6ND_NS(tgt=ME6)
                        / sc.ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC), dst_mac="33:33:ff:00:00:02"), 0.0)
    (f,) = frames(s, 0.0)
    a = f[sc.ICMPv6ND_NA]
    ip = f[sc.IPv6]
    assert (f.dst, f.src, ip.src, ip.dst, ip.hlim) == (PEER_MAC, MY_MAC, ME6, PEER6, 255)
    assert (a.tgt, a.S, a.O, a.R, f[sc.ICMPv6NDOptDstLLAddr].lladdr) == (ME6, 1, 1, 0, MY_MAC)
    assert checksum_ok(f[sc.IPv6])
    assert s.ipv6.ndp.lookup(PEER).state == STALE  # learned from the SLLA (7.2.3)
    assert_no_internal_error(s)


def test_nd_messages_need_hop_limit_255() -> None:
    s = make_tap(dad_transmits=0)
    s.receive(tap_frame(v6(dst="ff02::1:ff00:2", hlim=64) / sc.ICMPv6ND_NS(tgt=ME6)
                        / sc.ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC), dst_mac="33:33:ff:00:00:02"), 0.0)
    assert s.poll(0.0) == [] and s.counters.get("ndp.bad_hop_limit") == 1


def test_resolution_queues_then_flushes_and_reaches_reachable() -> None:
    s = make_tap(dad_transmits=0)
    for i in range(3):
        assert s.send_ip6(PEER, EXPERIMENTAL, bytes([i]) * 8, 0.0) is None
    (ns,) = frames(s, 0.0)
    assert (ns.dst, ns[sc.IPv6].dst, ns[sc.IPv6].hlim) == ("33:33:ff:00:00:01", SOLICITED_PEER, 255)
    assert (ns[sc.ICMPv6ND_NS].tgt, ns[sc.ICMPv6NDOptSrcLLAddr].lladdr) == (PEER6, MY_MAC)
    assert ns[sc.IPv6].src == ME6  # the source of the packet that prompted it (7.2.2)
    s.receive(na(PEER6), 0.3)
    out = frames(s, 0.3)
    assert [bytes(f[sc.IPv6].payload) for f in out] == [bytes([i]) * 8 for i in range(3)]
    assert all(f.dst == PEER_MAC for f in out)
    n = s.ipv6.ndp.lookup(PEER)
    assert n.state == REACHABLE


def test_resolution_failure_reports_host_unreachable() -> None:
    s = make_tap(dad_transmits=0)
    rec = Recorder()
    s.register(rec)
    s.send_ip6(PEER, EXPERIMENTAL, b"abcdefgh", 0.0)
    sent = [len(frames(s, t)) for t in (0.0, 1.0, 2.0)]
    assert sent == [1, 1, 1]  # MAX_MULTICAST_SOLICIT = 3, RetransTimer 1 s
    assert s.poll(3.0) == []
    ((kind, quoted, data, _),) = rec.errors
    assert (kind, quoted.dst, data) == (Reason.HOST_UNREACH, PEER, b"abcdefgh")
    assert s.ipv6.ndp.lookup(PEER) is None and s.counters.get("ndp.resolve_failed") == 1


def test_queue_per_neighbor_is_bounded() -> None:
    s = make_tap(dad_transmits=0, nd_queue_limit=4)
    for i in range(10):
        s.send_ip6(PEER, EXPERIMENTAL, bytes([i]) * 8, 0.0)
    s.poll(0.0)
    s.receive(na(PEER6), 0.1)
    got = [bytes(f[sc.IPv6].payload)[0] for f in frames(s, 0.1)]
    assert got == [6, 7, 8, 9] and s.counters.get("ndp.queue_overflow") == 6


def test_unreachability_detection_stale_delay_probe_then_gone() -> None:
    s = make_tap(dad_transmits=0, nd_reachable_s=10.0)
    s.send_ip6(PEER, EXPERIMENTAL, b"1" * 8, 0.0)
    s.poll(0.0)
    s.receive(na(PEER6), 0.1)
    s.poll(0.1)
    n = s.ipv6.ndp.lookup(PEER)
    assert n.state == REACHABLE
    s.send_ip6(PEER, EXPERIMENTAL, b"2" * 8, 20.0)  # past ReachableTime (<= 15 s): stale -> delay
    assert len(s.poll(20.0)) == 1 and n.state == DELAY
    assert s.poll_at() == 25.0
    (probe,) = frames(s, 25.0)
    assert n.state == PROBE
    assert (probe.dst, probe[sc.IPv6].dst) == (PEER_MAC, PEER6)  # unicast probe
    assert len(s.poll(26.0)) == 1 and len(s.poll(27.0)) == 1
    assert s.poll(28.0) == [] and s.ipv6.ndp.lookup(PEER) is None
    assert s.counters.get("ndp.unreachable") == 1


def test_probe_answered_makes_it_reachable_again() -> None:
    s = make_tap(dad_transmits=0, nd_reachable_s=10.0)
    s.receive(tap_frame(v6(dst="ff02::1:ff00:2", hlim=255) / sc.ICMPv6ND_NS(tgt=ME6)
                        / sc.ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC), dst_mac="33:33:ff:00:00:02"), 0.0)
    s.poll(0.0)
    s.send_ip6(PEER, EXPERIMENTAL, b"x" * 8, 1.0)  # STALE -> DELAY
    s.poll(1.0)
    frames(s, 6.0)  # probe
    s.receive(na(PEER6), 6.2)
    assert s.ipv6.ndp.lookup(PEER).state == REACHABLE and s.ipv6.ndp.poll_at() is None


def test_na_without_override_does_not_replace_a_known_address() -> None:
    s = make_tap(dad_transmits=0)
    s.send_ip6(PEER, EXPERIMENTAL, b"x" * 8, 0.0)
    s.poll(0.0)
    s.receive(na(PEER6), 0.1)
    s.receive(na(PEER6, s=0, o=0, mac="02:00:00:00:00:66"), 0.2)
    n = s.ipv6.ndp.lookup(PEER)
    assert n.mac == bytes.fromhex("020000000001") and n.state == STALE
    s.receive(na(PEER6, s=0, o=1, mac="02:00:00:00:00:66"), 0.3)
    assert n.mac == bytes.fromhex("020000000066")


def test_dad_runs_on_start_and_then_the_address_is_used() -> None:
    s = make_tap()
    addrs = s.ipv6.addrs
    assert addrs.is_tentative(ip6_int(ME6)) and addrs.is_tentative(ip6_int(MY_LL6))
    assert s.send_ip6(PEER, EXPERIMENTAL, b"x", 0.0) is Reason.NET_UNREACH  # no usable source
    s.start(0.0)
    t = s.poll_at()
    assert 0.0 <= t <= 1.0  # a random delay before the first solicitation (RFC 4862 5.4.2)
    dad = [f for f in frames(s, 1.0) if sc.ICMPv6ND_NS in f]
    assert sorted(f[sc.ICMPv6ND_NS].tgt for f in dad) == sorted([ME6, MY_LL6])
    for f in dad:
        assert f[sc.IPv6].src == "::" and sc.ICMPv6NDOptSrcLLAddr not in f
        assert f[sc.IPv6].dst == "ff02::1:ff00:2" and f.dst == "33:33:ff:00:00:02"
    # a packet for a tentative address is not taken (5.4)
    s.receive(tap_frame(v6() / sc.ICMPv6EchoRequest()), 1.5)
    assert s.counters.get("ipv6.not_for_us") == 1
    s.poll(2.0)
    assert not addrs.is_tentative(ip6_int(ME6)) and s.counters.get("ipv6.dad_ok") == 2
    assert s.send_ip6(PEER, EXPERIMENTAL, b"x", 2.0) is None


def test_dad_conflict_by_advertisement_keeps_the_address_unused() -> None:
    s = make_tap()
    s.start(0.0)
    s.poll(1.0)
    s.receive(na(ME6, s=0, dst="ff02::1", mac=PEER_MAC), 1.2)
    assert ip6_int(ME6) not in s.ipv6.addrs.addresses and ip6_int(ME6) in s.ipv6.addrs.duplicates
    assert s.counters.get("ipv6.dad_duplicate") == 1
    s.poll(3.0)
    assert s.send_ip6(PEER, EXPERIMENTAL, b"x", 3.0, src=ip6_int(ME6)) is Reason.ADDR_NOT_AVAIL
    s.receive(tap_frame(v6() / sc.ICMPv6EchoRequest()), 3.0)
    assert s.counters.get("ipv6.not_for_us") == 1


def test_dad_conflict_by_simultaneous_probe() -> None:
    s = make_tap()
    s.start(0.0)
    s.poll(1.0)
    s.receive(tap_frame(v6(src="::", dst="ff02::1:ff00:2", hlim=255) / sc.ICMPv6ND_NS(tgt=ME6),
                        dst_mac="33:33:ff:00:00:02"), 1.1)
    assert s.counters.get("ipv6.dad_duplicate") == 1


def test_we_defend_our_address_against_a_dad_probe() -> None:
    s = make_tap(dad_transmits=0)
    s.receive(tap_frame(v6(src="::", dst="ff02::1:ff00:2", hlim=255) / sc.ICMPv6ND_NS(tgt=ME6),
                        dst_mac="33:33:ff:00:00:02"), 0.0)
    (f,) = frames(s, 0.0)
    assert (f[sc.IPv6].dst, f.dst) == ("ff02::1", "33:33:00:00:00:01")
    assert (f[sc.ICMPv6ND_NA].tgt, f[sc.ICMPv6ND_NA].S) == (ME6, 0)


def ra(prefix="2001:2:0:1::", valid=3600, preferred=1800, lifetime=1800, mtu=None, a=1, src=PEER_LL6,
       plen=64, hlim=255):
    p = (v6(src=src, dst="ff02::1", hlim=hlim) / sc.ICMPv6ND_RA(routerlifetime=lifetime, chlim=60)
         / sc.ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
         / sc.ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=plen, L=1, A=a, validlifetime=valid,
                                    preferredlifetime=preferred))
    if mtu:
        p = p / sc.ICMPv6NDOptMTU(mtu=mtu)
    return tap_frame(p, dst_mac="33:33:00:00:00:01")


def test_slaac_router_solicitation_address_and_default_router() -> None:
    s = make_tap(addr6=None, slaac=True)
    s.start(0.0)
    out = frames(s, 1.0) + frames(s, 2.0)
    rs = [f for f in out if sc.ICMPv6ND_RS in f]
    assert rs and rs[0][sc.IPv6].dst == "ff02::2" and rs[0][sc.IPv6].hlim == 255
    s.receive(ra(mtu=1400), 2.5)
    slaac = [a for a in s.ipv6.addrs.addresses.values() if a.origin == "slaac"]
    (a,) = slaac
    assert ip6_str(a.addr) == "2001:2:0:1:0:ff:fe00:2" and a.state == "tentative"
    assert s.ipv6.link_mtu == 1400 and s.ipv6.hop_limit == 60
    assert s.ipv6.addrs.default_router() == ip6_int(PEER_LL6)
    frames(s, 2.5)
    frames(s, 3.5)  # DAD done
    assert a.state == "preferred"
    # off-link destination: through the router's MAC (learned from the RA's SLLA)
    far = ip6_int("2001:2:99::9")
    assert s.send_ip6(far, EXPERIMENTAL, b"far away", 4.0) is None
    (f,) = frames(s, 4.0)
    assert (f.dst, f[sc.IPv6].src, f[sc.IPv6].dst) == (PEER_MAC, ip6_str(a.addr), "2001:2:99::9")
    # lifetimes: deprecated after the preferred lifetime, gone after the valid one
    s.poll(2.5 + 1800)
    assert a.state == "deprecated"
    s.poll(2.5 + 3600)
    assert a.addr not in s.ipv6.addrs.addresses
    assert s.ipv6.addrs.default_router() is None  # router lifetime 1800 s also ran out
    assert_no_internal_error(s)


def test_ra_rules() -> None:
    s = make_tap(addr6=None, slaac=True, dad_transmits=0)
    s.receive(ra(src="2001:2::1"), 0.0)  # not link-local
    s.receive(ra(hlim=64), 0.0)  # not from this link
    s.receive(ra(prefix="fe80::"), 0.0)
    s.receive(ra(valid=100, preferred=200), 0.0)
    s.receive(ra(plen=48, prefix="2001:2:5::"), 0.0)
    assert [a.origin for a in s.ipv6.addrs.addresses.values()] == ["link-local"]
    for c in ("ndp.ra_bad_source", "ndp.bad_hop_limit", "ipv6.ra_link_local_prefix",
              "ipv6.slaac_bad_lifetimes", "ipv6.slaac_bad_prefix_length"):
        assert s.counters.get(c) == 1, c
    # 5.5.3(e): a forged short valid lifetime cannot cut an address below two hours
    s.receive(ra(valid=86400, preferred=86400), 0.0)
    (a,) = [a for a in s.ipv6.addrs.addresses.values() if a.origin == "slaac"]
    s.receive(ra(valid=10, preferred=10), 1.0)
    assert a.valid_until == 1.0 + 7200
    s.receive(ra(lifetime=0), 2.0)
    assert s.ipv6.addrs.default_router() is None


def test_stable_privacy_identifiers_rfc7217() -> None:
    s = make_tap(addr6=None, slaac=True, dad_transmits=0, ipv6_stable_privacy=True, ipv6_secret=b"k" * 16)
    s.receive(ra(), 0.0)
    s.receive(ra(prefix="2001:2:0:2::"), 0.0)
    addrs = [a.addr for a in s.ipv6.addrs.addresses.values() if a.origin == "slaac"]
    iids = {a & ((1 << 64) - 1) for a in addrs}
    assert len(iids) == 2  # a different identifier per prefix
    assert 0xFFFE000000 not in {(i >> 16) & 0xFFFF000000 for i in iids}  # not EUI-64-shaped
    again = make_tap(addr6=None, slaac=True, dad_transmits=0, ipv6_stable_privacy=True, ipv6_secret=b"k" * 16,
                     seed=99)
    again.receive(ra(), 0.0)
    assert [a.addr for a in again.ipv6.addrs.addresses.values() if a.origin == "slaac"][0] == addrs[0]
    assert stable_iid(1, b"\0" * 6, b"k", 0) != stable_iid(1, b"\0" * 6, b"k", 1)


def test_stable_privacy_retries_after_a_dad_conflict() -> None:
    s = make_tap(addr6=None, slaac=True, ipv6_stable_privacy=True, ipv6_secret=b"k" * 16)
    s.start(0.0)
    s.poll(1.0)
    s.receive(ra(), 1.5)
    (a,) = [a for a in s.ipv6.addrs.addresses.values() if a.origin == "slaac"]
    s.receive(na(ip6_str(a.addr), s=0, dst="ff02::1"), 1.6)
    (b,) = [x for x in s.ipv6.addrs.addresses.values() if x.origin == "slaac"]
    assert b.addr != a.addr and b.addr >> 64 == a.addr >> 64 and b.dad_counter == 1
    assert s.counters.get("ipv6.dad_retry") == 1


def test_ipv6_on_tap_is_on_only_when_configured() -> None:
    plain = make_tap(addr6=None)  # an IPv4 appliance: no IPv6 frames at start, none answered
    plain.start(0.0)
    assert plain.poll_at() is None or plain.poll_at() > 1e9 or not plain.ipv6.enabled
    assert not plain.ipv6.enabled
    plain.receive(tap_frame(v6(src="::", dst="ff02::1:ff00:2", hlim=255) / sc.ICMPv6ND_NS(tgt=MY_LL6),
                            dst_mac="33:33:ff:00:00:02"), 0.0)
    assert plain.counters.get("ipv6.disabled") == 1
    assert [f for f in plain.poll(5.0) if sc.IPv6 in sc.Ether(f)] == []
    on = make_tap(addr6=None, ipv6=True)
    on.start(0.0)
    dad = [sc.Ether(f) for f in on.poll(1.0)]
    assert [f[sc.ICMPv6ND_NS].tgt for f in dad if sc.ICMPv6ND_NS in f] == [MY_LL6]
