"""Path MTU discovery from ICMP fragmentation-needed (RFC 1191, RFC 5927): only an error quoting
data in flight counts, a next-hop MTU below 552 is floored like Linux (ip_rt_min_pmtu, and sent
without DF), and a learned PMTU ages out after 10 minutes (RFC 1191 6.3, Linux's ip_rt_mtu_expires)."""

from __future__ import annotations

import pytest
from tcphelpers import LOCAL, PEER_ISS, REMOTE, RPORT, Harness

from ustack.core.reasons import Reason
from ustack.tcp.pmtu import PMTU_CACHE_MAX, PMTU_EXPIRES_S, PMTU_MIN, PathMtuCache
from ustack.wire.ipv4 import Ipv4Packet
from ustack.wire.tcp import TcpOptions


def frag_needed(h, quoted_seg, mtu, at=None):
    raw = quoted_seg.emit(LOCAL, REMOTE)
    h.layer.on_icmp_error(Reason.FRAG_NEEDED, Ipv4Packet(LOCAL, REMOTE, 6, b""), raw[:8], mtu,
                          h.now if at is None else at)


def sent_df(h):
    return [df for _dst, _p, _payload, _src, df in h.stack.sent]


def setup(**kw):
    h = Harness(**kw)
    s, c = h.established(options=TcpOptions(mss=1460))
    s.send(b"x" * 1460, 1.0)
    (out,) = h.out(1.0)
    assert len(out.payload) == 1460
    return h, s, c, out


def test_constants_are_linux_and_rfc1191():
    assert (PMTU_MIN, PMTU_EXPIRES_S) == (552, 600.0)


@pytest.mark.parametrize("mtu", [0, 68, 200, 551])
def test_tiny_mtu_is_floored_to_552_and_sent_without_df(mtu):
    h, s, c, out = setup()
    frag_needed(h, out, mtu)
    assert c.snd.mss == 552 - 40
    assert h.stack.counters.get("tcp.pmtu_floored") == 1
    df = sent_df(h)
    got = h.take()
    assert [len(g.payload) for g in got] == [512, 512, 436]
    assert df == [False, False, False]  # a router on a smaller link may fragment them


def test_mtu_at_the_floor_keeps_df():
    h, s, c, out = setup()
    frag_needed(h, out, 552)
    assert c.snd.mss == 512 and h.stack.counters.get("tcp.pmtu_floored") == 0
    assert len(sent_df(h)) == 3 and all(sent_df(h))  # the resent pieces keep DF


def test_icmp_must_quote_data_in_flight():
    h, s, c, out = setup()
    for bad_seq in (out.seq + 1460, out.seq - 1, out.seq + 100_000):  # SND.MAX, below SND.UNA, far
        frag_needed(h, out._replace(seq=bad_seq), 1000)
    assert c.snd.mss == 1460 and h.stack.counters.get("tcp.icmp_out_of_window") == 3
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, out.seq + 1460))  # all ACKed: nothing in flight
    frag_needed(h, out._replace(seq=out.seq + 1460), 1000)  # quotes SND.UNA == SND.MAX
    assert c.snd.mss == 1460 and h.stack.counters.get("tcp.icmp_out_of_window") == 4
    frag_needed(h, out, 1000)  # the segment was ACKed: no longer in flight
    assert c.snd.mss == 1460 and len(h.layer.pmtu) == 0


def test_learned_pmtu_ages_out_after_ten_minutes():
    h, s, c, out = setup()
    frag_needed(h, out, 1000)
    assert c.snd.mss == 960
    h.out(1.0)
    h.peer_sends(1.1, h.pseg(".", PEER_ISS + 1, out.seq + 1460))
    # a new connection to the same host starts from the learned PMTU
    s2, syn2 = h.connect(port=RPORT + 1)
    assert syn2.options.mss == 960
    h.out(1.0 + PMTU_EXPIRES_S - 1)
    assert c.snd.mss == 960
    h.out(1.0 + PMTU_EXPIRES_S + 0.001)
    assert c.snd.mss == 1460 and h.stack.counters.get("tcp.pmtu_expired") == 1 and c.df
    s.send(b"z" * 1460, h.now)
    assert [len(g.payload) for g in h.out(h.now)] == [1460]  # tried again at full size
    s3, syn3 = h.connect(port=RPORT + 2)
    assert syn3.options.mss == 1460 and REMOTE not in h.layer.pmtu


def test_pmtu_cache_is_bounded():
    cache = PathMtuCache()
    for i in range(PMTU_CACHE_MAX + 50):
        assert cache.learn(i, 1000 if i else 100, 0.0) == (1000 if i else PMTU_MIN)
    assert len(cache) == PMTU_CACHE_MAX
    assert 0 not in cache and PMTU_CACHE_MAX + 49 in cache  # the oldest went
    assert cache.get(PMTU_CACHE_MAX, PMTU_EXPIRES_S - 0.001) == 1000
    assert cache.get(PMTU_CACHE_MAX, PMTU_EXPIRES_S) is None and PMTU_CACHE_MAX not in cache
