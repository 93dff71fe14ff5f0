#!/usr/bin/env python3
"""Connection benchmark: how many connections per second, and how many at once, does
`ustack serve --echo 7` take from the Linux kernel over a TUN; plus the Simulator at scale.

Runs inside a private network namespace (re-executes itself under `unshare -n`); ustack is
198.18.0.2 on a TUN, the kernel 198.18.0.1. The namespace's ephemeral port range is widened to
1024-65535 and this process's RLIMIT_NOFILE raised to its hard limit (one fd per client).
For each ustack tree given (`--root`, default this checkout; give an older checkout to compare
in the same run) a fresh `ustack serve` subprocess is measured:

  rate     kernel clients (nonblocking, `--parallel` in flight) each connect, send 1 byte,
           wait for its echo and close, for `--rate-seconds`: completions per second.
  hold     `--concurrent` kernel clients connect (at most `--inflight` handshakes pending at
           once) and each echoes 1 byte; all stay open. Counted: opened and echoed, refused
           or reset, timed out. Then every open connection echoes 1 byte again (all still
           served?), and the server's RSS growth (VmRSS of the serve process, after minus
           before) / connections held is its memory per idle connection.
  latency  one connection, 1-byte ping-pong (`--pings` round trips, TCP_NODELAY): p50 and p99
           of the round trip; next to it, the same client against a kernel TCP echo on loopback
           in the namespace, served by a Python thread of this process (a floor, not the same
           path: no TUN, no ustack).

`--sim N` also runs N connections between two Simulator hosts (ServiceSet echo on one, plain
stack sockets on the other): all opened, all echo 1 byte, all close; wall time; and with
tracemalloc on (`--sim-mem N`) the Python memory per idle connection, both ends together.

Every phase is bounded in time and stops by itself.

`--rate-rounds N` first runs the rate phase alone N more times per tree, the trees in turn, each
in a fresh serve (drifting machine load hits every tree alike), and reports the medians.

    python tools/bench_conns.py [--rate-seconds 5] [--parallel 16] [--concurrent 10000]
        [--inflight 256] [--sim 10000] [--sim-mem 2000] [--root PATH ...] [--rate-rounds N] [--json]
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rx import ensure_private_netns, lo_up  # noqa: E402

KERNEL_IP, USTACK_IP = "198.18.0.1", "198.18.0.2"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 7


# --------------------------------------------------------------------------- the serve process
# `python -m ustack` with every module from the tree given first: PYTHONPATH finds its `ustack`,
# and its top-level drivers/ (installed as `ustack.drivers` by package-dir) is put on the
# package's path, or the editable install's finder would hand out this checkout's drivers.
_LAUNCH = ("import runpy, sys; root = sys.argv.pop(1); import ustack; ustack.__path__.append(root); "
           "runpy.run_module('ustack', run_name='__main__', alter_sys=True)")


class Serve:
    """`python -m ustack serve --echo 7` from the tree `root` (all of it), on TUN `name`."""

    def __init__(self, root: str, name: str, mtu: int = 1500) -> None:
        env = dict(os.environ, PYTHONPATH=root)
        self.p = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, root, "serve", "--tun", name, "--addr", f"{USTACK_IP}/24",
             "--peer", f"{KERNEL_IP}/24", "--mtu", str(mtu), "--echo", str(PORT)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            line = self.p.stdout.readline()
            if line.startswith("ready"):
                return
            if not line and self.p.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"ustack serve from {root} did not start: {self.p.stderr.read()}")

    def rss_kib(self) -> int:
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the serve process has used so far."""
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.p.pid}/task"))

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


# --------------------------------------------------------------------------- kernel clients
def _connect_nb() -> socket.socket:
    s = socket.socket()
    s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    err = s.connect_ex((USTACK_IP, PORT))
    if err not in (0, errno.EINPROGRESS):
        s.close()
        raise OSError(err, os.strerror(err))
    return s


