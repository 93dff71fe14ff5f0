"""TCP conformance: the bench crafts segments, the DUT (ustack or Linux) must answer like RFC 9293.

Each case runs against both DUTs (see bench.py for the arrangement). The bench's SYN carries
only an MSS option, so the DUT uses no window scaling, timestamps or SACK on these flows.
"""

import socket
import time

import pytest

from tests.conformance.bench import TCP, option

pytestmark = pytest.mark.netns

PORT = 8080
CLOSED = 9


def establish(dut, bench, port=PORT, rcvbuf=None):
    """Bench connects to a DUT listener and the DUT accepts: returns (flow, dut socket)."""
    lsock = dut.listen(port, rcvbuf=rcvbuf)
    flow = bench.tcp(port)
    flow.handshake()
    conn = dut.accept(lsock, within=2.0)
    assert conn is not None, f"{dut.name}: handshake completed on the wire but accept() got nothing"
    return flow, conn


# ------------------------------------------------------------------ closed ports (RFC 9293 3.10.7.1)

def test_syn_to_closed_port_gets_rst_ack(dut, bench):
    flow = bench.tcp(CLOSED)
    flow.send("S", options=[("MSS", 1460)])
    rst = flow.expect("RA", within=2.0)
    assert rst is not None, f"no RST|ACK for a SYN to a closed port:\n{bench.describe_seen()}"
    assert rst.seq == 0
    assert rst.ack == (flow.iss + 1) & 0xFFFFFFFF
    assert len(bytes(rst.payload)) == 0


def test_syn_with_data_to_closed_port_acks_all_of_it(dut, bench):
    flow = bench.tcp(CLOSED)
    flow.send("S", payload=b"x" * 10)
    rst = flow.expect("RA", within=2.0)
    assert rst is not None, bench.describe_seen()
    assert rst.ack == (flow.iss + 1 + 10) & 0xFFFFFFFF  # SEG.SEQ + SEG.LEN, SYN counted


def test_ack_to_closed_port_gets_rst_with_seq_from_ack(dut, bench):
    flow = bench.tcp(CLOSED)
    flow.send("A", ack=123456789)
    rst = flow.expect("R", within=2.0)
    assert rst is not None, f"no bare RST for an ACK to a closed port:\n{bench.describe_seen()}"
    assert rst.seq == 123456789


def test_rst_to_closed_port_is_not_answered(dut, bench):
    flow = bench.tcp(CLOSED)
    flow.send("R")
    flow.send("RA", ack=42)
    assert bench.expect_nothing(flow.matches, within=0.5), bench.describe_seen()


# ------------------------------------------------------------------ passive open

def test_syn_to_listener_gets_synack_with_mss(dut, bench):
    lsock = dut.listen(PORT)
    flow = bench.tcp(PORT)
    flow.send("S", options=[("MSS", 1460)])
    synack = flow.expect("SA", within=2.0)
    assert synack is not None, f"no SYN|ACK from a listener:\n{bench.describe_seen()}"
    assert synack.ack == (flow.iss + 1) & 0xFFFFFFFF
    assert option(synack, "MSS") == 1460  # MTU 1500 - 40
    assert synack.window > 0
    flow.send("A")
    assert dut.accept(lsock, within=2.0) is not None


def test_synack_mss_option_does_not_exceed_interface_mtu_with_large_peer_mss(dut, bench):
    dut.listen(PORT)
    flow = bench.tcp(PORT)
    flow.send("S", options=[("MSS", 9000)])
    synack = flow.expect("SA", within=2.0)
    assert synack is not None, bench.describe_seen()
    assert option(synack, "MSS") == 1460


