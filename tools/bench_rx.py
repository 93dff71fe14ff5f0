#!/usr/bin/env python3
"""Receive benchmark: how fast can a Python receiver take a kernel TCP stream off a TUN?

Runs entirely inside a private network namespace (the script re-executes itself under
`unshare -n`). On a TUN the kernel side is 198.18.0.1/24, the receiver is 198.18.0.2. A thread
of this process opens a plain kernel TCP socket (congestion control cubic) to 198.18.0.2 and
sends `--mb` megabytes (10^6 bytes), or for at most `--seconds`, then closes. Two receivers run
one after the other in the same namespace and process:

  bare    a minimal Python program: batched os.read on the TUN fd, answers the SYN with a
          hand-built SYN-ACK (MSS from the MTU, window scaling), keeps only RCV.NXT, drops
          out-of-order segments, and sends one cumulative ACK per read batch (or every
          `--ack-every` segments). No checksum verification, no buffering: the ceiling for
          Python on this link.
  ustack  ustack's Host on a TUN with its own TCP; the application thread accepts and drains
          the socket through host.call/host.wait.

Throughput is counted at the receiver: payload bytes delivered in order, from the first data
byte to the FIN. The ratio ustack/bare is printed when both ran.

    python tools/bench_rx.py [--mtu 1500] [--mb 200] [--seconds 10] [--repeat N] [--json]
                             [--only bare|ustack] [--profile [--profile-out DIR]]

`--profile` samples the ustack receiver (or the bare one with `--only bare`) with py-spy
(flame graph SVG + the top functions by own and total time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ustack.drivers import TunDevice
    from ustack.tcp import TcpConfig

KERNEL_IP = "198.18.0.1"
RECEIVER_IP = "198.18.0.2"
NETNS_ENV = "USTACK_BENCH_NETNS"
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)
MB = 1_000_000

_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_PSEUDO = struct.Struct("!4s4sBBH")
_H16 = struct.Struct("!16H")  # a 20-byte TCP header + 12-byte pseudo header = 16 words
_FIN, _SYN, _RST, _PSH, _ACK = 0x01, 0x02, 0x04, 0x08, 0x10


# --------------------------------------------------------------------------- namespace plumbing

def ensure_private_netns(argv: list[str], script: str | None = None, marker: str = NETNS_ENV) -> None:
    """Re-exec `script` (default: this one) under `unshare -n` unless already inside the
    namespace we made (the environment variable `marker` is "1" there). Every tool that sends
    packets starts with this (one implementation; each tool may name its own marker so that one
    tool started by another still gets a namespace of its own)."""
    if os.environ.get(marker) == "1":
        return
    script = script or os.path.abspath(__file__)
    unshare = shutil.which("unshare")
    if unshare is None:
        sys.exit(f"{os.path.basename(script)}: `unshare` not found (util-linux); refusing to run outside a "
                 "private netns")
    env = dict(os.environ, **{marker: "1"})
    os.execvpe(unshare, [unshare, "-n", sys.executable, script, *argv], env)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def lo_up() -> None:
    _ip("link", "set", "lo", "up")


def open_tun(name: str, mtu: int, txqueuelen: int) -> TunDevice:
    from ustack.drivers import TunDevice, kernel_side_up

    dev = TunDevice(name, mtu=mtu)
    kernel_side_up(dev.name, f"{KERNEL_IP}/24", mtu=mtu, txqueuelen=txqueuelen)
    return dev


# --------------------------------------------------------------------------- the kernel sender

class KernelSender(threading.Thread):
    """Connects from the kernel to RECEIVER_IP:port and sends `total` bytes or until `deadline`."""

    def __init__(self, port: int, total: int, seconds: float, cc: str = "cubic", chunk: int = 1 << 18):
        super().__init__(name="kernel-sender", daemon=True)
        self.port, self.total, self.seconds, self.cc, self.chunk = port, total, seconds, cc, chunk
        self.sent = 0
        self.error: BaseException | None = None
        self.cc_used = ""

    def run(self) -> None:
        buf = memoryview(bytes(range(256)) * (self.chunk // 256))
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, self.cc.encode())
            except OSError:
                pass
            self.cc_used = s.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).rstrip(b"\0").decode()
            s.settimeout(5.0)
            s.connect((RECEIVER_IP, self.port))
            s.settimeout(max(1.0, self.seconds) + 5.0)
            deadline = time.monotonic() + self.seconds
            while self.sent < self.total and time.monotonic() < deadline:
                n = min(len(buf), self.total - self.sent)
                s.sendall(buf[:n])
                self.sent += n
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5.0)
            try:  # wait for the receiver's FIN so the stream is fully acknowledged
                s.recv(1)
            except OSError:
                pass
            s.close()
        except BaseException as e:  # reported by the caller
            self.error = e


# --------------------------------------------------------------------------- the bare receiver

def csum16(words_sum: int) -> int:
    while words_sum >> 16:
        words_sum = (words_sum & 0xFFFF) + (words_sum >> 16)
    return ~words_sum & 0xFFFF


def ip_header(src: bytes, dst: bytes, payload_len: int, ident: int) -> bytes:
    hdr = _IP.pack(0x45, 0, 20 + payload_len, ident & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
    s = sum(struct.unpack("!10H", hdr))
    return hdr[:10] + struct.pack("!H", csum16(s)) + hdr[12:]


def tcp_segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
                 window: int, options: bytes = b"") -> bytes:
    off = (20 + len(options)) // 4
    hdr = _TCP.pack(sport, dport, seq, ack, off << 4, flags, window, 0, 0) + options
    pseudo = _PSEUDO.pack(src, dst, 0, 6, len(hdr))
    data = pseudo + hdr
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    c = csum16(s)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]


class BareReceiver:
    """The baseline: reads the TUN, ACKs in-order data, counts bytes. Nothing else."""

    WSCALE = 7

    def __init__(self, fd: int, mtu: int, port: int, window_bytes: int, ack_every: int, batch: int):
        self.fd, self.mtu, self.port = fd, mtu, port
        self.window_field = min(0xFFFF, window_bytes >> self.WSCALE)
        self.ack_every, self.batch = ack_every, batch
        self.local = socket.inet_aton(RECEIVER_IP)
        self.remote = socket.inet_aton(KERNEL_IP)
        self.bytes = 0
        self.segments = 0
        self.out_of_order = 0
        self.acks_sent = 0
        self.first_data_at: float | None = None
        self.fin_at: float | None = None
        self.ident = 0

    def _send(self, tcp: bytes) -> None:
        self.ident += 1
        pkt = ip_header(self.local, self.remote, len(tcp), self.ident) + tcp
        try:
            os.write(self.fd, pkt)
        except BlockingIOError:
            pass

    def run(self, timeout_s: float) -> None:
        fd, read = self.fd, os.read
        unpack_tcp = _TCP.unpack_from
        local, port = self.local, self.port
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        end = time.monotonic() + timeout_s
        rport = 0
        iss = 0x1000
        snd_nxt = iss + 1
        rcv_nxt = None
        unacked = 0
        ack_every, batch = self.ack_every, self.batch
        # Precompute the constant part of every ACK checksum (pseudo header, ports, offset, window).
        ack_base = None
        while self.fin_at is None and time.monotonic() < end:
            if not poller.poll(200):
                continue
            frames = []
            try:
                for _ in range(batch):
                    frames.append(read(fd, 65536))
            except BlockingIOError:
                pass
            for f in frames:
                if len(f) < 40 or f[0] >> 4 != 4 or f[9] != 6:
                    continue
                ihl = (f[0] & 0x0F) * 4
                total = (f[2] << 8) | f[3]
                if f[16:20] != local:
                    continue
                sport, dport, seq, _ack, off, flags, _w, _c, _u = unpack_tcp(f, ihl)
                if dport != port:
                    continue
                doff = ihl + (off >> 4) * 4
                plen = total - doff
                if flags & _SYN:
                    rport = sport
                    rcv_nxt = (seq + 1) & 0xFFFFFFFF
                    opts = struct.pack("!BBHBBBB", 2, 4, self.mtu - 40, 1, 3, 3, self.WSCALE)
                    self._send(tcp_segment(local, self.remote, port, rport, iss, rcv_nxt, _SYN | _ACK,
                                            65535, opts))
                    ack_base = None
                    continue
                if rcv_nxt is None or sport != rport:
                    continue
                if plen > 0:
                    if seq != rcv_nxt:
                        self.out_of_order += 1  # a hole: duplicate ACK at once (fast retransmit)
                        ack_base = self._ack(ack_base, rport, snd_nxt, rcv_nxt)
                        unacked = 0
                    else:
                        if self.first_data_at is None:
                            self.first_data_at = time.perf_counter()
                        rcv_nxt = (rcv_nxt + plen) & 0xFFFFFFFF
                        self.bytes += plen
                        self.segments += 1
                        unacked += 1
                if flags & _FIN and seq + plen == rcv_nxt:
                    rcv_nxt = (rcv_nxt + 1) & 0xFFFFFFFF
                    self.fin_at = time.perf_counter()
                    self._send(tcp_segment(local, self.remote, port, rport, snd_nxt, rcv_nxt,
                                            _FIN | _ACK, self.window_field))
                    snd_nxt += 1
                    unacked = 0
                    break
                if ack_every and unacked >= ack_every:
                    ack_base = self._ack(ack_base, rport, snd_nxt, rcv_nxt)
                    unacked = 0
            if unacked:
                ack_base = self._ack(ack_base, rport, snd_nxt, rcv_nxt)
                unacked = 0

    def _ack(self, base: int | None, rport: int, snd_nxt: int, rcv_nxt: int) -> int:
        if base is None:  # sum of the words that never change between ACKs (seq/ack/csum zero)
            zero = _TCP.pack(self.port, rport, 0, 0, 5 << 4, _ACK, self.window_field, 0, 0)
            base = sum(struct.unpack("!10H", zero)) + sum(
                struct.unpack("!6H", _PSEUDO.pack(self.local, self.remote, 0, 6, 20)))
        s = base + (snd_nxt >> 16) + (snd_nxt & 0xFFFF) + (rcv_nxt >> 16) + (rcv_nxt & 0xFFFF)
        hdr = _TCP.pack(self.port, rport, snd_nxt, rcv_nxt, 5 << 4, _ACK, self.window_field, csum16(s), 0)
        self._send(hdr)
        self.acks_sent += 1
        return base


def run_bare(args: argparse.Namespace, port: int = 5001) -> dict:
    dev = open_tun("bnchbare0", args.mtu, args.txqueuelen)
    try:
        rx = BareReceiver(dev.fileno(), args.mtu, port, args.window_mb * MB, args.ack_every, args.batch)
        sender = KernelSender(port, args.mb * MB, args.seconds)
        sender.start()
        rx.run(args.seconds + 10.0)
        sender.join(10.0)
    finally:
        dev.close()
    return _result("bare", rx.bytes, rx.first_data_at, rx.fin_at, sender,
                   segments=rx.segments, acks_sent=rx.acks_sent, out_of_order=rx.out_of_order)


# --------------------------------------------------------------------------- the ustack receiver

def ustack_available() -> str | None:
    """None if ustack's Host and TCP are importable, else the reason they are not."""
    try:
        import ustack

        ustack.Host  # noqa: B018 - lazy attribute, imports the runtime
        import ustack.core.stack  # noqa: F401
        import ustack.tcp  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "not built yet"
        return f"{type(e).__name__}: {e}"
    return None


