"""Two real Stacks back to back (TUN medium), frames carried by the test with seeded loss and
reordering: every byte arrives once, in order, for every seed."""

from __future__ import annotations

import random

import pytest

from tests.invariants import assert_no_internal_error
from ustack.core import StackConfig, make_stack
from ustack.core import events as ev
from ustack.core.reasons import Reason
from ustack.tcp import State, TcpConfig
from ustack.wire.ipv4 import ip_int

A = ip_int("198.18.0.1")
B = ip_int("198.18.0.2")


class Wire:
    """Carries frames between two stacks with loss, reordering and a fixed delay."""

    def __init__(self, seed: int, loss: float = 0.0, reorder: float = 0.0, delay: float = 0.001,
                 tcp: TcpConfig | None = None) -> None:
        self.a = make_stack(StackConfig(addr="198.18.0.1/24", seed=seed, tcp=tcp))
        self.b = make_stack(StackConfig(addr="198.18.0.2/24", seed=seed + 1000, tcp=tcp))
        self.rng = random.Random(seed)
        self.loss, self.reorder, self.delay = loss, reorder, delay
        self.now = 0.0
        self.inflight: list[tuple[float, int, object, bytes]] = []
        self.n = 0
        self.dropped = 0

    def _carry(self, src, dst) -> None:
        for f in src.poll(self.now):
            if self.rng.random() < self.loss:
                self.dropped += 1
                continue
            d = self.delay
            if self.rng.random() < self.reorder:
                d += self.rng.random() * 0.004
            self.n += 1
            self.inflight.append((self.now + d, self.n, dst, f))

    def step(self) -> bool:
        """Advance to the next event; False when nothing is left to do."""
        self._carry(self.a, self.b)
        self._carry(self.b, self.a)
        times = [t for t in (self.a.poll_at(), self.b.poll_at()) if t is not None]
        if self.inflight:
            times.append(min(x[0] for x in self.inflight))
        if not times:
            return False
        self.now = max(self.now, min(times))
        due = sorted(x for x in self.inflight if x[0] <= self.now)
        self.inflight = [x for x in self.inflight if x[0] > self.now]
        for _, _, dst, f in due:
            dst.receive(f, self.now)
        self._carry(self.a, self.b)
        self._carry(self.b, self.a)
        return True

    def connect_pair(self, port: int = 80):
        """b listens on `port`, a connects to it; returns (a's socket, b's accepted socket)."""
        lst = self.b.tcp.open()
        lst.bind(0, port)
        lst.listen(5)
        cli = self.a.tcp.open()
        cli.connect(B, port, self.now)
        self.run_until(lambda: lst.accept_pending > 0)
        return cli, lst.accept()

    def run_until(self, pred, limit_s: float = 600.0, max_steps: int = 2_000_000) -> None:
        steps = 0
        while not pred():
            assert self.step(), "nothing left to do but the condition is false"
            steps += 1
            assert steps < max_steps and self.now < limit_s, f"stuck at t={self.now}"


def transfer(seed: int, size: int, loss: float, reorder: float, cc: str = "cubic",
             sack: bool = True, timestamps: bool = True, rcvbuf: int = 256 * 1024,
             delay: float = 0.001, read_every: int = 1) -> Wire:
    tcp = TcpConfig(congestion_control=cc, sack=sack, timestamps=timestamps, rcvbuf=rcvbuf,
                    sndbuf=256 * 1024, data_retries=15)
    w = Wire(seed, loss, reorder, delay=delay, tcp=tcp)
    cli, srv = w.connect_pair()
    data = random.Random(seed).randbytes(size)
    got = bytearray()
    sent = 0
    steps = 0
    while len(got) < size:
        if sent < size:
            sent += cli.send(data[sent:sent + 65536], w.now)
            if sent == size:
                cli.shutdown(1, w.now)
        steps += 1
        chunk = srv.recv(1 << 20) if steps % read_every == 0 else b""
        got += chunk
        if len(got) < size:
            # idle is fine while the slow reader has not had its turn yet
            assert w.step() or steps % read_every, f"stalled at {len(got)}/{size}"
        assert w.now < 600
    assert bytes(got) == data
    w.run_until(lambda: srv.at_eof)
    assert srv.recv(10) == b""
    srv.close(w.now)
    w.run_until(lambda: cli.state in (State.TIME_WAIT, State.CLOSED))
    assert_no_internal_error(w.a, w.b)
    return w


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_1mb_with_loss_and_reordering(seed):
    w = transfer(seed, 1 << 20, loss=0.02, reorder=0.05)
    assert w.dropped > 0


def test_1mb_clean_is_fast_in_virtual_time():
    w = transfer(7, 1 << 20, loss=0.0, reorder=0.0)
    assert w.now < 2.0
    assert w.a.counters.get("tcp.rto") == 0


def test_newreno_without_sack_under_loss():
    transfer(11, 300_000, loss=0.02, reorder=0.0, cc="newreno", sack=False, timestamps=False)


def test_transfer_is_deterministic_for_a_seed():
    w1 = transfer(5, 200_000, loss=0.03, reorder=0.05)
    w2 = transfer(5, 200_000, loss=0.03, reorder=0.05)
    assert w1.now == w2.now
    assert w1.a.counters.snapshot() == w2.a.counters.snapshot()


def test_connect_refused_between_stacks():
    w = Wire(3)
    cli = w.a.tcp.open()
    seen = []
    cli.watch(lambda s, bits: seen.append(bits))
    cli.connect(B, 81, w.now)
    w.run_until(lambda: cli.error is not None)
    assert cli.error is Reason.REFUSED
    assert seen and seen[-1] & ev.CONNECT


def test_connect_to_silent_host_times_out_after_21_s():
    w = Wire(4)
    cli = w.a.tcp.open()
    cli.connect(ip_int("198.18.0.77"), 80, w.now)  # nobody there: TUN, no ARP
    w.run_until(lambda: cli.error is not None)
    assert cli.error is Reason.TIMED_OUT
    assert 20.9 < w.now < 21.1


@pytest.mark.parametrize("seed,loss,reorder", [(21, 0.10, 0.0), (22, 0.05, 0.30), (23, 0.0, 0.5)])
def test_harsh_links_still_deliver_everything(seed, loss, reorder):
    transfer(seed, 150_000, loss=loss, reorder=reorder)


def test_tiny_receive_buffer_with_loss_and_slow_reader():
    # zero windows, persist probes and window updates, all under loss
    transfer(31, 100_000, loss=0.05, reorder=0.0, rcvbuf=4096, read_every=7)


def test_long_delay_path():
    w = transfer(41, 300_000, loss=0.01, reorder=0.0, delay=0.05)
    assert w.now > 0.5


def test_both_directions_at_once():
    w = Wire(51, loss=0.03, reorder=0.05)
    cli, srv = w.connect_pair()
    up, down = random.Random(1).randbytes(200_000), random.Random(2).randbytes(200_000)
    got_up, got_down = bytearray(), bytearray()
    su = sd = 0
    while len(got_up) < len(up) or len(got_down) < len(down):
        if su < len(up):
            su += cli.send(up[su:su + 8192], w.now)
        if sd < len(down):
            sd += srv.send(down[sd:sd + 8192], w.now)
        got_up += srv.recv(1 << 20)
        got_down += cli.recv(1 << 20)
        assert w.step() or (len(got_up) == len(up) and len(got_down) == len(down))
        assert w.now < 300
    assert bytes(got_up) == up and bytes(got_down) == down
