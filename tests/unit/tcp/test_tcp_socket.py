"""TcpSocket per docs/contracts.md: usage errors raise at once, peer trouble sets .error."""

from __future__ import annotations

import pytest
from tcphelpers import LOCAL, LPORT, OTHER, PEER_ISS, REMOTE, RPORT, Harness, seg

from ustack.core import events as ev
from ustack.core.errors import UsageError
from ustack.core.reasons import Reason
from ustack.tcp import State, TcpConfig, TcpLayer


def reason(fn, *a):
    with pytest.raises(UsageError) as e:
        fn(*a)
    return e.value.reason


def test_layer_registers_with_stack():
    h = Harness()
    assert h.stack.tcp is h.layer and h.stack.registered == [h.layer]
    assert h.layer.proto == 6


def test_layer_takes_config_from_stack_or_default():
    from tcphelpers import FakeStack
    st = FakeStack(None)
    assert isinstance(TcpLayer(st).config, TcpConfig)
    cfg = TcpConfig(msl_s=1.0)
    st2 = FakeStack(cfg)
    assert TcpLayer(st2).config is cfg


def test_new_socket_state():
    h = Harness()
    s = h.socket()
    assert s.state is State.CLOSED and s.local is None and s.remote is None and s.error is None
    assert s.proto == 6 and s.writable_bytes == 0 and s.readable_bytes == 0


def test_connect_while_pending_already():
    h = Harness()
    s, _ = h.connect()
    assert reason(s.connect, REMOTE, RPORT, 0.0) is Reason.ALREADY


def test_connect_when_connected_is_connected():
    h = Harness()
    s, c = h.established()
    assert reason(s.connect, REMOTE, RPORT, 0.0) is Reason.IS_CONNECTED
    s.shutdown(2, 0.0)
    assert reason(s.connect, REMOTE, RPORT, 0.0) is Reason.IS_CONNECTED


def test_connect_on_accepted_is_connected():
    h = Harness()
    _, s, _ = h.accepted()
    assert reason(s.connect, REMOTE, RPORT, 0.0) is Reason.IS_CONNECTED


def test_connect_on_listener_invalid():
    h = Harness()
    lst = h.listen()
    assert reason(lst.connect, REMOTE, RPORT, 0.0) is Reason.INVALID


@pytest.mark.parametrize("addr,port", [(0, 80), (REMOTE, 0)])
def test_connect_zero_address_or_port(addr, port):
    h = Harness()
    assert reason(h.socket().connect, addr, port, 0.0) is Reason.ADDR_NOT_AVAIL


def test_connect_broadcast_not_avail():
    h = Harness()
    assert reason(h.socket().connect, 0xFFFFFFFF, 80, 0.0) is Reason.ADDR_NOT_AVAIL


def test_listen_unbound_invalid():
    h = Harness()
    assert reason(h.socket().listen, 5) is Reason.INVALID


def test_listen_connected_is_connected():
    h = Harness()
    s, _ = h.established()
    assert reason(s.listen, 5) is Reason.IS_CONNECTED


def test_listen_twice_updates_backlog():
    h = Harness()
    lst = h.listen(backlog=2)
    lst.listen(7)
    assert lst.listener.backlog == 7


def test_accept_not_listening_invalid():
    h = Harness()
    assert reason(h.socket().accept) is Reason.INVALID


def test_bind_foreign_address_not_avail():
    h = Harness()
    assert reason(h.socket().bind, OTHER, 80) is Reason.ADDR_NOT_AVAIL


def test_bind_twice_invalid():
    h = Harness()
    s = h.socket()
    s.bind(0, 5000)
    assert reason(s.bind, 0, 5001) is Reason.INVALID


def test_bind_in_use():
    h = Harness()
    h.socket().bind(0, 5000)
    assert reason(h.socket().bind, 0, 5000) is Reason.ADDR_IN_USE


def test_bind_specific_and_wildcard_coexist():
    h = Harness()
    h.socket().bind(0, 5000)
    h.socket().bind(LOCAL, 5000)


def test_send_unconnected_not_connected():
    h = Harness()
    assert reason(h.socket().send, b"x", 0.0) is Reason.NOT_CONNECTED


def test_send_recv_while_pending_not_connected():
    h = Harness()
    s, _ = h.connect()
    assert reason(s.send, b"x", 0.0) is Reason.NOT_CONNECTED
    assert reason(s.recv, 10) is Reason.NOT_CONNECTED
    assert s.local[1] != 0  # bound while pending (item 28)


def test_recv_after_shutdown_receive():
    h = Harness()
    s, _ = h.established()
    s.shutdown(0, 0.0)
    assert reason(s.recv, 10) is Reason.SHUTDOWN


def test_shutdown_unconnected_not_connected():
    h = Harness()
    assert reason(h.socket().shutdown, 1, 0.0) is Reason.NOT_CONNECTED
    assert reason(h.listen().shutdown, 1, 0.0) is Reason.NOT_CONNECTED


def test_shutdown_bad_how_invalid():
    h = Harness()
    s, _ = h.established()
    assert reason(s.shutdown, 3, 0.0) is Reason.INVALID


def test_closed_socket_calls_invalid():
    h = Harness()
    s, _ = h.established()
    s.close(0.0)
    assert reason(s.send, b"x", 0.0) is Reason.INVALID
    assert reason(s.recv, 1) is Reason.INVALID
    s.close(0.0)  # idempotent


