"""tools/dyn_relay.py's path model without TUNs: datagram socket pairs stand in for the two
devices. Delay is constant (order kept), drops are seeded per direction and reproducible."""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "dyn_relay", Path(__file__).resolve().parents[2] / "tools" / "dyn_relay.py")
relay = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(relay)


def packets(n):
    return [bytes([0x45]) + i.to_bytes(2, "big") + bytes(40) for i in range(n)]


def run_lane(delay, loss, seed, n=200):
    src_w, src_r = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    dst_w, dst_r = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for s in (src_r, dst_r, dst_w):
        s.setblocking(False)  # as the relay's TUN fds: a full queue never blocks the test
    try:
        lane = relay.Lane("a2b", src_r.fileno(), dst_w.fileno())
        lane.configure(delay, loss, seed)
        sent = packets(n)
        for i in range(0, n, 50):  # a datagram socket queues only so many: pull as we go
            for p in sent[i:i + 50]:
                src_w.send(p)
            lane.pull(10.0, None)
        src_w.send(b"\x60" + bytes(40))  # IPv6: not forwarded
        lane.pull(10.0, None)
        lane.push(10.0 + delay / 2, None)
        early = _drain(dst_r)
        lane.push(10.0 + delay, None)
        got = _drain(dst_r)
        return sent, early, got, lane
    finally:
        for s in (src_w, src_r, dst_w, dst_r):
            s.close()


def _drain(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            return out


def test_relay_delays_keeps_order_and_drops_by_seed():
    sent, early, got, lane = run_lane(0.05, 0.2, seed=7)
    assert early == []  # nothing before the delay
    assert got == [p for p in sent if p in set(got)]  # order kept
    assert lane.dropped == len(sent) - len(got) and 20 <= lane.dropped <= 60  # ~20 % of 200
    again = run_lane(0.05, 0.2, seed=7)[2]
    other = run_lane(0.05, 0.2, seed=8)[2]
    assert again == got and other != got  # the seed decides which packets go


def test_relay_without_loss_forwards_everything():
    sent, early, got, lane = run_lane(0.01, 0.0, seed=1, n=150)
    assert early == [] and got == sent and lane.forwarded == 150 and lane.dropped == 0
    assert os.path.basename(relay.__file__) == "dyn_relay.py"
