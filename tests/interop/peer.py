"""Helpers for interop tests: ustack on a TUN/TAP against the kernel, inside the test's netns.

The kernel side of the link is KERNEL_IP (198.18.0.1/24), ustack is USTACK_IP (198.18.0.2).
Everything here blocks with a bound; nothing waits forever.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

KERNEL_IP = "198.18.0.1"
USTACK_IP = "198.18.0.2"
IFNAME = "itop0"
ERRNO_NAMES = {111: "refused", 104: "reset", 110: "timed_out", 113: "host_unreach", 101: "net_unreach"}


def open_host(link: str, *, faults: Any = None, pcap: Any = None, mtu: int = 1500, seed: int = 1,
              ifname: str = IFNAME, **extra: Any) -> Any:
    """ustack.Host on a fresh TUN or TAP (`link` is "tun" or "tap"), kernel side configured.
    `extra` goes to Host.open (e.g. tcp=TcpConfig(...))."""
    import ustack

    kw = {link: ifname}
    return ustack.Host.open(**kw, addr=f"{USTACK_IP}/24", peer=f"{KERNEL_IP}/24", mtu=mtu,
                            faults=faults, pcap=pcap, seed=seed, **extra)


def ip_int(addr: str) -> int:
    from ustack.wire.ipv4 import ip_int as conv

    return conv(addr)


# ------------------------------------------------------------------ a blocking ustack TCP stream

class UstackError(ConnectionError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UstackStream:
    """Blocking helpers over one ustack TcpSocket, for a test thread."""

    def __init__(self, host: Any, sock: Any) -> None:
        self.host, self.sock = host, sock

    @classmethod
    def connect(cls, host: Any, addr: str, port: int, timeout: float = 5.0) -> UstackStream:
        from ustack.tcp import State

        def start() -> Any:
            s = host.stack.tcp.open()
            s.connect(ip_int(addr), port, host.now())
            return s
        s = host.call(start)
        if not host.wait(lambda: s.state == State.ESTABLISHED or s.error is not None, timeout):
            host.call(lambda: s.abort(host.now()))
            raise TimeoutError(f"ustack connect to {addr}:{port} not done in {timeout} s")
        err = host.call(lambda: s.error)
        if err is not None:
            raise UstackError(err.name.lower())
        return cls(host, s)

    def _check_error(self) -> None:
        err = self.host.call(lambda: self.sock.error)
        if err is not None:
            raise UstackError(err.name.lower())

    def sendall(self, data: bytes | memoryview, timeout: float = 30.0) -> None:
        s, host = self.sock, self.host
        view = memoryview(data)
        end = time.monotonic() + timeout
        while view:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"sendall: {len(view)} bytes left after {timeout} s")
            host.wait(lambda: s.writable_bytes > 0 or s.error is not None, min(left, 1.0))
            self._check_error()
            n = host.call(lambda v=view: s.send(v, host.now()))
            view = view[n:]

    def recv(self, n: int = 1 << 16, timeout: float = 5.0) -> bytes:
        """Up to n bytes; b"" at EOF; raises TimeoutError / UstackError."""
        s, host = self.sock, self.host
        if not host.wait(lambda: s.readable_bytes > 0 or s.at_eof or s.error is not None, timeout):
            raise TimeoutError(f"recv: nothing in {timeout} s")
        data = host.call(lambda: s.recv(n) if s.readable_bytes else b"")
        if data:
            return bytes(data)
        self._check_error()
        return b""

    def recv_exact(self, n: int, timeout: float = 30.0) -> bytes:
        out = bytearray()
        end = time.monotonic() + timeout
        while len(out) < n:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"recv_exact: {len(out)}/{n} bytes after {timeout} s")
            chunk = self.recv(min(1 << 20, n - len(out)), timeout=left)
            if not chunk:
                raise UstackError(f"eof after {len(out)}/{n} bytes")
            out += chunk
        return bytes(out)

    def recv_to_eof(self, timeout: float = 30.0, hasher: Any = None) -> int | bytes:
        """Everything until EOF: the bytes, or (with `hasher`) only the count, hashing as it goes."""
        out = bytearray()
        count = 0
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"recv_to_eof: {count} bytes, no EOF after {timeout} s")
            chunk = self.recv(1 << 20, timeout=left)
            if not chunk:
                return count if hasher is not None else bytes(out)
            count += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            else:
                out += chunk

    def shutdown_write(self) -> None:
        self.host.call(lambda: self.sock.shutdown(1, self.host.now()))

    def close(self) -> None:
        self.host.call(lambda: self.sock.close(self.host.now()))


# ------------------------------------------------------------------ kernel-side servers

class KernelServer:
    """A kernel TCP server on KERNEL_IP:port, one thread per connection, bounded lifetimes."""

    def __init__(self, port: int, handler: Callable[[socket.socket], None], backlog: int = 256) -> None:
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((KERNEL_IP, port))
        self.lsock.listen(backlog)
        self.lsock.settimeout(0.2)
        self.handler = handler
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.accepted = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                c, _ = self.lsock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            c.settimeout(30)
            self.handler(c)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.errors.append(e)
        finally:
            c.close()

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(2)
        self.lsock.close()


def echo_handler(c: socket.socket) -> None:
    while data := c.recv(1 << 16):
        c.sendall(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pattern(n: int, seed: int = 0) -> bytes:
    """n pseudo-random but reproducible bytes (not compressible, not periodic at small scales)."""
    import random

    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------------ the kernel's view

def kernel_tcp_sockets(port: int | None = None) -> list[tuple[str, str, str]]:
    """(state, local, peer) of the kernel's TCP sockets in this namespace (`ss -tan`)."""
    out = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, timeout=10, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5:
            state, local, peer = parts[0], parts[3], parts[4]
            if port is None or local.endswith(f":{port}") or peer.endswith(f":{port}"):
                rows.append((state, local, peer))
    return rows


