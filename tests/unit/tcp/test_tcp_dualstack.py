"""TCP's family-aware parts that IPv4 alone exercises: family-6 sockets in dual mode (v6only off)
accept and make IPv4 connections named by v4-mapped addresses, per-family port tables, and the
two review findings: one MSS rule (`TcpLayer.mss_for`) and one SYN-ACK builder for stored and
cookie SYN-ACKs (their windows used to differ)."""

from __future__ import annotations

import pytest
from tcphelpers import PEER_ISS, REMOTE, Harness, seg

from tests.invariants import assert_no_internal_error
from tests.unit.tcp.test_tcp_stacks import A, B, Wire
from ustack.core import Reason, UsageError
from ustack.core.family import v4mapped
from ustack.tcp import State
from ustack.wire.ipv4 import ip_int
from ustack.wire.tcp import TcpOptions

FULL = TcpOptions(mss=1460, wscale=7, sack_perm=True, ts=(5000, 0))


def test_dual_mode_listener_accepts_ipv4_named_v4mapped():
    w = Wire(seed=1)
    lst = w.b.tcp.open(family=6)
    assert lst.family == 6 and lst.v6only is True
    lst.v6only = False
    lst.bind(0, 80)
    lst.listen(5)
    cli = w.a.tcp.open()
    cli.connect(B, 80, w.now)
    w.run_until(lambda: lst.accept_pending > 0)
    srv = lst.accept()
    assert srv.family == 6
    assert srv.remote == (v4mapped(A), cli.local[1]) and srv.local == (v4mapped(B), 80)
    assert cli.remote == (B, 80)  # the IPv4 client sees a plain IPv4 peer
    cli.send(b"over ipv4", w.now)
    w.run_until(lambda: srv.readable_bytes == 9)
    assert srv.recv(100) == b"over ipv4"
    srv.send(b"back", w.now)
    w.run_until(lambda: cli.readable_bytes == 4)
    assert cli.recv(10) == b"back"
    for st in (w.a, w.b):
        assert_no_internal_error(st)


def test_dual_mode_socket_connects_to_a_v4mapped_address_over_ipv4():
    w = Wire(seed=2)
    lst = w.b.tcp.open()
    lst.bind(0, 81)
    lst.listen(5)
    cli = w.a.tcp.open(family=6)
    cli.v6only = False
    cli.connect(v4mapped(B), 81, w.now)
    w.run_until(lambda: cli.state is State.ESTABLISHED and lst.accept_pending > 0)
    assert cli.remote == (v4mapped(B), 81)
    assert cli.local[0] == v4mapped(A)
    srv = lst.accept()
    assert srv.remote == (A, cli.local[1])
    assert cli.conn.key == (A, cli.local[1], B, 81)  # the connection itself is plain IPv4


def test_v6only_listener_does_not_take_ipv4_and_v4mapped_is_refused():
    w = Wire(seed=3)
    lst = w.b.tcp.open(family=6)
    lst.bind(0, 82)  # v6only (default): [::]:82 only
    lst.listen(5)
    cli = w.a.tcp.open()
    cli.connect(B, 82, w.now)
    w.run_until(lambda: cli.error is not None)
    assert cli.error is Reason.REFUSED  # RST from the closed IPv4 port
    s = w.a.tcp.open(family=6)
    with pytest.raises(UsageError) as e:
        s.connect(v4mapped(B), 82, w.now)
    assert e.value.reason is Reason.ADDR_NOT_AVAIL
    with pytest.raises(UsageError) as e:
        s.connect(0xC612_0002, 82, w.now)  # ::198.18.0.2, IPv4-compatible (deprecated)
    assert e.value.reason is Reason.ADDR_NOT_AVAIL


def test_tcp_wildcards_per_family_and_dual_mode_conflicts():
    w = Wire(seed=4)
    v4 = w.b.tcp.open()
    v4.bind(0, 90)
    v6 = w.b.tcp.open(family=6)
    v6.bind(0, 90)  # distinct from 0.0.0.0:90
    dual = w.b.tcp.open(family=6)
    dual.v6only = False
    with pytest.raises(UsageError) as e:
        dual.bind(0, 91 - 1)
    assert e.value.reason is Reason.ADDR_IN_USE
    dual.bind(0, 91)
    assert dual.local == (0, 91)
    with pytest.raises(UsageError) as e:
        dual.v6only = True
    assert e.value.reason is Reason.INVALID
    other = w.b.tcp.open()
    with pytest.raises(UsageError):
        other.bind(0, 91)
    dual.close(w.now)
    other.bind(0, 91)


# ---- review finding: one MSS rule ------------------------------------------------------------
def test_pmtu_expiry_keeps_the_tcp_maxseg_clamp():
    """`_on_pmtu_expired` went back to the interface MSS, forgetting the socket's TCP_MAXSEG: all
    MSS choices now go through `TcpLayer.mss_for(raddr, now, clamp)`."""
    h = Harness()
    s = h.socket()
    s.opts.mss = 1000
    s.connect(REMOTE, 5000, h.now)
    (syn,) = h.take()
    assert syn.options.mss == 1000
    conn = s.conn
    conn.our_mss = 1  # anything: the expiry must recompute it by the one rule
    conn._on_pmtu_expired(h.now)
    assert conn.our_mss == 1000 == h.layer.mss_for(REMOTE, h.now, 1000)


def test_mss_for_per_family_and_path_mtu():
    h = Harness(mtu=1500)
    six = 0x2001_0002 << 96 | 1
    assert h.layer.mss_for(REMOTE) == 1460
    assert h.layer.mss_for(six) == 1500 - 60  # fixed IPv6 + TCP headers (no mtu6: the IPv4 MTU)
    assert h.layer.mss_for(six, path_mtu=1280) == 1220
    assert h.layer.mss_for(REMOTE, path_mtu=1000, clamp=900) == 900


# ---- review finding: one SYN-ACK builder ------------------------------------------------------
def test_cookie_syn_ack_window_equals_the_stored_one_under_memory_pressure():
    h = Harness(max_syn_backlog=1, timestamps=True, sack=True, window_scaling=True,
                pressure_window_segments=4)
    lst = h.listen()
    lst.opts.rcvbuf = 60000
    h.layer.memory.pressure = True  # the stack's memory is under pressure: windows are clamped
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, options=FULL))
    (stored,) = h.take()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=40001, options=FULL), src=ip_int("198.18.0.77"))
    (cookie,) = h.take()
    assert h.stack.counters.get("tcp.syncookies_sent") == 1
    assert stored.window == cookie.window == 4 * 536  # clamped alike (it was 60000 for cookies)
    assert (stored.flags, stored.options.mss) == (cookie.flags, cookie.options.mss)

