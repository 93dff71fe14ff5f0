"""SYN floods (issue 10): the SYN queue's own budget, SYN cookies beyond it (RFC 4987, Linux's
layout), drop-oldest eviction with cookies off, and the Windows RST for a full accept queue."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcphelpers import LOCAL, LPORT, PEER_ISS, REMOTE, Harness, seg

from ustack.tcp import State
from ustack.tcp.syncookie import MSS_TABLE, CookieOptions, SynCookies, decode_ts, encode_ts
from ustack.wire.ipv4 import ip_int
from ustack.wire.tcp import TcpOptions

SECRET = bytes(range(64))
A, B = ip_int("198.18.0.2"), ip_int("198.18.0.1")
FULL = TcpOptions(mss=1460, wscale=7, sack_perm=True, ts=(5000, 0))
MSS_ONLY = TcpOptions(mss=1460)


# ---- the cookie itself ---------------------------------------------------------------------------
@pytest.mark.parametrize("peer_mss,got", [(1460, 1460), (9000, 1460), (1440, 1440), (1400, 1300),
                                          (1300, 1300), (1000, 536), (536, 536), (200, 536)])
def test_cookie_round_trip_encodes_the_mss(peer_mss, got):
    c = SynCookies(SECRET)
    isn = c.isn(A, 80, B, 4000, 12345, peer_mss, 1000.0)
    assert c.check(A, 80, B, 4000, 12345, isn, 1000.5) == got
    assert got in MSS_TABLE


def test_cookie_is_bound_to_tuple_peer_isn_and_secret():
    c = SynCookies(SECRET)
    isn = c.isn(A, 80, B, 4000, 12345, 1460, 1000.0)
    assert c.check(A, 80, B, 4001, 12345, isn, 1000.0) is None
    assert c.check(A, 80, B + 1, 4000, 12345, isn, 1000.0) is None
    # the peer's ISN is added in: a small error shifts the 2-bit index (as in Linux), a large one
    # lands outside it
    assert c.check(A, 80, B, 4000, 12345 + 0x10000, isn, 1000.0) is None
    assert SynCookies(bytes(64)).check(A, 80, B, 4000, 12345, isn, 1000.0) is None
    rng = random.Random(1)  # blind guesses: a 2-bit index in 24 hashed bits, ~1 in 4 million
    hits = sum(c.check(A, 80, B, 4000, 12345, rng.getrandbits(32), 1000.0) is not None
               for _ in range(20000))
    assert hits <= 1


def test_cookie_lives_this_minute_and_the_next_only():
    c = SynCookies(SECRET)
    isn = c.isn(A, 80, B, 4000, 7, 1460, 59.9)  # minute 0
    assert c.check(A, 80, B, 4000, 7, isn, 60.1) == 1460  # minute 1: still valid
    assert c.check(A, 80, B, 4000, 7, isn, 119.9) == 1460
    assert c.check(A, 80, B, 4000, 7, isn, 120.0) is None  # minute 2: too old
    assert c.check(A, 80, B, 4000, 7, isn, 0.0) == 1460


@pytest.mark.parametrize("ws", [None, 0, 1, 7, 14])
@pytest.mark.parametrize("sack", [False, True])
@pytest.mark.parametrize("ecn", [False, True])
def test_options_ride_in_the_timestamp(ws, sack, ecn):
    for clock in (0, 63, 64, 1_000_000, 0xFFFFFFFF, 0xFFFFFFC0):
        ts = encode_ts(clock, CookieOptions(ws, sack, ecn))
        assert decode_ts(ts) == CookieOptions(ws, sack, ecn)
        behind = (clock - ts) & 0xFFFFFFFF
        assert behind < 64, (clock, ts)  # never ahead of the clock, at most 63 ticks behind


# ---- the listener ---------------------------------------------------------------------------------
def flood(h, n, at=0.0, rng=None, options=MSS_ONLY):
    rng = rng or random.Random(7)
    for _ in range(n):
        src = ip_int("198.18.0.0") + rng.randrange(256, 1 << 17)  # 198.18.1.0 - 198.19.255.255
        h.peer_sends(at, seg("S", rng.getrandbits(32), 0, sport=rng.randrange(1024, 65536),
                             options=options), src=src)


def syn_queue(h):
    return sum(1 for c in h.layer.conns.values() if c.state is State.SYN_RCVD)


def test_syn_queue_has_its_own_budget_then_cookies():
    h = Harness(max_syn_backlog=8, timestamps=True, sack=True, window_scaling=True)
    lst = h.listen(backlog=2)
    flood(h, 50)
    out = h.take()
    assert len(out) == 50 and all(s.flags == 0x12 for s in out)  # every SYN answered
    assert syn_queue(h) == 8 and len(h.layer.conns) == 8  # state only for the budget
    assert h.stack.counters.get("tcp.syncookies_sent") == 42
    assert h.stack.counters.get("tcp.listen_overflow") == 0  # spoofed SYNs never cause refusals
    # a real client now gets a cookie, and its ACK makes the connection
    h.peer_sends(0.1, seg("S", PEER_ISS, 0, options=FULL))
    (sa,) = h.take()
    assert sa.flags == 0x12 and sa.ack == PEER_ISS + 1
    assert sa.options.mss == 1460 and sa.options.wscale is not None and sa.options.sack_perm
    tsval = sa.options.ts[0]
    offset = h.layer.syncookies.ts_offset(LOCAL, LPORT, REMOTE, sa.dport)
    assert sa.options.ts[1] == 5000
    assert decode_ts((tsval - offset) & 0xFFFFFFFF) == CookieOptions(7, True, False)
    h.lport = LPORT
    h.peer_sends(0.15, seg(".", PEER_ISS + 1, sa.seq + 1, window=1000, payload=b"hello",
                           options=TcpOptions(ts=(5001, tsval))))
    assert h.stack.counters.get("tcp.syncookies_recv") == 1
    s = lst.accept()
    assert s is not None and s.state is State.ESTABLISHED and s.recv(100) == b"hello"
    c = s.conn
    assert (c.snd.wscale, c.sack_ok, c.ts_ok, c.snd.snd_wnd) == (7, True, True, 1000 << 7)
    assert c.snd.mss == 1460 - 12 and c.rcv.wscale == sa.options.wscale
    s.send(b"x" * 2896, 0.2)
    out = [g for g in h.out(0.2) if g.payload]  # (and the ACK of "hello", in quick-ACK mode)
    assert [len(g.payload) for g in out] == [1448, 1448]
    assert all(g.options.ts[0] - tsval < 1000 and g.options.ts[1] == 5001 for g in out)


def test_cookie_without_timestamps_offers_no_scale_or_sack():
    h = Harness(max_syn_backlog=1, timestamps=True, sack=True, window_scaling=True)
    lst = h.listen()
    flood(h, 1)
    h.take()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, options=TcpOptions(mss=1300, wscale=7, sack_perm=True)))
    (sa,) = h.take()
    assert sa.options.wscale is None and not sa.options.sack_perm and sa.options.ts is None
    h.lport = LPORT
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1, window=5000))
    s = lst.accept()
    assert s is not None
    assert (s.conn.snd.wscale, s.conn.sack_ok, s.conn.ts_ok, s.conn.snd.mss) == (0, False, False, 1300)


def test_forged_or_stale_cookie_acks_are_reset():
    h = Harness(max_syn_backlog=1)
    lst = h.listen()
    h.peer_sends(0.0, seg(".", 5, 777))  # no overflow yet: cookies are not even checked
    h.expect_out(0.0, [dict(flags="R", seq=777)])
    assert h.stack.counters.get("tcp.syncookies_failed") == 0
    flood(h, 1)
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, options=TcpOptions(mss=1460)))
    sa = h.take()[-1]
    for guess in (sa.seq + 1 + 0x10000, sa.seq ^ 0x80000000, sa.seq - 0x1000):  # wrong ACKs
        h.peer_sends(0.0, seg(".", PEER_ISS + 1, guess))
    assert [g.flags for g in h.take()] == [0x04] * 3
    h.peer_sends(0.0, seg(".", PEER_ISS + 1 + 0x10000, sa.seq + 1))  # wrong peer ISN
    assert h.stack.counters.get("tcp.syncookies_failed") == 4 and lst.accept_pending == 0
    h.peer_sends(121.0, seg(".", PEER_ISS + 1, sa.seq + 1))  # a valid one, 2 minutes late
    assert lst.accept_pending == 0 and h.take()[-1].flags == 0x04


def test_cookie_acks_into_a_full_accept_queue_are_refused_like_syns():
    h = Harness(max_syn_backlog=1)
    lst = h.listen(backlog=1)
    flood(h, 1)
    h.take()
    acks = []
    for port in (5000, 5001):
        h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=port, options=TcpOptions(mss=1460)))
        acks.append(seg(".", PEER_ISS + 1, h.take()[-1].seq + 1, sport=port))
    for a in acks:
        h.peer_sends(0.0, a)
    assert lst.accept_pending == 1
    h.expect_out(0.0, [dict(flags="R", dport=5001)])


def test_without_cookies_the_oldest_half_open_entry_makes_room():
    h = Harness(max_syn_backlog=4, syncookies=False)
    h.listen()
    flood(h, 4)
    first = sorted(h.layer.conns)  # the four spoofed half-open entries
    h.take()
    h.peer_sends(1.0, seg("S", PEER_ISS, 0, options=TcpOptions(mss=1460)))
    (sa,) = h.take()  # a SYN-ACK with state (no RST to the evicted one, no cookie)
    assert syn_queue(h) == 4 and h.stack.counters.get("tcp.syn_queue_evicted") == 1
    assert h.stack.counters.get("tcp.syncookies_sent") == 0
    gone = set(first) - set(h.layer.conns)
    assert len(gone) == 1
    h.lport = LPORT
    h.peer_sends(1.1, seg(".", PEER_ISS + 1, sa.seq + 1))
    assert any(c.state is State.ESTABLISHED for c in h.layer.conns.values())


def test_flood_in_virtual_time_legitimate_clients_all_connect():
    """10,000 spoofed SYNs, 20 real clients among them (each a full handshake and one byte each
    way): every client connects at its first SYN, state stays within the budget, and the
    listener is healthy at once afterwards."""
    h = Harness(timestamps=True, sack=True, window_scaling=True)
    lst = h.listen(backlog=200)
    rng = random.Random(3)
    t = 0.0
    ok = 0
    for i in range(20):
        flood(h, 500, at=t, rng=rng, options=FULL)
        h.take()
        port = 20000 + i
        h.peer_sends(t, seg("S", PEER_ISS + i, 0, sport=port, options=FULL))
        sa = [g for g in h.take() if g.dport == port]
        assert len(sa) == 1 and sa[0].flags == 0x12
        h.peer_sends(t + 0.001, seg(".", PEER_ISS + i + 1, sa[0].seq + 1, sport=port, payload=b"?",
                                    options=TcpOptions(ts=(5001, sa[0].options.ts[0]))))
        s = lst.accept()
        if s is not None and s.recv(10) == b"?":
            s.send(b"!", t + 0.002)
            ok += any(g.payload == b"!" for g in h.out(t + 0.002))
        t += 0.05
    assert ok == 20
    assert h.layer.config.max_syn_backlog == 256 and syn_queue(h) <= 256
    assert len(h.layer.conns) <= 256 + 20
    assert h.stack.counters.get("tcp.syncookies_sent") >= 10000 - 256
    # afterwards, when the half-open entries time out (21 s): plain SYN-ACKs with state again
    h.out(t + 30.0)
    assert syn_queue(h) == 0
    h.peer_sends(t + 30.0, seg("S", PEER_ISS, 0, sport=30000, options=FULL))
    before = h.stack.counters.get("tcp.syncookies_sent")
    assert h.take()[0].flags == 0x12 and syn_queue(h) == 1
    assert h.stack.counters.get("tcp.syncookies_sent") == before


def test_max_syn_backlog_is_not_capped_by_the_listen_backlog():
    h = Harness(max_syn_backlog=300)
    h.listen(backlog=5)
    flood(h, 300)
    assert syn_queue(h) == 300 and h.stack.counters.get("tcp.syncookies_sent") == 0
    assert all(g.flags == 0x12 for g in h.take())


# ---- properties -----------------------------------------------------------------------------------
u32 = st.integers(0, 2**32 - 1)
port = st.integers(1, 65535)


@settings(max_examples=200, deadline=None)
@given(u32, port, u32, port, u32, st.integers(0, 65535), st.floats(0, 1e9), st.floats(0, 119.999))
def test_cookie_round_trip_property(laddr, lport, raddr, rport, peer_isn, mss, t, later):
    c = SynCookies(SECRET)
    isn = c.isn(laddr, lport, raddr, rport, peer_isn, mss, t)
    minute_start = (t // 60) * 60
    assert c.check(laddr, lport, raddr, rport, peer_isn, isn, t) == MSS_TABLE[c.mss_index(mss)]
    # valid for the rest of its minute and all of the next, never after
    assert c.check(laddr, lport, raddr, rport, peer_isn, isn, minute_start + later) is not None
    assert c.check(laddr, lport, raddr, rport, peer_isn, isn, minute_start + 120 + later) is None


flag_sets = st.sampled_from(["S", "S.", ".", "P.", "F.", "R", "R.", "SF", "F", "", "SR", "FP."])
segs = st.lists(st.tuples(flag_sets, u32, u32, st.binary(max_size=20), st.booleans(), port,
                          st.one_of(st.none(), st.tuples(u32, u32))), max_size=15)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segs, st.booleans())
def test_random_segments_to_a_flooded_listener(items, cookies):
    """Whatever arrives at a listener whose SYN queue overflowed: nothing raises, the SYN queue
    stays within its budget, and every connection made from a final ACK came from a valid cookie
    (a blind guess of 32 bits does not get through)."""
    h = Harness(max_syn_backlog=2, syncookies=cookies, timestamps=True, sack=True,
                window_scaling=True)
    lst = h.listen(backlog=3)
    flood(h, 3)
    h.take()
    t = 0.0
    for flags, sq, ak, payload, with_mss, sport, ts in items:
        t += 0.5
        h.peer_sends(t, seg(flags, sq, ak, sport=sport, payload=payload,
                            options=TcpOptions(mss=1460 if with_mss else None, ts=ts)))
        assert syn_queue(h) <= 2
    h.out(t + 60.0)
    h.assert_no_internal_error()
    assert h.stack.counters.get("tcp.syncookies_recv") == 0  # random ACKs never pass as cookies
    assert lst.accept_pending == 0


def test_cookie_syn_ack_offers_the_listeners_tcp_maxseg_clamp():
    """A cookie SYN-ACK offers the MSS a stored SYN-ACK would: TCP_MAXSEG on the listener
    (TcpSockOpts.mss) lowers it (Linux's cookie path clamps to user_mss too)."""
    h = Harness(max_syn_backlog=1, timestamps=True, sack=True, window_scaling=True)
    lst = h.listen()
    lst.opts.mss = 1000
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, options=FULL))
    (stored,) = h.take()  # within the budget: a SYN-RECEIVED entry
    flood(h, 1)
    h.take()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=40001, options=FULL))
    (cookie,) = h.take()
    assert h.stack.counters.get("tcp.syncookies_sent") >= 1
    assert cookie.options.mss == stored.options.mss == 1000
