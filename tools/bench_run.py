#!/usr/bin/env python3
"""`ustack run` benchmark: a 100 MB download by an unmodified Python program on ustack, against
`ustack serve`'s receive throughput, measured the same way in the same run.

Runs inside a private network namespace (re-executes itself under `unshare -n`); ustack is
198.18.0.2 on a TUN, the kernel 198.18.0.1. Two receivers, alternating `--repeat` times:

  serve  `ustack serve --discard 9` (its service thread drains the stack socket directly);
         the kernel connects and sends `--mb` megabytes (10^6 bytes), then waits for the FIN.
  run    `ustack run -- python CLIENT`: the client is a plain socket program
         (socket.create_connection + recv_into until EOF); the kernel accepts its connection,
         sends `--mb` megabytes, then waits for the FIN.

Both are timed by the kernel's side, from the established connection to ustack's FIN after the
last byte (so both include draining every byte through ustack into the application), in
separate processes (the receiver never shares the GIL with the sender). Prints the median MB/s
of each and run/serve, the ratio the issue asks to be at least 0.5, and the CPU time each
receiver process spent per 100 MB (its startup, measured once with no transfer, taken out):
on a loaded machine throughput swings from round to round, CPU time per byte much less.

    python tools/bench_run.py [--mb 100] [--repeat 3] [--mtu 1500] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rx import ensure_private_netns, lo_up  # noqa: E402

KERNEL_IP, USTACK_IP = "198.18.0.1", "198.18.0.2"
MB = 1_000_000
CHUNK = bytes(range(256)) * 1024  # 256 KiB
USTACK = shutil.which("ustack") or os.path.join(os.path.dirname(sys.executable), "ustack")
CLIENT = textwrap.dedent("""
    import socket, sys, time
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
    buf = bytearray(int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 20)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    while n := s.recv_into(view):
        total += n
    dt = time.perf_counter() - t0
    s.close()
    print(total, dt)
""")


def _device(name: str, mtu: int) -> list[str]:
    return ["--tun", name, "--addr", f"{USTACK_IP}/24", "--peer", f"{KERNEL_IP}/24", "--mtu", str(mtu)]


def _send_all(conn: socket.socket, total: int) -> float:
    """Send `total` bytes, shut down, wait for the peer's FIN; seconds from start to FIN."""
    view = memoryview(CHUNK)
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        n = min(len(view), total - sent)
        conn.sendall(view[:n])
        sent += n
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass
    return time.perf_counter() - t0


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def _cpu_seconds(p: subprocess.Popen) -> float:
    """Reap p and return the CPU time (user + system) it used: a measure of the work done that
    the machine's other load disturbs far less than throughput."""
    _pid, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if os.environ.get("BENCH_RUN_DEBUG"):
        print(f"  pid {p.pid}: user {usage.ru_utime:.3f} sys {usage.ru_stime:.3f} "
              f"vol.cs {usage.ru_nvcsw} invol.cs {usage.ru_nivcsw}", file=sys.stderr)
    return usage.ru_utime + usage.ru_stime


