"""A busier simulation for cross-process determinism checks: several TCP connections at once
over a lossy, reordering Ethernet link, plus UDP. Prints the SHA-256 of each host's pcap.

    python -m tests.runtime.scenario_multi SEED OUTDIR
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

from tests.runtime.apps import tcp_echo_server, tcp_exchange, udp_client, udp_echo
from ustack.runtime.simulator import Simulator


def run(seed: int, outdir: Path) -> dict[str, str]:
    outdir.mkdir(parents=True, exist_ok=True)
    with Simulator(seed=seed, latency_s=0.002) as sim:
        a = sim.add_host("198.18.0.1/24", name="a", medium="ethernet", pcap=str(outdir / "a.pcap"))
        b = sim.add_host("198.18.0.2/24", name="b", medium="ethernet", pcap=str(outdir / "b.pcap"),
                         faults="loss=2%,reorder=5%,dup=1%")
        tasks = []
        for i in range(4):
            data = random.Random(i).randbytes(40_000 + 7_000 * i)
            tasks.append(sim.spawn(tcp_echo_server, b, 8000 + i, 60.0, name=f"srv{i}"))
            tasks.append(sim.spawn(tcp_exchange, a, "198.18.0.2", 8000 + i, data, 60.0, name=f"cli{i}"))
        tasks.append(sim.spawn(udp_echo, b, 9000, 30, 2.0, name="usrv"))
        tasks.append(sim.spawn(udp_client, a, "198.18.0.2", 9000, [b"u%d" % i for i in range(30)], 0.1,
                               0.003, name="ucli"))
        try:
            sim.run()
        except Exception:  # noqa: BLE001, S110 - outcomes are part of what must be reproducible
            pass
        outcomes = []
        for t in tasks:
            r = t.exception if t.exception is not None else t.result()
            outcomes.append(f"{t.name}={type(r).__name__}:{r if not isinstance(r, bytes) else len(r)}")
        end = f"{sim.now:.9f}"
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(outdir.glob("*.pcap"))}
    digests["outcomes"] = hashlib.sha256(" ".join(outcomes).encode()).hexdigest()
    digests["end"] = end
    return digests


if __name__ == "__main__":
    for name, digest in run(int(sys.argv[1]), Path(sys.argv[2])).items():
        print(name, digest)
