"""Foundation "done when", in the Simulator with loss and reordering: ping, UDP echo, UDP to a
closed port (PORT_UNREACH on the socket), and a 4000-byte datagram fragmented and reassembled
both ways. Every host's port has a seeded FaultInjector (loss + reorder, both directions), so
the applications retry like real ones do; the same seed gives the same run, byte for byte.
"""

from __future__ import annotations

import io

import pytest

from ustack.core.reasons import Reason
from ustack.drivers import read_pcap
from ustack.runtime.simulator import Simulator
from ustack.wire.ipv4 import ip_int

A, B = "198.18.0.1", "198.18.0.2"
FAULTS = "loss=15%,reorder=25%,depth=2,hold=20ms"
ECHO_PORT, CLOSED_PORT = 7, 9
TRIES = 30  # per request: with 15% loss each way the chance of 30 failures is negligible
PINGS, DATAGRAMS = 12, 12


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def echo_server(host, port: int, stop: list) -> int:
    """Echo every datagram until `stop` is non-empty."""
    sock = host.call(host.stack.udp.open)
    host.call(sock.bind, 0, port)
    echoed = 0
    while host.wait(lambda: sock.readable or bool(stop), 60.0) and not stop:
        def echo_all() -> int:
            n = 0
            while (item := sock.recvfrom()) is not None:
                sock.sendto(item[0], item[1], item[2], host.now())
                n += 1
            return n

        echoed += host.call(echo_all)
    host.call(sock.close)
    return echoed


def request(host, sock, data: bytes, dst: int, port: int, timeout_s: float = 0.5) -> tuple[bytes, int]:
    """Send until the echo of `data` comes back; (echo, tries). Stale echoes are skipped."""
    for tries in range(1, TRIES + 1):
        host.call(lambda: sock.sendto(data, dst, port, host.now()))
        deadline = host.now() + timeout_s
        while (left := deadline - host.now()) > 0 and host.wait(lambda: sock.readable, left):
            item = host.call(sock.recvfrom)
            if item is not None and item[0] == data:
                return item[0], tries
    raise AssertionError(f"no echo of {len(data)} bytes after {TRIES} tries")


def ping_all(host, dst: int) -> list[tuple[int, bytes]]:
    """Ping seq 0..PINGS-1, each resent until its reply arrives (as `ping` users retry)."""
    icmp = host.stack.icmp
    got: dict[int, bytes] = {}
    for seq in range(PINGS):
        payload = pattern(56 + seq, seq)
        for _ in range(TRIES):
            host.call(icmp.ping, dst, 0x5151, seq, payload, host.now())
            if host.wait(lambda s=seq: any(r.seq == s for r in icmp.replies), 0.5):
                break
        got[seq] = next(bytes(r.payload) for r in icmp.replies if r.seq == seq)
    return sorted(got.items())


def closed_port_error(host, dst: int) -> tuple[Reason | None, int]:
    """A connected UDP socket sends to a port nobody listens on until the ICMP port
    unreachable comes back and is recorded as the socket's error."""
    sock = host.call(host.stack.udp.open)
    host.call(lambda: sock.connect(dst, CLOSED_PORT, host.now()))
    for tries in range(1, TRIES + 1):
        host.call(lambda: sock.send(b"anyone there?", host.now()))
        if host.wait(lambda: sock.error is not None, 0.5):
            err = host.call(sock.clear_error)
            host.call(sock.close)
            return err, tries
    host.call(sock.close)
    return None, TRIES


def run_scenarios(seed: int, medium: str, pcap_dir) -> dict:
    """All four scenarios on one lossy, reordering link; returns what a test compares."""
    wire = pcap_dir / f"wire-{medium}-{seed}.pcap"
    with Simulator(seed=seed) as sim:
        sim.link("default", medium, latency_s=0.001, pcap=str(wire))
        a = sim.add_host(f"{A}/24", name="a", medium=medium, faults=FAULTS)
        b = sim.add_host(f"{B}/24", name="b", medium=medium, faults=FAULTS)
        stop: list = []
        server = sim.spawn(echo_server, b, ECHO_PORT, stop, name="echo")

        def client() -> dict:
            out: dict = {"pings": ping_all(a, ip_int(B))}
            sock = a.call(a.stack.udp.open)
            echoes = []
            for i in range(DATAGRAMS):
                data, _ = request(a, sock, pattern(100 + 37 * i, i), ip_int(B), ECHO_PORT)
                echoes.append(data)
            big, big_tries = request(a, sock, pattern(4000, 4000), ip_int(B), ECHO_PORT, 1.0)
            a.call(sock.close)
            out.update(echoes=echoes, big=big, big_tries=big_tries)
            out["closed"] = closed_port_error(a, ip_int(B))
            stop.append(True)
            return out

        result = sim.spawn(client, name="client").result()
        sim.run()
        result["echoed"] = server.result()
        result["faults"] = (a.faults.stats, b.faults.stats)
        result["counters"] = (a.stack.counters.snapshot(), b.stack.counters.snapshot())
        result["errors"] = sim.errors
    result["wire"] = wire.read_bytes()
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenarios")
    cache: dict = {}

    def get(seed: int, medium: str) -> dict:
        if (seed, medium) not in cache:
            cache[seed, medium] = run_scenarios(seed, medium, d)
        return cache[seed, medium]

    return get