def _wait_ready(p: subprocess.Popen, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = p.stdout.readline()
        if line.startswith("ready"):
            return
        if not line and p.poll() is not None:
            break
    raise RuntimeError(f"ustack serve did not start: {p.stderr.read() if p.stderr else ''}")


def run_serve(args: argparse.Namespace, rnd: int) -> dict:
    name = f"bsv{rnd}"
    p = subprocess.Popen([USTACK, "serve", *_device(name, args.mtu), "--discard", "9"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ready(p)
        conn = socket.create_connection((USTACK_IP, 9), timeout=60)
        secs = _send_all(conn, args.mb * MB)
        conn.close()
    finally:
        p.terminate()
        cpu = _cpu_seconds(p)
    return {"receiver": "serve", "seconds": secs, "mb_per_s": args.mb / secs, "cpu_s": cpu}


def startup_cpu(args: argparse.Namespace) -> dict[str, float]:
    """CPU seconds of each receiver doing no transfer (start, open the device, stop), to take
    out of the per-transfer CPU: imports dominate and are not the data path."""
    serve = subprocess.Popen([USTACK, "serve", *_device("bsv0", args.mtu), "--discard", "9"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_ready(serve)
    serve.terminate()
    run = subprocess.Popen([USTACK, "run", *_device("bru0", args.mtu), "--", "python", "-c", "pass"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return {"serve": _cpu_seconds(serve), "run": _cpu_seconds(run)}


def run_program(args: argparse.Namespace, rnd: int, client_path: str) -> dict:
    name = f"bru{rnd}"
    port = 9000 + rnd
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(1)
    ls.settimeout(30)
    result: dict = {}

    def serve() -> None:
        try:
            conn, peer = ls.accept()
            conn.settimeout(60)
            result["peer"] = peer[0]
            result["seconds"] = _send_all(conn, args.mb * MB)
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported below
            result["error"] = f"{type(e).__name__}: {e}"

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    cmd = [USTACK, "run", *_device(name, args.mtu), "--", "python", client_path, KERNEL_IP, str(port),
           str(args.buffer)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = p.stdout.read(), p.stderr.read()  # a few lines: no pipe can fill up
    cpu = _cpu_seconds(p)
    out = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    t.join(30)
    ls.close()
    if out.returncode != 0 or "error" in result:
        raise RuntimeError(f"ustack run: rc={out.returncode} {out.stderr.strip()[-500:]} "
                           f"{result.get('error', '')}")
    got, prog_secs = out.stdout.split()
    if int(got) != args.mb * MB or result.get("peer") != USTACK_IP:
        raise RuntimeError(f"the program received {got} bytes from peer {result.get('peer')}")
    secs = result["seconds"]
    return {"receiver": "run", "seconds": secs, "mb_per_s": args.mb / secs,
            "program_mb_per_s": args.mb / float(prog_secs), "cpu_s": cpu}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=int, default=100, help="megabytes per transfer (default 100)")
    p.add_argument("--repeat", type=int, default=3, help="rounds, alternating the receivers (default 3)")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--buffer", type=int, default=1 << 20,
                   help="the program's recv_into buffer in bytes (default 1 MiB)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    args = p.parse_args(argv)
    ensure_private_netns(argv, os.path.abspath(__file__))
    lo_up()
    results: dict = {"mb": args.mb, "mtu": args.mtu, "python": sys.version.split()[0], "runs": []}
    with tempfile.TemporaryDirectory() as d:
        client = os.path.join(d, "download.py")
        with open(client, "w") as f:
            f.write(CLIENT)
        for rnd in range(args.repeat):
            for name in ("serve", "run"):
                try:
                    res = run_serve(args, rnd) if name == "serve" else run_program(args, rnd, client)
                except Exception as e:  # noqa: BLE001 - report, keep going
                    res = {"receiver": name, "error": f"{type(e).__name__}: {e}"}
                res["round"] = rnd
                results["runs"].append(res)
                if not args.json:
                    rate = f"{res['mb_per_s']:.1f} MB/s" if "mb_per_s" in res else res.get("error")
                    print(f"round {rnd} {name:5} {rate}", flush=True)
    base = results["startup_cpu_s"] = startup_cpu(args)
    medians, cpu = {}, {}
    for name in ("serve", "run"):
        done = [r for r in results["runs"] if r["receiver"] == name and "mb_per_s" in r]
        if done:
            medians[name] = round(_median([r["mb_per_s"] for r in done]), 1)
            cpu[name] = round(_median([r["cpu_s"] - base[name] for r in done]) * 100 / args.mb, 3)
    results["median_mb_per_s"] = medians
    results["cpu_s_per_100mb"] = cpu  # the transfer's CPU (startup taken out), median
    if medians.get("serve") and medians.get("run"):
        results["ratio_run_over_serve"] = round(medians["run"] / medians["serve"], 3)
        results["cpu_ratio_serve_over_run"] = round(cpu["serve"] / cpu["run"], 3)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"median MB/s: {medians}; run/serve = {results.get('ratio_run_over_serve')}")
        print(f"CPU s per 100 MB: {cpu}; serve/run = {results.get('cpu_ratio_serve_over_run')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
