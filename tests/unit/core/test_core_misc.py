"""Smaller pieces: address classes, multicast output, transport registration, helpers."""

import random

import pytest
from corehelpers import BCAST, ME, PEER, icmp_frame, ips, make, udp_frame

from ustack.core import PortTable, Reason, UsageError
from ustack.core.events import ERROR, READ, WRITE
from ustack.core.frag import fragment
from ustack.core.routing import Routes, is_loopback, is_multicast
from ustack.wire import EthernetFrame, IcmpMessage, ip_int


def test_routes_address_classes():
    r = Routes("10.1.2.3/16", None)
    assert r.directed_broadcast == ip_int("10.1.255.255")
    assert r.is_broadcast(ip_int("10.1.255.255")) and r.is_broadcast(ip_int("10.1.0.0"))
    assert r.is_broadcast(0xFFFFFFFF) and not r.is_broadcast(ip_int("10.1.2.4"))
    assert r.is_unicast_host(ip_int("10.1.2.4"))
    for bad in ("0.0.0.0", "10.1.255.255", "224.0.0.1", "240.0.0.1", "255.255.255.255"):
        assert not r.is_unicast_host(ip_int(bad))
    assert r.is_local(ip_int("127.3.3.3")) and r.is_local(ip_int("10.1.2.3"))
    assert not r.is_local(ip_int("10.1.2.4"))
    assert is_loopback(ip_int("127.0.0.1")) and is_multicast(ip_int("239.1.1.1"))


@pytest.mark.parametrize("cidr", ["10.0.0.1/31", "10.0.0.1/32"])
def test_no_broadcast_on_31_and_32(cidr):
    r = Routes(cidr, None)
    assert r.directed_broadcast is None
    assert not r.is_broadcast(ip_int("10.0.0.0")) and not r.is_broadcast(ip_int("10.0.0.1"))
    assert r.is_broadcast(0xFFFFFFFF)


def test_class_e_and_zero_never_routed_via_gateway():
    s = make(gateway="198.18.0.254")
    assert s.route(ip_int("240.0.0.1")) is None
    assert s.route(0) is None


def test_multicast_output_uses_mapped_mac(estack):
    assert estack.send_ip(ip_int("239.129.2.3"), 17, b"12345678", 0.0) is None
    (f,) = estack.poll(0.0)
    assert EthernetFrame.parse(f).dst == bytes.fromhex("01005e010203")


def test_register_replaces_transport(stack):
    seen = []

    class T:
        proto = 17

        def __init__(self, tag):
            self.tag = tag

        def on_packet(self, ip, now, rx):
            seen.append(self.tag)

        def on_icmp_error(self, *a): ...

        def poll(self, now):
            seen.append("poll-" + self.tag)

        def poll_at(self):
            return None

    stack.register(T("a"))
    stack.register(T("b"))
    stack.receive(udp_frame(PEER, ME, 1, 9, b"x"), 0.0)
    stack.poll(0.0)
    assert seen == ["b", "poll-b"]


def test_transport_poll_at_is_honoured(stack):
    class T:
        proto = 250

        def on_packet(self, ip, now, rx): ...

        def on_icmp_error(self, *a): ...

        def poll(self, now): ...

        def poll_at(self):
            return 42.0

    stack.register(T())
    assert stack.poll_at() == 42.0


def test_fragment_rejects_tiny_mtu():
    with pytest.raises(ValueError):
        fragment(ME, PEER, 17, bytes(100), 1, 24)


def test_param_problem_passed_as_reason():
    s = make()
    got = []

    class T:
        proto = 250

        def on_packet(self, ip, now, rx): ...

        def on_icmp_error(self, kind, quoted, qp, mtu, now):
            got.append((kind, qp[:4]))

        def poll(self, now): ...

        def poll_at(self):
            return None

    s.register(T())
    s.send_ip(PEER, 250, b"abcdefgh", 0.0)
    (f,) = s.poll(0.0)
    s.receive(icmp_frame(PEER, ME, IcmpMessage.error(12, 0, f)), 0.0)
    assert got == [(Reason.PARAM_PROBLEM, b"abcd")]


