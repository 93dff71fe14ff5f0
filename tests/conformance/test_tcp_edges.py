"""TCP edge cases: SYN-SENT checks, listener queues, trimming, FIN with data, bad checksums,
retransmission and fast retransmit. Both DUTs unless a case says why not."""

import time

import pytest

from tests.conformance.bench import TCP, option

pytestmark = pytest.mark.netns

PORT = 8080


def establish(dut, bench, port=PORT):
    lsock = dut.listen(port)
    flow = bench.tcp(port)
    flow.handshake()
    conn = dut.accept(lsock, within=2.0)
    assert conn is not None
    return flow, conn


def dut_syn(dut, bench, port):
    """Start a DUT connect to the bench; returns (socket, flow positioned after the SYN)."""
    s = dut.connect(bench.ip, port)
    pkt = bench.expect(lambda p: TCP in p and p[TCP].dport == port and p[TCP].flags == 0x02, within=2.0)
    assert pkt is not None, f"no SYN from connect():\n{bench.describe_seen()}"
    syn = pkt[TCP]
    flow = bench.tcp(syn.sport, port)
    flow.rcv_nxt = (syn.seq + 1) & 0xFFFFFFFF
    return s, flow, syn


# ------------------------------------------------------------------ SYN-SENT (RFC 9293 3.10.7.3)

def test_synack_with_unacceptable_ack_gets_rst_and_connect_continues(dut, bench):
    s, flow, syn = dut_syn(dut, bench, 7002)
    bad_ack = (syn.seq + 1000) & 0xFFFFFFFF
    flow.send("SA", ack=bad_ack, options=[("MSS", 1460)])
    rst = flow.expect("R", within=2.0, seq=bad_ack, track=False)
    assert rst is not None, f"no RST <SEQ=SEG.ACK> for a bad SYN-ACK:\n{bench.describe_seen()}"
    assert dut.error(s) is None  # still connecting
    flow.snd_nxt = flow.iss
    flow.send("SA", options=[("MSS", 1460)])  # now a good one completes the handshake
    assert flow.expect("A", within=3.0, ack=flow.snd_nxt) is not None, bench.describe_seen()


def test_rst_without_ack_in_syn_sent_is_ignored(dut, bench):
    s, flow, syn = dut_syn(dut, bench, 7003)
    flow.send("R", seq=0)
    time.sleep(0.2)
    assert dut.error(s) is None
    flow.send("SA", options=[("MSS", 1460)])
    assert flow.expect("A", within=3.0, ack=flow.snd_nxt) is not None, bench.describe_seen()


# ------------------------------------------------------------------ listener queues

@pytest.mark.parametrize("dut", ["ustack"], indirect=True)
def test_syn_to_full_accept_queue_is_refused(dut, bench):
    """Winsock behaviour (TCP issue): a full accept queue answers a new SYN with RST, so the
    client sees 'connection refused'. Linux drops the SYN silently instead (the client retries)."""
    dut.listen(PORT, backlog=1)
    first = bench.tcp(PORT)
    first.handshake()
    time.sleep(0.1)
    rsts = 0
    for _ in range(3):  # the queue holds `backlog` or slightly more: keep knocking
        flow = bench.tcp(PORT)
        flow.send("S", options=[("MSS", 1460)])
        seg = flow.next_segment(within=2.0)
        if seg is not None and seg.flags & 0x04:
            assert seg.ack == (flow.iss + 1) & 0xFFFFFFFF
            rsts += 1
            break
        if seg is not None and seg.flags & 0x12 == 0x12:
            flow.send("A")
    assert rsts == 1, f"no RST for a SYN to a full accept queue:\n{bench.describe_seen()}"


def test_closing_listener_resets_unaccepted_connections(dut, bench):
    lsock = dut.listen(PORT)
    flow = bench.tcp(PORT)
    flow.handshake()
    time.sleep(0.1)  # the connection is in the accept queue, never accepted
    dut.close(lsock)
    rst = flow.expect(None, within=2.0)
    assert rst is not None and rst.flags & 0x04, \
        f"no RST to an unaccepted connection:\n{bench.describe_seen()}"
    assert rst.seq == flow.rcv_nxt