def rate(seconds: float, parallel: int) -> dict:
    """connect + 1-byte echo + close, `parallel` in flight, for `seconds`."""
    sel = selectors.DefaultSelector()
    done = failed = 0
    stage: dict[socket.socket, int] = {}  # 0 connecting, 1 waiting for the echo
    t0 = time.monotonic()
    end = t0 + seconds

    def start() -> None:
        s = _connect_nb()
        stage[s] = 0
        sel.register(s, selectors.EVENT_WRITE)

    for _ in range(parallel):
        start()
    while stage:
        now = time.monotonic()
        if now > end + 10:
            break  # stragglers: counted as failed below
        for key, _ in sel.select(0.5):
            s = key.fileobj
            try:
                if stage[s] == 0:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        raise OSError("connect failed")
                    s.send(b"x")
                    stage[s] = 1
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                if s.recv(1) != b"x":
                    raise OSError("no echo")
                done += 1
            except OSError:
                failed += 1
            sel.unregister(s)
            del stage[s]
            s.close()
            if time.monotonic() < end:
                start()
    elapsed = time.monotonic() - t0
    failed += len(stage)
    for s in stage:
        s.close()
    sel.close()
    return {"done": done, "failed": failed, "seconds": elapsed, "per_s": done / elapsed}


def ping_pong(addr: tuple[str, int], n: int) -> dict:
    """1-byte ping-pong on one connection (TCP_NODELAY): round-trip p50/p99 in microseconds."""
    s = socket.create_connection(addr, timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            s.send(b"p")
            if s.recv(1) != b"p":
                break
            rtts.append(time.perf_counter() - t0)
    finally:
        s.close()
    rtts.sort()

    def pick(q: float) -> float | None:
        return round(rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1e6, 1) if rtts else None
    return {"round_trips": len(rtts), "p50_us": pick(0.5), "p99_us": pick(0.99)}


def kernel_echo_server() -> tuple[socket.socket, int]:
    """The reference for ping_pong: a kernel TCP echo on loopback in this namespace, served by a
    Python thread of this process."""
    import threading

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)

    def serve() -> None:
        try:
            c, _ = ls.accept()
        except OSError:
            return
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            while d := c.recv(64):
                c.sendall(d)
    threading.Thread(target=serve, daemon=True).start()
    return ls, ls.getsockname()[1]


def hold(serve: Serve, n: int, inflight: int, time_limit: float) -> tuple[dict, list[socket.socket]]:
    """Open n connections (each echoes 1 byte) and keep them open; then all echo once more."""
    sel = selectors.DefaultSelector()
    rss0 = serve.rss_kib()
    opened: list[socket.socket] = []
    pending: dict[socket.socket, int] = {}
    refused = other = 0
    started = 0
    t0 = time.monotonic()
    end = t0 + time_limit
    while (started < n or pending) and time.monotonic() < end:
        while started < n and len(pending) < inflight:
            s = _connect_nb()
            pending[s] = 0
            sel.register(s, selectors.EVENT_WRITE)
            started += 1
        for key, _ in sel.select(0.5):
            s = key.fileobj
            try:
                if pending[s] == 0:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    s.send(b"h")
                    pending[s] = 1
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                if s.recv(1) != b"h":
                    raise OSError(errno.ECONNRESET, "closed without the echo")
                sel.unregister(s)
                del pending[s]
                opened.append(s)
                continue
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
                    refused += 1
                else:
                    other += 1
            sel.unregister(s)
            del pending[s]
            s.close()
    open_s = time.monotonic() - t0
    timed_out = len(pending) + (n - started)
    for s in pending:
        s.close()
    time.sleep(1.0)  # let the server settle (delayed ACKs, allocator)
    rss1 = serve.rss_kib()
    threads = serve.threads()
    # every held connection echoes once more: all still served?
    for s in opened:
        sel.register(s, selectors.EVENT_READ)
        try:
            s.send(b"e")
        except OSError:
            pass
    again = 0
    left = set(opened)
    end2 = time.monotonic() + max(30.0, n / 200)
    while left and time.monotonic() < end2:
        for key, _ in sel.select(0.5):
            s = key.fileobj
            try:
                ok = s.recv(1) == b"e"
            except OSError:
                ok = False
            again += ok
            sel.unregister(s)
            left.discard(s)
    sel.close()
    held = len(opened)
    return {"asked": n, "opened_and_echoed": held, "refused_or_reset": refused, "other_errors": other,
            "timed_out": timed_out, "open_seconds": open_s, "still_echoing": again,
            "rss_before_kib": rss0, "rss_after_kib": rss1, "serve_threads": threads,
            "rss_per_conn_kib": (rss1 - rss0) / held if held else None}, opened


def rate_round(root: str, args: argparse.Namespace) -> dict:
    """A fresh serve from `root`: warm-up, then the rate phase alone, with serve's CPU time."""
    serve = Serve(root, "bcr0")
    try:
        rate(0.5, 4)
        cpu0 = serve.cpu_s()
        r = rate(args.rate_seconds, args.parallel)
        r["serve_cpu_us_per_conn"] = round((serve.cpu_s() - cpu0) / r["done"] * 1e6, 1) if r["done"] else None
        return r
    finally:
        serve.stop()


