"""Two stacks back to back, loss, fuzzing: the stack never raises and never hits an internal error."""

import random

import pytest
from corehelpers import ME, PEER, assert_no_internal_error, make
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ustack.core import Stack, StackConfig, make_stack
from ustack.core.frag import FRAG_OVERHEAD
from ustack.wire import IcmpMessage, Ipv4Packet, UdpDatagram


def pair(medium="ip", **kw):
    a = make(addr="198.18.0.2/24", medium=medium, seed=1, **kw)
    b = make(addr="198.18.0.1/24", medium=medium, seed=2, **kw)
    return a, b


def run(a, b, now, loss=0.0, rng=None, rounds=50):
    """Move frames between the stacks until both are quiet (dropping a fraction on the way)."""
    for _ in range(rounds):
        fa, fb = a.poll(now), b.poll(now)
        if not fa and not fb:
            return
        for f in fa:
            if not rng or rng.random() >= loss:
                b.receive(f, now)
        for f in fb:
            if not rng or rng.random() >= loss:
                a.receive(f, now)


@pytest.mark.parametrize("medium", ["ip", "ethernet"])
def test_udp_exchange_back_to_back(medium):
    a, b = pair(medium)
    a.start(0.0)
    b.start(0.0)
    server = b.udp.open()
    server.bind(0, 7)
    client = a.udp.open()
    for i in range(20):
        client.sendto(b"msg%d" % i, PEER, 7, 0.0)
    run(a, b, 0.0)
    got = []
    while (d := server.recvfrom()) is not None:
        got.append(d)
    assert [g[0] for g in got] == [b"msg%d" % i for i in range(20)]
    assert all(g[1] == ME and g[2] == client.local[1] for g in got)
    # echo back
    for data, addr, port in got:
        server.sendto(data, addr, port, 0.1)
    run(a, b, 0.1)
    assert client.pending_bytes == sum(len(g[0]) for g in got)
    for s in (a, b):
        assert_no_internal_error(s)


def test_udp_with_loss_and_fragments():
    a, b = pair("ethernet")
    rng = random.Random(5)
    server = b.udp.open()
    server.bind(0, 7)
    client = a.udp.open()
    # resolve ARP reliably first, then lose 20% of frames
    client.sendto(b"hello", PEER, 7, 0.0)
    run(a, b, 0.0)
    assert server.recvfrom()[0] == b"hello"
    sent = [bytes([i]) * (500 + 300 * i) for i in range(20)]
    for d in sent:
        client.sendto(d, PEER, 7, 1.0)
    run(a, b, 1.0, loss=0.2, rng=rng)
    got = []
    while (d := server.recvfrom()) is not None:
        got.append(d[0])
    assert 0 < len(got) < len(sent)  # some lost (a lost fragment loses the datagram)
    assert all(g in sent for g in got)  # nothing corrupted or mixed up
    assert got == [d for d in sent if d in got]  # order kept
    # incomplete datagrams time out and the sender hears about those whose first fragment arrived
    b.poll(31.0)
    run(a, b, 31.0)
    assert not b.reassembler.table
    assert_no_internal_error(a)
    assert_no_internal_error(b)


def test_port_unreachable_across_stacks():
    a, b = pair()
    u = a.udp.open()
    u.sendto(b"anyone", PEER, 9, 0.0)
    run(a, b, 0.0)
    from ustack.core import Reason

    assert u.error is Reason.PORT_UNREACH


def test_ping_across_stacks():
    a, b = pair("ethernet")
    a.icmp.ping(PEER, 7, 1, b"x" * 3000, 0.0)
    run(a, b, 0.0)
    (r,) = a.icmp.replies
    assert (r.src, r.ident, r.seq, r.payload) == (PEER, 7, 1, b"x" * 3000)


def test_make_stack_and_poll_at_idle():
    s = make_stack(StackConfig())
    assert isinstance(s, Stack)
    assert s.poll_at() is None
    assert s.udp is not None and s.icmp is not None


@pytest.mark.internal_error_expected
def test_internal_error_is_contained():
    s = make()

    class Broken:
        proto = 99

        def on_packet(self, ip, now, rx):
            raise RuntimeError("bug")

        def on_icmp_error(self, *a): ...

        def poll(self, now): ...

        def poll_at(self):
            return None

    s.register(Broken())
    s.receive(Ipv4Packet(PEER, ME, 99, b"x").emit(), 0.0)
    assert s.counters.get("stack.internal_error") == 1
    assert "RuntimeError" in s.internal_errors[-1]
    assert s.poll(0.0) == []


