"""`ustack serve --echo` holding 1,000 concurrent kernel connections over a real TUN, in a private
namespace: every connection opens and echoes, all stay open and echo again, and the serve
process runs the same few threads throughout (no thread per connection)."""

from __future__ import annotations

import os
import resource
import selectors
import signal
import socket
import time

import pytest

from tests.netns import run_in_netns

from .helpers import Proc

pytestmark = pytest.mark.netns

USTACK = "198.18.0.2"
N = 1000
INFLIGHT = 128  # handshakes pending at once


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _echo_round(sel: selectors.BaseSelector, socks: list[socket.socket], tag: bytes, limit_s: float) -> int:
    """Every socket sends tag + its index; returns how many got exactly that back in time."""
    want = {s: tag + b"%04d" % i for i, s in enumerate(socks)}
    for s, msg in list(want.items()):
        try:
            s.send(msg)
        except OSError:  # reset: counted as not echoed
            del want[s]
            continue
        sel.register(s, selectors.EVENT_READ)
    got: dict[socket.socket, bytes] = {s: b"" for s in socks}
    ok = 0
    end = time.monotonic() + limit_s
    while want and time.monotonic() < end:
        for key, _ in sel.select(0.5):
            s = key.fileobj
            try:
                data = s.recv(64)
            except OSError:
                data = b""
            got[s] += data
            if not data or len(got[s]) >= len(want[s]):
                ok += got[s] == want.pop(s)
                sel.unregister(s)
    for s in want:
        sel.unregister(s)
    return ok


def _body() -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # one fd per client
    if soft < 4 * N:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (4 * N, max(hard, 4 * N)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    p = Proc("serve", "--tun", "ust0", "--addr", f"{USTACK}/24", "--peer", "198.18.0.1/24", "--echo", "7")
    res: dict = {}
    socks: list[socket.socket] = []
    try:
        p.wait_line("ready", timeout=30)
        res["threads_idle"] = _threads(p.p.pid)
        sel = selectors.DefaultSelector()
        pending: dict[socket.socket, None] = {}
        failed = 0
        end = time.monotonic() + 60
        while (len(socks) + len(pending) + failed < N or pending) and time.monotonic() < end:
            while len(socks) + len(pending) + failed < N and len(pending) < INFLIGHT:
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex((USTACK, 7))
                pending[s] = None
                sel.register(s, selectors.EVENT_WRITE)
            for key, _ in sel.select(0.5):
                s = key.fileobj
                sel.unregister(s)
                del pending[s]
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    failed += 1
                    s.close()
                else:
                    socks.append(s)
        res["connected"], res["failed"] = len(socks), failed
        res["echo1"] = _echo_round(sel, socks, b"a", 60)
        res["threads_busy"] = _threads(p.p.pid)
        time.sleep(0.5)
        res["echo2"] = _echo_round(sel, socks, b"b", 60)  # all still served
        for s in socks:
            s.close()
        socks = []
        res["exit"], _, res["err"] = p.terminate(signal.SIGTERM)
        return res
    finally:
        for s in socks:
            s.close()
        p.kill()


def test_serve_holds_1000_concurrent_kernel_connections_all_echoing():
    res = run_in_netns(_body, timeout=240)
    assert (res["connected"], res["failed"]) == (N, 0)
    assert res["echo1"] == N and res["echo2"] == N
    # the network thread, the service thread and the main thread: no thread per connection
    assert res["threads_busy"] == res["threads_idle"] <= 4
    assert res["exit"] == 0, res["err"]
