"""The receive fast path (header prediction: TcpLayer on the raw header -> Connection.on_data_fast)
is a shortcut, not a second TCP: the same segments through a connection whose fast path is
switched off (everything takes RFC 9293's full processing) give the same output, the same data
and the same state. Plus the cases the fast path must decline."""

from __future__ import annotations

import random

import pytest
from tcphelpers import LOCAL, REMOTE, Harness

from ustack.core.reasons import Reason
from ustack.core.rx import RX_TRUSTED
from ustack.tcp.connection import Connection
from ustack.tcp.state import State
from ustack.wire.ipv4 import Ipv4Packet
from ustack.wire.tcp import TcpOptions

MSS = 1000
WIN = 64 * MSS >> 7  # the peer's window field (scale 7)


def make(fast: bool, monkeypatch) -> tuple[Harness, object, object]:
    h = Harness(timestamps=True, sack=True, window_scaling=True, rcvbuf=64 * MSS, mss=MSS)
    lst, s, conn = h.accepted(options=TcpOptions(mss=MSS, wscale=7, sack_perm=True, ts=(1000, 0)))
    # the peer's window, as data segments will carry it (the handshake's was unscaled)
    h.peer_sends(h.now, h.pseg(".", conn.rcv.rcv_nxt, conn.snd.snd_una, window=WIN,
                               options=TcpOptions(ts=(1000, 0))))
    assert h.take() == [] and conn.snd.snd_wnd == WIN << 7
    if not fast:
        monkeypatch.setattr(type(conn), "on_data_fast", lambda *a: False)  # the harness's only one
    return h, s, conn


def state(conn) -> tuple:
    r, s = conn.rcv, conn.snd
    return (conn.state, r.rcv_nxt, r.adv_right, r.unacked, r.last_ack_sent, len(r.buf), len(r.ooo),
            s.snd_una, s.snd_wnd, s.snd_wl1, conn.ts_recent, conn.segs_in, conn.ack_queued,
            conn.timers.delack_at)


def script(seed: int) -> list[tuple]:
    """(kind, offset in segments, window, tsval delta, read) steps of a receive stream."""
    rng = random.Random(seed)
    steps = []
    nxt = 0
    ts = 1001
    for _ in range(300):
        r = rng.random()
        if r < 0.6:
            steps.append(("data", nxt, 0, ts)); nxt += 1  # noqa: E702
        elif r < 0.7:
            steps.append(("data", nxt + rng.randint(1, 4), 0, ts))  # a hole
        elif r < 0.75:
            steps.append(("data", max(0, nxt - rng.randint(1, 3)), 0, ts))  # duplicate
        elif r < 0.8:
            steps.append(("data", nxt, rng.choice([-1, 1]), ts)); nxt += 1  # noqa: E702  window change
        elif r < 0.85:
            steps.append(("data", nxt, 0, ts - rng.randint(1, 5)))  # older TSval (PAWS)
        elif r < 0.9:
            steps.append(("nots", nxt, 0, ts))  # no timestamp option
        elif r < 0.95:
            steps.append(("read", 0, 0, ts))
        else:
            steps.append(("tick", 0, 0, ts))
        if rng.random() < 0.3:
            ts += 1
    return steps


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_matches_full_processing(seed, monkeypatch):
    taken = []
    real = Connection.on_data_fast

    def counting(self, *a):
        r = real(self, *a)
        taken.append(r)
        return r
    monkeypatch.setattr(Connection, "on_data_fast", counting)
    runs = []
    for fast in (True, False):
        h, s, conn = make(fast, monkeypatch)
        base = conn.rcv.rcv_nxt
        ack = conn.snd.snd_una
        now = h.now
        trace = []
        data = bytearray()
        for kind, off, wdelta, ts in script(seed):
            now += 0.001
            if kind == "read":
                data += s.recv(1 << 20)
                h.advance(now)
            elif kind == "tick":
                h.advance(now + 0.05)
                now += 0.05
            else:
                payload = bytes([off & 0xFF]) * MSS
                opts = TcpOptions() if kind == "nots" else TcpOptions(ts=(ts, 0))
                h.peer_sends(now, h.pseg(".", base + off * MSS, ack, window=WIN + wdelta,
                                         payload=payload, options=opts))
                h.advance(now)
            trace.append((kind, [(sg.flags, sg.seq, sg.ack, sg.window, sg.options.sack) for sg in h.take()],
                          state(conn)))
        data += s.recv(1 << 20)
        runs.append((trace, bytes(data), dict(h.stack.counters.snapshot())))
    (fast_trace, fast_data, fast_c), (slow_trace, slow_data, slow_c) = runs
    for i, (a, b) in enumerate(zip(fast_trace, slow_trace, strict=True)):
        assert a == b, f"step {i}: fast {a} != full {b}"
    assert fast_data == slow_data and len(fast_data) > 50 * MSS
    assert fast_c == slow_c
    assert taken.count(True) > 50 and taken.count(False) > 10  # both ways were exercised


