#!/usr/bin/env python3
"""Dynamics benchmark: does ustack move data over a path as fast as Linux does?

One workload everywhere: the client connects, sends an 8-byte length and SIZE bytes, and waits
for a one-byte answer; the server reads everything, then answers. The time counted is from the
client's connect() until it has the answer. The path has a constant one-way delay (RTT/2 each
way), no bandwidth limit, and optionally random loss (the same probability each way, seeded).

  linux      two Linux kernels (cubic, set with TCP_CONGESTION) in two network namespaces,
             joined by tools/dyn_relay.py: a TUN in each namespace, a userspace relay that
             delays and drops. Real time.
  sim        two ustack hosts in the Simulator, default TcpConfig, link latency RTT/2, link
             faults `loss=P` (the FaultInjector, seeded). Virtual time.
  ustack-tun ustack (a Host on its own TUN behind namespace A's kernel) sending to the same Linux
             server through the same relay. Real time.

No-loss cases run `--repeat` times (real time varies with the load of the machine); loss cases
run `--seeds` seeds each; the table shows medians and the ratios sim/linux and
ustack-tun/linux. Everything that sends packets runs in a private network namespace (the script
re-executes itself under `unshare -n`), addresses in 198.18.0.0/15 only.

    python tools/bench_dynamics.py [--sizes 64K,1M,8M] [--rtts 20,100] [--loss 0.01]
        [--loss-cases 1M@20,1M@100] [--seeds 15] [--sim-seeds 101] [--repeat 5]
        [--only linux,sim,ustack-tun]
        [--capture DIR --capture-case 1M@100,1M@100+loss] [--tcp K=V,...] [--json FILE] [--smoke]

`--capture DIR` records one run of each `--capture-case` per side: pcaps (Linux's on the
relay, on the client's side; the sim's at the client host) and cwnd traces (ustack's trace
hook; Linux's from TCP_INFO sampled every 2 ms), for `ustack plot --vs`. `--tcp` sets fields
of ustack's TcpConfig (e.g. ack_stretch_segments=2) for the sim and ustack-tun sides.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ustack.tcp import TcpConfig

NETNS_ENV = "USTACK_DYN_NETNS"
SERVER_IP = "198.18.0.2"  # the Linux server, in namespace B
SIM_CLIENT, SIM_SERVER = "198.18.0.1", "198.18.0.2"
HOST_IP, HOST_GW = "198.18.1.2", "198.18.1.1"  # the ustack Host on TUN dynu0 in namespace A
PORT = 5001
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)
TCP_INFO = getattr(socket, "TCP_INFO", 11)
HEADER = struct.Struct("!Q")
TOOLS = os.path.dirname(os.path.abspath(__file__))
RUN_TIMEOUT_S = 120.0  # one transfer, real or virtual


def tcp_config(spec: str | None) -> TcpConfig | None:
    """TcpConfig from "key=value,..." (bench_rx's parser, shared)."""
    sys.path.insert(0, TOOLS)
    from bench_rx import tcp_config as parse

    return parse(spec)


def parse_size(text: str) -> int:
    t = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20}.get(t[-1:], 1)
    return int(float(t.rstrip("KM")) * mult)