def test_counters_table_grouped():
    s = make()
    s.receive(b"\x45", 0.0)
    s.receive(Ipv4Packet(PEER, ME, 17, UdpDatagram(1, 9, b"x").emit(PEER, ME)).emit(), 0.0)
    rows = s.counters.table()
    protos = [r[0] for r in rows]
    assert protos == sorted(protos, key=["stack", "ethernet", "arp", "ipv4", "icmp", "udp"].index)
    assert ("ipv4", "truncated", 1) in rows and ("udp", "no_port", 1) in rows
    assert s.counters.snapshot()["udp.no_port"] == 1


@pytest.mark.parametrize("medium", ["ip", "ethernet"])
def test_counters_in_and_out_per_protocol_like_netstat(medium):
    a = make(medium=medium, addr="198.18.0.1/24", seed=1)
    b = make(medium=medium, seed=2)
    a.start(0.0)
    b.start(0.0)
    ua, ub = a.udp.open(), b.udp.open()
    ub.bind(0, 7)
    a.icmp.ping(ME, 1, 1, b"ping", 0.0)
    ua.sendto(b"hello", ME, 7, 0.0)
    ua.sendto(b"closed", ME, 8, 0.0)
    for _ in range(5):
        for x, y in ((a, b), (b, a)):
            for f in x.poll(0.0):
                y.receive(f, 0.0)
    ca, cb = a.counters, b.counters
    assert len(a.icmp.replies) == 1 and ub.recvfrom()[0] == b"hello" and ua.error is not None
    assert (ca.get("udp.out"), cb.get("udp.in")) == (2, 2)
    assert (ca.get("icmp.out"), cb.get("icmp.in")) == (1, 1)  # the echo request
    assert (cb.get("icmp.out"), ca.get("icmp.in")) == (2, 2)  # echo reply, port unreachable
    assert ca.get("ipv4.out") == cb.get("ipv4.in") == 3
    assert cb.get("ipv4.out") == ca.get("ipv4.in") == 2
    if medium == "ethernet":
        # gratuitous ARP, an ARP request and 3 datagrams; b: its announcement, an ARP reply, 2
        assert (ca.get("ethernet.out"), cb.get("ethernet.in")) == (5, 5)
        assert (cb.get("ethernet.out"), ca.get("ethernet.in")) == (4, 4)
    rows = {(p, n): v for p, n, v in ca.table()}
    assert rows[("udp", "out")] == 2 and rows[("icmp", "in")] == 2


def valid_frames():
    udp = st.builds(
        lambda sp, dp, data: Ipv4Packet(PEER, ME, 17, UdpDatagram(sp, dp, data).emit(PEER, ME)).emit(),
        st.integers(1, 65535), st.integers(1, 65535), st.binary(max_size=64),
    )
    icmp = st.builds(
        lambda t, c, rest, data: Ipv4Packet(PEER, ME, 1, IcmpMessage(t, c, rest, data).emit()).emit(),
        st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary(max_size=64),
    )
    return st.one_of(udp, icmp)


def flip(frame: bytes, data) -> bytes:
    b = bytearray(frame)
    for i in data:
        if b:
            b[i % len(b)] ^= 1 << (i % 8)
    return bytes(b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.one_of(st.binary(max_size=80), valid_frames(),
                                 st.builds(flip, valid_frames(),
                                           st.lists(st.integers(0, 10**6), max_size=4))),
                       max_size=8),
       medium=st.sampled_from(["ip", "ethernet"]))
def test_fuzz_receive_never_raises(frames, medium):
    s = make(medium=medium)
    u = s.udp.open()
    u.bind(0, 0)
    for i, f in enumerate(frames):
        if medium == "ethernet":
            etype = b"\x08\x06" if i % 3 == 2 else b"\x08\x00"
            f = (s.mac if i % 2 else b"\xff" * 6) + b"\x02" + bytes(5) + etype + f
        s.receive(f, float(i))
        s.poll(float(i))
    s.poll(100.0)
    assert_no_internal_error(s)


@settings(max_examples=60, deadline=None)
@given(chunks=st.permutations(list(range(6))), dup=st.lists(st.integers(0, 5), max_size=3),
       size=st.integers(1, 8000))
