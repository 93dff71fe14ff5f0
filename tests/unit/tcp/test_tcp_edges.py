"""Corner cases of the state machine and timers."""

from __future__ import annotations

from tcphelpers import PEER_ISS, RPORT, Harness, seg

from ustack.core.reasons import Reason
from ustack.tcp import State
from ustack.wire.ipv4 import Ipv4Packet
from ustack.wire.tcp import TcpOptions


def test_fin_on_synack_goes_straight_to_close_wait():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.1, seg("SF.", PEER_ISS, syn.seq + 1, dport=syn.sport))
    assert s.state is State.CLOSE_WAIT and s.at_eof
    h.expect_out(0.1, [dict(flags=".", ack=PEER_ISS + 2)])


def test_syn_with_data_to_listener_acks_only_the_syn():
    h = Harness()
    h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, payload=b"tfo?"))
    h.expect_out(0.0, [dict(flags="S.", ack=PEER_ISS + 1)])


def test_rst_in_fin_wait_2_is_reset():
    h = Harness()
    s, c = h.established()
    s.shutdown(1, 0.0)
    h.take()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 2))
    assert c.state is State.FIN_WAIT_2
    h.peer_sends(0.2, h.pseg("R", PEER_ISS + 1, 0))
    assert s.error is Reason.RESET


def test_rst_in_closing_closes_quietly():
    h = Harness()
    s, c = h.established()
    s.shutdown(1, 0.0)
    h.take()
    h.peer_sends(0.01, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    assert c.state is State.CLOSING
    h.peer_sends(0.02, h.pseg("R", PEER_ISS + 2, 0))
    assert c.state is State.CLOSED and s.error is None


def test_data_in_time_wait_is_ignored():
    # RFC 9293 3.10.7.4 seventh step: "This should not occur ... Ignore the segment text."
    h = Harness()
    s, c = h.established()
    s.shutdown(1, 0.0)
    h.take()
    h.peer_sends(0.01, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    h.take()
    h.peer_sends(0.02, h.pseg(".", PEER_ISS + 2, c.iss + 2, payload=b"late"))
    h.expect_nothing(0.02)
    assert c.state is State.TIME_WAIT


def test_close_in_syn_sent_sends_nothing_and_frees_port():
    h = Harness()
    s, syn = h.connect()
    s.close(0.5)
    h.expect_nothing(30)
    assert not h.layer.conns and h.stack.tcp_ports.bindings(syn.sport) == []


def test_shutdown_both_then_data_resets():
    h = Harness()
    s, c = h.established()
    s.shutdown(2, 0.0)
    h.take()
    h.peer_sends(0.1, h.pseg("P.", PEER_ISS + 1, c.iss + 2, payload=b"x"))
    assert [o.flags & 4 for o in h.out(0.1)] == [4]


def test_sws_override_timer_sends_partial_window():
    h = Harness()
    s, c = h.established(options=TcpOptions(mss=1000))
    h.peer_sends(0.0, h.pseg(".", PEER_ISS + 1, c.iss + 1, window=600))
    s.send(b"x" * 2000, 0.0)
    h.expect_nothing(0.0)  # 600 < MSS and < half of the largest window (65535)
    out = h.out(1.0)
    assert out and len(out[0].payload) == 600


def test_keepalive_in_close_wait():
    h = Harness()
    s, c = h.established()
    h.peer_sends(0.0, h.pseg("F.", PEER_ISS + 1, c.iss + 1))
    h.take()
    s.keepalive_idle_s = 5.0
    s.keepalive = True
    h.expect_out(5.0, [dict(seq=c.iss, flags=".")])


def test_frag_needed_with_larger_mtu_ignored():
    h = Harness()
    s, c = h.established(options=TcpOptions(mss=1460))
    s.send(b"x" * 100, 0.0)
    out = h.take()[0]
    from tcphelpers import LOCAL, REMOTE
    h.layer.on_icmp_error(Reason.FRAG_NEEDED, Ipv4Packet(LOCAL, REMOTE, 6, b""),
                          out.emit(LOCAL, REMOTE)[:8], 9000, 0.0)
    assert c.snd.mss == 1460 and h.take() == []


def test_rto_backoff_capped_at_rto_max():
    h = Harness(rto_max_s=2.0, data_retries=10)
    s, c = h.established()
    s.send(b"x", 0.0)
    h.take()
    h.out(30.0)
    assert c.snd.rto == 2.0


def test_icmp_for_unknown_connection_counted():
    h = Harness()
    from tcphelpers import LOCAL, REMOTE
    raw = seg("S", 1, 0, sport=1234, dport=RPORT).emit(LOCAL, REMOTE)
    h.layer.on_icmp_error(Reason.HOST_UNREACH, Ipv4Packet(LOCAL, REMOTE, 6, b""), raw[:8], 0, 0.0)
    assert h.stack.counters.get("tcp.icmp_no_conn") == 1


def test_short_icmp_quote_counted():
    h = Harness()
    from tcphelpers import LOCAL, REMOTE
    h.layer.on_icmp_error(Reason.HOST_UNREACH, Ipv4Packet(LOCAL, REMOTE, 6, b""), b"abc", 0, 0.0)
    assert h.stack.counters.get("tcp.icmp_short_quote") == 1
