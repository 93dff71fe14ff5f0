#!/usr/bin/env python3
"""All the benchmarks in one run, side by side: receive (`bench_rx.py`, ustack against a bare
Python receiver), send (`bench_tx.py`, against a bare Python sender), latency (`bench_latency.py`:
1-byte ping-pong p50/p99 through `ustack serve` over a TUN against a kernel echo on loopback),
connections (`bench_conns.py`: connect rate, 10,000 held connections and memory per connection
against `ustack serve`, the Simulator at scale) and Simulator throughput (`bench_sim.py`: 100 MB
at 1 % loss between two Simulator hosts, wall clock and virtual time, against the same transfer
without loss). Each runs as its own process, one after the other (those that send packets in
their own private network namespace); each compares ustack with its reference in the same run.
PyTCP as a further reference needs a Python >= 3.14: without one the table says so in one line.
Prints one table (rich); `--json FILE` writes every benchmark's full result there and the plots
(matplotlib, the `plot` extra) next to it as FILE's name with `.png`.

`--smoke`: tiny sizes (a few MB, 200 connections) that check the machinery and the
correctness of each run, not its speed (what CI runs: tests/perf/test_bench_all.py).
Also `ustack bench` from a source checkout.

    python tools/bench.py [--smoke] [--only rx,tx,latency,conns,sim] [--json FILE]
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
    # rx: every offload mode against the same bare sink (issue 13's targets per mode)
    "rx": ("bench_rx.py", ["--mb", "200", "--repeat", "3", "--offload", "auto,csum,none"],
           ["--mb", "5", "--seconds", "10", "--offload", "auto,csum,none"], 600),
    "tx": ("bench_tx.py", ["--mb", "200", "--repeat", "3"], ["--mb", "5", "--seconds", "10"], 600),
    "latency": ("bench_latency.py", ["--pings", "2000"], ["--pings", "200"], 300),
    # the round trip is bench_latency's entry: bench_conns does not measure it again here
    "conns": ("bench_conns.py", ["--pings", "0"],
              ["--rate-seconds", "0.5", "--parallel", "4", "--concurrent", "200", "--inflight", "64",
               "--hold-seconds", "30", "--sim", "200", "--sim-mem", "100", "--pings", "0"], 900),
    "sim": ("bench_sim.py", ["--mb", "100", "--loss", "0.01"], ["--mb", "2", "--loss", "0.01"], 1800),
}
PYTCP_MIN = (3, 14)
TARGET_RATE, TARGET_HELD, TARGET_KIB = 2000, 10000, 8  # issue 13: per second, held at once, KiB each
RX_TARGETS = {"auto": 2.0, "csum": 0.5, "none": 0.3}  # issue 13: receive / bare sink at MTU 1500
TX_TARGETS = {"auto": 1.0}  # issue 13: send / bare sender at MTU 1500, with TSO
PYTHON_GLOBS = ("/usr/bin/python3.*", "~/.pyenv/versions/*/bin/python")


def find_pythons(patterns: tuple[str, ...] = PYTHON_GLOBS) -> list[tuple[tuple[int, int], str]]:
    """Pythons on this machine ((major, minor), path): /usr/bin/python3.N and pyenv's versions."""
    import glob
    import re

    found = []
    for path in (p for pattern in patterns for p in glob.glob(os.path.expanduser(pattern))):
        m = re.search(r"python(\d+)\.(\d+)$", path) or re.search(r"versions/(\d+)\.(\d+)", path)
        if m and os.access(path, os.X_OK):
            found.append(((int(m[1]), int(m[2])), path))
    return sorted(set(found))


