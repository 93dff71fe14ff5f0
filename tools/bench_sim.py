#!/usr/bin/env python3
"""Simulator throughput: one TCP transfer between two ustack hosts in the Simulator, under
random loss, timed by the wall clock, with the virtual time it took beside it.

Host a (198.18.0.2) sends `--mb` MB to host b (198.18.0.1) over the pythonic socket layer;
the link has latency RTT/2 each way and a's FaultInjector (seeded) drops a fraction P of
its frames both ways (data and ACKs). The
receiver hashes what it got (SHA-256, compared with what was sent). The reference, in the same
run and process: the same transfer without loss. Reported for each: wall seconds, virtual
seconds (connect to the last byte), wall MB/s, and virtual/wall (how much faster than real
time the Simulator ran it); ratio = wall time with loss / wall time without. No network and no
namespace: everything is in memory.

    python tools/bench_sim.py [--mb 100] [--loss 0.01] [--rtt-ms 20] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

A, B, PORT = "198.18.0.2", "198.18.0.1", 9
CHUNK = 1 << 20


def transfer(mb: float, loss: float, rtt_ms: float, seed: int, wall_limit_s: float) -> dict:
    """Send mb MB from a to b in a fresh Simulator; the wall and virtual time it took."""
    from ustack import Simulator
    from ustack import socket as us

    nbytes = int(mb * 1e6)
    block = bytes(range(256)) * (CHUNK // 256)
    sent = hashlib.sha256()
    for off in range(0, nbytes, CHUNK):
        sent.update(block[:min(CHUNK, nbytes - off)])
    sim = Simulator(seed=seed, wall_limit_s=wall_limit_s, time_limit_s=wall_limit_s * 10)
    sim.link("default", latency_s=rtt_ms / 2000)
    # a's injector, both directions: its data and the ACKs it receives each lose `loss`
    a = sim.add_host(f"{A}/24", name="a", faults=f"loss={loss},seed={seed}" if loss else None)
    b = sim.add_host(f"{B}/24", name="b")
    srv = us.socket(b)
    srv.bind(("0.0.0.0", PORT))
    srv.listen()

    def receive() -> tuple[int, str]:
        conn, _ = srv.accept()
        got, h = 0, hashlib.sha256()
        while chunk := conn.recv(CHUNK):
            got += len(chunk)
            h.update(chunk)
        conn.close()
        return got, h.hexdigest()

    task = sim.spawn(receive)
    wall0, virt0 = time.perf_counter(), sim.now
    with us.create_connection(a, (B, PORT)) as c:
        for off in range(0, nbytes, CHUNK):
            c.sendall(block[:min(CHUNK, nbytes - off)])
    got, digest = task.result()
    virt, wall = sim.now - virt0, time.perf_counter() - wall0
    counters = {k: a.stack.counters.get(k) + b.stack.counters.get(k)
                for k in ("tcp.internal_error", "stack.internal_error")}
    dropped = a.faults.frames_dropped if a.faults is not None else 0
    errors = sim.errors
    sim.close()
    return {"loss": loss, "bytes": got, "complete": got == nbytes and digest == sent.hexdigest(),
            "wall_s": round(wall, 3), "virtual_s": round(virt, 3),
            "wall_mb_per_s": round(got / 1e6 / wall, 2), "virtual_mb_per_s": round(got / 1e6 / virt, 2),
            "virtual_over_wall": round(virt / wall, 3), "frames_dropped_by_faults": dropped,
            "sim_errors": errors, **counters}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--loss", type=float, default=0.01, help="loss probability on the link (both ways)")
    ap.add_argument("--rtt-ms", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wall-limit", type=float, default=1800.0, help="give up after this many wall seconds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    lossy = transfer(args.mb, args.loss, args.rtt_ms, args.seed, args.wall_limit)
    clean = transfer(args.mb, 0.0, args.rtt_ms, args.seed, args.wall_limit)
    result = {"mb": args.mb, "rtt_ms": args.rtt_ms, "seed": args.seed, "lossy": lossy, "no_loss": clean,
              "ratio_wall_lossy_over_no_loss": round(lossy["wall_s"] / clean["wall_s"], 3)}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for name, r in (("loss", lossy), ("no loss", clean)):
            print(f"{name:>8} {r['loss']:.1%}: {r['bytes']} bytes complete={r['complete']} "
                  f"in {r['wall_s']} s wall "
                  f"({r['wall_mb_per_s']} MB/s), {r['virtual_s']} s virtual "
                  f"({r['virtual_over_wall']}x real time), {r['frames_dropped_by_faults']} frames dropped")
        print(f"wall time with loss / without: {result['ratio_wall_lossy_over_no_loss']}")
    return 0 if lossy["complete"] and clean["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