def measure_serve(root: str, idx: int, args: argparse.Namespace) -> dict:
    serve = Serve(root, f"bcn{idx}")
    try:
        warm = rate(0.5, 4)  # code paths and the allocator warmed up before anything is measured
        cpu0 = serve.cpu_s()
        out = {"root": root, "warmup": warm["done"], "rate": rate(args.rate_seconds, args.parallel)}
        done = out["rate"]["done"]
        out["rate"]["serve_cpu_us_per_conn"] = round((serve.cpu_s() - cpu0) / done * 1e6, 1) if done else None
        if args.pings:
            out["latency"] = ping_pong((USTACK_IP, PORT), args.pings)
        out["hold"], socks = hold(serve, args.concurrent, args.inflight, args.hold_seconds)
        for s in socks:
            s.close()
        return out
    finally:
        serve.stop()


# --------------------------------------------------------------------------- the Simulator
def sim_run(n: int, trace_memory: bool) -> dict:
    """n connections between two Simulator hosts: echo service on one, stack sockets on the other."""
    import gc
    import tracemalloc

    from ustack import Simulator
    from ustack.cli.services import ServiceSet
    from ustack.tcp import State

    sim = Simulator(seed=1)
    server = sim.add_host(f"{USTACK_IP}/16", name="server")
    client = sim.add_host("198.18.1.1/16", name="client")
    svc = ServiceSet(server, spawn=sim.spawn)
    svc.tcp("echo", PORT)
    dst = int.from_bytes(socket.inet_aton(USTACK_IP), "big")
    t0 = time.perf_counter()
    mem0 = 0
    if trace_memory:
        gc.collect()
        tracemalloc.start()
        mem0 = tracemalloc.get_traced_memory()[0]
    socks = []
    batch = 100  # connects per lock hold: the listener's backlog (200 by default) is bounded
    for i in range(0, n, batch):
        def open_some(k: int = min(batch, n - i)) -> list:
            out = []
            for _ in range(k):
                s = client.stack.tcp.open()
                s.connect(dst, PORT, client.now())
                out.append(s)
            return out
        got = client.call(open_some)
        client.wait(lambda g=got: all(s.state is not State.SYN_SENT for s in g), 60)
        socks += got
    established = client.call(lambda: sum(s.state is State.ESTABLISHED for s in socks))
    client.call(lambda: [s.send(b"x", client.now()) for s in socks if s.state is State.ESTABLISHED])
    client.wait(lambda: all(s.readable_bytes or s.error for s in socks), 60)
    echoed = client.call(lambda: sum(s.recv(1) == b"x" for s in socks if s.readable_bytes))
    open_s = time.perf_counter() - t0
    per_conn = None
    if trace_memory:
        gc.collect()
        per_conn = (tracemalloc.get_traced_memory()[0] - mem0) / max(established, 1)
        tracemalloc.stop()
    client.call(lambda: [s.close(client.now()) for s in socks])
    client.wait(lambda: not any(c.state is State.ESTABLISHED for c in server.stack.tcp.conns.values()), 60)
    total_s = time.perf_counter() - t0
    errors = server.stack.counters.get("tcp.internal_error") + client.stack.counters.get("tcp.internal_error")
    svc.stop()
    sim.close()
    return {"connections": n, "established": established, "echoed": echoed,
            "accepted": svc.stats["tcp_accepted"], "open_and_echo_s": open_s, "total_s": total_s,
            "internal_errors": errors,
            "bytes_per_conn_both_ends": per_conn}


