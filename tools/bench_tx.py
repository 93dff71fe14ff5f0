#!/usr/bin/env python3
"""Send benchmark: how fast can a Python sender push a TCP stream into the kernel over a TUN?

The mirror of tools/bench_rx.py, in a private network namespace it creates (`unshare -n`). On
a TUN the kernel side is 198.18.0.1/24 and listens with a plain socket (a child process drains
it with recv_into, so it never competes for the senders' GIL); the sender is 198.18.0.2.
Two senders, one after the other:

  bare    a minimal Python sender on the TUN fd: hand-built SYN, then MSS-sized segments of
          one constant payload (its checksum sum precomputed) as far as the kernel's window
          allows, reading ACKs in batches; go-back-N from SND.UNA on three duplicate ACKs or
          200 ms of silence. No congestion control: the ceiling for Python on this link.
  ustack  ustack's Host with its own TCP: connect, then `send` from a 1 MB buffer in a loop,
          once per `--offload` mode (auto: TSO, the kernel segments ustack's super-segments;
          csum/none: per segment), each against the same bare sender of the round.

Throughput is counted at the kernel receiver: bytes from the first to EOF.

    python tools/bench_tx.py [--mtu 1500] [--mb 200] [--seconds 10] [--repeat N] [--json]
                             [--only bare|ustack] [--offload auto,csum,none]
                             [--profile [--profile-out DIR]]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_rx as rx  # noqa: E402 - shared namespace plumbing, packet helpers and profiler

KERNEL_IP, SENDER_IP, MB = rx.KERNEL_IP, rx.RECEIVER_IP, rx.MB
_TCP = rx._TCP
_SYN, _ACK, _FIN, _PSH = rx._SYN, rx._ACK, rx._FIN, rx._PSH


_RECEIVER = r"""
import json, socket, sys, time
port, timeout_s = int(sys.argv[1]), float(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
ls.bind((sys.argv[3], port))
ls.listen(1)
ls.settimeout(10)
print("ready", flush=True)
out = {"bytes": 0, "first": None, "eof": None, "error": None}
buf = bytearray(1 << 20)
try:
    c, _ = ls.accept()
    c.settimeout(timeout_s)
    while True:
        n = c.recv_into(buf)
        if not n:
            out["eof"] = time.perf_counter()
            break
        if out["first"] is None:
            out["first"] = time.perf_counter()
        out["bytes"] += n
except Exception as e:
    out["error"] = repr(e)
print(json.dumps(out), flush=True)
"""


class KernelReceiver:
    """A kernel socket server on KERNEL_IP:port in a child process (its own GIL, so it drains
    at kernel speed whatever the sender does); counts bytes until EOF, bounded."""

    def __init__(self, port: int, timeout_s: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _RECEIVER, str(port), str(timeout_s), KERNEL_IP],
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.timeout_s = timeout_s
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("ready"):
            self.proc.kill()
            raise RuntimeError("kernel receiver did not start")
        self.bytes = 0
        self.first_at: float | None = None
        self.eof_at: float | None = None
        self.error: str | None = None

    def join(self, timeout_s: float) -> None:
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=5)
            self.error = "receiver timed out"
            return
        res = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": "no output"}
        self.bytes, self.first_at, self.eof_at = res.get("bytes", 0), res.get("first"), res.get("eof")
        self.error = res.get("error")


class BareSender:
    """The baseline: window-limited sending of one constant payload, go-back-N on trouble."""

    def __init__(self, fd: int, mtu: int, port: int, total: int, seconds: float, batch: int) -> None:
        self.fd, self.port, self.total, self.seconds, self.batch = fd, port, total, seconds, batch
        self.mss = mtu - 40
        self.local = socket.inet_aton(SENDER_IP)
        self.remote = socket.inet_aton(KERNEL_IP)
        self.payload = bytes(range(256)) * (self.mss // 256 + 1)
        self.payload = self.payload[: self.mss]
        self.segments = 0
        self.rewinds = 0
        self.ident = 0

    def _ip(self, tcp_len: int) -> bytes:
        self.ident += 1
        return rx.ip_header(self.local, self.remote, tcp_len, self.ident)

    def run(self) -> int:
        fd, read, write = self.fd, os.read, os.write
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        sport, iss = 40000, 0x2000
        syn_opts = struct.pack("!BBHBBBB", 2, 4, self.mss, 1, 3, 3, 0)
        write(fd, self._ip(28) + rx.tcp_segment(self.local, self.remote, sport, self.port, iss, 0, _SYN,
                                                  65535, syn_opts))
        end = time.monotonic() + 5
        rcv_nxt = wscale = None
        while rcv_nxt is None and time.monotonic() < end:
            if not poller.poll(200):
                continue
            f = read(fd, 65536)
            ihl = (f[0] & 0x0F) * 4
            if len(f) < ihl + 20 or f[9] != 6:
                continue
            _sp, _dp, seq, _ack, off, flags, win, _c, _u = _TCP.unpack_from(f, ihl)
            if flags & (_SYN | _ACK) == _SYN | _ACK:
                rcv_nxt = (seq + 1) & 0xFFFFFFFF
                wscale = _parse_wscale(f[ihl + 20: ihl + (off >> 4) * 4])
        if rcv_nxt is None:
            raise RuntimeError("bare: no SYN-ACK from the kernel")
        snd_una = snd_nxt = (iss + 1) & 0xFFFFFFFF
        base = snd_una
        ack_hdr = _TCP.pack(sport, self.port, snd_nxt, rcv_nxt, 5 << 4, _ACK, 65535, 0, 0)
        write(fd, self._ip(20) + _fix_csum(ack_hdr, self.local, self.remote, b""))
        # Constant parts of every data segment's checksum: pseudo header, ports, offset+flags,
        # window, the payload. Only seq (and the IP ident) change.
        plen = len(self.payload)
        pay_sum = _words(self.payload)
        const = (_words(rx._PSEUDO.pack(self.local, self.remote, 0, 6, 20 + plen)) + sport + self.port
                 + ((5 << 12) | _ACK | _PSH) + 65535 + (rcv_nxt >> 16) + (rcv_nxt & 0xFFFF) + pay_sum)
        ip_const = _words(struct.pack("!BBHHHBB4s4s", 0x45, 0, 40 + plen, 0, 0x4000, 64, 6,
                                      self.local, self.remote))
        pack_tcp, pack_ip = _TCP.pack, struct.Struct("!BBHHHBBH4s4s").pack
        local, remote, port, payload = self.local, self.remote, self.port, self.payload
        peer_wnd = 65535 << (wscale or 0)
        limit = min(self.total, 0xFFFFFFFF >> 2) // plen * plen  # whole segments only
        deadline = time.monotonic() + self.seconds
        last_progress = time.monotonic()
        dupacks = 0
        snd_max = recover = snd_nxt
        ident = self.ident
        while True:
            sent = (snd_una - base) & 0xFFFFFFFF
            if sent >= limit or time.monotonic() > deadline:
                break
            # fill the window
            in_flight = (snd_nxt - snd_una) & 0xFFFFFFFF
            while in_flight + plen <= peer_wnd and ((snd_nxt - base) & 0xFFFFFFFF) + plen <= limit:
                s = const + (snd_nxt >> 16) + (snd_nxt & 0xFFFF)
                s = (s & 0xFFFF) + (s >> 16)
                s = (s & 0xFFFF) + (s >> 16)
                ident = (ident + 1) & 0xFFFF
                i = ip_const + ident
                i = (i & 0xFFFF) + (i >> 16)
                i = (i & 0xFFFF) + (i >> 16)
                try:
                    write(fd, pack_ip(0x45, 0, 40 + plen, ident, 0x4000, 64, 6, ~i & 0xFFFF, local, remote)
                          + pack_tcp(sport, port, snd_nxt, rcv_nxt, 5 << 4, _ACK | _PSH, 65535,
                                     ~s & 0xFFFF, 0) + payload)
                except BlockingIOError:
                    break
                self.segments += 1
                snd_nxt = (snd_nxt + plen) & 0xFFFFFFFF
                if ((snd_nxt - snd_max) & 0xFFFFFFFF) < (1 << 31):
                    snd_max = snd_nxt
                in_flight += plen
            # read ACKs
            if not poller.poll(200):
                if time.monotonic() - last_progress > 0.2:
                    snd_nxt, self.rewinds = snd_una, self.rewinds + 1
                    last_progress = time.monotonic()
                continue
            try:
                for _ in range(self.batch):
                    f = read(fd, 65536)
                    ihl = (f[0] & 0x0F) * 4
                    if f[9] != 6:
                        continue
                    _sp, _dp, _seq, ack, _off, flags, win, _c, _u = _TCP.unpack_from(f, ihl)
                    new_wnd = win << (wscale or 0)
                    if 0 < ((ack - snd_una) & 0xFFFFFFFF) <= ((snd_max - snd_una) & 0xFFFFFFFF):
                        snd_una, dupacks, last_progress = ack, 0, time.monotonic()
                        if ((snd_nxt - snd_una) & 0xFFFFFFFF) > (1 << 31):
                            snd_nxt = snd_una  # the rewound sender fell behind the ACKs
                    elif ack == snd_una and new_wnd == peer_wnd and snd_max != snd_una:
                        dupacks += 1  # RFC 5681: same ACK, same window, data outstanding
                        if dupacks == 3 and ((snd_una - recover) & 0xFFFFFFFF) < (1 << 31):
                            recover = snd_max  # one go-back-N per window of losses
                            snd_nxt, self.rewinds = snd_una, self.rewinds + 1
                    peer_wnd = new_wnd
            except BlockingIOError:
                pass
        self.ident = ident
        fin = _TCP.pack(sport, port, snd_una, rcv_nxt, 5 << 4, _FIN | _ACK, 65535, 0, 0)
        write(fd, self._ip(20) + _fix_csum(fin, local, remote, b""))
        return (snd_una - base) & 0xFFFFFFFF


def _words(b: bytes) -> int:
    if len(b) & 1:
        b += b"\0"
    return sum(struct.unpack(f"!{len(b) // 2}H", b))


def _fix_csum(hdr: bytes, src: bytes, dst: bytes, payload: bytes) -> bytes:
    s = _words(rx._PSEUDO.pack(src, dst, 0, 6, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:16] + struct.pack("!H", rx.csum16(s)) + hdr[18:] + payload


def _parse_wscale(opts: bytes) -> int | None:
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts):
            break
        ln = opts[i + 1]
        if kind == 3 and ln == 3:
            return opts[i + 2]
        i += max(ln, 2)
    return None


def run_bare(args: argparse.Namespace, port: int = 6001) -> dict:
    dev = rx.open_tun("bnchtxb0", args.mtu, args.txqueuelen)
    recv = KernelReceiver(port, args.seconds + 10)
    try:
        sender = BareSender(dev.fileno(), args.mtu, port, args.mb * MB, args.seconds, args.batch)
        acked = sender.run()
        recv.join(args.seconds + 10)
    finally:
        dev.close()
    return _result("bare", recv, acked, segments=sender.segments, rewinds=sender.rewinds)


def run_ustack(args: argparse.Namespace, port: int = 6002, offload: str = "auto") -> dict:
    import ustack
    from ustack.tcp import State
    from ustack.wire.ipv4 import ip_int

    host = ustack.Host.open(tun="bnchtxu0", addr=f"{SENDER_IP}/24", peer=f"{KERNEL_IP}/24", mtu=args.mtu,
                            offload=offload)
    recv = KernelReceiver(port, args.seconds + 10)  # after the kernel side has its address
    try:
        from ustack.drivers import kernel_side_up

        kernel_side_up("bnchtxu0", None, txqueuelen=args.txqueuelen)

        def connect():
            s = host.stack.tcp.open()
            s.connect(ip_int(KERNEL_IP), port, host.now())
            return s
        s = host.call(connect)
        if not host.wait(lambda: s.state == State.ESTABLISHED or s.error is not None, 5):
            raise RuntimeError("ustack: connect did not complete in 5 s")
        block = memoryview(bytes(range(256)) * 4096)
        total = args.mb * MB
        sent = 0
        deadline = time.monotonic() + args.seconds
        while sent < total and time.monotonic() < deadline:
            host.wait(lambda: s.writable_bytes > 0 or s.error is not None, 1.0)
            n = min(len(block), total - sent)
            sent += host.call(lambda n=n: s.send(block[:n], host.now()))
            if host.call(lambda: s.error) is not None:
                break
        host.call(lambda: s.shutdown(1, host.now()))
        recv.join(args.seconds + 10)
        counters = {}
        try:
            snap = host.call(host.stack.counters.snapshot)
            counters = {k: v for k, v in snap.items()
                        if k.startswith(("tcp.", "ipv4.out", "ipv4.in", "ipv4.gso", "ipv4.csum"))}
        except Exception:  # noqa: BLE001
            pass
        host.call(lambda: s.close(host.now()))
    finally:
        host.close()
    return _result("ustack", recv, sent, counters=counters, offload=offload)


def _result(name: str, recv: KernelReceiver, offered: int, **extra: Any) -> dict:
    secs = (recv.eof_at - recv.first_at) if recv.first_at and recv.eof_at else None
    res = {"sender": name, "bytes": recv.bytes, "offered": offered, "seconds": secs,
           "mb_per_s": recv.bytes / MB / secs if secs else None,
           "complete": recv.eof_at is not None and recv.error is None,
           "receiver_error": recv.error}
    res.update(extra)
    return res


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--mb", type=int, default=200, help="megabytes (10^6 bytes) to send (default 200)")
    p.add_argument("--seconds", type=float, default=10.0, help="senders stop after this long (default 10)")
    p.add_argument("--only", choices=("bare", "ustack"))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch", type=int, default=64, help="bare: ACK frames read per batch")
    p.add_argument("--txqueuelen", type=int, default=4096)
    p.add_argument("--offload", default="auto,csum,none", metavar="MODE[,MODE...]",
                   help="ustack: Host.open offload modes to run, each in every round (default "
                        "auto,csum,none); the first one gives ratio_ustack_over_bare")
    p.add_argument("--profile", action="store_true", help="sample the sender with py-spy")
    p.add_argument("--profile-out", default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    rx.ensure_private_netns(argv, script=os.path.abspath(__file__))
    rx.lo_up()
    why_not = rx.ustack_available()
    want = [args.only] if args.only else ["bare", "ustack"]
    modes = [m.strip() for m in args.offload.split(",") if m.strip()] or ["auto"]
    results: dict = {"mtu": args.mtu, "mb": args.mb, "python": sys.version.split()[0], "runs": []}
    prof_dir = args.profile_out or tempfile.mkdtemp(prefix="bench_tx_prof_")
    for rnd in range(args.repeat):
        for name in want:
            if name == "ustack" and why_not is not None:
                if rnd == 0:
                    results["runs"].append({"sender": name, "skipped": why_not})
                continue
            for mode in ([None] if name == "bare" else modes):
                prof = (rx.Profiler(prof_dir, f"tx_{name}_{mode}", args.seconds + 5)
                        if args.profile and rnd == 0 and name == (args.only or "ustack")
                        and mode in (None, modes[0]) else None)
                if prof:
                    prof.start()
                res = rx.run_one("sender", name, mode, rnd, run_bare, run_ustack, args)
                if prof:
                    res["profile"] = prof.stop()
                results["runs"].append(res)
    rx.summarize(results, want, "sender")
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"bench_tx: MTU {args.mtu}, {args.mb} MB or {args.seconds} s, Python {results['python']}")
    for r in results["runs"]:
        if "error" in r or "skipped" in r:
            print(f"  {r['sender']:7s} {r.get('error') or r.get('skipped')}")
            continue
        rate = f"{r['mb_per_s']:8.1f} MB/s" if r["mb_per_s"] else "     n/a    "
        extra = "  ".join(f"{k}={v}" for k, v in r.items() if k in ("segments", "rewinds"))
        gso = r.get("counters", {}).get("ipv4.gso_out")
        if gso:
            segs = r["counters"].get("ipv4.gso_segs_out")
            extra += ("  " if extra else "") + f"super-segments={gso} ({segs} segments)"
        name = f"{r['sender']}[{r['offload']}]" if r.get("offload") else r["sender"]
        print(f"  {name:13s} {rate}  {r['bytes'] / MB:8.1f} MB  complete={r['complete']}  {extra}")
        prof = r.get("profile")
        if prof and "top_own_pct" in prof:
            print(f"          profile: {prof['svg']} ({prof['samples']} samples); top own time:")
            for fr, pct in prof["top_own_pct"][:12]:
                print(f"            {pct:5.1f}%  {fr}")
    med = results["median_mb_per_s"]
    if med:
        print("  median: " + "  ".join(f"{k} {v} MB/s" for k, v in med.items()))
    if "ratio_ustack_over_bare" in results:
        print(f"  ratio ustack/bare: {results['ratio_ustack_over_bare']:.3f}")
    for mode, m in results.get("by_offload", {}).items():
        print(f"  ustack[{mode}]: median {m['median_mb_per_s']} MB/s, {m['ratio_over_bare']:.3f} of bare")
    return 0


if __name__ == "__main__":
    sys.exit(main())