def pytcp_reference(patterns: tuple[str, ...] = PYTHON_GLOBS) -> dict:
    """PyTCP as a reference: only with a Python >= 3.14 (issue #13). This run never installs one;
    without it, the reason in one line."""
    pythons = find_pythons(patterns)
    newest = f"{pythons[-1][0][0]}.{pythons[-1][0][1]}" if pythons else "none"
    usable = [p for v, p in pythons if v >= PYTCP_MIN]
    if not usable:
        return {"skipped": f"needs Python >= {PYTCP_MIN[0]}.{PYTCP_MIN[1]}; the newest here is {newest} "
                           "(/usr/bin, ~/.pyenv/versions); the benchmark installs none"}
    r = subprocess.run([usable[-1], "-c", "import pytcp"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return {"skipped": f"PyTCP is not installed for {usable[-1]} (pip install it there to compare)"}
    return {"skipped": f"PyTCP found in {usable[-1]}, but running it as a reference is not implemented yet"}


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
        what = f"{'receive' if name == 'rx' else 'send'} MB/s (MTU {res.get('mtu')}"
        flag = "" if done else " [incomplete run]"
        by_mode = res.get("by_offload")
        if not by_mode:
            modes = sorted({str(x["offload"]) for x in res.get("runs", []) if "offload" in x})
            what += f", offload {'/'.join(modes)})" if modes else ")"
            out.append((what + flag, f"{med.get('ustack', '-')}", f"bare {med.get('bare', '-')}",
                        "-" if ratio is None else f"{ratio:.3f}"))
            continue
        for mode, m in by_mode.items():
            target = (RX_TARGETS if name == "rx" else TX_TARGETS).get(mode)
            note = f"{m['ratio_over_bare']:.3f}" + ("" if target is None else f" (target >= {target})")
            out.append((f"{what}, offload {mode}){flag}", f"{m['median_mb_per_s']}",
                        f"bare {med.get('bare', '-')}", note))
    lat = results.get("latency")
    if lat is not None:
        if "error" in lat:
            out.append(("latency", lat["error"], "", ""))
        else:
            res = lat["result"]
            u, k = res["ustack_tun"], res["kernel_loopback"]
            out.append(("1-byte round trip p50 / p99 us", f"{u['p50_us']} / {u['p99_us']}",
                        f"kernel lo {k['p50_us']} / {k['p99_us']}",
                        f"{res['ratio_p50']} / {res['ratio_p99']} (not the same path)"))
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
                # no second stack to compare with here: the reference column is issue 13's target
                rt, h = serve["rate"], serve["hold"]
                out.append(("connect+echo+close /s", f"{rt['per_s']:.0f}", f"target >= {TARGET_RATE}",
                            f"{rt['per_s'] / TARGET_RATE:.2f}; {rt['failed']} failed"))
                out.append((f"held of {h['asked']}, echoing twice", f"{h['still_echoing']}",
                            f"target {TARGET_HELD} (full run)", f"{h['refused_or_reset']} refused"))
                per = h["rss_per_conn_kib"]
                out.append(("serve RSS KiB per idle connection", "-" if per is None else f"{per:.1f}",
                            f"target <= {TARGET_KIB}", "-" if per is None else f"{per / TARGET_KIB:.2f}"))
            if "sim" in res:
                s = res["sim"]
                out.append((f"Simulator {s['connections']} connections, wall s", f"{s['total_s']:.1f}", "",
                            f"{s['echoed']} echoed"))
            if "sim_mem" in res:
                b = res["sim_mem"]["bytes_per_conn_both_ends"]
                out.append(("Simulator KiB per connection (both ends)", f"{b / 1024:.2f}", "", "tracemalloc"))
    sim = results.get("sim")
    if sim is not None:
        if "error" in sim:
            out.append(("Simulator throughput", sim["error"], "", ""))
        else:
            res = sim["result"]
            lo, nl = res["lossy"], res["no_loss"]
            done = "" if lo["complete"] and nl["complete"] else " [incomplete run]"
            out.append((f"Simulator {res['mb']:g} MB at {lo['loss']:.0%} loss, wall s{done}",
                        f"{lo['wall_s']}", f"no loss {nl['wall_s']}",
                        f"{res['ratio_wall_lossy_over_no_loss']:.2f}"))
            out.append(("... virtual s (virtual / wall)", f"{lo['virtual_s']} ({lo['virtual_over_wall']}x)",
                        f"no loss {nl['virtual_s']} ({nl['virtual_over_wall']}x)",
                        f"{lo['frames_dropped_by_faults']} frames dropped"))
    pytcp = results.get("pytcp")
    if pytcp is not None:
        out.append(("PyTCP reference", "skipped" if "skipped" in pytcp else "-", "",
                    pytcp.get("skipped", "")))
    return out


def panels(results: dict) -> list[tuple[str, list[tuple[str, float, str, float]]]]:
    """What the plot shows: (panel title, [(label, ustack value, reference name, reference value)])."""
    out = []
    for name, what in (("rx", "receive MB/s"), ("tx", "send MB/s")):
        res = results.get(name, {}).get("result", {})
        med = res.get("median_mb_per_s", {})
        if res.get("by_offload") and med.get("bare") is not None:
            out.append((what, [(mode, m["median_mb_per_s"], "bare", med["bare"])
                               for mode, m in res["by_offload"].items()]))
        elif med.get("ustack") is not None and med.get("bare") is not None:
            out.append((what, [(name, med["ustack"], "bare", med["bare"])]))
    lat = results.get("latency", {}).get("result")
    if lat:
        u, k = lat["ustack_tun"], lat["kernel_loopback"]
        if None not in (u["p50_us"], u["p99_us"], k["p50_us"], k["p99_us"]):
            out.append(("1-byte round trip us (log)", [("p50", u["p50_us"], "kernel lo", k["p50_us"]),
                                                      ("p99", u["p99_us"], "kernel lo", k["p99_us"])]))
    sim = results.get("sim", {}).get("result")
    if sim:
        lo, nl = sim["lossy"], sim["no_loss"]
        loss = f"{lo['loss']:.0%} loss"
        out.append((f"Simulator {sim['mb']:g} MB, s (log)",
                    [(f"wall, {loss}", lo["wall_s"], "no loss", nl["wall_s"]),
                     (f"virtual, {loss}", lo["virtual_s"], "no loss", nl["virtual_s"])]))
    return out


def plot(results: dict, path: str, title: str) -> str:
    """Grouped bars, ustack next to its reference, one panel per benchmark; the file written, or why not."""
    data = panels(results)
    if not data:
        return "no plot: no benchmark with a reference finished"
    try:
        import matplotlib
    except ImportError:
        return "no plot: matplotlib is missing (pip install -e '.[plot]')"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(data), figsize=(3.6 * len(data), 3.8), squeeze=False)
    for ax, (what, bars) in zip(axes[0], data, strict=True):
        xs = range(len(bars))
        ax.bar([x - 0.2 for x in xs], [b[1] for b in bars], 0.4, label="ustack", color="tab:blue")
        ax.bar([x + 0.2 for x in xs], [b[3] for b in bars], 0.4, label="reference", color="tab:gray")
        ax.set_xticks(list(xs), [f"{b[0]}\nvs {b[2]}" for b in bars], fontsize=8)
        ax.set_title(what, fontsize=9)
        if "log" in what:
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    results["pytcp"] = pytcp_reference()
    report = {"smoke": args.smoke, "python": sys.version.split()[0], "load_average": os.getloadavg(),
              "results": results, "rows": rows(results)}
    title = "ustack benchmarks" + (" (smoke: correctness only)" if args.smoke else "")
    if args.json:
        report["plot"] = plot(results, os.path.splitext(args.json)[0] + ".png", title)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("benchmark", "ustack", "reference", "ratio / note"):
        table.add_column(col)
    for row in report["rows"]:
        table.add_row(*row)
    console = Console()
    console.print(table)
    if "plot" in report:
        console.print(f"plot: {report['plot']}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