def size_name(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"


@dataclass
class Case:
    size: int
    rtt_ms: int
    loss: float = 0.0

    @property
    def name(self) -> str:
        s = f"{size_name(self.size)}, RTT {self.rtt_ms} ms"
        return s + (f", {self.loss:.0%} loss" if self.loss else "")


@dataclass
class Result:
    case: Case
    side: str
    times: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


# ------------------------------------------------------------------------------------ workload
def recv_exact(recv: Callable[[int], bytes], n: int) -> int:
    got = 0
    while got < n:
        chunk = recv(min(1 << 20, n - got))
        if not chunk:
            raise ConnectionError(f"EOF after {got} of {n} bytes")
        got += len(chunk)
    return got


def serve_one(conn: Any) -> None:
    """The server side of one transfer (any socket-shaped object)."""
    head = b""
    while len(head) < HEADER.size:
        chunk = conn.recv(HEADER.size - len(head))
        if not chunk:
            raise ConnectionError("EOF in the header")
        head += chunk
    recv_exact(conn.recv, HEADER.unpack(head)[0])
    conn.sendall(b"!")


def payload(size: int) -> bytes:
    return HEADER.pack(size) + bytes(size)


# ------------------------------------------------------------------------------------ sim side
def run_sim(case: Case, seed: int, pcap: str | None = None, trace: str | None = None,
            tcp: TcpConfig | None = None) -> float:
    """Two ustack hosts in the Simulator: virtual seconds from connect() to the answer."""
    from ustack import Simulator
    from ustack import socket as us

    sim = Simulator(seed=seed, time_limit_s=RUN_TIMEOUT_S)
    faults = f"loss={case.loss},seed={seed}" if case.loss else None
    sim.link("default", latency_s=case.rtt_ms / 2000, faults=faults)
    client = sim.add_host(f"{SIM_CLIENT}/24", pcap=pcap, tcp=tcp)
    server = sim.add_host(f"{SIM_SERVER}/24", tcp=tcp)
    sink = None
    if trace:
        from ustack.cli.tracefile import TraceSink

        sink = TraceSink(open(trace, "w"), None, 0.0, clock=lambda: sim.now)  # noqa: SIM115
        client.stack.tcp.on_trace = sink.hook
    try:
        lsock = us.socket(server, us.AF_INET, us.SOCK_STREAM)
        lsock.bind(("0.0.0.0", PORT))
        lsock.listen()

        def serve():
            conn, _ = lsock.accept()
            serve_one(conn)
            conn.recv(1)  # the client's close
            conn.close()

        task = sim.spawn(serve)
        data = payload(case.size)
        c = us.socket(client, us.AF_INET, us.SOCK_STREAM)
        t0 = sim.now
        c.connect((SIM_SERVER, PORT))
        c.sendall(data)
        if c.recv(1) != b"!":
            raise ConnectionError("no answer")
        elapsed = sim.now - t0
        c.close()
        task.join(RUN_TIMEOUT_S)
        for h in (client, server):
            errs = h.stack.counters.get("tcp.internal_error")
            if errs:
                raise RuntimeError(f"{h.name}: tcp.internal_error = {errs}")
        return elapsed
    finally:
        if sink is not None:
            sink.close()
        sim.close()


# ------------------------------------------------------------------------------------ real side
class Relay:
    """tools/dyn_relay.py as a child process: namespace B, the TUNs and the path."""

    def __init__(self, max_seconds: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(TOOLS, "dyn_relay.py"), "--max-seconds", str(max_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = self._line(15.0)
        if not line.startswith("ready "):
            self.close()
            raise RuntimeError(f"relay did not start: {line!r}")
        self.pid = int(line.split()[1])

    def _line(self, timeout: float) -> str:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError("relay: no answer")
        return self.proc.stdout.readline().strip()

    def command(self, text: str) -> str:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._line(10.0)

    def path(self, case: Case, seed: int) -> None:
        if self.command(f"path {case.rtt_ms / 2000} {case.loss} {seed}") != "ok":
            raise RuntimeError("relay refused the path")

    def in_b(self, *argv: str) -> list[str]:
        """A command line that runs in namespace B."""
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", *argv]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)


def realtime(on: bool) -> None:
    """Run the calling thread before ordinary processes (or not). A Linux endpoint whose process
    waits for a CPU reads late: its receive window stops growing and it ACKs once per read,
    which is the machine's load, not TCP. The endpoints block in the kernel between calls."""
    try:
        if on:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(5))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (OSError, AttributeError):
        pass


def serve_linux(port: int, max_seconds: float) -> int:
    """`--serve`: the Linux server in namespace B, one connection at a time until killed."""
    realtime(True)
    end = time.monotonic() + max_seconds
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(16)
    ls.settimeout(1.0)
    print("listening", flush=True)
    while time.monotonic() < end:
        try:
            conn, _ = ls.accept()
        except TimeoutError:
            continue
        conn.settimeout(RUN_TIMEOUT_S)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"cubic")
            serve_one(conn)
            conn.recv(1)
        except OSError:
            pass
        finally:
            conn.close()
    return 0


class CwndSampler(threading.Thread):
    """Linux's cwnd from TCP_INFO (tcpi_snd_cwnd * tcpi_snd_mss) every 2 ms, as trace lines."""

    def __init__(self, sock: socket.socket, path: str, name: str) -> None:
        super().__init__(daemon=True)
        self.sock, self.path, self.name = sock, path, name
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        last = None
        with open(self.path, "w") as f:
            # the connect() call, as ustack's trace has it: both plots start at the SYN
            f.write(json.dumps({"t": 0.0, "conn": self.name, "ev": "state", "old": "CLOSED",
                                "new": "SYN-SENT"}, separators=(",", ":")) + "\n")
            while not self.stop.wait(0.002):
                try:
                    info = self.sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104)
                except OSError:
                    return
                if info[0] != 1:  # tcpi_state: not ESTABLISHED yet
                    continue
                mss = struct.unpack_from("I", info, 16)[0]
                ssthresh, cwnd = struct.unpack_from("II", info, 76)
                row = (cwnd * mss, ssthresh * mss if ssthresh < 1 << 20 else 1 << 30)
                if row != last:
                    last = row
                    f.write(json.dumps({"t": round(time.monotonic() - t0, 6), "conn": self.name,
                                        "ev": "cwnd", "cwnd": row[0], "ssthresh": row[1]},
                                       separators=(",", ":")) + "\n")


