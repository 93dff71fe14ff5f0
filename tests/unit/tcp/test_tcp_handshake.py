"""Opening: active, passive, simultaneous; SYN-SENT rules; SYN timing; listener queues; ports."""

from __future__ import annotations

import pytest
from tcphelpers import FAR, LOCAL, LPORT, PEER_ISS, REMOTE, RPORT, Harness, seg

from ustack.core import events as ev
from ustack.core.errors import UsageError
from ustack.core.reasons import Reason
from ustack.tcp import State
from ustack.tcp.isn import IsnGenerator
from ustack.wire.tcp import TcpOptions


# ---- active open -------------------------------------------------------------------------------
def test_connect_sends_syn_with_mss_from_mtu():
    h = Harness()
    s, syn = h.connect()
    assert syn.options.mss == 1460
    assert syn.seq == s.conn.iss and syn.ack == 0
    assert s.state is State.SYN_SENT


def test_syn_mss_follows_smaller_mtu():
    h = Harness(mtu=1280)
    _, syn = h.connect()
    assert syn.options.mss == 1240


def test_syn_offers_all_options_when_enabled():
    h = Harness(timestamps=True, sack=True, window_scaling=True, rcvbuf=1 << 20)
    _, syn = h.connect()
    o = syn.options
    assert o.sack_perm and o.ts is not None and o.ts[1] == 0
    assert o.wscale == 5  # 1 MiB >> 5 fits 16 bits
    assert syn.window == 65535


def test_synack_completes_active_open():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.05, seg("S.", PEER_ISS, syn.seq + 1, 5000, dport=syn.sport))
    h.expect_out(0.05, [dict(flags=".", seq=syn.seq + 1, ack=PEER_ISS + 1)])
    assert s.state is State.ESTABLISHED
    assert s.remote == (REMOTE, RPORT)
    assert s.local == (LOCAL, syn.sport)
    assert h.events[-1] == ev.CONNECT | ev.WRITE
    assert s.conn.snd.snd_wnd == 5000


def test_synack_rtt_sample_sets_rto():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.1, seg("S.", PEER_ISS, syn.seq + 1, dport=syn.sport))
    assert s.conn.snd.srtt == pytest.approx(0.1)
    assert s.conn.snd.rto == pytest.approx(0.3)


def test_peer_mss_limits_our_segments():
    h = Harness(nagle_minshall=False)
    s, c = h.established(options=TcpOptions(mss=500))
    assert c.snd.mss == 500
    s.send(b"x" * 1200, h.now)
    h.expect_out(h.now, [dict(len=500), dict(len=500)])  # Nagle holds the 200-byte tail
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1001))
    h.expect_out(0.1, [dict(len=200, flags="P.")])


def test_no_mss_option_means_536():
    h = Harness()
    _, c = h.established()
    assert c.snd.mss == 536


def test_syn_sent_bad_ack_gets_rst():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg(".", 5, syn.seq + 10, dport=syn.sport))
    h.expect_out(0.01, [dict(flags="R", seq=syn.seq + 10)])
    assert s.state is State.SYN_SENT


def test_syn_sent_ack_of_iss_is_unacceptable():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("S.", PEER_ISS, syn.seq, dport=syn.sport))
    h.expect_out(0.01, [dict(flags="R", seq=syn.seq)])
    assert s.state is State.SYN_SENT


def test_syn_sent_rst_without_ack_is_ignored():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("R", 0, 0, dport=syn.sport))
    h.expect_nothing(0.01)
    assert s.state is State.SYN_SENT and s.error is None


def test_syn_sent_rst_with_bad_ack_is_ignored():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("R.", 0, syn.seq + 7, dport=syn.sport))
    h.expect_nothing(0.01)
    assert s.state is State.SYN_SENT


def test_rst_to_syn_refuses():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("R.", 0, syn.seq + 1, dport=syn.sport))
    assert s.state is State.CLOSED and s.error is Reason.REFUSED
    assert h.events[-1] & ev.CONNECT
    h.expect_nothing(30)


def test_syn_rst_retries_repeat_the_syn_first():
    h = Harness(syn_rst_retries=2, syn_rst_retry_s=0.5)
    s, syn = h.connect()
    for _ in range(2):
        h.peer_sends(h.now + 0.001, seg("R.", 0, syn.seq + 1, dport=syn.sport))
        assert s.error is None
        h.expect_out(h.now + 0.5, [dict(flags="S", seq=syn.seq)])
    h.peer_sends(h.now + 0.001, seg("R.", 0, syn.seq + 1, dport=syn.sport))
    assert s.error is Reason.REFUSED