def test_echo_from_unspecified_source_not_answered(stack):
    stack.receive(icmp_frame(0, ME, IcmpMessage.echo(True, 1, 1, b"")), 0.0)
    assert stack.poll(0.0) == []
    assert stack.counters.get("icmp.echo_bad_source") == 1


def test_udp_events_bits(stack):
    u = stack.udp.open()
    assert u.events == 0
    u.bind(0, 9)
    assert u.events == WRITE
    u._set_error(Reason.PORT_UNREACH)
    assert u.events == WRITE | READ | ERROR
    u.clear_error()
    u.shutdown(1)
    assert u.events == 0


def test_closed_socket_refuses_everything(stack):
    u = stack.udp.open()
    u.close(0.0)
    u.close(0.0)  # idempotent
    for call in (lambda: u.bind(0, 9), lambda: u.connect(PEER, 9), lambda: u.shutdown(2),
                 lambda: u.send(b"x", 0.0), lambda: u.peekfrom()):
        with pytest.raises(UsageError) as e:
            call()
        assert e.value.reason in (Reason.INVALID, Reason.NOT_CONNECTED)
    assert u not in stack.udp.sockets


def test_connected_socket_ignores_broadcast_from_other_peers(stack):
    u = stack.udp.open()
    u.bind(0, 9)
    u.connect(PEER, 53)
    stack.receive(udp_frame(ip_int("198.18.0.77"), BCAST, 53, 9, b"no"), 0.0)
    stack.receive(udp_frame(PEER, BCAST, 53, 9, b"yes"), 0.0)
    assert u.recvfrom() == (b"yes", PEER, 53) and u.recvfrom() is None


def test_port_table_introspection():
    t = PortTable(random.Random(0), 1000, 1010)
    b = t.bind(0, 1005, "x")
    t.claim(ME, 1006, "c")
    assert t.is_bound(1005) and not t.is_bound(1006) and len(t) == 2
    assert [x.owner for x in t.bindings(1005)] == ["x"]
    assert "bind" in repr(b)
    with pytest.raises(ValueError):
        PortTable(random.Random(0), 10, 5)
    with pytest.raises(UsageError):
        t.bind(0, 70000, "y")


def test_output_frames_for_ttl_default(stack):
    stack.send_ip(PEER, 253, b"", 0.0)
    assert ips(stack.poll(0.0))[0].ttl == 64
    s = make(ttl=128)
    s.send_ip(PEER, 253, b"", 0.0)
    assert ips(s.poll(0.0))[0].ttl == 128


def test_every_core_counter_is_described():
    import re
    from pathlib import Path

    import ustack.core
    from ustack.core.counters import DESCRIPTIONS, describe

    src = "".join(p.read_text() for p in Path(ustack.core.__file__).parent.glob("*.py"))
    names = set(re.findall(r'(?:inc\(|cnt\[)"([a-z0-9_]+\.[a-z0-9_.]+)"', src))
    assert len(names) > 60
    assert names - set(DESCRIPTIONS) == set()
    assert describe("udp.no_port").startswith("drop:")
    assert describe("icmp.in_type3_code3") and describe("nope.nothing") == ""


def test_codec_rejections_are_described_from_the_wire_catalogue(stack):
    from ustack.core.counters import describe
    from ustack.wire import REASONS

    assert all(describe(name) == text for name, text in REASONS.items())
    stack.receive(b"\x45\x00\x00\x14" + b"\x00" * 16, 0.0)  # a header whose checksum is wrong
    (name,) = [n for n in stack.counters.snapshot() if n != "ipv4.in"]
    assert name == "ipv4.bad_checksum"
    assert describe(name).startswith("drop: IPv4 header checksum")