def run_linux(relay: Relay, case: Case, seed: int, trace: str | None = None) -> float:
    relay.path(case, seed)
    realtime(True)
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"cubic")
    s.settimeout(RUN_TIMEOUT_S)
    data = payload(case.size)
    sampler = None
    try:
        if trace:
            sampler = CwndSampler(s, trace, f"198.18.0.1>{SERVER_IP}:{PORT}")
        t0 = time.monotonic()
        if sampler:
            sampler.start()
        s.connect((SERVER_IP, PORT))
        s.sendall(data)
        if s.recv(1) != b"!":
            raise ConnectionError("no answer")
        return time.monotonic() - t0
    finally:
        realtime(False)
        if sampler:
            sampler.stop.set()
            sampler.join(2)
        s.close()


class TunHost:
    """ustack on TUN dynu0 in namespace A, routed by A's kernel to the relay."""

    def __init__(self, tcp: TcpConfig | None = None) -> None:
        import ustack

        self.host = ustack.Host.open(tun="dynu0", addr=f"{HOST_IP}/24", peer=f"{HOST_GW}/24",
                                     gateway=HOST_GW, tcp=tcp)
        from ustack.drivers import kernel_side_up

        kernel_side_up("dynu0", None, txqueuelen=10000)

    def run(self, relay: Relay, case: Case, seed: int) -> float:
        from ustack import socket as us

        relay.path(case, seed)
        data = payload(case.size)
        c = us.socket(self.host, us.AF_INET, us.SOCK_STREAM)
        c.settimeout(RUN_TIMEOUT_S)
        try:
            t0 = time.monotonic()
            c.connect((SERVER_IP, PORT))
            c.sendall(data)
            if c.recv(1) != b"!":
                raise ConnectionError("no answer")
            return time.monotonic() - t0
        finally:
            c.close()

    def close(self) -> None:
        errs = self.host.call(lambda: self.host.stack.counters.get("tcp.internal_error"))
        self.host.close()
        if errs:
            raise RuntimeError(f"ustack-tun: tcp.internal_error = {errs}")


# ------------------------------------------------------------------------------------ driver
def ensure_private_netns(argv: list[str]) -> None:
    """Re-exec this script in a private network namespace (bench_rx's one implementation)."""
    from bench_rx import ensure_private_netns as reexec_in_private_netns

    reexec_in_private_netns(argv, os.path.abspath(__file__), marker=NETNS_ENV)