def test_fast_path_is_taken_for_the_usual_segment(monkeypatch):
    h, s, conn = make(True, monkeypatch)
    calls = []
    real = Connection.on_data_fast

    def spy(self, *a):
        r = real(self, *a)
        calls.append(r)
        return r
    monkeypatch.setattr(Connection, "on_data_fast", spy)
    win = WIN
    h.peer_sends(h.now, h.pseg(".", conn.rcv.rcv_nxt, conn.snd.snd_una, window=win, payload=b"a" * MSS,
                               options=TcpOptions(ts=(1001, 0))))
    assert calls == [True] and s.recv(10 * MSS) == b"a" * MSS
    # a much older TSval (an old duplicate) is declined, then dropped by PAWS in the full processing
    h.peer_sends(h.now, h.pseg(".", conn.rcv.rcv_nxt, conn.snd.snd_una, window=win, payload=b"b" * MSS,
                               options=TcpOptions(ts=((1001 - 10**6) & 0xFFFFFFFF, 0))))
    assert calls == [True, False] and s.recv(10 * MSS) == b""
    assert h.stack.counters.get("tcp.paws_drop") == 1


def test_bad_checksum_on_the_fast_path_is_dropped(monkeypatch):
    h, s, conn = make(True, monkeypatch)
    seg = h.pseg(".", conn.rcv.rcv_nxt, conn.snd.snd_una, window=WIN, payload=b"c" * MSS,
                 options=TcpOptions(ts=(1001, 0)))
    raw = bytearray(seg.emit(REMOTE, LOCAL))
    raw[40] ^= 1
    h.layer.on_packet(Ipv4Packet(REMOTE, LOCAL, 6, memoryview(bytes(raw))), h.now)
    assert h.stack.counters.get("tcp.bad_checksum") == 1 and s.recv(10 * MSS) == b""
    # the same bytes vouched for by the device: taken as they are
    h.layer.on_packet(Ipv4Packet(REMOTE, LOCAL, 6, memoryview(bytes(raw))), h.now, RX_TRUSTED)
    assert len(s.recv(10 * MSS)) == MSS


@pytest.mark.internal_error_expected
def test_a_bug_in_the_fast_path_kills_only_that_connection(monkeypatch):
    h, s, conn = make(True, monkeypatch)

    def boom(*a):
        raise RuntimeError("bug")
    monkeypatch.setattr(type(conn), "on_data_fast", boom)
    h.peer_sends(h.now, h.pseg(".", conn.rcv.rcv_nxt, conn.snd.snd_una, window=WIN,
                               payload=b"d" * MSS, options=TcpOptions(ts=(1001, 0))))
    assert h.stack.counters.get("tcp.internal_error") == 1
    assert s.error is Reason.ABORTED and conn.state is State.CLOSED
    assert conn not in h.layer.conns.values()  # like a bug in on_segment: that connection only


