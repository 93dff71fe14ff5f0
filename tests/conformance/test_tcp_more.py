"""More TCP conformance: option negotiation (RFC 7323, RFC 2018), MSS and PMTU, RFC 5961 ACK
checks, TIME-WAIT (RFC 1337). Both DUTs unless a case says why one differs."""

import time

import pytest

from tests.conformance.bench import ICMP, IP, TCP, Raw, option

pytestmark = pytest.mark.netns

PORT = 8080


def establish(dut, bench, options, port=PORT):
    lsock = dut.listen(port)
    flow = bench.tcp(port)
    flow.send("S", options=options)
    synack = flow.expect("SA", within=2.0, ack=flow.snd_nxt)
    assert synack is not None, f"no SYN-ACK:\n{bench.describe_seen()}"
    return lsock, flow, synack


def accept(dut, flow, lsock, **kw):
    flow.send("A", **kw)
    conn = dut.accept(lsock, within=2.0)
    assert conn is not None
    return conn


# ------------------------------------------------------------------ option negotiation

def test_synack_carries_no_options_the_syn_did_not_offer(dut, bench):
    _, _, synack = establish(dut, bench, [("MSS", 1460)])
    names = {o[0] for o in synack.options} - {"NOP", "EOL"}
    assert names == {"MSS"}, synack.options  # no WScale, SAckOK or Timestamp unless offered


def test_window_scale_is_answered_when_offered(dut, bench):
    _, _, synack = establish(dut, bench, [("MSS", 1460), ("NOP", None), ("WScale", 7)])
    ws = option(synack, "WScale")
    assert ws is not None and 0 <= ws <= 14


def test_sack_permitted_is_answered_when_offered(dut, bench):
    _, _, synack = establish(dut, bench, [("MSS", 1460), ("SAckOK", b"")])
    assert any(o[0] == "SAckOK" for o in synack.options), synack.options


def test_timestamps_echo_the_syn_tsval(dut, bench):
    _, _, synack = establish(dut, bench, [("MSS", 1460), ("Timestamp", (123456, 0))])
    ts = option(synack, "Timestamp")
    assert ts is not None, synack.options
    assert ts[1] == 123456  # TSecr = the SYN's TSval (RFC 7323 3.2)


def test_out_of_order_data_gets_sack_block_when_negotiated(dut, bench):
    lsock, flow, _ = establish(dut, bench, [("MSS", 1460), ("SAckOK", b"")])
    accept(dut, flow, lsock)
    base = flow.snd_nxt
    flow.send("PA", b"B" * 100, seq=base + 100)
    dup = flow.expect("A", within=2.0, ack=base)
    assert dup is not None, bench.describe_seen()
    sack = option(dup, "SAck")
    assert sack is not None, f"no SACK block in the duplicate ACK: {dup.options}"
    assert tuple(sack[:2]) == ((base + 100) & 0xFFFFFFFF, (base + 200) & 0xFFFFFFFF)


def test_dut_respects_a_small_peer_mss(dut, bench):
    lsock, flow, _ = establish(dut, bench, [("MSS", 536)])
    conn = accept(dut, flow, lsock)
    assert dut.send(conn, b"m" * 3000) == 3000
    sizes = []
    end = time.monotonic() + 2.0
    while sum(sizes) < 3000 and time.monotonic() < end:
        seg = flow.next_segment(within=1.0)
        if seg is None:
            break
        if len(bytes(seg.payload)):
            sizes.append(len(bytes(seg.payload)))
            flow.send("A")
    assert sum(sizes) == 3000, sizes
    assert max(sizes) <= 536, sizes


def test_icmp_fragmentation_needed_lowers_segment_size(dut, bench):
    lsock, flow, _ = establish(dut, bench, [("MSS", 1460)])
    conn = accept(dut, flow, lsock)
    assert dut.send(conn, b"p" * 1460) == 1460
    pkt = bench.expect(lambda p: flow.matches(p) and len(bytes(p[TCP].payload)) == 1460, within=2.0)
    assert pkt is not None, bench.describe_seen()
    assert pkt.flags.DF, "a DUT doing PMTU discovery sets DF"
    quoted = bytes(pkt)[:28 + 20]  # IP header + the TCP header (at least 8 bytes are required)
    bench.send(IP(src=bench.ip, dst=bench.dut_ip) / ICMP(type=3, code=4, nexthopmtu=1000) / Raw(quoted))
    # The unacknowledged 1460 bytes must come again in segments that fit 1000-byte packets.
    got = 0
    end = time.monotonic() + 2.0
    while got < 1460 and time.monotonic() < end:
        seg = flow.next_segment(within=max(0.05, end - time.monotonic()))
        if seg is None:
            break
        n = len(bytes(seg.payload))
        if n:
            assert n <= 1000 - 40, f"segment of {n} bytes after frag-needed with MTU 1000"
            got += n
    assert got >= 1460 - 960, "nothing was retransmitted after the frag-needed message"