def run_ustack(args: argparse.Namespace, port: int = 5002, offload: str = "auto") -> dict:
    import ustack
    from ustack.wire.ipv4 import ip_int

    name = "bnchust0"
    host = ustack.Host.open(tun=name, addr=f"{RECEIVER_IP}/24", peer=f"{KERNEL_IP}/24", mtu=args.mtu,
                            tcp=tcp_config(args.tcp), offload=offload)
    try:
        from ustack.drivers import kernel_side_up

        kernel_side_up(name, None, txqueuelen=args.txqueuelen)
        stack = host.stack

        def listen():
            s = stack.tcp.open()
            if args.window_mb:
                try:
                    s.rcvbuf = args.window_mb * MB
                except Exception:  # noqa: BLE001 - option not supported yet: keep the default
                    pass
            s.bind(ip_int(RECEIVER_IP), port)
            s.listen(8)
            return s

        lsock = host.call(listen)
        sender = KernelSender(port, args.mb * MB, args.seconds)
        sender.start()
        if not host.wait(lambda: lsock.accept_pending, 5.0):
            raise RuntimeError("ustack: no connection accepted within 5 s")
        conn = host.call(lsock.accept)
        total = 0
        first = fin = None
        chunk = 1 << 20
        end = time.monotonic() + args.seconds + 10.0

        def drain():
            return conn.recv(chunk) if conn.readable_bytes else None

        while time.monotonic() < end:
            host.wait(lambda: conn.readable_bytes > 0 or conn.at_eof or conn.error is not None, 1.0)
            data = host.call(drain)
            if data:
                if first is None:
                    first = time.perf_counter()
                total += len(data)
                continue
            if host.call(lambda: conn.at_eof or conn.error is not None):
                fin = time.perf_counter()
                break
        host.call(conn.close, host.now())
        host.call(lsock.close, host.now())
        sender.join(10.0)
        counters = {}
        try:
            snap = host.call(stack.counters.snapshot)
            keep = ("tcp.", "ipv4.drop", "ipv4.in", "ipv4.out", "ipv4.csum_offloaded", "ipv4.gso")
            counters = {k: v for k, v in snap.items() if k.startswith(keep)}
        except Exception:  # noqa: BLE001
            pass
    finally:
        host.close()
    return _result("ustack", total, first, fin, sender, counters=counters, offload=offload)