def test_syn_retransmission_timing_windows_defaults():
    h = Harness()
    s, syn = h.connect()
    h.expect_nothing(2.999)
    h.expect_out(3.0, [dict(flags="S", seq=syn.seq)])
    h.expect_nothing(8.999)
    h.expect_out(9.0, [dict(flags="S", seq=syn.seq)])
    h.expect_nothing(20.999)
    assert s.error is None
    h.expect_nothing(21.0)
    assert s.error is Reason.TIMED_OUT and s.state is State.CLOSED


def test_syn_retries_configurable_per_socket():
    h = Harness()
    s = h.socket()
    s.syn_retries = 0
    s.syn_rto_s = 1.0
    s.connect(REMOTE, RPORT, 0.0)
    h.take()
    h.expect_nothing(1.0)
    assert s.error is Reason.TIMED_OUT


def test_failed_socket_may_connect_again():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("R.", 0, syn.seq + 1, dport=syn.sport))
    assert s.error is Reason.REFUSED
    s.connect(REMOTE, RPORT, 0.02)
    out = h.take()
    assert out[0].flags == 2 and out[0].sport == syn.sport  # same bound port
    assert s.error is None and s.state is State.SYN_SENT


def test_simultaneous_open():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("S", PEER_ISS, 0, dport=syn.sport))
    h.expect_out(0.01, [dict(flags="S.", seq=syn.seq, ack=PEER_ISS + 1)])
    assert s.state is State.SYN_RCVD
    h.peer_sends(0.02, seg("S.", PEER_ISS, syn.seq + 1, dport=syn.sport))
    assert s.state is State.ESTABLISHED
    assert h.events[-1] & ev.CONNECT


def test_simultaneous_open_completed_by_plain_ack():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("S", PEER_ISS, 0, dport=syn.sport))
    h.take()
    h.peer_sends(0.02, seg(".", PEER_ISS + 1, syn.seq + 1, dport=syn.sport))
    assert s.state is State.ESTABLISHED


def test_simultaneous_open_rst_refuses():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("S", PEER_ISS, 0, dport=syn.sport))
    h.take()
    h.peer_sends(0.02, seg("R", PEER_ISS + 1, 0, dport=syn.sport))
    assert s.error is Reason.REFUSED


def test_synack_data_is_delivered():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.01, seg("S.", PEER_ISS, syn.seq + 1, payload=b"early", dport=syn.sport))
    h.expect_out(0.01, [dict(flags=".", ack=PEER_ISS + 6)])
    assert s.recv(10) == b"early"


# ---- passive open ------------------------------------------------------------------------------
def test_passive_open():
    h = Harness()
    lst = h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, 4000, options=TcpOptions(mss=1000)))
    out = h.expect_out(0.0, [dict(flags="S.", ack=PEER_ISS + 1, mss=1460)])
    assert lst.accept() is None and lst.accept_pending == 0
    h.peer_sends(0.01, seg(".", PEER_ISS + 1, out[0].seq + 1, 4000))
    assert lst.accept_pending == 1
    s = lst.accept()
    assert s.state is State.ESTABLISHED and s.remote == (REMOTE, RPORT) and s.local == (LOCAL, LPORT)
    assert s.conn.snd.mss == 1000 and s.conn.snd.snd_wnd == 4000
    assert lst.state is State.LISTEN


def test_synack_only_echoes_offered_options():
    h = Harness(timestamps=True, sack=True, window_scaling=True)
    h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, options=TcpOptions(mss=1460)))
    out = h.take()[0]
    assert out.options.wscale is None and not out.options.sack_perm and out.options.ts is None


def test_synack_echoes_timestamp_and_scale():
    h = Harness(timestamps=True, sack=True, window_scaling=True, rcvbuf=1 << 20)
    h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, options=TcpOptions(mss=1460, wscale=7, sack_perm=True,
                                                                ts=(777, 0))))
    out = h.take()[0]
    assert out.options.wscale == 5 and out.options.sack_perm and out.options.ts[1] == 777


def test_accepted_data_in_third_segment():
    h = Harness()
    lst = h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    synack = h.take()[0]
    h.peer_sends(0.01, seg("P.", PEER_ISS + 1, synack.seq + 1, payload=b"GET /"))
    s = lst.accept()
    assert s.recv(10) == b"GET /"


def test_synack_retransmitted_then_dropped():
    h = Harness(synack_retries=2)
    lst = h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    synack = h.take()[0]
    h.expect_out(3.0, [dict(flags="S.", seq=synack.seq)])
    h.expect_out(9.0, [dict(flags="S.", seq=synack.seq)])
    h.expect_nothing(21.0)
    assert not h.layer.conns and lst.accept_pending == 0


