"""Peer input never raises, whatever the state; idle connections cost nothing in the timer heap."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcphelpers import PEER_ISS, RPORT, Harness, seg

from ustack.core.reasons import Reason
from ustack.tcp import State
from ustack.tcp.connection import Connection
from ustack.wire.tcp import TcpOptions

flag_sets = st.sampled_from(["S", "S.", ".", "P.", "F.", "R", "R.", "FS", "RS.", "F", "", "SF."])
opts = st.one_of(st.just(TcpOptions()), st.builds(
    TcpOptions, mss=st.one_of(st.none(), st.integers(0, 65535)),
    wscale=st.one_of(st.none(), st.integers(0, 255)), sack_perm=st.booleans(),
    sack=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=3).map(tuple),
    ts=st.one_of(st.none(), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)))))
segments = st.lists(st.tuples(flag_sets, st.integers(-70000, 70000), st.integers(-70000, 70000),
                              st.integers(0, 65535), st.binary(max_size=40), opts), max_size=12)


def _drive(h, c, items, t0):
    t = t0
    for flags, dseq, dack, win, payload, o in items:
        t += 0.05
        h.peer_sends(t, h.pseg(flags, PEER_ISS + 1 + dseq, c.iss + 1 + dack, window=win,
                               payload=payload, options=o))
    h.out(t + 200.0)  # every timer fires; nothing may raise
    assert h.layer.poll_at() is None or c.state is not State.CLOSED or h.layer.conns
    h.assert_no_internal_error()  # a swallowed exception is a failure, not a pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments, st.sampled_from(["est", "fin_wait", "close_wait", "syn_rcvd"]),
       st.booleans())
def test_random_segments_never_raise(items, where, options_on):
    kw = dict(timestamps=True, sack=True, window_scaling=True) if options_on else {}
    h = Harness(**kw)
    if where == "syn_rcvd":
        h.listen()
        h.lport = 80
        h.peer_sends(0.0, seg("S", PEER_ISS, 0))
        sa = h.take()[0]
        c = h.layer.conns[next(iter(h.layer.conns))]
        assert c.iss == sa.seq
    else:
        s, c = h.established()
        s.send(b"q" * 3000, 0.0)
        if where == "fin_wait":
            s.close(0.0)
        elif where == "close_wait":
            h.peer_sends(0.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    _drive(h, c, items, 0.0)


@pytest.mark.internal_error_expected
def test_the_property_catches_a_swallowed_bug(monkeypatch):
    """The layer contains a bug in ACK processing (reset, count): the property must still
    fail, or it would pass whatever the code does."""
    from ustack.tcp.connection import Connection

    def boom(self, seg, now):
        raise RuntimeError("bug in ACK processing")
    monkeypatch.setattr(Connection, "_on_ack", boom)
    h = Harness()
    s, c = h.established()
    with pytest.raises(AssertionError, match="bug in ACK processing"):
        _drive(h, c, [(".", 0, 0, 1000, b"x", TcpOptions())], 0.0)
    assert h.stack.counters.get("tcp.internal_error") == 1


def test_idle_connections_leave_no_timers():
    h = Harness()
    socks = []
    for i in range(50):
        s, syn = h.connect(port=RPORT + i)
        h.peer_sends(0.0, seg("S.", PEER_ISS, syn.seq + 1, sport=RPORT + i, dport=syn.sport))
        h.take()
        socks.append(s)
    h.out(1.0)
    assert all(s.state is State.ESTABLISHED for s in socks)
    assert h.layer.poll_at() is None  # nothing to do: no per-tick scanning
    assert h.layer._heap == []


def test_stale_heap_entries_skipped():
    h = Harness()
    s, c = h.established()
    for i in range(20):  # every send re-arms the RTO; the heap keeps one live entry per conn
        s.send(b"x", float(i) * 0.001)
        h.peer_sends(float(i) * 0.001, h.pseg(".", PEER_ISS + 1, c.iss + 2 + i))
    assert h.layer.poll_at() is None or h.layer.poll_at() >= h.now
    assert len(h.layer._heap) <= 2


@pytest.mark.internal_error_expected
def test_a_failing_timer_does_not_stop_other_connections(monkeypatch):
    h = Harness()
    s1, c1 = h.established()
    s2, syn2 = h.connect(port=RPORT + 1)
    real = Connection.on_timers

    def boom(self, now):  # Connection has __slots__: patched on the class, for c1 only
        if self is c1:
            raise RuntimeError("bug")
        return real(self, now)
    monkeypatch.setattr(Connection, "on_timers", boom)
    c1.timers.rto_at = 0.5
    h.layer.touch(c1)
    h.out(3.0)  # c2's SYN retransmission at 3 s still happens
    assert h.stack.counters.get("tcp.internal_error") == 1
    assert s2.conn.retries == 1
    assert s1.error is Reason.ABORTED and s1.state is State.CLOSED  # the broken one is reset


@pytest.mark.internal_error_expected
def test_a_failing_segment_handler_resets_only_that_connection(monkeypatch):
    h = Harness()
    s1, c1 = h.established()
    real = Connection.on_segment

    def boom(self, seg, now, *a):
        if self is c1:
            raise RuntimeError("bug")
        return real(self, seg, now, *a)
    monkeypatch.setattr(Connection, "on_segment", boom)
    h.peer_sends(1.0, h.pseg(".", PEER_ISS + 1, c1.iss + 1, payload=b"x"))
    assert h.stack.counters.get("tcp.internal_error") == 1
    assert s1.error is Reason.ABORTED and not h.layer.conns
