"""Hostile receive patterns against both DUTs: the memory a connection holds stays bounded
(ustack: its true-size accounting; Linux: the socket's skmem), and the connection still works.
docs/robustness.md "Memory and queues" quotes the numbers these cases print (`-s`)."""

import re
import socket
import subprocess
import time

import pytest

PORT = 7300
RCVBUF = 65536
FLOOD = 3000  # 1-byte segments, each behind its own 1-byte hole


def _memory(dut, s) -> tuple[int, int]:
    """(bytes held by the connection's receive queues, the bound they must stay within)."""
    if dut.name == "linux":
        out = subprocess.run(["ss", "-tmnH", "state", "established", f"sport = :{PORT}"],
                             capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"skmem:\(r(\d+),rb(\d+)", out)
        assert m, out
        return int(m.group(1)), int(m.group(2))
    return dut.host.call(lambda: (s.conn.rcv.mem, s.conn.rcv.mem_limit))


def _flood(bench, flow, base: int, count: int) -> None:
    """1-byte segments at base+2, base+4, ...: never adjacent, all behind the hole at base."""
    from ustack.wire import Ipv4Packet, ip_int
    from ustack.wire.tcp import ACK, TcpSegment

    src, dst = ip_int(bench.ip), ip_int(bench.dut_ip)
    for i in range(1, count + 1):
        seg = TcpSegment(flow.sport, flow.dport, (base + 2 * i) & 0xFFFFFFFF, flow.rcv_nxt, ACK,
                         flow.window, b"z")
        bench.send(Ipv4Packet(src, dst, 6, seg.emit(src, dst)).emit())
        if i % 200 == 0:
            bench.drain(0.002)  # the DUT answers each with a duplicate ACK: keep our queue short
            time.sleep(0.005)   # and let a DUT behind a TUN queue keep up


def _drops(dut) -> str:
    if dut.name == "linux":
        out = subprocess.run(["nstat", "-az"], capture_output=True, text=True, timeout=10).stdout
        names = ("TcpExtTCPOFOQueue", "TcpExtTCPOFODrop", "TcpExtTCPOFOMerge", "TcpExtPruneCalled",
                 "TcpExtOfoPruned", "TcpExtRcvPruned", "TcpExtTCPRcvQDrop")
        vals = dict(line.split()[:2] for line in out.splitlines() if line.split()[:1] and
                    line.split()[0] in names)
        return ", ".join(f"{k[6:]} {v}" for k, v in vals.items())
    c = dut.counters()
    return ", ".join(f"{k} {c[k]}" for k in ("tcp.ooo_in", "tcp.ooo_drop", "tcp.ooo_mem_drop") if k in c)


@pytest.mark.parametrize("dut", ["ustack", "linux"], indirect=True)
def test_one_byte_out_of_order_flood_stays_bounded(dut, bench):
    lsock = dut.listen(PORT, rcvbuf=RCVBUF)
    flow = bench.tcp(PORT)
    flow.handshake()
    s = dut.accept(lsock)
    assert s is not None
    base = flow.snd_nxt
    _flood(bench, flow, base, FLOOD)
    bench.drain(0.3)
    held, bound = _memory(dut, s)
    print(f"\n{dut.name}: {FLOOD} 1-byte out-of-order segments -> {held} bytes held (bound {bound}); "
          f"{_drops(dut)}")
    # Linux may pass its rcvbuf by the skb being charged (tcp_try_rmem_schedule)
    assert held <= bound + (2048 if dut.name == "linux" else 0)
    # the connection still works: fill the hole, the byte is delivered
    flow.send("PA", b"h", seq=base)
    got = dut.recv(s, 65536, within=2.0)
    assert got is not None and got.startswith(b"h"), got
    if dut.name == "ustack":
        c = dut.counters()
        assert c.get("tcp.internal_error", 0) == 0 and c.get("stack.internal_error", 0) == 0
        assert c.get("tcp.ooo_mem_drop", 0) + c.get("tcp.ooo_drop", 0) > 0


def _queued_datagrams(dut, s) -> int:
    if dut.name == "linux":
        n = 0
        while dut.udp_recvfrom(s, within=0.05) is not None:
            n += 1
        return n
    return dut.host.call(lambda: len(s.queue))


@pytest.mark.parametrize("dut", ["ustack", "linux"], indirect=True)
def test_empty_udp_datagram_flood_stays_bounded(dut, bench):
    """5,000 empty datagrams into a 64 KB receive buffer nobody reads."""
    from scapy.layers.inet import IP, UDP

    s = dut.udp_bind(7301)
    if dut.name == "linux":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    raw = bytes(IP(src=bench.ip, dst=bench.dut_ip) / UDP(sport=4000, dport=7301))
    for i in range(1, 5001):
        bench.send(raw)
        if i % 200 == 0:
            time.sleep(0.005)
    time.sleep(0.3)
    n = _queued_datagrams(dut, s)
    print(f"\n{dut.name}: 5000 empty datagrams to a 64 KB buffer -> {n} queued")
    assert 0 < n < 2000


def _frag_memory(dut) -> int:
    if dut.name == "linux":
        text = open("/proc/net/sockstat").read()
        return int(re.search(r"FRAG: inuse \d+ memory (\d+)", text).group(1))
    return dut.host.call(lambda: dut.stack.reassembler.mem)


