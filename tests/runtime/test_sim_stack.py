"""The simulator with the real Stack: UDP, ping, faults, determinism of pcaps."""

from __future__ import annotations

import pytest

from tests.runtime.apps import udp_client, udp_echo
from ustack.drivers import read_pcap
from ustack.runtime.simulator import Simulator
from ustack.wire.ipv4 import ip_int

MEDIA = ["ip", "ethernet"]


@pytest.fixture
def sim():
    s = Simulator(seed=7)
    yield s
    s.close()


@pytest.mark.parametrize("medium", MEDIA)
def test_udp_between_two_hosts_from_the_main_thread(sim, medium):
    a = sim.add_host("198.18.0.1/24", name="a", medium=medium)
    b = sim.add_host("198.18.0.2/24", name="b", medium=medium)
    sb = b.call(b.stack.udp.open)
    b.call(sb.bind, 0, 7)
    sa = a.call(a.stack.udp.open)
    a.call(lambda: sa.sendto(b"hello", ip_int("198.18.0.2"), 7, a.now()))
    assert b.wait(lambda: sb.readable, 5)
    data, src, sport = b.call(sb.recvfrom)
    assert (data, src) == (b"hello", ip_int("198.18.0.1"))
    assert sport == a.call(lambda: sa.local[1])
    assert sim.errors == 0
    assert a.stack.counters.get("stack.internal_error") == b.stack.counters.get("stack.internal_error") == 0


@pytest.mark.parametrize("medium", MEDIA)
def test_echo_server_and_client_tasks(sim, medium):
    a = sim.add_host("198.18.0.1/24", name="a", medium=medium)
    b = sim.add_host("198.18.0.2/24", name="b", medium=medium)
    server = sim.spawn(udp_echo, b, 9000, 3, name="server")
    client = sim.spawn(udp_client, a, "198.18.0.2", 9000, [b"one", b"two", b"three"], name="client")
    sim.run()
    assert client.result() == [b"one", b"two", b"three"]
    assert server.result() == 3


def test_ping_between_hosts(sim):
    sim.link("default", "ethernet", latency_s=0.002)
    a = sim.add_host("198.18.0.1/24", name="a", medium="ethernet")
    sim.add_host("198.18.0.2/24", name="b", medium="ethernet")
    for seq in range(3):
        a.call(a.stack.icmp.ping, ip_int("198.18.0.2"), 77, seq, b"abc%d" % seq, a.now())
    assert a.wait(lambda: len(a.stack.icmp.replies) == 3, 5)
    replies = list(a.stack.icmp.replies)
    assert [(r.src, r.ident, r.seq, r.payload) for r in replies] == [
        (ip_int("198.18.0.2"), 77, s, b"abc%d" % s) for s in range(3)]
    # at least one round trip of 2 x 2 ms, at most ARP plus echo; all in virtual time
    assert 0.004 - 1e-9 <= replies[0].at <= 0.008 + 1e-9


def test_udp_recv_timeout_of_21_s_in_virtual_time(sim):
    a = sim.add_host("198.18.0.1/24", name="a")
    sock = a.call(a.stack.udp.open)
    a.call(sock.bind, 0, 5000)
    assert a.wait(lambda: sock.readable, 21.0) is False
    assert a.now() == pytest.approx(21.0)


def test_hosts_on_different_links_are_isolated(sim):
    a = sim.add_host("198.18.0.1/24", name="a", link="l1")
    b = sim.add_host("198.18.0.2/24", name="b", link="l2")
    c = sim.add_host("198.18.0.2/24", name="c", link="l1")
    sb, sc = b.call(b.stack.udp.open), c.call(c.stack.udp.open)
    b.call(sb.bind, 0, 7)
    c.call(sc.bind, 0, 7)
    sa = a.call(a.stack.udp.open)
    a.call(lambda: sa.sendto(b"x", ip_int("198.18.0.2"), 7, a.now()))
    assert c.wait(lambda: sc.readable, 1)
    assert not b.call(lambda: sb.readable)


def lossy_exchange(seed: int, tmp_path, tag: str, faults: str = "loss=20%,reorder=20%,dup=5%",
                   medium: str = "ethernet") -> tuple[list, bytes, bytes]:
    sim = Simulator(seed=seed)
    try:
        pa, pb = tmp_path / f"{tag}-a.pcap", tmp_path / f"{tag}-b.pcap"
        a = sim.add_host("198.18.0.1/24", name="a", medium=medium, pcap=str(pa))
        b = sim.add_host("198.18.0.2/24", name="b", medium=medium, pcap=str(pb), faults=faults)
        payloads = [b"msg%03d" % i for i in range(40)]
        server = sim.spawn(udp_echo, b, 9000, 1000, 1.0)
        client = sim.spawn(udp_client, a, "198.18.0.2", 9000, payloads, 0.2, 0.01)
        sim.run()
        got = client.result()
        server.result()
        assert sim.errors == 0
    finally:
        sim.close()
    return got, pa.read_bytes(), pb.read_bytes()


def test_same_seed_gives_byte_identical_pcaps(tmp_path):
    got1, a1, b1 = lossy_exchange(11, tmp_path, "r1")
    got2, a2, b2 = lossy_exchange(11, tmp_path, "r2")
    assert got1 == got2
    assert a1 == a2 and b1 == b2
    frames = list(read_pcap(tmp_path / "r1-b.pcap"))
    assert len(frames) > 40
    # the faults really acted: some echoes were lost, but not all
    assert 0 < got1.count(None) < len(got1)
    # an answer is an echo of this or an earlier message (late duplicates/reordered ones)
    assert all(g is None or g in {b"msg%03d" % j for j in range(i + 1)} for i, g in enumerate(got1))


