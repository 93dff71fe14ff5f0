"""The simulator with the real TCP layer: connections, timeouts and loss in virtual time."""

from __future__ import annotations

import hashlib
import random

import pytest

from tests.runtime.apps import tcp_echo_server, tcp_exchange, tcp_sink_server
from ustack.core.reasons import Reason
from ustack.runtime.simulator import Simulator
from ustack.wire.ipv4 import ip_int


def blob(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("medium", ["ip", "ethernet"])
def test_tcp_echo_between_tasks(medium):
    with Simulator(seed=2) as sim:
        a = sim.add_host("198.18.0.1/24", name="a", medium=medium)
        b = sim.add_host("198.18.0.2/24", name="b", medium=medium)
        data = blob(100_000)
        server = sim.spawn(tcp_echo_server, b, 8000)
        client = sim.spawn(tcp_exchange, a, "198.18.0.2", 8000, data)
        sim.run()
        assert client.result() == data
        assert server.result() == len(data)
        assert sim.errors == 0


def test_syn_timeout_of_21_s_in_virtual_time():
    with Simulator(seed=3) as sim:
        a = sim.add_host("198.18.0.1/24", name="a")  # TUN-like link: the SYNs go nowhere
        sock = a.call(a.stack.tcp.open)
        assert (sock.syn_rto_s, sock.syn_retries) == (3.0, 2)
        t0 = a.now()
        a.call(lambda: sock.connect(ip_int("198.18.0.99"), 80, a.now()))
        assert a.wait(lambda: sock.error is not None, 60)
        assert sock.error is Reason.TIMED_OUT
        assert a.now() - t0 == pytest.approx(21.0)  # 3 + 6 + 12


def test_connect_to_closed_port_is_refused():
    with Simulator(seed=4) as sim:
        a = sim.add_host("198.18.0.1/24", name="a")
        sim.add_host("198.18.0.2/24", name="b")
        sock = a.call(a.stack.tcp.open)
        a.call(lambda: sock.connect(ip_int("198.18.0.2"), 81, a.now()))
        assert a.wait(lambda: sock.error is not None, 60)
        assert sock.error is Reason.REFUSED


def lossy_transfer(seed: int, tmp_path, tag: str, faults: str = "loss=3%,reorder=3%,dup=1%"
                   ) -> tuple[bytes, bytes, float]:
    with Simulator(seed=seed, latency_s=0.005) as sim:
        pcap = tmp_path / f"{tag}.pcap"
        a = sim.add_host("198.18.0.1/24", name="a", pcap=str(pcap))
        b = sim.add_host("198.18.0.2/24", name="b", faults=faults)
        data = blob(300_000, seed=1)
        server = sim.spawn(tcp_sink_server, b, 8000, 120.0)
        client = sim.spawn(tcp_exchange, a, "198.18.0.2", 8000, data, 120.0)
        sim.run()
        digest = client.result()
        assert digest == hashlib.sha256(data).digest()
        assert server.result() == len(data)
        assert b.faults.stats["dropped"] > 0
        end = sim.now
    return digest, pcap.read_bytes(), end


@pytest.mark.parametrize("seed", [9, 10, 11])
def test_lossy_tcp_transfer_is_intact_and_deterministic(tmp_path, seed):
    d1, p1, t1 = lossy_transfer(seed, tmp_path, "one")
    d2, p2, t2 = lossy_transfer(seed, tmp_path, "two")
    assert (d1, t1, p1) == (d2, t2, p2)
    _, p3, _ = lossy_transfer(seed + 100, tmp_path, "three")
    assert p3 != p1


@pytest.mark.parametrize("seed", [0, 9, 10])
def test_lossy_bidirectional_echo(seed):
    """Data both ways under loss: data segments that carry SACK blocks must still fit the MTU."""
    with Simulator(seed=seed, latency_s=0.002) as sim:
        a = sim.add_host("198.18.0.1/24", name="a")
        b = sim.add_host("198.18.0.2/24", name="b", faults="loss=2%")
        data = blob(60_000)
        sim.spawn(tcp_echo_server, b, 8000, 60.0)
        client = sim.spawn(tcp_exchange, a, "198.18.0.2", 8000, data, 60.0)
        sim.run()
        assert client.result() == data
        assert a.stack.counters.get("ipv4.frag_needed_local") == 0
        assert b.stack.counters.get("ipv4.frag_needed_local") == 0


def test_busy_scenario_is_identical_across_processes(tmp_path):
    """Four TCP connections, UDP and faults on one link: two separate interpreters with
    different hash seeds produce the same pcaps, the same task outcomes, the same end time."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    outs = []
    for hashseed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed, PYTHONPATH=root)
        res = subprocess.run([sys.executable, "-m", "tests.runtime.scenario_multi", "5",
                              str(tmp_path / hashseed)], capture_output=True, text=True, timeout=100, env=env,
                             cwd=root)
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout)
    assert outs[0] == outs[1]
    assert "a.pcap" in outs[0] and "b.pcap" in outs[0]