def test_repeated_syn_in_syn_rcvd_repeats_synack():
    h = Harness()
    h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    synack = h.take()[0]
    h.peer_sends(1.0, seg("S", PEER_ISS, 0))
    h.expect_out(1.0, [dict(flags="S.", seq=synack.seq, ack=PEER_ISS + 1)])


def test_syn_rcvd_bad_ack_gets_rst():
    h = Harness()
    h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    synack = h.take()[0]
    h.peer_sends(0.1, seg(".", PEER_ISS + 1, synack.seq + 50))
    h.expect_out(0.1, [dict(flags="R", seq=synack.seq + 50)])


def test_syn_rcvd_rst_returns_to_listen_silently():
    h = Harness()
    lst = h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    h.take()
    h.peer_sends(0.1, seg("R", PEER_ISS + 1, 0))
    assert not h.layer.conns and lst.state is State.LISTEN
    h.expect_nothing(30)


def test_listen_state_ack_gets_rst():
    h = Harness()
    h.listen()
    h.peer_sends(0.0, seg(".", 5, 777))
    h.expect_out(0.0, [dict(flags="R", seq=777)])


def test_listen_state_rst_ignored():
    h = Harness()
    h.listen()
    h.peer_sends(0.0, seg("R", 5, 0))
    h.expect_nothing(0.0)


def test_listen_state_no_syn_dropped():
    h = Harness()
    h.listen()
    h.peer_sends(0.0, seg("F", 5, 0))
    h.expect_nothing(0.0)
    assert h.stack.counters.get("tcp.listen_no_syn") == 1


def test_backlog_full_answers_rst():
    h = Harness()
    lst = h.listen(backlog=1)
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5000))
    sa = h.expect_out(0.0, [dict(flags="S.")])[0]
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5001))  # half-open ones do not fill it
    h.expect_out(0.0, [dict(flags="S.", dport=5001)])
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1, sport=5000))
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5002))
    h.expect_out(0.0, [dict(flags="R.", seq=0, ack=PEER_ISS + 1, dport=5002)])
    assert lst.accept_pending == 1


def test_backlog_counts_unaccepted_connections():
    h = Harness()
    lst = h.listen(backlog=1)
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5000))
    sa = h.take()[0]
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1, sport=5000))
    assert lst.accept_pending == 1
    h.peer_sends(0.1, seg("S", PEER_ISS, 0, sport=5001))
    h.expect_out(0.1, [dict(flags="R.", dport=5001)])
    lst.accept()
    h.peer_sends(0.2, seg("S", PEER_ISS, 0, sport=5002))
    h.expect_out(0.2, [dict(flags="S.", dport=5002)])


def test_backlog_clamped_to_200():
    h = Harness()
    lst = h.listen(backlog=0x7FFFFFFF)
    assert lst.listener.backlog == 200


def test_closing_listener_resets_unaccepted():
    h = Harness()
    lst = h.listen()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5000))
    sa = h.take()[0]
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1, sport=5000))
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, sport=5001))
    sb = h.take()[0]
    lst.close(0.1)
    out = h.out(0.1)
    assert sorted((s.dport, s.flags & 4) for s in out) == [(5000, 4), (5001, 4)]
    assert not h.layer.conns
    assert sb.seq + 1 in [s.seq for s in out]


def test_accepted_socket_inherits_options():
    h = Harness()
    lst = h.layer.open()
    lst.nodelay = True
    lst.bind(0, LPORT)
    lst.listen(5)
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    sa = h.take()[0]
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1))
    s = lst.accept()
    assert s.nodelay is True
    s.nodelay = False
    assert lst.nodelay is True


def test_listener_specific_address_wins():
    h = Harness()
    wild = h.listen(addr=0)
    exact = h.listen(addr=LOCAL)
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    sa = h.take()[0]
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1))
    assert exact.accept_pending == 1 and wild.accept_pending == 0


def test_closed_port_gets_rst_ack():
    h = Harness()
    h.peer_sends(0.0, seg("S", PEER_ISS, 0, dport=9))
    h.expect_out(0.0, [dict(flags="R.", seq=0, ack=PEER_ISS + 1, sport=9, dport=RPORT)])


def test_closed_port_data_with_ack_gets_rst_at_ack():
    h = Harness()
    h.peer_sends(0.0, seg("P.", 50, 1234, payload=b"abc", dport=9))
    h.expect_out(0.0, [dict(flags="R", seq=1234, ack=0)])


def test_closed_port_fin_rst_acks_fin_and_data():
    h = Harness()
    h.peer_sends(0.0, seg("F", 50, 0, payload=b"abc", dport=9))
    h.expect_out(0.0, [dict(flags="R.", seq=0, ack=54)])