def test_fuzz_reassembly_any_order(chunks, dup, size):
    from ustack.core.frag import fragment

    s = make()
    u = s.udp.open()
    u.bind(0, 9)
    data = random.Random(size).randbytes(size)
    fr = fragment(PEER, ME, 17, UdpDatagram(1, 9, data).emit(PEER, ME), 42, 1500)
    order = [i for i in chunks if i < len(fr)] + [i for i in dup if i < len(fr)]
    for i in order:
        s.receive(fr[i], 0.0)
    assert u.recvfrom() == (data, PEER, 1)
    assert_no_internal_error(s)


def test_tcp_connect_fails_host_unreach_when_arp_fails():
    from ustack.core import Reason

    s = make_stack(StackConfig(medium="ethernet", seed=3))
    assert s.tcp is not None and s.transports[6] is s.tcp
    t = s.tcp.open()
    t.connect(0xC6120009, 80, 0.0)
    for now in (0.0, 1.0, 2.0):
        s.poll(now)
        assert t.error is None
    s.poll(3.0)
    assert t.error is Reason.HOST_UNREACH
    assert s.counters.get("arp.unreachable_reported") >= 1
    assert_no_internal_error(s)


def test_poll_at_earliest_of_arp_and_reassembly():
    from ustack.core.frag import fragment

    s = make(medium="ethernet", arp_retry_s=1.0, reassembly_timeout_s=0.5)
    s.send_ip(PEER, 253, b"x", 10.0)
    s.poll(10.0)
    assert s.poll_at() == 11.0
    fr = fragment(PEER, ME, 17, bytes(3000), 5, 1500)
    s.receive(s.mac + b"\x02" + bytes(5) + b"\x08\x00" + fr[1], 10.2)
    assert s.poll_at() == 10.7
    s.poll(10.7)
    assert s.poll_at() == 11.0


def test_config_validation():
    with pytest.raises(ValueError):
        make(medium="wifi")
    with pytest.raises(ValueError):
        make(mtu=60)
    with pytest.raises(ValueError):
        make(mac=b"\x02\x00")
    assert make(medium="ethernet", mac="02:aa:bb:cc:dd:ee").mac == bytes.fromhex("02aabbccddee")


def test_counters_basics():
    from ustack.core import Counters

    c = Counters()
    c.inc("udp.in")
    c.inc("udp.in", 2)
    c.inc("zz.custom")
    assert c.get("udp.in") == 3 and c["udp.in"] == 3 and c.get("never") == 0
    assert c.snapshot() == {"udp.in": 3, "zz.custom": 1}
    assert c.table() == [("udp", "in", 3), ("zz", "custom", 1)]
    assert "udp.in" in repr(c)


def test_same_seed_same_frames():
    def trace(seed):
        s = make(seed=seed, medium="ethernet")
        s.start(0.0)
        u = s.udp.open()
        u.sendto(b"x" * 3000, PEER, 53, 0.0)
        u.sendto(b"y", 0xC6120003, 53, 0.0)
        return s.poll(0.0) + s.poll(1.0)

    assert trace(11) == trace(11)
    assert trace(11) != trace(12)


@settings(max_examples=300, deadline=None)
@example([(0, 2, 1, True, 0), (0, 1, 1, False, 0)])  # a "last" fragment before received data
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 8), st.integers(0, 5), st.booleans(),
                          st.sampled_from([0, 3])), max_size=12))
def test_fuzz_random_fragments_never_break_reassembly(frags):
    limit = 200 + 2 * FRAG_OVERHEAD  # true size: payload plus per-fragment overhead
    s = make(reassembly_mem_limit=limit)
    u = s.udp.open()
    u.bind(0, 9)
    for ident, off8, len8, mf, extra in frags:
        data = bytes([ident + 1]) * (8 * len8 + (0 if mf else extra))
        s.receive(Ipv4Packet(PEER, ME, 99, data, ident=ident, mf=mf, frag_offset=8 * off8).emit(), 0.0)
        r = s.reassembler
        assert r.mem == sum(d.mem for d in r.table.values()) <= limit
        assert r.mem == sum(d.size + FRAG_OVERHEAD * len(d.pieces) for d in r.table.values())
        assert s.memory.by_kind["reasm"] == r.mem
    s.poll(100.0)
    assert not s.reassembler.table and s.reassembler.mem == 0 and s.memory.used == 0
    assert_no_internal_error(s)