def test_empty_send_returns_zero():
    h = Harness()
    s, _ = h.established()
    assert s.send(b"", 0.0) == 0
    h.expect_nothing(0.0)


def test_error_persists_until_cleared():
    h = Harness()
    s, syn = h.connect()
    h.peer_sends(0.1, seg("R.", 0, syn.seq + 1, dport=syn.sport))
    assert s.error is Reason.REFUSED and s.error is Reason.REFUSED
    assert s.clear_error() is Reason.REFUSED
    assert s.error is None


def test_events_property():
    h = Harness()
    s, c = h.established()
    assert s.events & ev.WRITE and not s.events & ev.READ
    h.peer_sends(0.1, h.pseg("F.", PEER_ISS + 1, c.iss + 1, payload=b"x"))
    assert s.events & ev.READ and s.events & ev.CLOSE


def test_listener_events_and_accept_event():
    h = Harness()
    lst = h.listen()
    got = []
    lst.watch(lambda sock, bits: got.append(bits))
    assert lst.events == 0
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    sa = h.take()[0]
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1))
    assert got and got[-1] & ev.ACCEPT
    assert lst.events & ev.ACCEPT


def test_watch_none_stops_events():
    h = Harness()
    s, c = h.established()
    s.watch(None)
    h.events.clear()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"x"))
    assert h.events == []


def test_recv_partial_reads():
    h = Harness()
    s, c = h.established()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"abcdef"))
    assert s.recv(2) == b"ab" and s.readable_bytes == 4
    assert s.recv(0) == b""
    assert s.recv(100) == b"cdef"
    assert s.recv(100) == b"" and not s.at_eof


def test_rcvbuf_option_changes_window():
    h = Harness(rcvbuf=1000)
    s, c = h.established()
    s.rcvbuf = 50000
    h.out(0.0)
    assert c.rcv.advertise() == 50000


def test_remote_after_reset_still_known():
    h = Harness()
    s, c = h.established()
    h.peer_sends(0.1, h.pseg("R", PEER_ISS + 1, 0))
    assert s.remote == (REMOTE, RPORT)


def test_close_releases_claim_after_time_wait():
    h = Harness(msl_s=1.0)
    s, c = h.established()
    port = s.local[1]
    s.close(0.0)
    h.take()
    h.peer_sends(0.01, h.pseg("F.", PEER_ISS + 1, c.iss + 2))
    assert [b.port for b in h.stack.tcp_ports.bindings(port)] == [port]
    h.out(3.0)
    assert h.stack.tcp_ports.bindings(port) == []


def test_listener_close_releases_port():
    h = Harness()
    lst = h.listen()
    lst.close(0.0)
    h.listen()
    assert LPORT


def test_peek_does_not_consume():
    h = Harness()
    s, c = h.established()
    h.peer_sends(0.1, h.pseg(".", PEER_ISS + 1, c.iss + 1, payload=b"abcdef"))
    assert s.peek(3) == b"abc" and s.peek(100) == b"abcdef"
    assert s.recv(100) == b"abcdef"
    assert s.peek(10) == b""


def test_syn_rst_retry_interval_per_socket():
    h = Harness()
    s = h.socket()
    s.syn_rst_retries = 1
    s.syn_rst_retry_s = 2.0
    s.connect(REMOTE, RPORT, 0.0)
    syn = h.take()[0]
    h.peer_sends(0.01, seg("R.", 0, syn.seq + 1, dport=syn.sport))
    h.expect_nothing(2.0)
    h.expect_out(2.01, [dict(flags="S")])


def test_readable_property():
    h = Harness()
    lst = h.listen()
    assert not lst.readable
    h.peer_sends(0.0, seg("S", PEER_ISS, 0))
    sa = h.take()[0]
    h.peer_sends(0.0, seg(".", PEER_ISS + 1, sa.seq + 1))
    assert lst.readable
    s = lst.accept()
    assert not s.readable
    h.peer_sends(0.1, seg("F.", PEER_ISS + 1, sa.seq + 1))
    assert s.readable and s.at_eof


def test_connection_info_snapshot():
    h = Harness()
    s, c = h.established()
    s.send(b"x" * 100, 0.0)
    i = c.info()
    assert i["state"] == "ESTABLISHED" and i["in_flight"] == 100 and i["mss"] == 536
    assert i["cc"] == "cubic" and i["error"] is None and i["segs_out"] == 3  # SYN, ACK, data


def test_send_overcommit_takes_all_while_not_full():
    """Plain send takes what fits in sndbuf; with overcommit (Windows' send) all of it while the
    buffer is not full, leaving the socket unwritable until it drains; a full buffer takes 0."""
    h = Harness()
    s, _ = h.established(window=0)  # zero window: nothing leaves, the buffer only fills
    s.sndbuf = 1000
    assert s.send(b"a" * 600, h.now) == 600
    assert s.send(b"b" * 600, h.now) == 400  # only what fits
    assert s.writable_bytes == 0
    assert s.send(b"c" * 10, h.now, overcommit=True) == 0  # full: nothing taken
    h2 = Harness()
    s2, _ = h2.established(window=0)
    s2.sndbuf = 1000
    assert s2.send(b"a" * 600, h2.now) == 600
    assert s2.send(b"b" * 5000, h2.now, overcommit=True) == 5000  # not full: all of it
    assert s2.writable_bytes == 0 and s2.sndbuf == 1000
