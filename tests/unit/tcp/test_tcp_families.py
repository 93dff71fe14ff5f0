"""The key TCP and UDP behaviours over both families: two real Stacks (TUN medium) back to back
in virtual time, each test run over IPv4 and over IPv6 (2001:2::/64) with the same code: the
handshake and its MSS (MTU - 40 / MTU - 60), data with loss and reordering, RST for a closed
port, ICMP / ICMPv6 port unreachable for UDP, TIME-WAIT, SYN cookies (the IPv6 cookie hash) and
PMTU from fragmentation-needed / Packet Too Big."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from tests.invariants import assert_no_internal_error
from tests.unit.tcp.test_tcp_stacks import Wire
from ustack.core import Reason, StackConfig, make_stack
from ustack.tcp import State, TcpConfig
from ustack.wire.icmp import IcmpMessage
from ustack.wire.icmpv6 import PACKET_TOO_BIG, Icmpv6Message
from ustack.wire.ipv4 import Ipv4Packet, ip_int
from ustack.wire.ipv6 import Ipv6Packet, ip6_int
from ustack.wire.tcp import TcpSegment


@dataclass
class Fam:
    name: str
    family: int
    a: int  # the addresses the sockets use
    b: int
    router: int  # an on-link address that sends the ICMP errors
    overhead: int  # IP + TCP fixed headers


FAMILIES = {
    "ipv4": Fam("ipv4", 4, ip_int("198.18.0.1"), ip_int("198.18.0.2"), ip_int("198.18.0.254"), 40),
    "ipv6": Fam("ipv6", 6, ip6_int("2001:2::1"), ip6_int("2001:2::2"), ip6_int("2001:2::fe"), 60),
}


@pytest.fixture(params=list(FAMILIES))
def fam(request) -> Fam:
    return FAMILIES[request.param]


def wire(fam: Fam, seed: int = 1, loss: float = 0.0, reorder: float = 0.0, mtu: int = 1500,
         **tcp) -> Wire:
    w = Wire(seed, loss, reorder)
    cfg = TcpConfig(**tcp) if tcp else None
    w.a = make_stack(StackConfig(addr="198.18.0.1/24", addr6="2001:2::1/64", seed=seed, mtu=mtu, tcp=cfg))
    w.b = make_stack(StackConfig(addr="198.18.0.2/24", addr6="2001:2::2/64", seed=seed + 1000, mtu=mtu,
                                 tcp=cfg))
    for st in (w.a, w.b):
        st.start(0.0)
    return w


def pair(w: Wire, fam: Fam, port: int = 80):
    lst = w.b.tcp.open(family=fam.family)
    lst.bind(0, port)
    lst.listen(5)
    cli = w.a.tcp.open(family=fam.family)
    cli.connect(fam.b, port, w.now)
    w.run_until(lambda: lst.accept_pending > 0 and cli.state is State.ESTABLISHED)
    return cli, lst.accept(), lst


def test_handshake_names_and_mss(fam):
    w = wire(fam)
    cli, srv, _ = pair(w, fam)
    assert cli.remote == (fam.b, 80) and srv.remote == cli.local and srv.local == (fam.b, 80)
    assert cli.local[0] == fam.a and 49152 <= cli.local[1] <= 65535
    # offered MSS: the MTU less the fixed headers; used: less the timestamp option
    assert cli.conn.our_mss == srv.conn.our_mss == 1500 - fam.overhead
    assert cli.conn.snd.mss == 1500 - fam.overhead - 12
    assert cli.conn.v6 == (fam.family == 6)
    assert_no_internal_error(w.a, w.b)


@pytest.mark.parametrize("seed", [1, 2])
def test_data_with_loss_and_reordering(fam, seed):
    w = wire(fam, seed, loss=0.03, reorder=0.05, data_retries=15)
    cli, srv, _ = pair(w, fam)
    data = random.Random(seed).randbytes(300_000)
    got = bytearray()
    sent = 0
    while len(got) < len(data):
        if sent < len(data):
            sent += cli.send(data[sent:sent + 65536], w.now)
        got += srv.recv(1 << 20)
        if len(got) < len(data):
            assert w.step(), f"stalled at {len(got)}"
        assert w.now < 300
    assert bytes(got) == data and w.dropped > 0
    assert w.b.counters.get("tcp.bad_checksum") == 0
    assert_no_internal_error(w.a, w.b)


def test_rst_for_a_closed_port(fam):
    w = wire(fam)
    cli = w.a.tcp.open(family=fam.family)
    cli.connect(fam.b, 81, w.now)
    w.run_until(lambda: cli.error is not None)
    assert cli.error is Reason.REFUSED
    assert w.b.counters.get("tcp.no_port") >= 1 and w.b.counters.get("tcp.rst_out") >= 1


def test_udp_port_unreachable(fam):
    w = wire(fam)
    srv = w.b.udp.open(family=fam.family)
    srv.bind(0, 53)
    c = w.a.udp.open(family=fam.family)
    c.sendto(b"query", fam.b, 53, w.now)
    w.run_until(lambda: srv.readable)
    assert srv.recvfrom() == (b"query", fam.a, c.local[1])
    c.connect(fam.b, 54, w.now)
    c.send(b"nobody", w.now)
    w.run_until(lambda: c.error is not None)
    assert c.error is Reason.PORT_UNREACH
    assert w.b.counters.get("udp.no_port") == 1 and w.a.counters.get("udp.icmp_error") == 1


def test_time_wait(fam):
    w = wire(fam, msl_s=5.0)
    cli, srv, lst = pair(w, fam)
    key = cli.conn.key
    cli.close(w.now)
    w.run_until(lambda: srv.at_eof)
    srv.close(w.now)
    w.run_until(lambda: w.a.tcp.conns.get(key) is not None and w.a.tcp.conns[key].state is State.TIME_WAIT)
    assert w.a.tcp.in_use(*key)
    start = w.now
    w.run_until(lambda: key not in w.a.tcp.conns)
    assert 9.9 <= w.now - start <= 10.5  # 2 * MSL


def test_syn_cookies(fam):
    w = wire(fam, max_syn_backlog=0)  # every SYN beyond a budget of 0: answered with a cookie
    cli, srv, _ = pair(w, fam)
    assert w.b.counters.get("tcp.syncookies_sent") == 1 and w.b.counters.get("tcp.syncookies_recv") == 1
    assert srv.remote == cli.local
    cli.send(b"through a cookie", w.now)
    w.run_until(lambda: srv.readable_bytes == 16)
    assert srv.recv(100) == b"through a cookie"
    cookies = w.b.tcp.syncookies
    laddr, lport, raddr, rport = srv.conn.key
    # the hash input carries the whole address: change a high bit of it and the cookie changes
    other = raddr ^ (1 << 100) if fam.family == 6 else raddr ^ (1 << 20)
    assert cookies.isn(laddr, lport, raddr, rport, 1, 1460, 0.0) != cookies.isn(laddr, lport, other, rport,
                                                                                  1, 1460, 0.0)


def too_big(fam: Fam, quoted: bytes, mtu: int) -> bytes:
    """An ICMP fragmentation-needed / ICMPv6 Packet Too Big from the router, quoting `quoted`."""
    if fam.family == 4:
        msg = IcmpMessage(3, 4, mtu, quoted[:28]).emit()
        return Ipv4Packet(fam.router, fam.a, 1, msg).emit()
    msg = Icmpv6Message.error(PACKET_TOO_BIG, 0, quoted, mtu).emit(fam.router, fam.a)
    return Ipv6Packet(fam.router, fam.a, 58, msg, hop_limit=255).emit()


def test_pmtu_from_packet_too_big(fam):
    w = wire(fam)
    cli, srv, _ = pair(w, fam)
    mss = 1500 - fam.overhead - 12
    cli.send(b"z" * 20000, w.now)
    out = w.a.poll(w.now)
    big = [f for f in out if len(f) == 1500]
    assert big, [len(f) for f in out]
    w.a.receive(too_big(fam, big[0], 1280), w.now)
    assert cli.conn.snd.mss == 1280 - fam.overhead - 12 < mss
    assert w.a.counters.get("tcp.pmtu_lowered") == 1
    resent = [f for f in w.a.poll(w.now) if len(f) > 100]
    assert resent and max(len(f) for f in resent) <= 1280
    assert w.a.tcp.mss_for(fam.b) == 1280 - fam.overhead  # new connections start there too
    # everything still arrives (the dropped burst is resent in smaller segments)
    got = bytearray()
    w.run_until(lambda: (got.extend(srv.recv(1 << 20)), len(got) >= 20000)[1])
    assert bytes(got) == b"z" * 20000
    assert_no_internal_error(w.a, w.b)


def test_ptb_below_1280_is_floored_ipv6_only():
    fam = FAMILIES["ipv6"]
    w = wire(fam)
    cli, _, _ = pair(w, fam)
    cli.send(b"z" * 5000, w.now)
    big = [f for f in w.a.poll(w.now) if len(f) == 1500]
    w.a.receive(too_big(fam, big[0], 600), w.now)  # forged or broken: IPv6 links carry 1280
    assert cli.conn.snd.mss == 1280 - 60 - 12


# ---- IPv6 specifics: checksums against an independent decoder, UDP's mandatory checksum -------
def test_tcp_and_udp_over_ipv6_checksums_agree_with_scapy():
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.inet6 import IPv6

    fam = FAMILIES["ipv6"]
    w = wire(fam)
    cli = w.a.tcp.open(family=6)
    cli.connect(fam.b, 80, w.now)
    u = w.a.udp.open(family=6)
    u.sendto(b"datagram", fam.b, 53, w.now)
    frames = w.a.poll(w.now)
    assert len(frames) == 2
    for f in frames:
        pkt = IPv6(f)
        layer = pkt[TCP] if TCP in pkt else pkt[UDP]
        sent = layer.chksum
        del layer.chksum
        assert IPv6(bytes(pkt))[type(layer)].chksum == sent != 0
    assert TCP in IPv6(frames[0]) and IPv6(frames[0])[TCP].flags == "S"
    assert bytes(IPv6(frames[1])[UDP].payload) == b"datagram"


def udp6_frame(fam: Fam, payload: bytes, csum: int | None = None) -> bytes:
    from ustack.wire.udp import UdpDatagram

    raw = bytearray(UdpDatagram(4000, 53, payload).emit(fam.a, fam.b))
    if csum is not None:
        raw[6:8] = csum.to_bytes(2, "big")
    return Ipv6Packet(fam.a, fam.b, 17, bytes(raw)).emit()


def test_udp_over_ipv6_drops_a_zero_or_bad_checksum():
    fam = FAMILIES["ipv6"]
    w = wire(fam)
    s = w.b.udp.open(family=6)
    s.bind(0, 53)
    w.b.receive(udp6_frame(fam, b"no checksum", csum=0), 0.0)  # legal over IPv4, not IPv6
    w.b.receive(udp6_frame(fam, b"bad checksum", csum=0x1234), 0.0)
    assert s.recvfrom() is None
    assert w.b.counters.get("udp.v6_zero_checksum") == 1 and w.b.counters.get("udp.bad_checksum") == 1
    w.b.receive(udp6_frame(fam, b"good"), 0.0)
    assert s.recvfrom() == (b"good", fam.a, 4000)
    assert w.b.counters.get("udp.no_port") == 0  # a bad datagram never draws an ICMPv6 error


def test_tcp_over_ipv6_drops_a_bad_checksum():
    fam = FAMILIES["ipv6"]
    w = wire(fam)
    lst = w.b.tcp.open(family=6)
    lst.bind(0, 80)
    lst.listen(5)
    raw = bytearray(TcpSegment(4000, 80, 1, 0, 0x02, 65535).emit(fam.a, fam.b))
    raw[16] ^= 0xFF
    w.b.receive(Ipv6Packet(fam.a, fam.b, 6, bytes(raw)).emit(), 0.0)
    assert w.b.counters.get("tcp.bad_checksum") == 1 and w.b.poll(0.0) == []


def test_v4mapped_source_over_ipv6_is_dropped():
    """An IPv6 packet from ::ffff:a.b.c.d would reach dual-mode sockets posing as IPv4."""
    fam = FAMILIES["ipv6"]
    w = wire(fam)
    s = w.b.udp.open(family=6)
    s.v6only = False
    s.bind(0, 53)
    spoof = 0xFFFF_C612_0009
    from ustack.wire.udp import UdpDatagram

    pkt = Ipv6Packet(spoof, fam.b, 17, UdpDatagram(1, 53, b"x").emit(spoof, fam.b)).emit()
    w.b.receive(pkt, 0.0)
    assert s.recvfrom() is None
    assert w.b.counters.get("udp.v6_bad_source") + w.b.counters.get("ipv6.bad_source") >= 1


def test_dual_mode_listener_takes_both_families():
    w = wire(FAMILIES["ipv6"])
    lst = w.b.tcp.open(family=6)
    lst.v6only = False
    lst.bind(0, 80)
    lst.listen(5)
    c4 = w.a.tcp.open()
    c4.connect(FAMILIES["ipv4"].b, 80, w.now)
    c6 = w.a.tcp.open(family=6)
    c6.connect(FAMILIES["ipv6"].b, 80, w.now)
    w.run_until(lambda: lst.accept_pending == 2)
    remotes = {lst.accept().remote[0], lst.accept().remote[0]}
    assert remotes == {0xFFFF_0000_0000 | FAMILIES["ipv4"].a, FAMILIES["ipv6"].a}
    assert_no_internal_error(w.a, w.b)