@pytest.mark.parametrize("dut", ["ustack", "linux"], indirect=True)
def test_tiny_fragment_flood_stays_bounded(dut, bench):
    """8-byte fragments of datagrams that never complete: 16 datagrams x 1,000 fragments."""
    from ustack.wire import Ipv4Packet, ip_int

    src, dst = ip_int(bench.ip), ip_int(bench.dut_ip)
    peak = 0
    for ident in range(16):
        for i in range(1000):
            bench.send(Ipv4Packet(src, dst, 17, bytes(8), ident=ident, mf=True, frag_offset=8 * i).emit())
            if i % 100 == 99:
                time.sleep(0.003)  # a DUT behind a TUN queue (500 packets) keeps up
        time.sleep(0.02)
        peak = max(peak, _frag_memory(dut))
    print(f"\n{dut.name}: 16,000 8-byte fragments -> reassembly memory {_frag_memory(dut)} "
          f"(peak seen {peak})")
    # Linux evicts above ipfrag_high_thresh (4 MB) and may pass it by the fragment being added;
    # ustack gives a datagram up at its 65th fragment, so it never gets near its 4 MB
    assert peak <= 4 * 1024 * 1024 + 4096
    if dut.name == "ustack":
        c = dut.counters()
        assert c.get("ipv4.reasm_too_many_fragments", 0) >= 8  # (a loaded TUN queue may drop some)
        assert c.get("ipv4.reasm_dead_fragment", 0) > 8 * 900


def _sack_state(dut, s) -> str:
    if dut.name == "linux":
        out = subprocess.run(["nstat", "-az"], capture_output=True, text=True, timeout=10).stdout
        names = ("TcpExtTCPWqueueTooBig", "TcpExtTCPSACKDiscard", "TcpExtTCPSackMerged",
                 "TcpExtTCPSackShifted", "TcpExtTCPSackShiftFallback", "TcpExtTCPSACKReorder")
        vals = dict(line.split()[:2] for line in out.splitlines() if line.split()[:1] and
                    line.split()[0] in names)
        sk = subprocess.run(["ss", "-tmnH", "state", "established", f"sport = :{PORT + 2}"],
                            capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"skmem:\([^)]*\)", sk)
        return ", ".join(f"{k[6:]} {v}" for k, v in vals.items()) + f"; {m.group(0) if m else sk}"
    c = dut.counters()
    board = dut.host.call(lambda: len(s.conn.snd.sacked))
    return (f"scoreboard {board} ranges, tcp.sack_small_ignored {c.get('tcp.sack_small_ignored', 0)}, "
            f"tcp.sack_board_full {c.get('tcp.sack_board_full', 0)}")


@pytest.mark.parametrize("dut", ["ustack", "linux"], indirect=True)
def test_one_byte_sack_flood_against_the_sender(dut, bench):
    """The DUT sends; the peer acknowledges nothing and SACKs single bytes with holes between
    (the CVE-2019-11478 class). The DUT stays bounded and finishes once the data is ACKed."""
    from ustack.wire import Ipv4Packet, ip_int
    from ustack.wire.tcp import ACK, TcpOptions, TcpSegment

    port = PORT + 2
    lsock = dut.listen(port)
    flow = bench.tcp(port)
    flow.window = 65535
    flow.send("S", options=[("MSS", 1460), ("SAckOK", b"")])
    synack = flow.expect("SA", 2.0, ack=flow.snd_nxt)
    assert synack is not None
    flow.send("A")
    s = dut.accept(lsock)
    assert s is not None
    una = flow.rcv_nxt
    data = bytes(100_000)
    sent = dut.send(s, data)
    assert sent > 0
    top = una
    while (seg := flow.next_segment(0.3)) is not None:  # the first flight
        end = (seg.seq + len(bytes(seg.payload))) & 0xFFFFFFFF
        if (end - top) & 0xFFFFFFFF < 0x80000000:
            top = end
    flight = (top - una) & 0xFFFFFFFF
    assert flight > 4000
    src, dst = ip_int(bench.ip), ip_int(bench.dut_ip)
    islands = list(range(1001, flight - 1, 2))  # 1-byte blocks after a first hole
    for k in range(0, len(islands), 4):
        blocks = tuple(((una + o) & 0xFFFFFFFF, (una + o + 1) & 0xFFFFFFFF) for o in islands[k:k + 4])
        seg = TcpSegment(flow.sport, flow.dport, flow.snd_nxt, una, ACK, 65535,
                         options=TcpOptions(sack=blocks))
        bench.send(Ipv4Packet(src, dst, 6, seg.emit(src, dst)).emit())
        if k % 400 == 0:
            bench.drain(0.002)
    bench.drain(0.3)
    state = _sack_state(dut, s)
    print(f"\n{dut.name}: {len(islands)} 1-byte SACK blocks over a {flight}-byte flight -> {state}")
    # the connection still works: acknowledge everything as it comes, all of it arrives
    got = 0
    deadline = time.monotonic() + 10
    ack = una
    while got < sent and time.monotonic() < deadline:
        seg = flow.next_segment(0.5)
        if seg is None:
            flow.send("A", seq=flow.snd_nxt, ack=ack)
            continue
        end = (seg.seq + len(bytes(seg.payload))) & 0xFFFFFFFF
        if (end - ack) & 0xFFFFFFFF < 0x80000000 and (seg.seq - ack) & 0xFFFFFFFF >= 0x80000000 \
                or seg.seq == ack:
            got += (end - ack) & 0xFFFFFFFF
            ack = end
            flow.send("A", seq=flow.snd_nxt, ack=ack)
    assert got >= sent, (got, sent)
    if dut.name == "ustack":
        c = dut.counters()
        assert c.get("tcp.internal_error", 0) == 0 and c.get("stack.internal_error", 0) == 0
        assert c.get("tcp.sack_small_ignored", 0) > 0
