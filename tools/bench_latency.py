#!/usr/bin/env python3
"""Latency: 1-byte ping-pong round trips through `ustack serve --echo 7` over a TUN, p50 and p99,
next to the same client against a kernel TCP echo on loopback in the same run.

The measuring code is bench_conns.py's (`Serve`, `ping_pong`, `kernel_echo_server`): this tool
only runs it on its own, in a private network namespace it creates (re-executes itself under
`unshare -n`; ustack 198.18.0.2 on a TUN, the kernel 198.18.0.1), after a short connect/echo
warm-up. The reference is a floor, not the same path (no TUN, no ustack): a Python thread of
this process echoes on 127.0.0.1. Ratios: ustack's p50 and p99 over the reference's. Also the
serve process's CPU time (user + system, from /proc) per round trip.
`--root PATH` (repeatable) measures serve from each ustack tree in the same run (e.g. an older
one from `git archive`, then this checkout; default: this checkout only); `--rounds N` runs every
tree N times, in turn, each time in a fresh serve process (so drifting machine load hits all),
and reports each tree's medians (and the best round's p50). The last tree is the one in
`ustack_tun` and the ratios.
`--profile DIR` samples the last tree's serve process with py-spy during its last round trips (a
flamegraph and the raw stacks in DIR; the top functions in the result).
`--calls N` also counts the Python and C function calls the server side makes per round trip
(this checkout, in this process: two Hosts on an in-memory link, ServiceSet echo on one, a
ustack socket client on the other; N round trips after 100 of warm-up), with the handlers on
the network thread and with them on the service thread (`inline=False`): work counted, not
timed, so the figure does not move with the machine's load.

    python tools/bench_latency.py [--pings 2000] [--root PATH ...] [--rounds 1] [--profile DIR]
        [--calls N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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


def calls_per_round_trip(n: int, inline: bool) -> dict[str, float]:
    """Function calls per 1-byte echo round trip made by the serving side's threads (by thread
    name), counted with a profile hook on every thread; see the module docstring."""
    import threading

    sys.path.insert(0, HERE)
    from ustack import socket as us
    from ustack.cli.services import ServiceSet
    from ustack.drivers import MemLink
    from ustack.runtime.host import Host, build_stack

    counted = ("ustack-net-server", "services")
    calls = dict.fromkeys(counted, 0)
    on = False

    def hook(_frame: object, event: str, _arg: object) -> None:
        nonlocal on
        if on and event in ("call", "c_call"):
            name = threading.current_thread().name
            if name in calls:
                calls[name] += 1
    pa, pb = MemLink.pair("ip")
    threading.setprofile(hook)  # threads started from here on: the hosts' and the service thread
    hosts = [Host(build_stack(addr=f"198.18.0.{i}/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=i),
                  port, name=name) for i, port, name in ((1, pa, "client"), (2, pb, "server"))]
    try:
        client, server = hosts
        svc = ServiceSet(server, inline=inline)
        svc.tcp("echo", PORT)
        s = us.create_connection(client, ("198.18.0.2", PORT), timeout=10)
        s.setsockopt(us.IPPROTO_TCP, us.TCP_NODELAY, 1)
        for k in range(100 + n):
            on = k >= 100
            s.send(b"p")
            if s.recv(1) != b"p":
                raise RuntimeError("echo lost")
        on = False
        s.close()
        svc.stop()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        for h in hosts:
            h.close()
    return {name: round(c / n, 1) for name, c in calls.items() if c}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def one_round(root: str, pings: int, profile: str | None) -> dict:
    """A fresh serve from `root`: warm-up, then `pings` round trips; their p50/p99 and the
    serve process's CPU time per round trip."""
    serve = Serve(root, "blat0")
    try:
        rate(0.5, 4)  # code paths and the allocator warmed up first
        spies = py_spy(serve.p.pid, profile, pings * 300e-6) if profile else []
        cpu0 = serve.cpu_s()
        r = ping_pong((USTACK_IP, PORT), pings)
        cpu = serve.cpu_s() - cpu0
        for p in spies:
            p.wait(60)
    finally:
        serve.stop()
    r["cpu_us_per_round_trip"] = round(cpu / r["round_trips"] * 1e6, 1) if r["round_trips"] else None
    return r