def build_cases(args: argparse.Namespace) -> list[Case]:
    cases = [Case(parse_size(s), int(r)) for r in args.rtts.split(",") for s in args.sizes.split(",")]
    if args.loss and args.loss_cases:
        for spec in args.loss_cases.split(","):
            size, _, rtt = spec.partition("@")
            cases.append(Case(parse_size(size), int(rtt), args.loss))
    return cases


def measure(args: argparse.Namespace, log: Callable[[str], None]) -> dict:
    cases = build_cases(args)
    sides = args.only.split(",")
    results: list[Result] = []
    relay = tun = server = None
    try:
        if "linux" in sides or "ustack-tun" in sides:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
            relay = Relay(args.max_seconds)
            server = subprocess.Popen(
                relay.in_b(sys.executable, os.path.abspath(__file__), "--serve", str(PORT),
                           "--max-seconds", str(args.max_seconds)),
                stdout=subprocess.PIPE, text=True, start_new_session=True,
                env=dict(os.environ, **{NETNS_ENV: "1"}))
            if server.stdout.readline().strip() != "listening":
                raise RuntimeError("the Linux server did not start")
        if "ustack-tun" in sides:
            tun = TunHost(tcp_config(args.tcp))
        for case in cases:
            for side in sides:
                runs = args.repeat
                if case.loss:
                    runs = args.sim_seeds if side == "sim" and args.sim_seeds else args.seeds
                res = Result(case, side)
                for i in range(runs):
                    seed = args.seed + i
                    try:
                        if side == "sim":
                            t = run_sim(case, seed, tcp=tcp_config(args.tcp))
                        elif side == "linux":
                            t = run_linux(relay, case, seed)
                        else:
                            t = tun.run(relay, case, seed)
                        res.times.append(t)
                    except (OSError, RuntimeError) as e:
                        res.failures += 1
                        log(f"  {side} {case.name} seed {seed}: {type(e).__name__}: {e}")
                results.append(res)
                med = res.median
                log(f"{case.name:<28} {side:<10} median {med if med is None else round(med, 3)} s "
                    f"over {len(res.times)} runs" + (f", {res.failures} failed" if res.failures else ""))
        captures = capture(args, relay, log) if args.capture else {}
    finally:
        if tun is not None:
            tun.close()
        if server is not None:
            os.killpg(server.pid, 9)
            server.wait(5)
        if relay is not None:
            relay.close()
    return report(results, captures)


def capture(args: argparse.Namespace, relay: Relay | None, log: Callable[[str], None]) -> dict:
    """One run per `--capture-case` entry (SIZE@RTT, "+loss" for a lossy one) per side, with
    pcaps and cwnd traces; returns {stem: {side: {...}}}."""
    os.makedirs(args.capture, exist_ok=True)
    out = {}
    for spec in args.capture_case.split(","):
        lossy = spec.endswith("+loss")
        size, _, rtt = spec.removesuffix("+loss").partition("@")
        case = Case(parse_size(size), int(rtt), args.loss if lossy else 0.0)
        stem = f"{size.lower()}-{rtt}ms" + ("-loss" if lossy else "")
        out[stem] = capture_one(args, relay, case, stem, log)
    return out


def capture_one(args: argparse.Namespace, relay: Relay | None, case: Case, stem: str,
                log: Callable[[str], None]) -> dict:
    out = {}
    sim_pcap, sim_trace = (os.path.join(args.capture, f"sim-{stem}.{x}") for x in ("pcap", "jsonl"))
    out["sim"] = {"seconds": run_sim(case, args.seed, pcap=sim_pcap, trace=sim_trace),
                  "pcap": sim_pcap, "trace": sim_trace}
    if relay is not None:
        lin_pcap, lin_trace = (os.path.join(args.capture, f"linux-{stem}.{x}") for x in ("pcap", "jsonl"))
        relay.command(f"pcap {lin_pcap}")
        try:
            secs = run_linux(relay, case, args.seed, trace=lin_trace)
        finally:
            relay.command("pcap -")
        out["linux"] = {"seconds": secs, "pcap": lin_pcap, "trace": lin_trace}
    log(f"captured {case.name}: " + ", ".join(f"{k} {v['seconds']:.3f} s" for k, v in out.items()))
    return out