def test_syn_with_fin_to_a_listener_opens_nothing(dut, bench):
    """Issue 15: a SYN+FIN (a scan, or a forgery) gets no SYN-ACK and no connection; Linux drops
    it in LISTEN, so does ustack. A plain SYN afterwards still works."""
    lsock = dut.listen(PORT)
    flow = bench.tcp(PORT)
    flow.send("SF", b"x", options=[("MSS", 1460)])
    assert bench.expect_nothing(flow.matches, within=0.5), f"{dut.name}:\n{bench.describe_seen()}"
    assert dut.accept(lsock, within=0.3) is None
    other = bench.tcp(PORT)
    other.handshake()
    assert dut.accept(lsock, within=2.0) is not None


def test_fin_waits_for_a_zero_window_to_open(dut, bench):
    """Issue 15: the FIN takes a sequence number of the peer's window; with the window closed the
    DUT holds it (Linux: tcp_snd_wnd_test) and sends it once the window opens."""
    flow, conn = establish(dut, bench)
    assert dut.send(conn, b"w" * 100) == 100
    data = flow.expect("PA", within=2.0)
    assert data is not None, bench.describe_seen()
    flow.send("A", window=0)  # all 100 bytes arrived, window closed
    time.sleep(0.1)
    dut.close(conn)
    fin = bench.expect(lambda p: flow.matches(p) and p[TCP].flags & 0x01, within=0.8)
    assert fin is None, f"{dut.name}: FIN into a zero window:\n{bench.describe_seen()}"
    flow.send("A", window=1000)
    fin = flow.expect(None, within=2.0)
    while fin is not None and not fin.flags & 0x01:
        fin = flow.expect(None, within=2.0)
    assert fin is not None and fin.seq == (data.seq + 100) & 0xFFFFFFFF, bench.describe_seen()


def test_syn_cookie_beyond_a_full_syn_queue_makes_a_working_connection(dut, bench):
    """Issue 10: with the SYN queue full (300 half-open SYNs: above ustack's 256 and Linux's
    listen backlog), a SYN still gets a SYN-ACK (a cookie: the window scale and SACK it offers
    travel in the TSval, under the connection's timestamp offset, so they cannot be read off the
    wire) and the final ACK, carrying data, makes a working connection."""
    lsock = dut.listen(PORT)
    for i in range(300):
        bench.tcp(PORT, sport=30000 + i).send("S", options=[("MSS", 1460)])
    bench.drain(0.3)
    flow = bench.tcp(PORT, sport=29000)
    flow.send("S", options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)), ("NOP", None),
                            ("WScale", 7)])
    synack = flow.expect("SA", within=2.0, ack=flow.snd_nxt)
    assert synack is not None, f"{dut.name}: no SYN-ACK beyond the SYN queue:\n{bench.describe_seen()}"
    tsval, tsecr = option(synack, "Timestamp")
    assert tsecr == 12345, dut.name
    assert option(synack, "WScale") is not None and option(synack, "SAckOK") is not None
    flow.send("PA", b"via cookie", options=[("NOP", None), ("NOP", None), ("Timestamp", (12346, tsval))])
    conn = dut.accept(lsock, within=2.0)
    assert conn is not None, f"{dut.name}: the cookie ACK made no connection:\n{bench.describe_seen()}"
    assert dut.recv(conn, within=1.0) == b"via cookie"


# ------------------------------------------------------------------ segment text