def median_of(rounds: list[dict]) -> dict:
    """One tree's figures: the median of each over its rounds (rounds kept alongside)."""
    out: dict = {"round_trips": sum(r["round_trips"] for r in rounds)}
    for key in ("p50_us", "p99_us", "cpu_us_per_round_trip"):
        vals = [r[key] for r in rounds if r[key] is not None]
        out[key] = round(statistics.median(vals), 1) if vals else None
    best = [r["p50_us"] for r in rounds if r["p50_us"] is not None]
    out["p50_us_best"] = min(best) if best else None  # the round least disturbed by other load
    out["rounds"] = rounds
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pings", type=int, default=2000, help="round trips on each path (per round)")
    ap.add_argument("--root", action="append", help="ustack tree to run serve from (repeatable; the last "
                    "one is reported as ustack_tun)")
    ap.add_argument("--rounds", type=int, default=1, help="runs of every tree, in turn")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the serve process during the ustack round trips")
    ap.add_argument("--calls", type=int, default=0, metavar="N",
                    help="also count the server's function calls per round trip over N round trips")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.profile:
        args.profile = os.path.abspath(args.profile)
    roots = [os.path.abspath(r) for r in (args.root or [HERE])]
    ensure_private_netns(sys.argv[1:], os.path.abspath(__file__))
    lo_up()
    ls, port = kernel_echo_server()
    kernel = ping_pong(("127.0.0.1", port), args.pings)
    ls.close()
    runs: dict[str, list[dict]] = {root: [] for root in roots}
    for rnd in range(args.rounds):  # trees in turn, so drifting load hits every one
        for root in roots:
            last = rnd == args.rounds - 1 and root == roots[-1]
            runs[root].append(one_round(root, args.pings, args.profile if last else None))
    trees = [{"root": root, **median_of(runs[root])} for root in roots]
    ustack = {k: trees[-1][k] for k in ("round_trips", "p50_us", "p99_us", "cpu_us_per_round_trip")}
    result = {"pings": args.pings, "rounds": args.rounds, "ustack_tun": ustack, "kernel_loopback": kernel,
              "ratio_p50": ratio(ustack["p50_us"], kernel["p50_us"]),
              "ratio_p99": ratio(ustack["p99_us"], kernel["p99_us"]), "trees": trees}
    if len(trees) > 1:
        first = trees[0]
        result["vs_first_tree"] = {k: ratio(ustack[k], first[k])
                                   for k in ("p50_us", "p99_us", "cpu_us_per_round_trip")}
    if args.profile:
        result["profile"] = summarize_collapsed(os.path.join(args.profile, "serve_latency.txt"))
    if args.calls:
        result["calls_per_round_trip"] = {
            "handlers_on_network_thread": calls_per_round_trip(args.calls, True),
            "handlers_on_service_thread": calls_per_round_trip(args.calls, False)}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for t in trees:
            print(f"{t['root']}: serve over TUN p50 {t['p50_us']} us, p99 {t['p99_us']} us, serve CPU "
                  f"{t['cpu_us_per_round_trip']} us per round trip ({t['round_trips']} round trips, "
                  f"median of {args.rounds}; best round's p50 {t['p50_us_best']} us)")
        print(f"kernel echo on loopback: p50 {kernel['p50_us']} us, p99 {kernel['p99_us']} us "
              f"({kernel['round_trips']} round trips)")
        print(f"ratio ustack / kernel: p50 {result['ratio_p50']}, p99 {result['ratio_p99']}")
        if "vs_first_tree" in result:
            print(f"last tree / first tree: {result['vs_first_tree']}")
        for where, by_thread in result.get("calls_per_round_trip", {}).items():
            print(f"server function calls per round trip, {where.replace('_', ' ')}: {by_thread} "
                  f"(total {sum(by_thread.values()):.1f})")
    complete = kernel["round_trips"] == args.pings and all(
        r["round_trips"] == args.pings for rounds in runs.values() for r in rounds)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