def _frag_needed_for(dut, bench, mtu):
    """A DUT connection with 1460 bytes in flight gets an ICMP frag-needed (next-hop `mtu`)
    quoting that segment. Returns (flow, the data segments that follow)."""
    lsock, flow, _ = establish(dut, bench, [("MSS", 1460)])
    conn = accept(dut, flow, lsock)
    assert dut.send(conn, b"p" * 1460) == 1460
    pkt = bench.expect(lambda p: flow.matches(p) and len(bytes(p[TCP].payload)) == 1460, within=2.0)
    assert pkt is not None, bench.describe_seen()
    quoted = bytes(pkt)[:48]
    bench.send(IP(src=bench.ip, dst=bench.dut_ip) / ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(quoted))
    segs = []
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        p = bench.expect(lambda q: flow.matches(q) and len(bytes(q[TCP].payload)) > 0,
                         within=max(0.05, end - time.monotonic()))
        if p is None:
            break
        segs.append(p)
        if sum(len(bytes(x[TCP].payload)) for x in segs) >= 1460:
            break
    return flow, segs


def test_frag_needed_below_552_is_floored_and_sent_without_df(dut, bench):
    """Issue 15: an ICMP claiming a 68-byte next hop must not shrink segments to nothing. Linux
    takes 552 (ip_rt_min_pmtu) and sends without DF (a locked PMTU); ustack does the same."""
    _, segs = _frag_needed_for(dut, bench, 68)
    sizes = [len(bytes(p[TCP].payload)) for p in segs]
    assert sizes and max(sizes) == 552 - 40, (dut.name, sizes)
    assert all(not p.flags.DF for p in segs), (dut.name, [str(p.flags) for p in segs])


def test_frag_needed_quoting_data_not_in_flight_is_ignored(dut, bench):
    """RFC 5927: the quoted sequence number must be of data in flight (SND.UNA..SND.NXT); a
    blind attacker's guess elsewhere changes nothing."""
    lsock, flow, _ = establish(dut, bench, [("MSS", 1460)])
    conn = accept(dut, flow, lsock)
    assert dut.send(conn, b"q" * 1460) == 1460
    pkt = bench.expect(lambda p: flow.matches(p) and len(bytes(p[TCP].payload)) == 1460, within=2.0)
    assert pkt is not None, bench.describe_seen()
    quoted = bytearray(bytes(pkt)[:48])
    quoted[24:28] = ((pkt[TCP].seq + 100_000) & 0xFFFFFFFF).to_bytes(4, "big")
    icmp = ICMP(type=3, code=4, nexthopmtu=1000) / Raw(bytes(quoted))
    bench.send(IP(src=bench.ip, dst=bench.dut_ip) / icmp)
    flow.send("A", ack=(pkt[TCP].seq + 1460) & 0xFFFFFFFF)  # the 1460 bytes arrived
    time.sleep(0.2)
    assert dut.send(conn, b"r" * 1460) == 1460
    nxt = bench.expect(lambda p: flow.matches(p) and len(bytes(p[TCP].payload)) > 0, within=2.0)
    assert nxt is not None and len(bytes(nxt[TCP].payload)) == 1460, (dut.name, bench.describe_seen())


# ------------------------------------------------------------------ RFC 5961 section 5: ACK checks

def test_ack_older_than_the_window_gets_challenge_ack(dut, bench):
    lsock, flow, _ = establish(dut, bench, [("MSS", 1460)])
    conn = accept(dut, flow, lsock)
    flow.send("PA", b"data", ack=(flow.rcv_nxt - (1 << 30)) & 0xFFFFFFFF)
    ack = flow.expect("A", within=2.0)
    assert ack is not None, f"no challenge ACK for an ACK far below SND.UNA:\n{bench.describe_seen()}"
    assert ack.ack == flow.snd_nxt - 4  # the segment was dropped: its data is not acknowledged
    assert dut.recv(conn, within=0.3) is None