def report(results: list[Result], captures: dict) -> dict:
    rows = []
    by = {(r.case.name, r.side): r for r in results}
    for r in results:
        if r.side != "linux":
            continue
        row = {"case": r.case.name, "loss": r.case.loss, "linux_s": r.median,
               "linux_runs": len(r.times)}
        for side in ("sim", "ustack-tun"):
            other = by.get((r.case.name, side))
            if other is None:
                continue
            row[f"{side}_s"] = other.median
            row[f"{side}_runs"] = len(other.times)
            if other.median and r.median:
                ratio = other.median / r.median
                lo, hi = (0.67, 1.5) if r.case.loss else (0.8, 1.25)
                row[f"{side}_ratio"] = round(ratio, 2)
                row[f"{side}_in_range"] = lo <= ratio <= hi
        rows.append(row)
    if not rows:  # no Linux side: report what ran
        rows = [{"case": r.case.name, "loss": r.case.loss, f"{r.side}_s": r.median,
                 f"{r.side}_runs": len(r.times)} for r in results]
    return {"rows": rows, "captures": captures,
            "results": [dict(asdict(r), median=r.median) for r in results]}


def print_table(rep: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="completion time, connect() to the answer (medians)")
    for col in ("case", "Linux s", "sim s", "sim/Linux", "ustack-tun s", "tun/Linux"):
        t.add_column(col, justify="left" if col == "case" else "right")

    def fmt(v: float | None, nd: int = 3) -> str:
        return "-" if v is None else f"{v:.{nd}f}"

    def ratio(row: dict, side: str) -> str:
        r = row.get(f"{side}_ratio")
        if r is None:
            return "-"
        return f"{r:.2f}" if row.get(f"{side}_in_range") else f"[bold red]{r:.2f}[/]"

    for row in rep["rows"]:
        t.add_row(row["case"], fmt(row.get("linux_s")), fmt(row.get("sim_s")), ratio(row, "sim"),
                  fmt(row.get("ustack-tun_s")), ratio(row, "ustack-tun"))
    Console().print(t)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="64K,1M,8M")
    p.add_argument("--rtts", default="20,100", help="round-trip times in ms")
    p.add_argument("--loss", type=float, default=0.01)
    p.add_argument("--loss-cases", default="1M@20,1M@100", help="SIZE@RTT_MS,... run with --loss")
    p.add_argument("--seeds", type=int, default=15, help="seeds per loss case")
    p.add_argument("--sim-seeds", type=int, default=None,
                   help="seeds per loss case for the Simulator (cheap: a tighter median; default --seeds)")
    p.add_argument("--repeat", type=int, default=5, help="runs per no-loss case")
    p.add_argument("--seed", type=int, default=1, help="first seed")
    p.add_argument("--only", default="linux,sim,ustack-tun")
    p.add_argument("--capture", metavar="DIR", help="write pcaps and cwnd traces here")
    p.add_argument("--capture-case", default="1M@100,1M@100+loss",
                   help="SIZE@RTT_MS,... to capture (+loss: with --loss)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--tcp", metavar="K=V,...", help="ustack's TcpConfig fields (sim, ustack-tun)")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="bound on the whole run")
    p.add_argument("--smoke", action="store_true", help="a tiny run: 64K at 20 ms, 1 repeat, 2 seeds")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.rtts, args.loss_cases = "64K", "20", "64K@20"
        args.repeat, args.seeds = 1, 2
        args.max_seconds = min(args.max_seconds, 120.0)
    sides = args.only.split(",")
    if any(s not in ("linux", "sim", "ustack-tun") for s in sides):
        p.error("--only: linux, sim, ustack-tun")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.serve:
        return serve_linux(args.serve, args.max_seconds)
    if args.only != "sim":
        ensure_private_netns(argv)
    rep = measure(args, lambda line: print(line, file=sys.stderr, flush=True))
    print_table(rep)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rep, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