def test_different_seed_with_faults_gives_different_pcaps(tmp_path):
    got1, a1, b1 = lossy_exchange(11, tmp_path, "s11")
    got2, a2, b2 = lossy_exchange(12, tmp_path, "s12")
    assert (a1, b1) != (a2, b2)
    assert got1 != got2


def test_without_faults_everything_arrives(tmp_path):
    got, _, _ = lossy_exchange(5, tmp_path, "clean", faults=None, medium="ip")
    assert got == [b"msg%03d" % i for i in range(40)]


def test_link_faults_apply_to_every_sender(sim):
    sim.link("lossy", "ip", faults="loss=100%")
    a = sim.add_host("198.18.0.1/24", name="a", link="lossy")
    b = sim.add_host("198.18.0.2/24", name="b", link="lossy")
    sb = b.call(b.stack.udp.open)
    b.call(sb.bind, 0, 7)
    sa = a.call(a.stack.udp.open)
    a.call(lambda: sa.sendto(b"x", ip_int("198.18.0.2"), 7, a.now()))
    assert b.wait(lambda: sb.readable, 1) is False
    assert a.port.counters.tx_frames == 0  # dropped before reaching the wire


def test_delay_fault_moves_delivery_in_virtual_time(sim):
    a = sim.add_host("198.18.0.1/24", name="a")
    b = sim.add_host("198.18.0.2/24", name="b", faults={"delay_s": 0.25, "direction": "rx"})
    sb = b.call(b.stack.udp.open)
    b.call(sb.bind, 0, 7)
    sa = a.call(a.stack.udp.open)
    a.call(lambda: sa.sendto(b"x", ip_int("198.18.0.2"), 7, a.now()))
    assert b.wait(lambda: sb.readable, 1)
    assert b.now() == pytest.approx(0.25)
    assert b.faults.stats["delayed"] == 1


def test_pcap_is_readable_after_run_and_host_down_after_close(tmp_path):
    sim = Simulator(seed=1)
    a = sim.add_host("198.18.0.1/24", name="a", pcap=str(tmp_path / "a.pcap"))
    b = sim.add_host("198.18.0.2/24", name="b")
    sim.spawn(udp_echo, b, 7, 1, 1.0)
    sim.spawn(udp_client, a, "198.18.0.2", 7, [b"x"])
    sim.run()
    frames = list(read_pcap(tmp_path / "a.pcap"))
    assert len(frames) == 2 and all(ts == 0.0 for ts, _, _ in frames)
    assert not a.down
    sim.close()
    assert a.down and b.down


def test_link_pcap_records_the_wire_after_faults(tmp_path):
    import io

    trace = io.StringIO()
    with Simulator(seed=3) as sim:
        sim.link("default", "ethernet", latency_s=0.01, pcap=str(tmp_path / "wire.pcap"))
        a = sim.add_host("198.18.0.1/24", name="a", medium="ethernet", pcap=str(tmp_path / "a.pcap"),
                         faults="loss=30%,dir=tx", trace=trace)
        b = sim.add_host("198.18.0.2/24", name="b", medium="ethernet")
        sim.spawn(udp_echo, b, 7, 100, 1.0)
        client = sim.spawn(udp_client, a, "198.18.0.2", 7, [b"%d" % i for i in range(20)], 0.1)
        sim.run()
        got = client.result()
    wire = list(read_pcap(tmp_path / "wire.pcap"))
    sent_by_a = list(read_pcap(tmp_path / "a.pcap"))
    assert 0 < got.count(None) < 20  # some requests were lost on a's way out
    # frames a's stack sent but the wire never carried are exactly those the fault dropped
    a_mac = a.stack.mac
    a_tx = [f for _, f, _ in sent_by_a if f[6:12] == a_mac]
    wire_from_a = [f for _, f, _ in wire if f[6:12] == a_mac]
    assert len(wire_from_a) == len(a_tx) - a.faults.stats["dropped"]
    assert any(f[6:12] != a_mac for _, f, _ in wire)  # b's frames are there too
    assert wire[0][0] == pytest.approx(0.01)  # stamped with the delivery time
    assert "ARP" in trace.getvalue() and "UDP" in trace.getvalue()


def test_link_options_on_an_existing_link(tmp_path):
    with Simulator() as sim:
        a = sim.add_host("198.18.0.1/24", name="a")
        b = sim.add_host("198.18.0.2/24", name="b")
        with pytest.raises(ValueError, match="exists"):
            sim.link("default", faults="loss=1%")
        with pytest.raises(ValueError, match="is ip"):
            sim.link("default", "ethernet")
        sim.link("default", pcap=str(tmp_path / "late.pcap"))  # a capture can start any time
        sa, sb = a.call(a.stack.udp.open), b.call(b.stack.udp.open)
        b.call(sb.bind, 0, 9)
        a.call(lambda: sa.sendto(b"x", ip_int("198.18.0.2"), 9, a.now()))
        assert b.wait(lambda: sb.readable, 1)
    assert len(list(read_pcap(tmp_path / "late.pcap"))) == 1
