#!/usr/bin/env python3
"""A userspace path between two network namespaces: seeded one-way delay and random loss
(netem is not available on these machines).

Run by tools/bench_dynamics.py inside its private namespace ("A"), as root:

    python tools/dyn_relay.py --max-seconds 900

It opens TUN `dyna0` in A (198.18.0.1/24, routes 198.18.1.0/24 for a ustack Host behind A's
kernel), then moves itself into a new namespace B (`unshare(CLONE_NEWNET)`) and opens `dynb0`
there (198.18.0.2/24, return route to 198.18.1.0/24). B lives as long as this process: other
processes join it with `nsenter --net=/proc/PID/ns/net`. Every IPv4 packet read from one TUN is
written to the other `delay` seconds later unless dropped (probability `loss`, from a
`random.Random` seeded per direction). Delay is constant, so order is kept.

Control on stdin, one command per line, each answered on stdout:
    path DELAY_S LOSS SEED     new path parameters (queued packets keep their due times) -> "ok"
    pcap PATH|-                record on A's side (time read from / written to dyna0) -> "ok"
    stats                      -> "stats a2b=N b2a=N dropped=N"
The relay prints "ready PID" once both TUNs are up, and exits on EOF on stdin or after
--max-seconds (a bound on every run, whatever the parent does).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import select
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable

CLONE_NEWNET = 0x40000000
TUN_A, TUN_B = "dyna0", "dynb0"
ADDR_A, ADDR_B = "198.18.0.1", "198.18.0.2"
HOST_NET = "198.18.1.0/24"  # a ustack Host on its own TUN in A (A's kernel forwards)
MAX_BATCH = 256


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _sysctl(key: str, value: str) -> None:
    try:
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
    except OSError:
        pass


def open_tun(name: str, addr: str) -> int:
    import pytun

    dev = pytun.TunTapDevice(name=name, flags=pytun.IFF_TUN | pytun.IFF_NO_PI)
    fd = os.dup(dev.fileno())
    os.set_blocking(fd, False)
    _sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
    _ip("link", "set", "dev", name, "mtu", "1500", "txqueuelen", "10000")
    _ip("addr", "add", f"{addr}/24", "dev", name)
    _ip("link", "set", "dev", name, "up")
    open_tun.keep.append(dev)  # type: ignore[attr-defined]
    return fd


open_tun.keep = []  # type: ignore[attr-defined]


def setup() -> tuple[int, int]:
    _ip("link", "set", "lo", "up")
    _sysctl("net.ipv4.ip_forward", "1")
    _sysctl("net.ipv4.conf.all.rp_filter", "0")
    fd_a = open_tun(TUN_A, ADDR_A)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
    _ip("link", "set", "lo", "up")
    _sysctl("net.ipv4.conf.all.rp_filter", "0")
    fd_b = open_tun(TUN_B, ADDR_B)
    _ip("route", "add", HOST_NET, "dev", TUN_B)
    return fd_a, fd_b


class Lane:
    """One direction: read, maybe drop, hold for `delay`, write."""

    def __init__(self, name: str, src: int, dst: int) -> None:
        self.name, self.src, self.dst = name, src, dst
        self.queue: deque[tuple[float, bytes]] = deque()
        self.rng = random.Random(0)
        self.delay = 0.0
        self.loss = 0.0
        self.forwarded = 0
        self.dropped = 0

    def configure(self, delay: float, loss: float, seed: int) -> None:
        self.delay, self.loss = delay, loss
        self.rng = random.Random(f"dyn_relay:{seed}:{self.name}")

    def pull(self, now: float, capture: Callable[[float, bytes], None] | None) -> None:
        for _ in range(MAX_BATCH):
            try:
                pkt = os.read(self.src, 65536)
            except BlockingIOError:
                return
            if not pkt or pkt[0] >> 4 != 4:
                continue
            if self.loss and self.rng.random() < self.loss:
                self.dropped += 1
                continue
            if capture is not None and self.name == "a2b":
                capture(now, pkt)
            self.queue.append((now + self.delay, pkt))

    def push(self, now: float, capture: Callable[[float, bytes], None] | None) -> None:
        q = self.queue
        while q and q[0][0] <= now:
            _, pkt = q.popleft()
            try:
                os.write(self.dst, pkt)
                self.forwarded += 1
            except OSError:
                self.dropped += 1
                continue
            if capture is not None and self.name == "b2a":
                capture(now, pkt)

    def next_due(self) -> float | None:
        return self.queue[0][0] if self.queue else None


class Capture:
    def __init__(self, path: str) -> None:
        import dpkt

        self.f = open(path, "wb")
        self.w = dpkt.pcap.Writer(self.f, linktype=101)  # raw IP
        self.origin = time.time() - time.monotonic()

    def __call__(self, now: float, pkt: bytes) -> None:
        self.w.writepkt(pkt, ts=now + self.origin)

    def close(self) -> None:
        self.f.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-seconds", type=float, default=900.0)
    args = p.parse_args()
    fd_a, fd_b = setup()
    try:
        # the path's delay must not depend on the machine's load: run before ordinary processes
        # (the relay sleeps in select between packets; its lifetime is bounded by --max-seconds)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        realtime = True
    except (OSError, AttributeError):
        realtime = False
    a2b, b2a = Lane("a2b", fd_a, fd_b), Lane("b2a", fd_b, fd_a)
    capture: Capture | None = None
    print(f"ready {os.getpid()} {'realtime' if realtime else 'normal'}", flush=True)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    pending = b""
    end = time.monotonic() + args.max_seconds
    while True:
        now = time.monotonic()
        if now >= end:
            return 3
        due = [d for d in (a2b.next_due(), b2a.next_due()) if d is not None]
        timeout = max(0.0, min(due) - now) if due else 0.5
        ready, _, _ = select.select([fd_a, fd_b, stdin], [], [], min(timeout, 0.5))
        now = time.monotonic()
        if fd_a in ready:
            a2b.pull(now, capture)
        if fd_b in ready:
            b2a.pull(now, capture)
        a2b.push(now, capture)
        b2a.push(now, capture)
        if stdin in ready:
            chunk = os.read(stdin, 4096)
            if not chunk:
                return 0
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                cmd = line.decode().split()
                if not cmd:
                    continue
                if cmd[0] == "path":
                    delay, loss, seed = float(cmd[1]), float(cmd[2]), int(cmd[3])
                    a2b.configure(delay, loss, seed)
                    b2a.configure(delay, loss, seed)
                    reply = "ok"
                elif cmd[0] == "pcap":
                    if capture is not None:
                        capture.close()
                        capture = None
                    if cmd[1] != "-":
                        capture = Capture(cmd[1])
                    reply = "ok"
                elif cmd[0] == "stats":
                    reply = (f"stats a2b={a2b.forwarded} b2a={b2a.forwarded} "
                             f"dropped={a2b.dropped + b2a.dropped}")
                else:
                    reply = f"error unknown command {cmd[0]!r}"
                print(reply, flush=True)


if __name__ == "__main__":
    sys.exit(main())