def test_never_rst_a_rst():
    h = Harness()
    h.peer_sends(0.0, seg("R", 50, 0, dport=9))
    h.peer_sends(0.0, seg("R.", 50, 7, dport=9))
    h.expect_nothing(0.0)


def test_no_rst_to_broadcast():
    h = Harness()
    h.peer_sends(0.0, seg("S", 50, 0, dport=9), dst=LOCAL | 0xFF)
    h.expect_nothing(0.0)


def test_bad_checksum_counted_and_dropped():
    from ustack.wire.ipv4 import Ipv4Packet
    h = Harness()
    raw = bytearray(seg("S", 1, 0, dport=9).emit(REMOTE, LOCAL))
    raw[16] ^= 0xFF
    h.layer.on_packet(Ipv4Packet(REMOTE, LOCAL, 6, memoryview(raw)), 0.0)
    h.expect_nothing(0.0)
    assert h.stack.counters.get("tcp.bad_checksum") == 1


# ---- ports -------------------------------------------------------------------------------------
def test_ephemeral_ports_unique_per_4tuple():
    h = Harness()
    ports = set()
    for _ in range(50):
        s = h.socket()
        s.connect(REMOTE, RPORT, 0.0)
        ports.add(s.local[1])
    assert len(ports) == 50
    assert all(49152 <= p <= 65535 for p in ports)


def test_ephemeral_port_skips_time_wait_tuple():
    h = Harness()
    s, c = h.established()
    port = s.local[1]
    key = c.key
    c.state = State.TIME_WAIT  # pretend the tuple lingers
    assert h.layer.in_use(*key)
    for _ in range(20):
        t = h.socket()
        t.connect(REMOTE, RPORT, 0.0)
        assert t.local[1] != port


def test_explicit_bind_respected_on_connect():
    h = Harness()
    s = h.socket()
    s.bind(0, 3333)
    s.connect(REMOTE, RPORT, 0.0)
    syn = h.take()[0]
    assert syn.sport == 3333 and s.local == (LOCAL, 3333)


def test_explicit_bind_4tuple_in_use():
    h = Harness()
    a = h.socket()
    a.bind(0, 3333, reuse=True)
    a.connect(REMOTE, RPORT, 0.0)
    b = h.socket()
    b.bind(0, 3333, reuse=True)
    with pytest.raises(UsageError) as e:
        b.connect(REMOTE, RPORT, 0.0)
    assert e.value.reason is Reason.ADDR_IN_USE


def test_ephemeral_port_not_bindable_while_connected():
    h = Harness()
    s, _ = h.connect()
    t = h.socket()
    with pytest.raises(UsageError):
        t.bind(LOCAL, s.local[1])


def test_port_released_after_close():
    h = Harness()
    s = h.socket()
    s.bind(0, 3333)
    s.close(0.0)
    t = h.socket()
    t.bind(0, 3333)


def test_isn_is_keyed_hash_plus_clock():
    g = IsnGenerator(b"k" * 32)
    a = g.isn(1, 2, 3, 4, 0.0)
    assert g.isn(1, 2, 3, 4, 1.0) == (a + 250_000) & 0xFFFFFFFF
    assert g.isn(1, 2, 3, 5, 0.0) != a
    assert IsnGenerator(b"j" * 32).isn(1, 2, 3, 4, 0.0) != a


def test_isn_differs_between_connections():
    h = Harness()
    _, s1 = h.connect(port=1)
    _, s2 = h.connect(port=2)
    assert s1.seq != s2.seq


def test_connect_unreachable_raises_net_unreach():
    h = Harness()
    s = h.socket()
    with pytest.raises(UsageError) as e:
        s.connect(FAR, 80, 0.0)
    assert e.value.reason is Reason.NET_UNREACH
    h.expect_nothing(0.0)


@pytest.mark.parametrize("flags", ["SF", "SF.", "SFP"])
def test_syn_fin_to_listener_is_dropped(flags):
    """A SYN with FIN (an old scanner trick) opens nothing, like Linux (tcp_rcv_state_process:
    LISTEN discards a SYN carrying FIN); with ACK it is a bad ACK (RST)."""
    h = Harness()
    lst = h.listen()
    h.peer_sends(0.0, seg(flags, PEER_ISS, 0 if "." not in flags else 777, payload=b"x"))
    out = h.out(0.0)
    assert not h.layer.conns and lst.accept_pending == 0
    if "." in flags:
        assert [s.flags for s in out] == [0x04]  # RST for the unacceptable ACK, nothing opened
    else:
        assert out == []
        assert h.stack.counters.get("tcp.listen_syn_fin") == 1
    h.out(30.0)
    assert not h.layer.conns and h.stack.counters.get("tcp.passive_open") == 0
