#!/usr/bin/env python3
"""All the benchmarks in one run, side by side: receive (`bench_rx.py`, ustack against a bare
Python receiver), send (`bench_tx.py`, against a bare Python sender) and connections
(`bench_conns.py`: connect rate, 1-byte round trip, 10,000 held connections and memory per
connection against `ustack serve`, the Simulator at scale). Each runs as its own process, one
after the other, in its own private network namespace; each already compares ustack with its
reference in the same run. Prints one table (rich) and writes every benchmark's full JSON with `--json FILE`.

`--smoke`: tiny sizes (a few MB, 200 connections) that check the machinery and the
correctness of each run, not its speed (what CI runs: tests/perf/test_bench_all.py).
Also `ustack bench` from a source checkout.

    python tools/bench.py [--smoke] [--only rx,tx,conns] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name: (script, full-run arguments, smoke arguments, time limit in s of the full run)
BENCHES: dict[str, tuple[str, list[str], list[str], float]] = {
    "rx": ("bench_rx.py", ["--mb", "200", "--repeat", "3"], ["--mb", "5", "--seconds", "10"], 600),
    "tx": ("bench_tx.py", ["--mb", "200", "--repeat", "3"], ["--mb", "5", "--seconds", "10"], 600),
    "conns": ("bench_conns.py", [],
              ["--rate-seconds", "0.5", "--parallel", "4", "--concurrent", "200", "--inflight", "64",
               "--hold-seconds", "30", "--sim", "200", "--sim-mem", "100", "--pings", "200"], 900),
}


def run_one(name: str, smoke: bool) -> dict:
    script, full, small, limit = BENCHES[name]
    cmd = [sys.executable, os.path.join(HERE, script), *(small if smoke else full), "--json"]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit / (4 if smoke else 1))
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {limit / (4 if smoke else 1):.0f} s"}
    out: dict = {"wall_s": round(time.monotonic() - t0, 1)}
    text = p.stdout
    if p.returncode != 0 or "{" not in text:
        out["error"] = f"exit {p.returncode}: {(p.stderr or text).strip().splitlines()[-1:]}"
        return out
    try:
        out["result"] = json.loads(text[text.index("{"):])
    except json.JSONDecodeError as e:
        out["error"] = f"unreadable JSON: {e}"
    return out


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(what, ustack, reference, ratio) lines of the table."""
    out = []
    for name in ("rx", "tx"):
        r = results.get(name)
        if r is None:
            continue
        if "error" in r:
            out.append((name, r["error"], "", ""))
            continue
        res = r["result"]
        med = res.get("median_mb_per_s", {})
        ratio = res.get("ratio_ustack_over_bare")
        done = all(x.get("complete", True) for x in res.get("runs", []) if "error" not in x)
        what = f"{'receive' if name == 'rx' else 'send'} MB/s (MTU {res.get('mtu')})"
        out.append((what + ("" if done else " [incomplete run]"), f"{med.get('ustack', '-')}",
                    f"bare {med.get('bare', '-')}", "-" if ratio is None else f"{ratio:.3f}"))
    c = results.get("conns")
    if c is not None:
        if "error" in c:
            out.append(("connections", c["error"], "", ""))
        else:
            res = c["result"]
            ref = res.get("latency_kernel_loopback")
            for serve in res["serve"]:
                lat = serve.get("latency")
                if lat and ref:
                    out.append(("1-byte round trip p50 / p99 us", f"{lat['p50_us']} / {lat['p99_us']}",
                                f"kernel lo {ref['p50_us']} / {ref['p99_us']}", "not the same path"))
                rt, h = serve["rate"], serve["hold"]
                out.append(("connect+echo+close /s", f"{rt['per_s']:.0f}", "", f"{rt['failed']} failed"))
                out.append((f"held of {h['asked']}, echoing twice", f"{h['still_echoing']}", "",
                             f"{h['refused_or_reset']} refused"))
                per = h["rss_per_conn_kib"]
                per_s = "-" if per is None else f"{per:.1f}"
                out.append(("serve RSS KiB per idle connection", per_s, "", ""))
            if "sim" in res:
                s = res["sim"]
                out.append((f"Simulator {s['connections']} connections, wall s", f"{s['total_s']:.1f}", "",
                            f"{s['echoed']} echoed"))
            if "sim_mem" in res:
                b = res["sim_mem"]["bytes_per_conn_both_ends"]
                out.append(("Simulator KiB per connection (both ends)", f"{b / 1024:.2f}", "", "tracemalloc"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny runs: correctness of the machinery only")
    ap.add_argument("--only", default=",".join(BENCHES),
                    help="comma-separated subset of " + ",".join(BENCHES))
    ap.add_argument("--json", metavar="FILE", help="write every benchmark's full result here")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    results = {}
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        results[name] = run_one(name, args.smoke)
    report = {"smoke": args.smoke, "python": sys.version.split()[0], "results": results,
              "rows": rows(results)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ustack benchmarks" + (" (smoke: correctness only)" if args.smoke else ""))
    for col in ("benchmark", "ustack", "reference", "ratio / note"):
        table.add_column(col)
    for row in report["rows"]:
        table.add_row(*row)
    Console().print(table)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