def _fin_script(seed: int) -> list[tuple]:
    """A receive stream with FINs: data with holes, then a bare FIN (or one on the last data
    segment) that arrives before the missing data is retransmitted in order."""
    rng = random.Random(seed)
    steps = []
    n = rng.randint(3, 12)
    order = list(range(n))
    lost = sorted(rng.sample(order, rng.randint(1, min(3, n))))
    for i in order:
        if i not in lost:
            steps.append(("data", i, 0, 1001))
    fin_on_data = rng.random() < 0.3 and (n - 1) not in lost
    if fin_on_data:
        steps.append(("fin_data", n - 1, 0, 1001))
    else:
        steps.append(("fin", n, 0, 1001))
    if rng.random() < 0.5:
        steps.append(("tick", 0, 0, 1001))
    for i in lost:  # the retransmissions: in order, the usual data segment
        steps.append(("data", i, 0, 1002))
    steps.append(("read", 0, 0, 1002))
    return steps


def _run(script_steps, fast, monkeypatch):
    h, s, conn = make(fast, monkeypatch)
    base = conn.rcv.rcv_nxt
    ack = conn.snd.snd_una
    now = h.now
    trace = []
    data = bytearray()
    for kind, off, _wdelta, ts in script_steps:
        now += 0.001
        if kind == "read":
            data += s.recv(1 << 20)
            h.advance(now)
        elif kind == "tick":
            h.advance(now + 0.05)
            now += 0.05
        else:
            flags = {"data": ".", "fin": "F.", "fin_data": "F."}[kind]
            payload = b"" if kind == "fin" else bytes([off & 0xFF]) * MSS
            h.peer_sends(now, h.pseg(flags, base + off * MSS, ack, window=WIN, payload=payload,
                                     options=TcpOptions(ts=(ts, 0))))
            h.advance(now)
        trace.append((kind, [(sg.flags, sg.seq, sg.ack, sg.window, sg.options.sack) for sg in h.take()],
                      state(conn)))
    return h, s, conn, trace, bytes(data)


@pytest.mark.parametrize("seed", range(12))
def test_fast_path_matches_full_processing_with_fin(seed, monkeypatch):
    """A FIN that arrived out of order (bare, ahead of a hole) is delivered as soon as the
    missing data arrives, whichever way that data is processed."""
    steps = _fin_script(seed)
    h, s, conn, fast_trace, fast_data = _run(steps, True, monkeypatch)
    fast_state, fast_eof = conn.state, s.conn.rcv.eof
    counters = h.stack.counters
    assert counters.get("tcp.internal_error") == 0
    h2, s2, conn2, slow_trace, slow_data = _run(steps, False, monkeypatch)
    for i, (a, b) in enumerate(zip(fast_trace, slow_trace, strict=True)):
        assert a == b, f"step {i}: fast {a} != full {b}"
    assert fast_data == slow_data
    # EOF at once, not one RTO later when the peer retransmits its FIN
    assert fast_state is State.CLOSE_WAIT and fast_eof
    assert conn2.state is State.CLOSE_WAIT


def test_bare_fin_before_retransmitted_data_on_the_fast_path(monkeypatch):
    h, s, conn = make(True, monkeypatch)
    nxt, ack = conn.rcv.rcv_nxt, conn.snd.snd_una
    h.peer_sends(h.now, h.pseg("F.", nxt + MSS, ack, window=WIN, options=TcpOptions(ts=(1001, 0))))
    h.take()
    h.peer_sends(h.now, h.pseg(".", nxt, ack, window=WIN, payload=b"z" * MSS,
                               options=TcpOptions(ts=(1002, 0))))
    got = h.take()
    assert conn.state is State.CLOSE_WAIT and conn.rcv.rcv_nxt == nxt + MSS + 1
    assert got and got[-1].ack == nxt + MSS + 1  # the FIN is ACKed at once
    assert s.recv(10 * MSS) == b"z" * MSS and s.recv(10) == b""  # then EOF
