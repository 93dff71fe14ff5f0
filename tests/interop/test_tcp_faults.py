"""TCP interop under bit corruption, delay and jitter (10 MB each way, TUN and TAP): every
corrupted frame must be caught by a checksum (counted), never delivered; the SHA-256 matches."""

import hashlib
import threading
import time

import pytest

from tests.interop.peer import KERNEL_IP, KernelServer, UstackStream, fault_stats

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]

SIZE = 10_000_000
FAULTS = {"corrupt": 0.01, "loss": 0.005, "delay_s": 0.003, "jitter_s": 0.002, "seed": 99}


def data(seed):
    import random

    return random.Random(seed).randbytes(SIZE)


def checksum_drops(host):
    snap = host.call(host.stack.counters.snapshot)
    return {k: v for k, v in snap.items() if "checksum" in k or "malformed" in k or k.endswith(".bad_length")}


def test_corrupted_frames_are_caught_both_directions(hosts, link):
    host = hosts.open(link, faults=FAULTS)
    down, up = data(1), data(2)
    got_up = {}

    def handler(c):  # the kernel sends and receives at the same time (no buffer deadlock)
        c.settimeout(120)

        def reader():
            h = hashlib.sha256()
            n = 0
            while chunk := c.recv(1 << 20):
                h.update(chunk)
                n += len(chunk)
            got_up["n"], got_up["sha"] = n, h.hexdigest()
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        c.sendall(down)
        c.shutdown(1)  # SHUT_WR: the download ends, the upload goes on
        t.join(120)
    srv = KernelServer(5100, handler)
    up_err = []
    try:
        s = UstackStream.connect(host, KERNEL_IP, 5100, timeout=10)

        def upload():
            try:
                s.sendall(up, timeout=120)
                s.shutdown_write()
            except BaseException as e:  # noqa: BLE001 - reported below
                up_err.append(e)
        t = threading.Thread(target=upload, daemon=True)
        t.start()
        h = hashlib.sha256()
        n = s.recv_to_eof(timeout=120, hasher=h)
        t.join(120)
        end = time.monotonic() + 10
        while "sha" not in got_up and time.monotonic() < end:
            time.sleep(0.05)
        s.close()
    finally:
        srv.close()
    assert up_err == []
    assert srv.errors == []
    assert n == SIZE and h.hexdigest() == hashlib.sha256(down).hexdigest()
    assert got_up.get("n") == SIZE and got_up["sha"] == hashlib.sha256(up).hexdigest()
    st = fault_stats(host)
    assert st["corrupted"] > 50, st
    drops = checksum_drops(host)
    assert sum(drops.values()) > 0, f"corrupted frames reached ustack, no checksum drop counted: {drops}"
