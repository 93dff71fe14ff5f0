#!/usr/bin/env python3
"""What a fault scenario costs per frame, in virtual time (no network, no namespace).

The same 1448-byte TCP data segments (a real connection's, decoded by the rules) are sent
through an in-memory port wrapped by a FaultInjector under each configuration, in one run, and
the cost per frame is reported with its ratio to the bare port:

  bare        the MemPort alone
  noop        an injector with no faults (the lab keeps one in the chain)
  loss        independent loss 1%
  gilbert     a Gilbert-Elliott loss model
  rules       three targeted rules (the frames are decoded; none fires)
  schedule    a scheduled change pending (down at t=1000 s)

With `--baseline REV`, drivers/ of that git revision (e.g. the commit before scenarios) runs in
the same process as "base-noop" and "base-loss", so the cost of the scenario machinery is a
same-run ratio.

    python tools/bench_faults.py [--frames 200000] [--repeat 5] [--baseline REV] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ustack import wire  # noqa: E402
from ustack.drivers import FaultInjector, MemLink, parse_scenario  # noqa: E402

CONFIGS = {
    "noop": "",
    "loss": '[link]\nloss = "1%"\n',
    "gilbert": '[loss]\nmodel = "gilbert-elliott"\np = "1%"\nr = "30%"\n1-h = "90%"\n1-k = "0.1%"\n',
    "rules": 'rules = ["drop tcp data dir=out nth=999999999", "delay 10ms tcp syn dir=out", '
             '"corrupt tcp.window=0 tcp dir=in nodata nth=5"]\n',
    "schedule": '[[at]]\ntime = 1000\nfor = 1\ndown = true\n',
}


def segments(n: int) -> list[bytes]:
    """A SYN then n data segments of one connection (so the rules learn the ISN)."""
    src, dst = wire.ip_int("198.18.0.2"), wire.ip_int("198.18.0.1")
    syn = wire.TcpSegment(40000, 9, 1000, 0, 0x02, 65535).emit(src, dst)
    out = [wire.Ipv4Packet(src, dst, 6, syn).emit()]
    payload = bytes(1448)
    for i in range(min(n, 4096)):
        seg = wire.TcpSegment(40000, 9, 1001 + i * 1448, 1, 0x18, 512, payload).emit(src, dst)
        out.append(wire.Ipv4Packet(src, dst, 6, seg, df=True).emit())
    return [out[0]] + [out[1 + i % (len(out) - 1)] for i in range(n)]


def load_baseline(rev: str) -> object:
    """drivers/ as of git revision `rev`, imported as the package `drivers_baseline`."""
    import importlib.util
    import io
    import subprocess
    import tarfile
    import tempfile

    root = Path(__file__).resolve().parents[1]
    cmd = ["git", "-C", str(root), "archive", rev, "drivers"]
    tar = subprocess.run(cmd, capture_output=True, check=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    tarfile.open(fileobj=io.BytesIO(tar)).extractall(tmp, filter="data")
    spec = importlib.util.spec_from_file_location("drivers_baseline", tmp / "drivers" / "__init__.py",
                                                  submodule_search_locations=[str(tmp / "drivers")])
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["drivers_baseline"] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


BASELINE: list[object] = []


def run_once(kind: str, frames: list[bytes]) -> float:
    a, b = MemLink.pair(queue_limit=len(frames) + 8)
    if kind == "bare":
        dev = a
    elif kind.startswith("base-"):
        base = BASELINE[0]
        dev = base.FaultInjector(a, loss=0.01 if kind == "base-loss" else 0.0)  # type: ignore[attr-defined]
    else:
        dev = FaultInjector(a, scenario=parse_scenario(CONFIGS[kind]), origin=0.0)
    send = dev.send
    t0 = time.perf_counter()
    for f in frames:
        send(f, 0.0)
    return (time.perf_counter() - t0) / len(frames) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--baseline", metavar="REV", help="also run drivers/ of this git revision")
    args = ap.parse_args()
    frames = segments(args.frames)
    kinds = ["bare", *CONFIGS]
    if args.baseline:
        BASELINE.append(load_baseline(args.baseline))
        kinds += ["base-noop", "base-loss"]
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.repeat):  # interleaved, so a slow moment hits every configuration
        for k in kinds:
            samples[k].append(run_once(k, frames))
    med = {k: statistics.median(v) for k, v in samples.items()}
    result = {k: {"us_per_frame": round(med[k], 3), "ratio_to_bare": round(med[k] / med["bare"], 2)}
              for k in kinds}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        head = f"{'config':<10} {'us/frame':>9} {'x bare':>7}"
        print(f"{head}   ({args.frames} frames, median of {args.repeat})")
        for k in kinds:
            print(f"{k:<10} {result[k]['us_per_frame']:>9.3f} {result[k]['ratio_to_bare']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
