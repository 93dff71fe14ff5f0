#!/usr/bin/env python3
"""SYN flood: do real clients still get through? ustack and Linux on the same test.

The flood comes from the kernel side of the link: an AF_PACKET writer puts spoofed SYNs (random
sources in 198.18.1.0 - 198.19.255.255, random ports and ISNs, MSS option) on the link, paced at
`--rate` per second up to `--count`; meanwhile `--clients` kernel sockets connect, one every
`--spacing` s, each sending one byte and waiting for one byte back (the server answers "!"),
all within `--budget` s. After the flood, one more client must get through at once, and one
more moves 1 MB each way (checked).

  ustack  ustack (a Host on a TUN, gateway 198.18.0.1 so its SYN-ACKs to the spoofed sources
          leave through the link, where the kernel drops them) listening on 198.18.0.2.
  linux   the kernel of a second private namespace (a veth pair; its route to 198.18.0.0/15 goes
          via 198.18.0.1, which drops the SYN-ACKs the same way) listening on 198.18.0.2 with
          the same backlog; sysctls as the namespace has them (tcp_syncookies=1).

Everything runs in private network namespaces (the script re-executes itself under `unshare -n`;
the server namespace of the linux target is a child process of it), addresses in 198.18.0.0/15
only; every sending loop is bounded in count and time.

    python tools/synflood.py [--targets ustack,linux] [--count 30000] [--rate 10000]
        [--clients 20] [--spacing 0.15] [--budget 3] [--repeat 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ustack.wire.ipv4 import Ipv4Packet, ip_int  # noqa: E402
from ustack.wire.tcp import SYN, TcpOptions, TcpSegment  # noqa: E402

CLIENT_IP = "198.18.0.1"
SERVER_IP = "198.18.0.2"
PORT = 8080
BACKLOG = 200
ETH_P_IP = 0x0800
SPOOF_FIRST = ip_int("198.18.1.0")
SPOOF_SPAN = ip_int("198.19.255.255") - SPOOF_FIRST + 1


# ---- the flood ------------------------------------------------------------------------------------
def build_syns(n: int, dst: str = SERVER_IP, dport: int = PORT, seed: int = 1) -> list[bytes]:
    """`n` spoofed SYNs (IPv4 packets, valid checksums) from random 198.18.1.0-198.19.255.255."""
    rng = random.Random(seed)
    d = ip_int(dst)
    out = []
    opts = TcpOptions(mss=1460)
    for _ in range(n):
        src = SPOOF_FIRST + rng.randrange(SPOOF_SPAN)
        seg = TcpSegment(rng.randrange(1024, 65536), dport, rng.getrandbits(32), 0, SYN, 64240, b"",
                         opts)
        out.append(Ipv4Packet(src, d, 6, seg.emit(src, d), ttl=64, ident=rng.getrandbits(16)).emit())
    return out


def flood(ifname: str, frames: list[bytes], rate: float, max_s: float,
          dst_mac: bytes | None = None) -> tuple[int, float]:
    """Write `frames` onto `ifname` (AF_PACKET: exactly as built, past the kernel's own stack)
    at about `rate` per second; stops after all of them or `max_s`. Returns (sent, seconds)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
    addr: Any = (ifname, ETH_P_IP) if dst_mac is None else (ifname, ETH_P_IP, 0, 0, dst_mac)
    sent = 0
    t0 = time.monotonic()
    batch = max(1, int(rate / 200))  # 5 ms worth at a time
    try:
        while sent < len(frames):
            now = time.monotonic() - t0
            if now > max_s:
                break
            due = min(len(frames), int(now * rate) + batch)
            while sent < due:
                try:
                    s.sendto(frames[sent], addr)
                except OSError:  # queue full (ENOBUFS): that SYN is lost, like on a real link
                    pass
                sent += 1
            time.sleep(0.005)
    finally:
        s.close()
    return sent, time.monotonic() - t0


# ---- the real clients --------------------------------------------------------------------------
@dataclass
class Attempt:
    ok: bool
    seconds: float
    error: str = ""


def client(dst: str, port: int, budget: float) -> Attempt:
    """Connect, send one byte, wait for one byte back: all within `budget` seconds."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((dst, port), timeout=budget, source_address=(CLIENT_IP, 0)) as s:
            s.settimeout(max(0.01, budget - (time.monotonic() - t0)))
            s.sendall(b"?")
            got = s.recv(1)
        dt = time.monotonic() - t0
        return Attempt(got == b"!" and dt <= budget, dt, "" if got == b"!" else f"answer {got!r}")
    except OSError as e:
        return Attempt(False, time.monotonic() - t0, type(e).__name__)


BULK = 1_000_000


def bulk_client(dst: str, port: int, budget: float) -> Attempt:
    """After the flood (the SYN queue still full of spoofed entries, so this is a cookie
    connection): 1 MB each way, checked, so window scaling and SACK recovered from the cookie
    are exercised, not just the handshake."""
    t0 = time.monotonic()
    data = random.Random(5).randbytes(BULK)
    try:
        with socket.create_connection((dst, port), timeout=budget, source_address=(CLIENT_IP, 0)) as s:
            s.settimeout(budget)
            s.sendall(b"B" + data)
            got = bytearray()
            while len(got) < BULK:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += chunk
        dt = time.monotonic() - t0
        ok = bytes(got) == data[::-1]
        return Attempt(ok, dt, "" if ok else f"got {len(got)} bytes, not the reversed data")
    except OSError as e:
        return Attempt(False, time.monotonic() - t0, type(e).__name__)


def clients_during(n: int, spacing: float, budget: float, start_delay: float) -> list[Attempt]:
    """`n` clients, one every `spacing` s after `start_delay`, each in its own thread."""
    results: list[Attempt | None] = [None] * n

    def one(i: int) -> None:
        results[i] = client(SERVER_IP, PORT, budget)

    threads = []
    time.sleep(start_delay)
    for i in range(n):
        t = threading.Thread(target=one, args=(i,), daemon=True)
        t.start()
        threads.append(t)
        time.sleep(spacing)
    for t in threads:
        t.join(budget + 5)
    return [r if r is not None else Attempt(False, budget + 5, "hung") for r in results]


# ---- servers ------------------------------------------------------------------------------------
def answer_each(make_listener: Callable[[], Any], stop: threading.Event, max_s: float,
                served: list[int]) -> None:
    """Accept connections and answer each one byte with "!" until `stop` or `max_s`."""
    ls = make_listener()
    end = time.monotonic() + max_s
    try:
        while not stop.is_set() and time.monotonic() < end:
            try:
                c, _ = ls.accept()
            except TimeoutError:
                continue
            try:
                c.settimeout(5.0)
                first = c.recv(1)
                if first == b"?":
                    c.sendall(b"!")
                    served[0] += 1
                elif first == b"B":  # bulk: read 1 MB, send it back reversed
                    got = bytearray()
                    while len(got) < BULK:
                        chunk = c.recv(1 << 16)
                        if not chunk:
                            break
                        got += chunk
                    c.sendall(bytes(got[::-1]))
                    served[0] += 1
            except OSError:
                pass
            finally:
                c.close()
    finally:
        ls.close()


def kernel_listener() -> socket.socket:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((SERVER_IP, PORT))
    ls.listen(BACKLOG)
    ls.settimeout(0.2)
    return ls


# ---- one run --------------------------------------------------------------------------------------
@dataclass
class Result:
    target: str
    flood_sent: int
    flood_s: float
    ok: int
    clients: int
    seconds: list[float]
    errors: list[str]
    after_ok: bool
    after_s: float
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        s = sorted(self.seconds)
        return (f"{self.target:7s} {self.ok:2d}/{self.clients} clients within budget; connect+echo "
                f"median {statistics.median(s):.3f} s, max {max(s):.3f} s; after the flood: "
                f"{'ok' if self.after_ok else 'FAILED'} in {self.after_s:.3f} s; flood "
                f"{self.flood_sent} SYNs in {self.flood_s:.2f} s"
                + (f"; {self.extra}" if self.extra else ""))


def run_flood_and_clients(ifname: str, frames: list[bytes], args: Any,
                          dst_mac: bytes | None = None) -> tuple[int, float, list[Attempt], Attempt]:
    box: dict[str, Any] = {}

    def flooder() -> None:
        box["flood"] = flood(ifname, frames, args.rate, args.count / args.rate + 10, dst_mac)

    ft = threading.Thread(target=flooder, daemon=True)
    ft.start()
    attempts = clients_during(args.clients, args.spacing, args.budget, start_delay=0.3)
    ft.join(args.count / args.rate + 15)
    sent, secs = box.get("flood", (0, 0.0))
    after = client(SERVER_IP, PORT, args.budget)
    bulk = bulk_client(SERVER_IP, PORT, 30.0)
    after = Attempt(after.ok and bulk.ok, after.seconds, after.error or bulk.error)
    return sent, secs, attempts, after


def run_ustack(args: Any, frames: list[bytes]) -> Result:
    from ustack import socket as us
    from ustack.runtime.host import Host

    # a fresh namespace does not forward: the SYN-ACKs to spoofed sources die in the kernel
    host = Host.open(tun="sflood0", addr=f"{SERVER_IP}/24", peer=f"{CLIENT_IP}/24",
                     gateway=CLIENT_IP, seed=random.randrange(1 << 30))
    stop = threading.Event()
    served = [0]

    def listener() -> Any:
        ls = us.socket(host, us.AF_INET, us.SOCK_STREAM)
        ls.bind(("0.0.0.0", PORT))
        ls.listen(BACKLOG)
        ls.settimeout(0.2)
        return ls

    server = threading.Thread(target=answer_each, args=(listener, stop, 120.0, served), daemon=True)
    server.start()
    time.sleep(0.3)
    try:
        sent, secs, attempts, after = run_flood_and_clients("sflood0", frames, args)
    finally:
        stop.set()
        server.join(5)
        c = host.stack.counters
        extra = {k: c.get(k) for k in ("tcp.syncookies_sent", "tcp.syncookies_recv",
                                       "tcp.syncookies_failed", "tcp.listen_overflow",
                                       "tcp.internal_error", "stack.internal_error")}
        extra["runtime.errors"] = host.errors
        host.close()
    return Result("ustack", sent, secs, sum(a.ok for a in attempts), len(attempts),
                  [a.seconds for a in attempts], [a.error for a in attempts if not a.ok],
                  after.ok, after.seconds, extra)


def run_linux(args: Any, frames: list[bytes]) -> Result:
    """The listener in a child namespace behind a veth pair; flood and clients from this one."""
    ip = shutil.which("ip") or "ip"
    server = subprocess.Popen(["unshare", "-n", sys.executable, os.path.abspath(__file__), "--serve"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert server.stdin is not None and server.stdout is not None
        if server.stdout.readline().strip() != "started":  # it is in its own namespace now
            raise RuntimeError("linux server namespace did not start")
        subprocess.run([ip, "link", "add", "sfc0", "type", "veth", "peer", "name", "sfs0"], check=True)
        subprocess.run([ip, "link", "set", "sfs0", "netns", str(server.pid)], check=True)
        subprocess.run([ip, "addr", "add", f"{CLIENT_IP}/24", "dev", "sfc0"], check=True)
        subprocess.run([ip, "link", "set", "sfc0", "up"], check=True)
        server.stdin.write("go\n")
        server.stdin.flush()
        ready = server.stdout.readline().strip()
        if not ready.startswith("ready"):
            raise RuntimeError(f"linux server did not start: {ready!r}")
        sysctls = ready.split(" ", 1)[1]
        peer_mac = _neigh_mac("sfc0", SERVER_IP)
        sent, secs, attempts, after = run_flood_and_clients("sfc0", frames, args, dst_mac=peer_mac)
        server.stdin.write("stop\n")
        server.stdin.flush()
        tail = server.stdout.readline().strip()
    finally:
        subprocess.run([ip, "link", "del", "sfc0"], capture_output=True)  # (both ends go)
        if server.poll() is None:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait(5)
    return Result("linux", sent, secs, sum(a.ok for a in attempts), len(attempts),
                  [a.seconds for a in attempts], [a.error for a in attempts if not a.ok],
                  after.ok, after.seconds, {"sysctls": sysctls, "server": tail})


def _neigh_mac(ifname: str, addr: str) -> bytes:
    """The server's MAC as seen from here (one real connect resolves it)."""
    try:
        client(addr, PORT, 3.0)
    except OSError:
        pass
    out = subprocess.run(["ip", "neigh", "show", addr, "dev", ifname], capture_output=True,
                         text=True, check=True).stdout.split()
    return bytes.fromhex(out[out.index("lladdr") + 1].replace(":", ""))


def serve() -> int:
    """--serve: runs in the server namespace (unshare -n); waits for its veth end, configures
    it, listens, answers clients until told to stop, reports the kernel's SYN counters."""
    print("started", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    ip = shutil.which("ip") or "ip"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True)
    subprocess.run([ip, "addr", "add", f"{SERVER_IP}/24", "dev", "sfs0"], check=True)
    subprocess.run([ip, "link", "set", "sfs0", "up"], check=True)
    subprocess.run([ip, "route", "add", "198.18.0.0/15", "via", CLIENT_IP], check=True)
    names = ("tcp_syncookies", "tcp_max_syn_backlog", "tcp_synack_retries")
    sysctls = ",".join(f"{n}={Path('/proc/sys/net/ipv4', n).read_text().strip()}" for n in names)
    stop = threading.Event()
    served = [0]
    t = threading.Thread(target=answer_each, args=(kernel_listener, stop, 120.0, served), daemon=True)
    t.start()
    time.sleep(0.2)
    print(f"ready {sysctls}", flush=True)
    sys.stdin.readline()
    stop.set()
    t.join(5)
    snmp = Path("/proc/net/netstat").read_text().split("\n")
    head, vals = snmp[0].split(), snmp[1].split()
    stats = dict(zip(head, vals, strict=False))
    keep = ("SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "ListenOverflows", "ListenDrops")
    print(" ".join(f"{k}={stats.get(k)}" for k in keep) + f" served={served[0]}", flush=True)
    return 0


# ---- main ---------------------------------------------------------------------------------------
def ensure_private_netns(argv: list[str]) -> None:
    """Re-exec this script in a private network namespace (bench_rx's one implementation)."""
    from tools.bench_rx import ensure_private_netns as reexec_in_private_netns

    reexec_in_private_netns(argv, os.path.abspath(__file__), marker="USTACK_SYNFLOOD_NETNS")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", default="ustack,linux")
    p.add_argument("--count", type=int, default=30_000)
    p.add_argument("--rate", type=float, default=10_000.0)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--spacing", type=float, default=0.15)
    p.add_argument("--budget", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", type=Path)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not (0 < a.count <= 200_000 and 0 < a.rate <= 100_000 and 0 < a.clients <= 200):
        p.error("--count 1..200000, --rate 1..100000, --clients 1..200")
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.serve:
        return serve()
    ensure_private_netns(argv)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    frames = build_syns(args.count)
    results = []
    for _ in range(args.repeat):
        for target in args.targets.split(","):
            r = run_ustack(args, frames) if target == "ustack" else run_linux(args, frames)
            print(r.line(), flush=True)
            results.append(r)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
