"""A TCP transfer in the Simulator under a fault scenario, with what each side saw."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ustack import Simulator
from ustack import socket as us
from ustack.drivers import read_pcap

A, B = "198.18.0.2", "198.18.0.1"


@dataclass
class Run:
    sim: Any
    a: Any  # the sender, with the faults
    b: Any
    events: list = field(default_factory=list)
    sha_ok: bool = False
    a_pcap: Path | None = None
    b_pcap: Path | None = None
    done_at: float = 0.0

    def frames(self, which: str, direction: str | None = None) -> list[tuple[float, bytes]]:
        """Frames in a host's pcap: ("a"|"b", "out"|"in"|None) by source address."""
        path = self.a_pcap if which == "a" else self.b_pcap
        me = A if which == "a" else B
        out = []
        for t, f, lt in read_pcap(path):
            off = 14 if lt == 1 else 0
            if lt == 1 and f[12:14] != b"\x08\x00":
                continue  # ARP
            src = ".".join(str(b) for b in f[off + 12:off + 16])  # read raw: truncated frames too
            if direction is None or (direction == "out") == (src == me):
                out.append((t, f))
        return out

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def scenario_file(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def transfer(tmp_path: Path, faults: Any, nbytes: int = 300_000, *, seed: int = 7, latency_s: float = 0.005,
             link_faults: Any = None, udp: bytes | None = None, time_limit_s: float = 120.0,
             medium: str = "ip") -> Run:
    """Host a (198.18.0.2, with `faults`) sends nbytes over TCP to b (198.18.0.1), or one UDP
    datagram `udp` to b's port 9. Both hosts record pcaps; fault events are collected."""
    tag = f"{id(faults)}-{seed}"
    sim = Simulator(seed=seed, latency_s=latency_s, time_limit_s=time_limit_s)
    if link_faults is not None:
        sim.link("default", faults=link_faults)
    a_pcap, b_pcap = tmp_path / f"a-{tag}.pcap", tmp_path / f"b-{tag}.pcap"
    a = sim.add_host(f"{A}/24", pcap=str(a_pcap), faults=faults, medium=medium)
    b = sim.add_host(f"{B}/24", pcap=str(b_pcap), medium=medium)
    run = Run(sim, a, b, a_pcap=a_pcap, b_pcap=b_pcap)
    if a.faults is not None:
        a.faults.add_listener(run.events.append)
    if udp is not None:
        rx = us.socket(b, us.AF_INET, us.SOCK_DGRAM)
        rx.bind(("0.0.0.0", 9))
        tx = us.socket(a, us.AF_INET, us.SOCK_DGRAM)
        tx.sendto(udp, (B, 9))
        sim.run_for(1.0)
        run.done_at = sim.now
        assert sim.errors == 0, [h.last_error for h in sim.hosts]
        return run
    data = bytes(range(256)) * (nbytes // 256) + bytes(nbytes % 256)
    srv = us.socket(b)
    srv.bind(("0.0.0.0", 9))
    srv.listen()

    def receive() -> str:
        conn, _ = srv.accept()
        got = bytearray()
        while chunk := conn.recv(65536):
            got += chunk
        return hashlib.sha256(got).hexdigest()

    task = sim.spawn(receive)
    with us.create_connection(a, (B, 9)) as c:
        c.sendall(data)
    run.sha_ok = task.result() == hashlib.sha256(data).hexdigest()
    run.done_at = sim.now
    sim.run_for(0.5)
    for h in (a, b):
        h.pcap.flush()
    assert sim.errors == 0, [h.last_error for h in sim.hosts]  # nothing raised out of a device
    return run