def test_ack_for_unsent_data_gets_ack_and_is_dropped(dut, bench):
    """RFC 9293 3.10.7.4: SEG.ACK > SND.NXT -> send an ACK, drop the segment."""
    lsock, flow, _ = establish(dut, bench, [("MSS", 1460)])
    conn = accept(dut, flow, lsock)
    flow.send("PA", b"data", ack=(flow.rcv_nxt + 5000) & 0xFFFFFFFF)
    ack = flow.expect("A", within=2.0)
    assert ack is not None, bench.describe_seen()
    assert ack.ack == flow.snd_nxt - 4 and ack.seq == flow.rcv_nxt
    assert dut.recv(conn, within=0.3) is None


# ------------------------------------------------------------------ TIME-WAIT

def _to_time_wait(dut, bench):
    lsock, flow, _ = establish(dut, bench, [("MSS", 1460)])
    conn = accept(dut, flow, lsock)
    dut.close(conn)
    fin = flow.expect("FA", within=2.0)
    assert fin is not None, bench.describe_seen()
    flow.send("FA")  # ACKs their FIN and sends ours
    last = flow.expect("A", within=2.0, ack=flow.snd_nxt)
    assert last is not None, bench.describe_seen()
    return flow


def test_retransmitted_fin_in_time_wait_is_acked_again(dut, bench):
    flow = _to_time_wait(dut, bench)
    flow.send("FA", seq=flow.snd_nxt - 1)  # our FIN again, as if their ACK was lost
    again = flow.expect("A", within=2.0, ack=flow.snd_nxt)
    assert again is not None, f"FIN retransmission in TIME-WAIT not re-acknowledged:\n{bench.describe_seen()}"


def test_rst_does_not_end_time_wait_rfc1337(dut, bench):
    if dut.name == "linux":
        from ustack.drivers import set_sysctl

        set_sysctl("net.ipv4.tcp_rfc1337", "1")  # Linux's default (0) lets a RST kill TIME-WAIT
    flow = _to_time_wait(dut, bench)
    flow.send("R", seq=flow.snd_nxt)
    time.sleep(0.1)
    flow.send("FA", seq=flow.snd_nxt - 1)
    again = flow.expect(None, within=2.0)
    assert again is not None and not again.flags.R and again.ack == flow.snd_nxt, \
        f"TIME-WAIT did not survive a RST:\n{bench.describe_seen()}"


# ------------------------------------------------------------------ RFC 7323 in use

def test_peer_window_is_scaled_by_its_shift(dut, bench):
    """Our SYN says shift 7, so a window field of 2 means 256 bytes: the DUT sends no more."""
    lsock, flow, _ = establish(dut, bench, [("MSS", 1460), ("NOP", None), ("WScale", 7)])
    conn = accept(dut, flow, lsock, window=2)
    data_start = flow.rcv_nxt
    assert dut.send(conn, b"s" * 2000) == 2000
    sent = 0  # highest byte offset sent (retransmissions and probes resend the same bytes)
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        seg = flow.next_segment(within=max(0.05, end - time.monotonic()))
        if seg is None:
            break
        sent = max(sent, (seg.seq + len(bytes(seg.payload)) - data_start) & 0xFFFFFFFF)
    assert 0 < sent <= 256, f"DUT sent {sent} bytes into a 256-byte window"


def test_paws_drops_a_segment_with_an_old_timestamp(dut, bench):
    """RFC 7323 5.3: TSval older than TS.Recent -> drop, ACK, no data delivered."""
    lsock, flow, synack = establish(dut, bench, [("MSS", 1460), ("Timestamp", (1000, 0))])
    dut_ts = option(synack, "Timestamp")
    assert dut_ts is not None
    ts_ack = [("NOP", None), ("NOP", None), ("Timestamp", (1001, dut_ts[0]))]
    conn = accept(dut, flow, lsock, options=ts_ack)
    flow.send("PA", b"fresh", options=[("NOP", None), ("NOP", None), ("Timestamp", (5000, dut_ts[0]))])
    assert flow.expect("A", within=2.0, ack=flow.snd_nxt) is not None, bench.describe_seen()
    assert dut.recv(conn, within=1.0) == b"fresh"
    flow.send("PA", b"stale", options=[("NOP", None), ("NOP", None), ("Timestamp", (4000, dut_ts[0]))])
    ack = flow.expect("A", within=2.0)
    assert ack is not None, f"no ACK for a PAWS-rejected segment:\n{bench.describe_seen()}"
    assert ack.ack == flow.snd_nxt - 5  # "stale" not accepted
    ts = option(ack, "Timestamp")
    assert ts is not None and ts[1] == 5000  # TS.Recent stayed at the newest valid TSval
    assert dut.recv(conn, within=0.3) is None