MEDIA = ["ip", "ethernet"]


@pytest.mark.parametrize("medium", MEDIA)
def test_faults_really_acted(runs, medium):
    r = runs(1, medium)
    for stats in r["faults"]:
        assert stats["dropped"] > 0 and stats["reordered"] > 0, stats
    assert r["errors"] == 0
    for c in r["counters"]:
        assert c.get("stack.internal_error", 0) == 0


@pytest.mark.parametrize("medium", MEDIA)
def test_ping_gets_every_reply(runs, medium):
    r = runs(1, medium)
    assert r["pings"] == [(seq, pattern(56 + seq, seq)) for seq in range(PINGS)]
    assert r["counters"][1]["icmp.echo_replies_out"] >= PINGS


@pytest.mark.parametrize("medium", MEDIA)
def test_udp_echo_intact(runs, medium):
    r = runs(1, medium)
    assert r["echoes"] == [pattern(100 + 37 * i, i) for i in range(DATAGRAMS)]
    assert r["echoed"] >= DATAGRAMS + 1


@pytest.mark.parametrize("medium", MEDIA)
def test_closed_port_gives_port_unreach_on_the_socket(runs, medium):
    r = runs(1, medium)
    kind, _tries = r["closed"]
    assert kind is Reason.PORT_UNREACH
    assert r["counters"][1]["udp.no_port"] >= 1
    assert r["counters"][0]["udp.icmp_error"] >= 1


@pytest.mark.parametrize("medium", MEDIA)
def test_4000_byte_datagram_fragmented_and_reassembled_both_ways(runs, medium):
    r = runs(1, medium)
    assert r["big"] == pattern(4000, 4000)
    ca, cb = r["counters"]
    for sender, receiver in ((ca, cb), (cb, ca)):
        assert sender["ipv4.fragmented"] >= 1 and sender["ipv4.fragments_out"] >= 3
        assert receiver["ipv4.reasm_ok"] >= 1


def fragments_out_of_order(wire: bytes, medium: str) -> int:
    """How many fragmented datagrams crossed the wire with their offsets out of order."""
    seen: dict[tuple[bytes, int], list[int]] = {}
    for _ts, frame, _lt in read_pcap(io.BytesIO(wire)):
        if medium == "ethernet":
            if frame[12:14] != b"\x08\x00":
                continue
            frame = frame[14:]
        flags = int.from_bytes(frame[6:8], "big")
        if flags & 0x3FFF:  # MF or an offset: a fragment
            seen.setdefault((frame[12:16], int.from_bytes(frame[4:6], "big")), []).append(flags & 0x1FFF)
    return sum(offsets != sorted(offsets) for offsets in seen.values())


def test_reordered_fragments_still_reassemble(runs):
    """Over a few seeds, fragments do cross the wire out of order, and the 4000-byte datagram is
    rebuilt every time (the reassembler does not depend on arrival order)."""
    disordered = 0
    for seed in (1, 2, 3):
        for medium in MEDIA:
            r = runs(seed, medium)
            assert r["big"] == pattern(4000, 4000)
            disordered += fragments_out_of_order(r["wire"], medium)
    assert disordered > 0


@pytest.mark.parametrize("medium", MEDIA)
def test_same_seed_same_run_byte_identical_wire(runs, medium, tmp_path):
    first = runs(1, medium)
    again = run_scenarios(1, medium, tmp_path)
    assert again["wire"] == first["wire"]
    assert again["counters"] == first["counters"] and again["faults"] == first["faults"]
    assert (again["closed"], again["big_tries"]) == (first["closed"], first["big_tries"])


@pytest.mark.parametrize("medium", MEDIA)
def test_different_seed_different_run(runs, medium):
    assert runs(1, medium)["wire"] != runs(2, medium)["wire"]


@pytest.mark.parametrize("medium", MEDIA)
def test_wire_pcap_opens_in_tshark_without_malformed_packets(runs, medium, tmp_path):
    """The simulated wire's pcap (fragments, ICMP errors, ARP on the TAP-like link) decodes in
    tshark with no malformed packet and no bad checksum."""
    import subprocess

    from tests.netns import require_tool

    tshark = require_tool("tshark")
    path = tmp_path / f"wire-{medium}.pcap"
    path.write_bytes(runs(1, medium)["wire"])

    def run(*args: str) -> list[str]:
        out = subprocess.run([tshark, "-n", "-r", str(path), *args], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return [line for line in out.stdout.splitlines() if line.strip()]

    assert len(run()) > 50
    bad = run("-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-Y",
              '_ws.malformed || _ws.expert.severity == "Error" || ip.checksum.status == "Bad" || '
              'udp.checksum.status == "Bad" || icmp.checksum.status == "Bad"')
    assert bad == [], "\n".join(bad)
    protocols = "\n".join(run("-T", "fields", "-e", "frame.protocols"))
    assert "icmp" in protocols and "udp" in protocols
    if medium == "ethernet":
        assert "arp" in protocols