def ustack_tcp_connections(host: Any) -> list[Any]:
    """The TCP layer's live connections (any state, TIME_WAIT included), for leak checks."""
    tcp = host.stack.tcp

    def snapshot() -> list[Any]:
        for name in ("connections", "conns"):
            v = getattr(tcp, name, None)
            if v is not None:
                v = v() if callable(v) else v
                return list(v.values()) if hasattr(v, "values") else list(v)
        raise AttributeError("ustack TCP layer exposes no `connections` collection to inspect")
    return host.call(snapshot)


def state_name(conn: Any) -> str:
    st = getattr(conn, "state", None)
    return getattr(st, "name", str(st))


def start_ustack_serve(link: str, *args: str, ifname: str = IFNAME, timeout: float = 10.0
                       ) -> subprocess.Popen:
    """`ustack serve --tun/--tap IFNAME --addr .. --peer .. ARGS` in this netns; waits for `ready`."""
    exe = shutil.which("ustack") or os.path.join(os.path.dirname(sys.executable), "ustack")
    cmd = [exe, "serve", f"--{link}", ifname, "--addr", f"{USTACK_IP}/24", "--peer", f"{KERNEL_IP}/24",
           *args]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    end = time.monotonic() + timeout
    import select

    while time.monotonic() < end:
        r, _, _ = select.select([p.stdout], [], [], 0.2)
        if r:
            line = p.stdout.readline()
            if line.startswith("ready"):
                return p
            if not line and p.poll() is not None:
                break
        elif p.poll() is not None:
            break
    stop_process(p)
    raise RuntimeError(f"ustack serve did not print ready: rc={p.returncode} "
                       f"stderr={p.stderr.read() if p.stderr else ''}")


def stop_process(p: subprocess.Popen, timeout: float = 5.0) -> int | None:
    """SIGTERM the process we started, then SIGKILL its group if it lingers."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait(5)
    return p.returncode


def fault_stats(host: Any) -> dict[str, int]:
    """What the host's FaultInjector did (walks the middleware chain); {} when there is none."""
    from ustack.drivers import FaultInjector

    dev = host.device
    for _ in range(8):
        if isinstance(dev, FaultInjector):
            return host.call(lambda d=dev: d.stats)
        dev = getattr(dev, "inner", None)
        if dev is None:
            break
    return {}