def test_data_is_acked_and_delivered(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("PA", b"hello conformance")
    ack = flow.expect("A", within=2.0, ack=flow.snd_nxt)
    assert ack is not None, bench.describe_seen()
    assert dut.recv(conn, within=1.0) == b"hello conformance"


def test_dut_data_reaches_bench_and_respects_bench_mss(dut, bench):
    flow, conn = establish(dut, bench)
    flow.window = 65535
    assert dut.send(conn, b"z" * 3000) == 3000
    got = b""
    end = time.monotonic() + 2.0
    while len(got) < 3000 and time.monotonic() < end:
        seg = flow.next_segment(within=1.0)
        if seg is None:
            break
        data = bytes(seg.payload)
        assert len(data) <= 1460
        got += data
        if data:
            flow.send("A")
    assert got == b"z" * 3000


# ------------------------------------------------------------------ RFC 5961

def test_rst_in_window_with_wrong_seq_gets_challenge_ack(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("R", seq=flow.snd_nxt + 100)  # in the window, not RCV.NXT
    ack = flow.expect("A", within=2.0)
    assert ack is not None, f"no challenge ACK:\n{bench.describe_seen()}"
    assert ack.seq == flow.rcv_nxt and ack.ack == flow.snd_nxt
    # The connection survived: data still flows.
    flow.send("PA", b"still here")
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None
    assert dut.recv(conn, within=1.0) == b"still here"
    assert dut.error(conn) is None


def test_rst_at_rcv_nxt_resets_the_connection(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("R")
    assert bench.expect_nothing(flow.matches, within=0.3), "a RST must not be answered"
    end = time.monotonic() + 2.0
    while dut.error(conn) is None and time.monotonic() < end:
        time.sleep(0.02)
    assert dut.error(conn) == "reset"


def test_rst_outside_window_is_ignored(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("R", seq=flow.snd_nxt + (1 << 30))
    time.sleep(0.2)
    assert dut.error(conn) is None
    flow.send("PA", b"ok")
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None


def test_syn_on_established_connection_gets_challenge_ack(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("S", seq=flow.snd_nxt + 10)
    ack = flow.expect("A", within=2.0)
    assert ack is not None, f"no challenge ACK for an in-window SYN:\n{bench.describe_seen()}"
    assert ack.seq == flow.rcv_nxt and ack.ack == flow.snd_nxt
    assert dut.error(conn) is None


def _pure_acks_per_flow(bench, flows, within):
    counts = {f.sport: 0 for f in flows}
    end = time.monotonic() + within
    while (left := end - time.monotonic()) > 0:
        pkt = bench.expect(None, left)
        if pkt is None:
            break
        if TCP in pkt and pkt[TCP].dport in counts and int(pkt[TCP].flags) & 0x17 == 0x10:
            counts[pkt[TCP].dport] += 1
    return counts


def test_challenge_acks_of_one_connection_leave_anothers_alone(dut, bench):
    """Issue 10 (CVE-2016-5696): 300 spoofed in-window RSTs on a victim connection must not use up
    the challenge ACKs of another connection (an off-path attacker's own, which counts them).
    Linux limits per socket (one per tcp_invalid_ratelimit, 500 ms); ustack per connection with a
    random budget a second. A host-wide budget (ustack before: 100/s) fails this."""
    lsock = dut.listen(PORT)
    victim, observer = bench.tcp(PORT), bench.tcp(PORT)
    victim.handshake()
    v = dut.accept(lsock, within=2.0)
    observer.handshake()
    o = dut.accept(lsock, within=2.0)
    assert v is not None and o is not None
    bench.drain()
    for i in range(300):
        victim.send("R", seq=victim.snd_nxt + 100 + i)
    for i in range(20):
        observer.send("R", seq=observer.snd_nxt + 100 + i)
    counts = _pure_acks_per_flow(bench, [victim, observer], 1.0)
    assert counts[observer.sport] >= 1, f"{dut.name}: {counts}\n{bench.describe_seen()}"
    assert 1 <= counts[victim.sport] < 100, f"{dut.name}: the victim is limited too: {counts}"
    assert dut.error(v) is None and dut.error(o) is None


# ------------------------------------------------------------------ acceptability

def test_out_of_window_data_gets_ack_and_is_dropped(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("PA", b"far away", seq=flow.snd_nxt + (1 << 20))
    ack = flow.expect("A", within=2.0)
    assert ack is not None, f"no ACK for out-of-window data:\n{bench.describe_seen()}"
    assert ack.seq == flow.rcv_nxt and ack.ack == flow.snd_nxt  # nothing was accepted
    assert dut.recv(conn, within=0.3) is None


def test_old_duplicate_data_gets_ack(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("PA", b"first")
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None
    flow.send("PA", b"first", seq=flow.snd_nxt - 5)  # a retransmission of acknowledged data
    ack = flow.expect("A", within=2.0)
    assert ack is not None and ack.ack == flow.snd_nxt
    assert dut.recv(conn, within=1.0) == b"first"
    assert dut.recv(conn, within=0.3) is None


def test_out_of_order_data_is_held_and_delivered_in_order(dut, bench):
    flow, conn = establish(dut, bench)
    base = flow.snd_nxt
    flow.send("PA", b"world", seq=base + 6)
    dup = flow.expect("A", within=2.0)
    assert dup is not None and dup.ack == base  # duplicate ACK for the hole
    flow.send("PA", b"hello ", seq=base)
    flow.snd_nxt = base + 11
    assert flow.expect("A", within=2.0, ack=base + 11) is not None, bench.describe_seen()
    got = b""
    end = time.monotonic() + 2.0
    while len(got) < 11 and time.monotonic() < end:
        got += dut.recv(conn, within=0.5) or b""
    assert got == b"hello world"


def test_data_after_fin_is_not_delivered(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("PA", b"abc")
    flow.send("FA")
    fin_end = flow.snd_nxt
    assert flow.expect("A", within=2.0, ack=fin_end) is not None, bench.describe_seen()
    flow.send("PA", b"late")  # beyond the FIN: must never reach the application
    seg = flow.next_segment(within=0.5)
    assert seg is None or seg.ack == fin_end, f"DUT acknowledged data after FIN: ack={seg.ack}"
    got = b""
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        chunk = dut.recv(conn, within=0.5)
        if not chunk:  # b"" is EOF
            assert chunk == b"", "no EOF after the peer's FIN"
            break
        got += chunk
    assert got == b"abc"


# ------------------------------------------------------------------ windows

def test_zero_window_probe_is_answered_without_taking_the_byte(dut, bench):
    flow, conn = establish(dut, bench, rcvbuf=4096)
    window = flow.peer_window
    for _ in range(60):  # fill the DUT's receive buffer; its application never reads
        if window == 0:
            break
        sent = 0
        while sent < window and sent < 8 * 1460:
            n = min(1000, window - sent)
            flow.send("PA", b"w" * n)
            sent += n
        ack = flow.expect("A", within=2.0, ack=flow.snd_nxt)
        if ack is None:  # DUT took less than offered: use its latest ACK
            ack = flow.next_segment(within=0.5)
            assert ack is not None, f"DUT stopped acknowledging:\n{bench.describe_seen()}"
            flow.snd_nxt = ack.ack
        window = ack.window
    assert window == 0, f"DUT never closed its window (last {window})"
    flow.send("PA", b"?", seq=flow.snd_nxt)  # the probe: one byte at SND.NXT, not counted
    probe_ack = flow.expect("A", within=2.0)
    assert probe_ack is not None, f"zero-window probe not answered:\n{bench.describe_seen()}"
    assert probe_ack.ack == flow.snd_nxt and probe_ack.window == 0


# ------------------------------------------------------------------ closing

def test_passive_close_sequence(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("FA")
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None
    assert dut.recv(conn, within=1.0) == b""
    dut.close(conn)
    fin = flow.expect("FA", within=2.0, ack=flow.snd_nxt)
    assert fin is not None, f"no FIN after close in CLOSE_WAIT:\n{bench.describe_seen()}"
    flow.send("A")
    assert bench.expect_nothing(flow.matches, within=0.5), "the final ACK must not be answered"


def test_active_close_sends_fin_and_acks_peer_fin(dut, bench):
    flow, conn = establish(dut, bench)
    dut.shutdown(conn, socket.SHUT_WR)
    fin = flow.expect("FA", within=2.0)
    assert fin is not None, bench.describe_seen()
    flow.send("A")
    flow.send("FA")
    last = flow.expect("A", within=2.0, ack=flow.snd_nxt)
    assert last is not None, f"FIN in FIN_WAIT_2 not acknowledged:\n{bench.describe_seen()}"


# ------------------------------------------------------------------ active open

def test_connect_sends_syn_with_mss_and_completes(dut, bench):
    s = dut.connect(bench.ip, 7000)
    flow = bench.tcp(0, 7000)
    syn_pkt = bench.expect(lambda p: TCP in p and p[TCP].dport == 7000 and p[TCP].flags == 0x02, within=2.0)
    assert syn_pkt is not None, f"no SYN from connect():\n{bench.describe_seen()}"
    syn = syn_pkt[TCP]
    assert option(syn, "MSS") == 1460
    flow.dport = syn.sport
    flow.rcv_nxt = (syn.seq + 1) & 0xFFFFFFFF
    flow.send("SA", options=[("MSS", 1460)])
    ack = flow.expect("A", within=2.0, seq=flow.rcv_nxt, ack=flow.snd_nxt)
    assert ack is not None, f"SYN-ACK not acknowledged:\n{bench.describe_seen()}"
    assert dut.send(s, b"hi") == 2
    data = flow.expect("A", within=2.0)
    assert data is not None and bytes(data.payload) == b"hi"


def test_rst_answering_syn_refuses_connect(dut, bench):
    s = dut.connect(bench.ip, 7001)
    end = time.monotonic() + 4.0  # Windows-style stacks retry a refused SYN: answer each one
    while time.monotonic() < end and dut.error(s) is None:
        syn_pkt = bench.expect(lambda p: TCP in p and p[TCP].dport == 7001 and p[TCP].flags & 0x02,
                               within=min(2.0, max(0.05, end - time.monotonic())))
        if syn_pkt is None:
            continue
        syn = syn_pkt[TCP]
        flow = bench.tcp(syn.sport, 7001)
        flow.send("RA", seq=0, ack=syn.seq + 1)
    assert dut.error(s) == "refused"


def test_dut_probes_a_zero_window_and_resumes_when_it_opens(dut, bench):
    lsock = dut.listen(PORT)
    flow = bench.tcp(PORT)
    flow.handshake(window=0)  # the bench's receive window is closed from the start
    data_start = flow.rcv_nxt
    conn = dut.accept(lsock, within=2.0)
    assert conn is not None
    assert dut.send(conn, b"0123456789") == 10
    probe = None
    for _ in range(3):  # the first probe comes after an RTO-like delay
        pkt = bench.expect(flow.matches, within=2.0)
        if pkt is not None:
            probe = pkt[TCP]
            break
    assert probe is not None, f"no zero-window probe within 6 s:\n{bench.describe_seen()}"
    assert len(bytes(probe.payload)) <= 1, "more than one byte sent into a zero window"
    flow.send("A", window=0, ack=data_start)  # answer the probe: still closed, nothing taken
    flow.send("A", window=65535, ack=data_start)  # now open it
    got = bytearray(10)
    have = set()
    end = time.monotonic() + 4.0
    while len(have) < 10 and time.monotonic() < end:
        pkt = bench.expect(flow.matches, within=max(0.05, end - time.monotonic()))
        if pkt is None:
            break
        seg = pkt[TCP]
        data = bytes(seg.payload)
        off = (seg.seq - data_start) & 0xFFFFFFFF
        for k, b in enumerate(data):
            if off + k < 10:
                got[off + k] = b
                have.add(off + k)
        if data:
            flow.send("A", window=65535, ack=(data_start + len(have)) & 0xFFFFFFFF)
    assert len(have) == 10 and bytes(got) == b"0123456789", (sorted(have), bytes(got))


def test_close_with_unread_data_sends_rst(dut, bench):
    """RFC 2525 2.17 / RFC 1122 4.2.2.13: closing with unread received data resets the peer."""
    flow, conn = establish(dut, bench)
    flow.send("PA", b"never read")
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None
    dut.close(conn)
    rst = flow.expect("RA", within=2.0)
    if rst is None:
        rst = flow.expect("R", within=0.1)
    assert rst is not None, f"no RST after close with unread data:\n{bench.describe_seen()}"
    assert rst.seq == flow.rcv_nxt
