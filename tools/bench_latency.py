#!/usr/bin/env python3
"""Latency: 1-byte ping-pong round trips through `ustack serve --echo 7` over a TUN, p50 and p99,
next to the same client against a kernel TCP echo on loopback in the same run.

The measuring code is bench_conns.py's (`Serve`, `ping_pong`, `kernel_echo_server`): this tool
only runs it on its own, in a private network namespace it creates (re-executes itself under
`unshare -n`; ustack 198.18.0.2 on a TUN, the kernel 198.18.0.1), after a short connect/echo
warm-up. The reference is a floor, not the same path (no TUN, no ustack): a Python thread of
this process echoes on 127.0.0.1. Ratios: ustack's p50 and p99 over the reference's.
`--profile DIR` samples the serve process with py-spy during the ustack round trips (a
flamegraph and the raw stacks in DIR; the top functions in the result).

    python tools/bench_latency.py [--pings 2000] [--profile DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_conns import HERE, PORT, USTACK_IP, Serve, kernel_echo_server, ping_pong, rate  # noqa: E402
from bench_rx import ensure_private_netns, lo_up, summarize_collapsed  # noqa: E402


def py_spy(pid: int, out_dir: str, seconds: float) -> list[subprocess.Popen]:
    """py-spy recording process `pid` for `seconds` (flamegraph and raw stacks in out_dir)."""
    exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(exe):
        sys.exit("bench_latency: --profile needs py-spy (pip install py-spy)")
    os.makedirs(out_dir, exist_ok=True)
    common = ["record", "--pid", str(pid), "--rate", "500", "--duration", str(int(seconds) + 1),
              "--nonblocking"]
    procs = []
    for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
        out = os.path.join(out_dir, f"serve_latency.{ext}")
        procs.append(subprocess.Popen([exe, *common, "--format", fmt, "-o", out], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))
    time.sleep(0.5)  # attached before the round trips start
    return procs


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pings", type=int, default=2000, help="round trips on each path")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the serve process during the ustack round trips")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.profile:
        args.profile = os.path.abspath(args.profile)
    ensure_private_netns(sys.argv[1:], os.path.abspath(__file__))
    lo_up()
    ls, port = kernel_echo_server()
    kernel = ping_pong(("127.0.0.1", port), args.pings)
    ls.close()
    serve = Serve(HERE, "blat0")
    try:
        rate(0.5, 4)  # code paths and the allocator warmed up first
        spies = py_spy(serve.p.pid, args.profile, args.pings * 300e-6) if args.profile else []
        ustack = ping_pong((USTACK_IP, PORT), args.pings)
        for p in spies:
            p.wait(60)
    finally:
        serve.stop()
    result = {"pings": args.pings, "ustack_tun": ustack, "kernel_loopback": kernel,
              "ratio_p50": ratio(ustack["p50_us"], kernel["p50_us"]),
              "ratio_p99": ratio(ustack["p99_us"], kernel["p99_us"])}
    if args.profile:
        result["profile"] = summarize_collapsed(os.path.join(args.profile, "serve_latency.txt"))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for name, r in (("ustack serve over TUN", ustack), ("kernel echo on loopback", kernel)):
            print(f"{name:>24}: p50 {r['p50_us']} us, p99 {r['p99_us']} us ({r['round_trips']} round trips)")
        print(f"ratio ustack / kernel: p50 {result['ratio_p50']}, p99 {result['ratio_p99']}")
    complete = ustack["round_trips"] == kernel["round_trips"] == args.pings
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