def _result(name: str, nbytes: int, first: float | None, fin: float | None, sender: KernelSender,
            **extra: Any) -> dict:
    secs = (fin - first) if (first is not None and fin is not None and fin > first) else None
    res = {
        "receiver": name,
        "bytes": nbytes,
        "seconds": secs,
        "mb_per_s": (nbytes / MB / secs) if secs else None,
        "sender_bytes": sender.sent,
        "sender_cc": sender.cc_used,
        "complete": fin is not None and nbytes == sender.sent and sender.error is None,
        "sender_error": repr(sender.error) if sender.error else None,
    }
    res.update(extra)
    return res


# --------------------------------------------------------------------------- profiling

class Profiler:
    """py-spy attached to this process (inside the namespace) for the duration of one receiver."""

    def __init__(self, out_dir: str, tag: str, duration_s: float, rate: int = 250):
        self.py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        self.available = os.path.exists(self.py_spy)
        os.makedirs(out_dir, exist_ok=True)
        self.svg = os.path.join(out_dir, f"bench_rx_{tag}.svg")
        self.raw = os.path.join(out_dir, f"bench_rx_{tag}.txt")
        self.duration_s, self.rate = duration_s, rate
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        if not self.available:
            return
        pid = str(os.getpid())
        common = ["record", "--pid", pid, "--rate", str(self.rate),
                  "--duration", str(int(self.duration_s) + 1), "--nonblocking"]
        for fmt, out in (("flamegraph", self.svg), ("raw", self.raw)):
            self.procs.append(subprocess.Popen([self.py_spy, *common, "--format", fmt, "-o", out],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                               start_new_session=True))
        time.sleep(0.5)  # let py-spy attach before the traffic starts

    def stop(self) -> dict:
        if not self.available:
            return {"error": "py-spy not installed"}
        for p in self.procs:
            try:
                p.wait(self.duration_s + 15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        return {"svg": self.svg, "raw": self.raw, **summarize_collapsed(self.raw)}


_LINENO = re.compile(r":\d+\)$")


def summarize_collapsed(path: str, top: int = 15) -> dict:
    """Top functions by own (leaf) and total (inclusive) samples from py-spy's raw format.

    Line numbers are folded into functions, and stacks of the kernel peer's thread (time it
    spends inside sendall/recv, i.e. the kernel's own TCP work) are left out: percentages are
    of the Python stack's samples (the network thread and the application thread).
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = sender = 0
    try:
        with open(path) as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                if not stack or not n.isdigit():
                    continue
                k = int(n)
                frames = [_LINENO.sub(")", fr) for fr in stack.split(";")
                          if not fr.startswith(("process ", "thread "))]
                if not frames:
                    continue
                if any(fr.startswith(("KernelSender.run", "KernelReceiver.run")) for fr in frames):
                    sender += k
                    continue
                samples += k
                own[frames[-1]] += k
                for fr in set(frames):
                    total[fr] += k
    except OSError as e:
        return {"error": str(e)}

    def fmt(c: Counter[str]) -> list[tuple[str, float]]:
        return [(fr, round(100.0 * n / samples, 1)) for fr, n in c.most_common(top)] if samples else []
    return {"samples": samples, "sender_samples": sender, "top_own_pct": fmt(own),
            "top_total_pct": fmt(total)}


# --------------------------------------------------------------------------- main

def tcp_config(spec: str | None) -> TcpConfig | None:
    """`--tcp ack_stretch_segments=2,quickack_segments=0`: a TcpConfig with those fields (None:
    the defaults)."""
    if not spec:
        return None
    from dataclasses import fields

    from ustack.tcp import TcpConfig

    types = {f.name: f.type for f in fields(TcpConfig)}
    kw = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in types:
            sys.exit(f"--tcp: TcpConfig has no field {key!r}")
        kind = str(types[key])
        kw[key] = (value.lower() in ("1", "true", "yes") if "bool" in kind
                   else float(value) if "float" in kind else int(value) if "int" in kind else value)
    return TcpConfig(**kw)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--mb", type=int, default=200, help="megabytes (10^6 bytes) to send (default 200)")
    p.add_argument("--seconds", type=float, default=10.0, help="sender stops after this long (default 10)")
    p.add_argument("--only", choices=("bare", "ustack"), help="run one receiver only")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds (receivers alternate); medians and their ratio are reported")
    p.add_argument("--window-mb", type=int, default=1,
                   help="bare: receive window to advertise; ustack: rcvbuf if settable (default 1)")
    p.add_argument("--ack-every", type=int, default=0,
                   help="bare: ACK every N in-order segments as well as once per batch (0: per batch)")
    p.add_argument("--batch", type=int, default=64, help="bare: frames per read batch (default 64)")
    p.add_argument("--tcp", default=None, metavar="K=V,...",
                   help="ustack: TcpConfig fields, e.g. ack_stretch_segments=2")
    p.add_argument("--txqueuelen", type=int, default=4096,
                   help="TUN transmit queue, kernel side (default 4096)")
    p.add_argument("--offload", default="auto", metavar="MODE[,MODE...]",
                   help="ustack: Host.open offload modes to run, each in every round (auto, csum, "
                        "none; default auto); the first one gives ratio_ustack_over_bare")
    p.add_argument("--profile", action="store_true", help="sample the receiver with py-spy")
    p.add_argument("--profile-out", default=None, help="directory for the profile (default: a temp dir)")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="draw MB/s per receiver (and the profile's top functions) with matplotlib")
    return p.parse_args(argv)



def summarize(results: dict, want: list[str], role: str) -> None:
    """Median MB/s per program over the rounds (`role`: "receiver" or "sender") and the
    ustack/bare ratio of those medians, stored into `results`."""
    medians = {}
    first_mode = next((r["offload"] for r in results["runs"] if r.get("offload")), None)
    for name in want:  # "ustack": its first offload mode (the others are in by_offload)
        rates = sorted(r["mb_per_s"] for r in results["runs"] if r[role] == name and r.get("mb_per_s")
                       and r.get("offload") in (None, first_mode))
        if rates:
            medians[name] = round(rates[len(rates) // 2], 1)
    results["median_mb_per_s"] = medians
    if medians.get("bare") and medians.get("ustack"):
        results["ratio_ustack_over_bare"] = round(medians["ustack"] / medians["bare"], 3)
    by_mode = {}  # the receiver's offload modes (bench_rx --offload), each against the same bare
    for mode in dict.fromkeys(r["offload"] for r in results["runs"] if r.get("offload")):
        rates = sorted(r["mb_per_s"] for r in results["runs"]
                       if r[role] == "ustack" and r.get("offload") == mode and r.get("mb_per_s"))
        if rates and medians.get("bare"):
            by_mode[mode] = {"median_mb_per_s": round(rates[len(rates) // 2], 1),
                             "ratio_over_bare": round(rates[len(rates) // 2] / medians["bare"], 3)}
    if len(by_mode) > 1 or (by_mode and "ustack" not in medians):
        results["by_offload"] = by_mode

def run_one(role: str, name: str, mode: str | None, rnd: int, run_bare: Callable[[argparse.Namespace], dict],
            run_ustack: Callable[..., dict], args: argparse.Namespace) -> dict:
    """One measured run of `name` ("bare", or ustack with offload `mode`) in round `rnd`; a run
    that fails is recorded in its place with the error and the other runs go on (bench_rx and
    bench_tx, `role` "receiver" or "sender")."""
    try:
        res = run_bare(args) if mode is None else run_ustack(args, offload=mode)
    except Exception as e:  # noqa: BLE001 - report, keep going with the other runs
        res = {role: name, "error": f"{type(e).__name__}: {e}"}
        if mode is not None:
            res["offload"] = mode
    res["round"] = rnd
    return res


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    ensure_private_netns(argv)
    lo_up()
    results: dict = {"mtu": args.mtu, "mb": args.mb, "seconds_limit": args.seconds,
                     "python": sys.version.split()[0], "runs": []}
    want = [args.only] if args.only else ["bare", "ustack"]
    modes = [m.strip() for m in args.offload.split(",") if m.strip()] or ["auto"]
    why_not = ustack_available()
    prof_dir = args.profile_out or tempfile.mkdtemp(prefix="bench_rx_prof_")
    profile_target = args.only or ("ustack" if why_not is None else "bare")
    for rnd in range(args.repeat):  # alternate receivers so drifting machine load hits both
        for name in want:
            if name == "ustack" and why_not is not None:
                if rnd == 0:
                    results["runs"].append({"receiver": "ustack",
                                            "skipped": f"ustack Host/TCP not available ({why_not})"})
                continue
            profile_now = args.profile and name == profile_target and rnd == 0
            prof = Profiler(prof_dir, name, args.seconds + 5) if profile_now else None
            if prof:
                prof.start()
            for mode in ([None] if name == "bare" else modes):
                res = run_one("receiver", name, mode, rnd, run_bare, run_ustack, args)
                if prof:
                    res["profile"] = prof.stop()
                    prof = None
                results["runs"].append(res)
    summarize(results, want, "receiver")
    if args.plot:
        results["plot"] = plot(results, args.plot)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return 0


def plot(results: dict, path: str) -> str:
    """Bar chart of the median MB/s per receiver (rounds as dots); the top own-time functions of
    the profile beside it when there is one. Returns the path, or why nothing was drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed (pip install -e '.[plot]')"
    prof = next((r["profile"] for r in results["runs"] if r.get("profile", {}).get("top_own_pct")), None)
    fig, axes = plt.subplots(1, 2 if prof else 1, figsize=(11 if prof else 5, 4), squeeze=False)
    ax = axes[0][0]
    names = list(results["median_mb_per_s"])
    ax.bar(names, [results["median_mb_per_s"][n] for n in names], color=["#999999", "#2a6fbb"][:len(names)])
    for i, n in enumerate(names):
        pts = [r["mb_per_s"] for r in results["runs"] if r["receiver"] == n and r.get("mb_per_s")]
        ax.plot([i] * len(pts), pts, "k.", alpha=0.6)
    title = f"TUN receive, MTU {results['mtu']}"
    if "ratio_ustack_over_bare" in results:
        title += f": ustack/bare = {results['ratio_ustack_over_bare']:.2f}"
    ax.set_title(title)
    ax.set_ylabel("MB/s (10^6 bytes)")
    if prof:
        ax2 = axes[0][1]
        top = prof["top_own_pct"][:10][::-1]
        ax2.barh([_short(fr) for fr, _ in top], [pct for _, pct in top], color="#2a6fbb")
        ax2.set_xlabel("% of receiver samples (own time)")
        ax2.set_title("where ustack's receive time goes (py-spy)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(frame: str) -> str:
    """"Connection.on_segment (ustack/tcp/connection.py)" -> "Connection.on_segment (tcp/connection)"."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")").replace("ustack/", "").replace(".py", "")
    return f"{func} ({where})" if where else func


def print_table(results: dict) -> None:
    print(f"bench_rx: MTU {results['mtu']}, {results['mb']} MB or {results['seconds_limit']} s, "
          f"Python {results['python']}")
    for r in results["runs"]:
        name = r["receiver"]
        if "skipped" in r or "error" in r:
            print(f"  {name:7s} {r.get('skipped') or r.get('error')}")
            continue
        rate = f"{r['mb_per_s']:8.1f} MB/s" if r["mb_per_s"] else "     n/a    "
        secs = f"{r['seconds']:.2f}s" if r["seconds"] else "-"
        if r.get("offload"):
            name = f"{name}[{r['offload']}]"
        print(f"  {name:7s} {rate}  {r['bytes'] / MB:8.1f} MB in {secs}  complete={r['complete']}  "
              f"cc={r['sender_cc']}" + (f"  sender_error={r['sender_error']}" if r["sender_error"] else ""))
        extra = {k: v for k, v in r.items() if k in ("segments", "acks_sent", "out_of_order")}
        if extra:
            print("          " + "  ".join(f"{k}={v}" for k, v in extra.items()))
        if r.get("counters"):
            print("          " + "  ".join(f"{k}={v}" for k, v in sorted(r["counters"].items())))
        prof = r.get("profile")
        if prof:
            if "error" in prof:
                print(f"          profile: {prof['error']}")
            else:
                print(f"          profile: {prof['svg']} ({prof['samples']} receiver samples, "
                      f"{prof['sender_samples']} in the kernel sender thread left out)")
                for title, key in (("own", "top_own_pct"), ("total", "top_total_pct")):
                    print(f"          top {title} time:")
                    for fr, pct in prof[key][:12]:
                        print(f"            {pct:5.1f}%  {fr}")
    if len(results["runs"]) > 2:
        print("  median: " + "  ".join(f"{k} {v} MB/s" for k, v in results["median_mb_per_s"].items()))
    if "by_offload" in results:
        for mode, r in results["by_offload"].items():
            print(f"  ratio ustack[{mode}]/bare: {r['ratio_over_bare']:.3f} ({r['median_mb_per_s']} MB/s)")
    elif "ratio_ustack_over_bare" in results:
        print(f"  ratio ustack/bare: {results['ratio_ustack_over_bare']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