# --------------------------------------------------------------------------- main
def _setup_netns() -> None:
    lo_up()
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:  # this namespace's only
        f.write("1024 65535")
    # The clients close first, so each completed connection leaves a kernel TIME_WAIT for 60 s:
    # without reuse, a later tree (or round) in the same run finds the port range nearly used
    # up and its clients' connect() slows down (the rate fell to 55/s in such a run).
    with open("/proc/sys/net/ipv4/tcp_tw_reuse", "w") as f:
        f.write("1")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # one fd per client
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    try:  # root may raise the hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, 32768), max(hard, 32768)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate-seconds", type=float, default=5.0)
    ap.add_argument("--parallel", type=int, default=16, help="rate phase: connections in flight")
    ap.add_argument("--concurrent", type=int, default=10000, help="hold phase: connections held open")
    ap.add_argument("--inflight", type=int, default=256, help="hold phase: handshakes pending at once")
    ap.add_argument("--hold-seconds", type=float, default=180.0, help="hold phase: time limit to open all")
    ap.add_argument("--sim", type=int, default=10000, help="Simulator connections (0: skip)")
    ap.add_argument("--sim-mem", type=int, default=2000,
                    help="Simulator connections under tracemalloc (0: skip)")
    ap.add_argument("--pings", type=int, default=2000, help="1-byte ping-pong round trips (0: skip)")
    ap.add_argument("--root", action="append", help="ustack tree to run serve from (repeatable)")
    ap.add_argument("--rate-rounds", type=int, default=0, metavar="N",
                    help="first, N more rate phases per tree, the trees in turn (fresh serve each): medians")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    ensure_private_netns(sys.argv[1:], os.path.abspath(__file__))
    _setup_netns()
    roots = [os.path.abspath(r) for r in (args.root or [HERE])]
    result: dict = {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "serve": []}
    if args.concurrent + args.parallel + 64 > result["nofile"]:
        sys.exit(f"bench_conns: RLIMIT_NOFILE {result['nofile']} is too low for {args.concurrent} clients")
    if args.pings:
        ls, port = kernel_echo_server()
        result["latency_kernel_loopback"] = ping_pong(("127.0.0.1", port), args.pings)
        ls.close()
        if not args.json:
            k = result["latency_kernel_loopback"]
            print(f"kernel echo on loopback: 1-byte round trip p50 {k['p50_us']} us, p99 {k['p99_us']} us")
    if args.rate_rounds:  # trees in turn, so drifting machine load hits every one
        rounds: dict[str, list[dict]] = {root: [] for root in roots}
        for _ in range(args.rate_rounds):
            for root in roots:
                rounds[root].append(rate_round(root, args))
        result["rate_rounds"] = []
        for root in roots:
            rs = rounds[root]
            med = {"root": root, "per_s": statistics.median(r["per_s"] for r in rs),
                   "failed": sum(r["failed"] for r in rs),
                   "serve_cpu_us_per_conn": statistics.median(r["serve_cpu_us_per_conn"] or 0 for r in rs),
                   "rounds": rs}
            result["rate_rounds"].append(med)
            if not args.json:
                print(f"{root}: rate median of {args.rate_rounds} {med['per_s']:.0f}/s "
                      f"({med['failed']} failed), serve CPU {med['serve_cpu_us_per_conn']} us each; rounds "
                      f"{[round(r['per_s']) for r in rs]}", flush=True)
    for i, root in enumerate(roots):
        r = measure_serve(root, i, args)
        result["serve"].append(r)
        if not args.json:
            h, rt = r["hold"], r["rate"]
            per = "-" if h["rss_per_conn_kib"] is None else f"{h['rss_per_conn_kib']:.1f}"
            print(f"{root}: rate {rt['per_s']:.0f}/s ({rt['done']} done, {rt['failed']} failed, serve CPU "
                  f"{rt['serve_cpu_us_per_conn']} us each); "
                  f"hold {h['opened_and_echoed']}/{h['asked']} opened+echoed in {h['open_seconds']:.1f} s "
                  f"(refused/reset {h['refused_or_reset']}, timed out {h['timed_out']}), "
                  f"{h['still_echoing']} still echoing; RSS {h['rss_before_kib']}->{h['rss_after_kib']} KiB "
                  f"= {per} KiB/conn; {h['serve_threads']} threads", flush=True)
            if "latency" in r:
                lat = r["latency"]
                print(f"  1-byte round trip over the TUN: p50 {lat['p50_us']} us, p99 {lat['p99_us']} us "
                      f"({lat['round_trips']} round trips)", flush=True)
    sys.path.insert(0, HERE)
    if args.sim:
        result["sim"] = sim_run(args.sim, False)
        if not args.json:
            s = result["sim"]
            print(f"Simulator: {s['established']}/{s['connections']} established, {s['echoed']} echoed, "
                  f"{s['open_and_echo_s']:.1f} s to open+echo, {s['total_s']:.1f} s with closes; "
                  f"internal errors {s['internal_errors']}", flush=True)
    if args.sim_mem:
        result["sim_mem"] = sim_run(args.sim_mem, True)
        if not args.json:
            b = result["sim_mem"]["bytes_per_conn_both_ends"]
            print(f"Simulator tracemalloc: {b / 1024:.2f} KiB per connection, both ends together "
                  f"({args.sim_mem} connections)", flush=True)
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
