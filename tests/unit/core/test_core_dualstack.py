"""Dual-stack transports, the IPv4 side: family-6 sockets in dual mode (v6only off) take IPv4 as
v4-mapped addresses, port tables per family keep an IPv4 and an IPv6 wildcard apart, and a
dual-mode wildcard bind holds the port in both (contracts.md "Dual stack")."""

from __future__ import annotations

import pytest
from corehelpers import ME, PEER, assert_no_internal_error, icmp_frame, ips, make, udp_frame

from ustack.core import Reason, UsageError
from ustack.core.family import is_ipv6, is_v4mapped, unmap, v4mapped
from ustack.wire import IcmpMessage, Ipv4Packet, UdpDatagram

M_ME, M_PEER = v4mapped(ME), v4mapped(PEER)


def test_family_helpers():
    assert M_PEER == 0xFFFF_C612_0001 and is_v4mapped(M_PEER) and unmap(M_PEER) == PEER
    assert not is_ipv6(PEER) and is_ipv6(M_PEER) and is_ipv6(1) and is_ipv6(0x2001_0002 << 96)


def test_dual_mode_socket_receives_ipv4_v4mapped_and_answers_over_ipv4():
    st = make()
    s = st.udp.open(family=6)
    assert s.family == 6 and s.v6only is True  # Windows' default
    s.v6only = False
    s.bind(0, 5000)
    assert s.local == (0, 5000)
    st.receive(udp_frame(PEER, ME, 1234, 5000, b"hello"), 0.0)
    assert s.recvfrom() == (b"hello", M_PEER, 1234)
    assert s.sendto(b"back", M_PEER, 1234, 0.0) == 4
    (out,) = ips(st.poll(0.0))
    assert (out.src, out.dst, out.proto) == (ME, PEER, 17)
    assert UdpDatagram.parse(out.payload, ME, PEER) == UdpDatagram(5000, 1234, b"back")
    assert_no_internal_error(st)


def test_v6only_socket_gets_no_ipv4_and_refuses_v4mapped_addresses():
    st = make()
    s = st.udp.open(family=6)
    s.bind(0, 5000)  # [::]:5000 only
    st.receive(udp_frame(PEER, ME, 1234, 5000, b"v4"), 0.0)
    assert s.recvfrom() is None and st.counters.get("udp.no_port") == 1
    with pytest.raises(UsageError) as e:
        s.sendto(b"x", M_PEER, 1234, 0.0)
    assert e.value.reason is Reason.ADDR_NOT_AVAIL
    t = st.udp.open(family=6)
    with pytest.raises(UsageError) as e:
        t.bind(M_ME, 5001)
    assert e.value.reason is Reason.ADDR_NOT_AVAIL
    with pytest.raises(UsageError) as e:
        s.v6only = False  # too late: bound
    assert e.value.reason is Reason.INVALID


def test_ipv4_and_ipv6_wildcards_on_one_port_are_distinct_binds():
    st = make()
    v4 = st.udp.open()
    v4.bind(0, 5000)
    v6 = st.udp.open(family=6)
    v6.bind(0, 5000)  # v6only: its own table, no conflict
    st.receive(udp_frame(PEER, ME, 1, 5000, b"to v4"), 0.0)
    assert v4.recvfrom() == (b"to v4", PEER, 1) and v6.recvfrom() is None


def test_dual_mode_wildcard_conflicts_with_an_ipv4_bind_and_holds_nothing_then():
    st = make()
    v4 = st.udp.open()
    v4.bind(0, 5000)
    dual = st.udp.open(family=6)
    dual.v6only = False
    with pytest.raises(UsageError) as e:
        dual.bind(0, 5000)
    assert e.value.reason is Reason.ADDR_IN_USE
    assert st.udp6_ports.lookup(0, 5000) == []  # the IPv6 half was given back
    v4.close()
    dual.bind(0, 5000)
    other = st.udp.open()
    with pytest.raises(UsageError):
        other.bind(0, 5000)  # the dual-mode socket holds 0.0.0.0:5000 too
    dual.close()
    other.bind(0, 5000)  # closing released both halves
    assert st.udp6_ports.lookup(0, 5000) == []


def test_dual_mode_ephemeral_port_is_free_in_both_families():
    st = make()
    dual = st.udp.open(family=6)
    dual.v6only = False
    dual.sendto(b"x", M_PEER, 9, 0.0)  # implicit bind
    port = dual.local[1]
    assert dual.local == (0, port)
    assert st.udp_ports.lookup(ME, port) == [dual] and st.udp6_ports.lookup(0, port) == [dual]


def test_family6_socket_bound_to_a_v4mapped_address_is_an_ipv4_socket():
    st = make()
    s = st.udp.open(family=6)
    s.v6only = False
    s.bind(M_ME, 5000)
    assert s.local == (M_ME, 5000)
    assert st.udp_ports.lookup(ME, 5000) == [s] and st.udp6_ports.lookup(0, 5000) == []
    s.connect(M_PEER, 7)
    assert s.remote == (M_PEER, 7)
    st.receive(udp_frame(PEER, ME, 8, 5000, b"other port"), 0.0)
    st.receive(udp_frame(PEER, ME, 7, 5000, b"peer"), 0.0)
    assert s.recvfrom() == (b"peer", M_PEER, 7) and s.recvfrom() is None
    assert st.counters.get("udp.connected_filtered") == 1


def test_icmp_port_unreachable_reaches_a_connected_dual_mode_socket():
    st = make()
    s = st.udp.open(family=6)
    s.v6only = False
    s.connect(M_PEER, 7)
    s.send(b"ping", 0.0)
    (sent,) = st.poll(0.0)
    quote = sent[:28]
    st.receive(icmp_frame(PEER, ME, IcmpMessage(3, 3, 0, quote)), 0.0)
    assert s.error is Reason.PORT_UNREACH
    assert Ipv4Packet.parse(sent).dst == PEER
