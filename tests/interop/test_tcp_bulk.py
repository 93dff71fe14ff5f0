"""TCP interop under faults: 100 MB each way between ustack and the kernel, over TUN and TAP,
with ustack's FaultInjector at 2 % loss, 1 % duplication and 1 % reordering (both directions),
checked by SHA-256. Slow: run with `-m slow`; USTACK_BULK_MB overrides the size."""

import hashlib
import os
import socket
import threading
import time

import pytest

from tests.interop.peer import KERNEL_IP, USTACK_IP, KernelServer, UstackStream, fault_stats

pytestmark = [pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(900)]

MB = 1_000_000
SIZE = int(os.environ.get("USTACK_BULK_MB", "100")) * MB
FAULTS = {"loss": 0.02, "duplicate": 0.01, "reorder": 0.01, "seed": 2026}
LIMIT_S = float(os.environ.get("USTACK_BULK_LIMIT_S", "400"))  # per transfer: a stall fails, never hangs
BLOCK = 1 << 20


def blocks(total, seed):
    """Deterministic incompressible data, generated block by block (never 100 MB in memory)."""
    import random

    rng = random.Random(seed)
    left = total
    while left:
        n = min(BLOCK, left)
        yield rng.randbytes(n)
        left -= n


def assert_faults_happened(host):
    st = fault_stats(host)
    assert st.get("dropped", 0) > 0 and st.get("duplicated", 0) > 0 and st.get("reordered", 0) > 0, st
    return st


def expected_sha(total, seed):
    h = hashlib.sha256()
    for b in blocks(total, seed):
        h.update(b)
    return h.hexdigest()


def test_kernel_to_ustack_100mb_under_faults(hosts, link):
    host = hosts.open(link, faults=FAULTS)
    sent = {}

    def sender(c):
        c.settimeout(LIMIT_S)
        for b in blocks(SIZE, 1):
            c.sendall(b)
        sent["done"] = time.monotonic()
    srv = KernelServer(5001, sender)
    try:
        s = UstackStream.connect(host, KERNEL_IP, 5001, timeout=10)
        h = hashlib.sha256()
        t0 = time.monotonic()
        n = s.recv_to_eof(timeout=LIMIT_S, hasher=h)
        elapsed = time.monotonic() - t0
        s.close()
    finally:
        srv.close()
    assert srv.errors == []
    assert n == SIZE
    assert h.hexdigest() == expected_sha(SIZE, 1)
    st = assert_faults_happened(host)
    print(f"kernel->ustack {link}: {SIZE / MB:.0f} MB in {elapsed:.1f} s, faults {st}")


def test_ustack_to_kernel_100mb_under_faults(hosts, link):
    host = hosts.open(link, faults=FAULTS)
    result = {}

    def receiver(c):
        c.settimeout(LIMIT_S)
        h = hashlib.sha256()
        n = 0
        while chunk := c.recv(1 << 20):
            h.update(chunk)
            n += len(chunk)
        result["n"], result["sha"] = n, h.hexdigest()
    srv = KernelServer(5002, receiver)
    try:
        s = UstackStream.connect(host, KERNEL_IP, 5002, timeout=10)
        t0 = time.monotonic()
        for b in blocks(SIZE, 2):
            s.sendall(b, timeout=LIMIT_S)
        s.shutdown_write()
        assert s.recv(timeout=LIMIT_S) == b""  # the kernel closes once it has everything
        elapsed = time.monotonic() - t0
        s.close()
        end = time.monotonic() + 10
        while "sha" not in result and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        srv.close()
    assert srv.errors == []
    assert result.get("n") == SIZE
    assert result["sha"] == expected_sha(SIZE, 2)
    st = assert_faults_happened(host)
    print(f"ustack->kernel {link}: {SIZE / MB:.0f} MB in {elapsed:.1f} s, faults {st}")


def test_kernel_client_uploads_to_ustack_discard_under_faults(hosts, link):
    """Kernel as active opener and sender, ustack as server: bytes counted by the discard side."""
    host = hosts.open(link, faults=FAULTS)
    size = SIZE // 4

    def listen():
        s = host.stack.tcp.open()
        s.bind(0, 9000)
        s.listen(4)
        return s
    lsock = host.call(listen)
    err = []

    def upload():
        try:
            with socket.create_connection((USTACK_IP, 9000), timeout=10) as k:
                k.settimeout(LIMIT_S)
                for b in blocks(size, 3):
                    k.sendall(b)
        except BaseException as e:  # noqa: BLE001 - reported below
            err.append(e)
    t = threading.Thread(target=upload, daemon=True)
    t.start()
    assert host.wait(lambda: lsock.accept_pending, 10)
    conn = UstackStream(host, host.call(lsock.accept))
    h = hashlib.sha256()
    n = conn.recv_to_eof(timeout=LIMIT_S, hasher=h)
    conn.close()
    t.join(10)
    assert err == []
    assert n == size and h.hexdigest() == expected_sha(size, 3)
    assert_faults_happened(host)
