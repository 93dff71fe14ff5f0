"""Soak: 60 s of mixed TCP and UDP between a ustack Host (real time, its network thread, a TUN
device) and the Linux kernel in a private network namespace, under loss, duplication and
reordering injected on the device. Several TCP uploads and downloads at once, each checked byte
for byte (SHA-256 against what was sent or the known pattern), UDP request/response with every
answer compared to its request. Afterwards: no connection left in the stack (after a short
TIME-WAIT), the memory budget back to 0, no thread or file descriptor more than before, and
Python's traced memory flat after the warm-up (tracemalloc samples: the second half's median
within 10% + 2 MB of the first half's). Results in docs/robustness.md, "Soak"."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import struct
import threading
import time
import tracemalloc

import pytest

from tests.netns import run_in_netns

pytestmark = pytest.mark.netns

SOAK_S = 60.0
KERNEL, USTACK = "198.18.0.1", "198.18.0.2"
SINK_PORT, SOURCE_PORT, UDP_PORT = 9, 19, 7
TCP_WORKERS = 4  # two uploads, two downloads at any time
FAULTS = "loss=1%,duplicate=1%,reorder=1%,seed=11"
WARMUP_S = 10.0
SAMPLE_S = 2.0


def pattern(seed: int, n: int) -> bytes:
    """n deterministic bytes for a transfer (both sides compute them)."""
    return random.Random(seed).randbytes(n)


# -- the kernel's side: plain Python sockets in the namespace ---------------------------------------
class KernelServers:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.socks: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> None:
        for port, handler in ((SINK_PORT, self._sink), (SOURCE_PORT, self._source)):
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((KERNEL, port))
            ls.listen(16)
            ls.settimeout(0.2)
            self.socks.append(ls)
            self._spawn(self._accept_loop, ls, handler)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((KERNEL, UDP_PORT))
        u.settimeout(0.2)
        self.socks.append(u)
        self._spawn(self._udp_echo, u)

    def _spawn(self, fn, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self.threads.append(t)
        t.start()

    def _accept_loop(self, ls: socket.socket, handler) -> None:
        while not self.stop.is_set():
            try:
                c, _ = ls.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            c.settimeout(30)
            self._spawn(self._serve, c, handler)

    def _serve(self, c: socket.socket, handler) -> None:
        try:
            with c:
                handler(c)
        except OSError as e:
            self.errors.append(f"{handler.__name__}: {e}")

    @staticmethod
    def _sink(c: socket.socket) -> None:
        """Read to EOF; answer with the byte count and SHA-256 of what arrived."""
        h, n = hashlib.sha256(), 0
        while data := c.recv(262144):
            h.update(data)
            n += len(data)
        c.sendall(struct.pack("!Q", n) + h.digest())

    @staticmethod
    def _source(c: socket.socket) -> None:
        """Read (seed, length); send that pattern; close."""
        req = b""
        while len(req) < 12:
            chunk = c.recv(12 - len(req))
            if not chunk:
                return
            req += chunk
        seed, n = struct.unpack("!IQ", req)
        c.sendall(pattern(seed, n))

    def _udp_echo(self, u: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                data, peer = u.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            u.sendto(data, peer)

    def close(self) -> None:
        self.stop.set()
        for s in self.socks:
            s.close()
        for t in self.threads:
            t.join(10)


# -- ustack's side: clients on the Host -------------------------------------------------------------
class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.uploads = self.downloads = self.bytes = 0
        self.udp_sent = self.udp_answered = 0
        self.mismatches: list[str] = []
        self.errors: list[str] = []


def _recv_exact(s, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(262144, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def tcp_worker(host, upload: bool, seed: int, until: float, tally: Tally) -> None:
    from ustack import socket as us

    rng = random.Random(seed)
    while time.monotonic() < until:
        n = rng.randint(10_000, 1_500_000)
        tseed = rng.randrange(1 << 32)
        try:
            with us.create_connection(host, (KERNEL, SINK_PORT if upload else SOURCE_PORT), timeout=60) as s:
                if upload:
                    data = pattern(tseed, n)
                    s.sendall(data)
                    s.shutdown(us.SHUT_WR)
                    answer = _recv_exact(s, 40)
                    ok = answer == struct.pack("!Q", n) + hashlib.sha256(data).digest()
                else:
                    s.sendall(struct.pack("!IQ", tseed, n))
                    got = _recv_exact(s, n + 1)  # one more: the sender closes after n bytes
                    ok = got == pattern(tseed, n)
        except OSError as e:
            with tally.lock:
                tally.errors.append(f"{'upload' if upload else 'download'} of {n}: {e!r}")
            continue
        with tally.lock:
            if not ok:
                tally.mismatches.append(f"{'upload' if upload else 'download'} of {n} bytes, seed {tseed}")
            elif upload:
                tally.uploads += 1
            else:
                tally.downloads += 1
            tally.bytes += n


def udp_worker(host, until: float, tally: Tally) -> None:
    from ustack import socket as us

    rng = random.Random(5)
    sent: dict[int, bytes] = {}
    with us.socket(host, us.AF_INET, us.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        seq = 0
        while time.monotonic() < until:
            seq += 1
            body = sent[seq] = struct.pack("!I", seq) + rng.randbytes(rng.randint(0, 1400))
            s.sendto(body, (KERNEL, UDP_PORT))
            with tally.lock:
                tally.udp_sent += 1
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                try:
                    data, frm = s.recvfrom(2048)
                except OSError:  # timed out: lost on the way (or the answer was)
                    break
                if data == body and frm == (KERNEL, UDP_PORT):
                    with tally.lock:
                        tally.udp_answered += 1
                    break
                late = len(data) >= 4 and sent.get(struct.unpack("!I", data[:4])[0]) == data
                if not late or frm != (KERNEL, UDP_PORT):
                    # anything but a late or duplicated answer to an earlier request is corruption
                    with tally.lock:
                        tally.mismatches.append(f"udp seq {seq}: unexpected {data[:8]!r} from {frm}")


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _soak_body() -> dict:
    from ustack import Host
    from ustack.tcp import TcpConfig

    tracemalloc.start()
    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = _fd_count()
    kernel = KernelServers()
    host = Host.open(tun="ust0", addr=f"{USTACK}/24", peer=f"{KERNEL}/24", faults=FAULTS, seed=3,
                     tcp=TcpConfig(msl_s=1.0))  # TIME-WAIT 2 s, so the table can be seen empty
    tally = Tally()
    samples: list[tuple[float, int]] = []
    try:
        kernel.start()
        t0 = time.monotonic()
        until = t0 + SOAK_S
        workers = [threading.Thread(target=tcp_worker, args=(host, i % 2 == 0, 100 + i, until, tally))
                   for i in range(TCP_WORKERS)]
        workers.append(threading.Thread(target=udp_worker, args=(host, until, tally)))
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            time.sleep(SAMPLE_S)
            samples.append((time.monotonic() - t0, tracemalloc.get_traced_memory()[0]))
        for w in workers:
            w.join()
        elapsed = time.monotonic() - t0
        stack = host.stack
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and host.call(lambda: len(stack.tcp.conns)):
            time.sleep(0.2)
        conns_left = host.call(lambda: {str(k): c.state.name for k, c in stack.tcp.conns.items()})
        memory_used = host.call(lambda: stack.memory.used)
        counters = host.call(stack.counters.snapshot)
        faults = dict(host.device.stats) if hasattr(host.device, "stats") else {}
    finally:
        host.close()
        kernel.close()
    time.sleep(0.5)
    leaked_threads = [t.name for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
    fds_after = _fd_count()
    tracemalloc.stop()
    return {"tally": {k: v for k, v in vars(tally).items() if k != "lock"}, "elapsed": elapsed,
            "conns_left": conns_left, "memory_used": memory_used, "counters": counters, "faults": faults,
            "samples": samples,
            "leaked_threads": leaked_threads, "fds": (fds_before, fds_after), "kernel_errors": kernel.errors}


@pytest.mark.timeout(300)
def test_soak_mixed_tcp_udp_under_faults():
    r = run_in_netns(_soak_body, timeout=240)
    t = r["tally"]
    assert not t["mismatches"], t["mismatches"][:5]
    assert not t["errors"] and not r["kernel_errors"], (t["errors"][:5], r["kernel_errors"][:5])
    assert t["uploads"] >= 8 and t["downloads"] >= 8, t  # the soak really moved data both ways
    assert t["udp_sent"] >= 50 and t["udp_answered"] >= 0.9 * t["udp_sent"], t
    c = r["counters"]
    assert not c.get("stack.internal_error") and not c.get("tcp.internal_error"), c
    assert c.get("tcp.retransmitted_segments", 0) > 0  # the faults really bit
    assert r["faults"].get("dropped", 0) > 0 and r["faults"].get("duplicated", 0) > 0, r["faults"]
    assert r["conns_left"] == {}, r["conns_left"]
    assert r["memory_used"] == 0
    assert r["leaked_threads"] == [], r["leaked_threads"]
    assert r["fds"][0] == r["fds"][1], r["fds"]
    med1, med2 = traced_medians(r["samples"])
    assert med2 <= med1 * 1.10 + 2_000_000, (med1, med2, r["samples"])


def traced_medians(samples: list[tuple[float, int]]) -> tuple[int, int]:
    """Medians of the traced-memory samples in the first and second half after the warm-up."""
    steady = [m for s, m in samples if s >= WARMUP_S]
    assert len(steady) >= 10, samples
    half = len(steady) // 2
    first, second = sorted(steady[:half]), sorted(steady[half:])
    return first[len(first) // 2], second[len(second) // 2]