def test_partly_old_segment_is_trimmed_and_new_part_delivered(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("PA", b"hello ")
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None
    flow.send("PA", b"o world", seq=flow.snd_nxt - 2)  # "o " again, then 5 new bytes
    flow.snd_nxt = (flow.snd_nxt + 5) & 0xFFFFFFFF
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None, bench.describe_seen()
    got = b""
    end = time.monotonic() + 2.0
    while len(got) < 12 and time.monotonic() < end:
        got += dut.recv(conn, within=0.5) or b""
    assert got == b"hello world", got


def test_fin_with_data_delivers_then_eof(dut, bench):
    flow, conn = establish(dut, bench)
    flow.send("FPA", b"last words")
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None, bench.describe_seen()
    assert dut.recv(conn, within=1.0) == b"last words"
    assert dut.recv(conn, within=1.0) == b""


def test_bare_fin_ahead_of_missing_data_is_delivered_when_the_hole_fills(dut, bench):
    """Issue 15: data (lost), then a bare FIN after it; when the data is retransmitted in order
    the DUT acknowledges data and FIN at once and the application sees EOF, not one RTO later."""
    flow, conn = establish(dut, bench)
    start = flow.snd_nxt
    flow.send("FA", seq=(start + 6) & 0xFFFFFFFF)  # FIN after 6 bytes the DUT has not seen
    dup = flow.expect("A", within=2.0, ack=start)
    assert dup is not None, f"{dut.name}: no duplicate ACK for the early FIN:\n{bench.describe_seen()}"
    flow.send("PA", b"before")  # the hole, filled in order
    ack = flow.expect("A", within=0.5, ack=(start + 7) & 0xFFFFFFFF)
    assert ack is not None, f"{dut.name}: data and FIN not ACKed at once:\n{bench.describe_seen()}"
    assert dut.recv(conn, within=1.0) == b"before"
    assert dut.recv(conn, within=0.5) == b""


def test_data_with_bad_tcp_checksum_is_dropped(dut, bench):
    flow, conn = establish(dut, bench)
    raw = bytearray(bytes(flow.segment("PA", b"corrupt")))
    raw[36] ^= 0x5A  # TCP checksum
    bench.send(bytes(raw))
    assert bench.expect_nothing(flow.matches, within=0.5), bench.describe_seen()
    assert dut.recv(conn, within=0.2) is None
    flow.send("PA", b"intact")
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None
    assert dut.recv(conn, within=1.0) == b"intact"


# ------------------------------------------------------------------ retransmission

def test_unacknowledged_data_is_retransmitted(dut, bench):
    flow, conn = establish(dut, bench)
    assert dut.send(conn, b"r" * 100) == 100
    first = flow.expect("A", within=2.0, track=False)
    assert first is not None and len(bytes(first.payload)) == 100
    again = flow.expect("A", within=4.0, seq=first.seq, track=False)  # a tail-loss probe or an RTO
    assert again is not None, f"no retransmission within 4 s:\n{bench.describe_seen()}"
    assert bytes(again.payload) == bytes(first.payload)


def test_three_duplicate_acks_trigger_fast_retransmit(dut, bench):
    flow, conn = establish(dut, bench)
    data = bytes(range(256)) * 45  # 8 segments of 1460 fit the initial window (RFC 6928: 10)
    assert dut.send(conn, data) == len(data)
    segs = []
    end = time.monotonic() + 2.0
    while len(segs) < 8 and time.monotonic() < end:
        seg = flow.expect("A", within=1.0, track=False)
        if seg is not None and bytes(seg.payload):
            segs.append(seg)
    assert len(segs) == 8, f"expected 8 data segments in the initial window:\n{bench.describe_seen()}"
    first_end = (segs[0].seq + len(bytes(segs[0].payload))) & 0xFFFFFFFF
    # One ACK of the first segment, then three duplicates (segments 3-5 "arrived"): the second
    # is lost. (With fewer than 4 segments outstanding Linux takes 3 dupacks as reordering.)
    before = dut.retransmit_causes()
    for _ in range(4):
        flow.send("A", ack=first_end)
    rtx = flow.expect("A", within=2.0, seq=segs[1].seq, track=False)
    assert rtx is not None, f"no retransmission of the lost segment:\n{bench.describe_seen()}"
    after = dut.retransmit_causes()
    # the DUT's own account: its retransmission timer did not fire, so the dupACKs did it
    assert after["timeout"] == before["timeout"], f"an RTO, not fast retransmit: {before} -> {after}"
