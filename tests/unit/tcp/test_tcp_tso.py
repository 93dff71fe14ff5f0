"""TSO on transmit, sans-I/O: the super-segment builder against independent decoders (scapy,
dpkt), and a Stack with transmit offload (`gso_max`) against the same Stack without it.

The test cuts each GsoPacket as the kernel's GSO does (headers copied, sequence number and IP ID
advanced, FIN/PSH on the last piece only, every checksum computed here by dpkt), so the
segments on the "wire" can be compared with what per-segment sending puts there: they must be
the same frames, byte for byte, at the same virtual times.
"""

from __future__ import annotations

import hashlib
import random
import struct

import dpkt
import pytest
from scapy.layers.inet import IP, TCP

from ustack.drivers.tun import _complete_checksum
from ustack.runtime.host import build_stack
from ustack.tcp import State
from ustack.tcp.emit import build_gso
from ustack.wire.checksum import fold
from ustack.wire.ipv4 import ip_int
from ustack.wire.ipv6 import ip6_int
from ustack.wire.vnet import (
    GSO_MAX_PAYLOAD,
    GSO_TCP_AT,
    VNET_F_NEEDS_CSUM,
    VNET_GSO_TCPV4,
    VNET_GSO_TCPV6,
    VNET_HDR,
    VNET_HDR_LEN,
    GsoPacket,
)

A, B = "198.18.0.2", "198.18.0.1"
A6, B6 = "2001:2::2", "2001:2::1"
PORT = 80


def test_builder_against_scapy_and_dpkt():
    src, dst = ip_int(A), ip_int(B)
    payload = bytes(random.Random(1).randbytes(5 * 1448))
    opts = struct.pack("!BBBBII", 1, 1, 8, 10, 12345, 678)
    pkt = build_gso(src, dst, 40000, 80, 0xFFFFF000, 99, 0x18 | 0x01, 501, opts, memoryview(payload), 1448)
    assert pkt.segments == 5 and len(pkt) == 20 + 32 + len(payload)
    # the stack fills in the IPv4 header
    st = build_stack(addr=f"{A}/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=1)
    st.gso_max = GSO_MAX_PAYLOAD
    st.send_gso(dst, src, pkt, 0.0)
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(pkt.header)
    assert (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) == (
        VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 52, 1448, 20, 16)
    raw = pkt.packet()
    ip = IP(raw)
    assert (ip.src, ip.dst, ip.len, ip.proto, ip.flags.DF, ip.ihl) == (A, B, len(raw), 6, True, 5)
    t = ip[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, t.flags, t.window, t.dataofs) == (40000, 80, 0xFFFFF000, 99,
                                                                              "FPA", 501, 8)
    assert dict(t.options)["Timestamp"] == (12345, 678)
    assert bytes(t.payload) == payload
    # NEEDS_CSUM: the field holds the pseudo-header sum over the whole TCP length, uncomplemented
    assert t.chksum == fold(src + dst + 6 + 32 + len(payload))
    # completed as the kernel does (skb_checksum_help), dpkt finds the checksum right
    done = _complete_checksum(bytes(pkt.header) + payload)
    d = dpkt.ip.IP(done)
    seg = bytes(d.data)
    pseudo = d.src + d.dst + struct.pack("!BBH", 0, 6, len(seg))
    assert dpkt.in_cksum(pseudo + seg) == 0  # sums to all ones with the field: valid
    again = IP(done)
    del again[TCP].chksum  # scapy computes it from scratch
    assert IP(bytes(again))[TCP].chksum == IP(done)[TCP].chksum


def segment_like_the_kernel(pkt: GsoPacket) -> list[bytes]:
    """tcp_gso_segment + inet_gso_segment, independently of ustack: dpkt builds each piece."""
    _, gso_type, _, gso_size, _, _ = VNET_HDR.unpack_from(pkt.header)
    if gso_type == VNET_GSO_TCPV6:
        return segment6_like_the_kernel(pkt, gso_size)
    assert gso_type == VNET_GSO_TCPV4
    ip = dpkt.ip.IP(pkt.packet())
    tcp = ip.data
    data = bytes(tcp.data)
    pieces = -(-len(data) // gso_size)
    out = []
    for i in range(pieces):
        chunk = data[i * gso_size:(i + 1) * gso_size]
        flags = tcp.flags if i == pieces - 1 else tcp.flags & ~(dpkt.tcp.TH_FIN | dpkt.tcp.TH_PUSH)
        seg = dpkt.tcp.TCP(sport=tcp.sport, dport=tcp.dport, seq=(tcp.seq + i * gso_size) & 0xFFFFFFFF,
                           ack=tcp.ack, off=tcp.off, flags=flags, win=tcp.win, opts=tcp.opts, data=chunk)
        p = dpkt.ip.IP(src=ip.src, dst=ip.dst, id=(ip.id + i) & 0xFFFF, df=ip.df, ttl=ip.ttl, p=6,
                       tos=ip.tos, data=seg)
        p.len = 20 + len(bytes(seg))
        out.append(bytes(p))  # dpkt computes both checksums
    return out


def segment6_like_the_kernel(pkt: GsoPacket, gso_size: int) -> list[bytes]:
    """ipv6_gso_segment + tcp_gso_segment: the same cut, the payload length per piece."""
    ip = dpkt.ip6.IP6(pkt.packet())
    tcp = ip.data
    data = bytes(tcp.data)
    pieces = -(-len(data) // gso_size)
    out = []
    for i in range(pieces):
        chunk = data[i * gso_size:(i + 1) * gso_size]
        flags = tcp.flags if i == pieces - 1 else tcp.flags & ~(dpkt.tcp.TH_FIN | dpkt.tcp.TH_PUSH)
        seg = dpkt.tcp.TCP(sport=tcp.sport, dport=tcp.dport, seq=(tcp.seq + i * gso_size) & 0xFFFFFFFF,
                           ack=tcp.ack, off=tcp.off, flags=flags, win=tcp.win, opts=tcp.opts, data=chunk)
        seg.sum = 0
        raw = bytes(seg)
        pseudo = ip.src + ip.dst + struct.pack("!IxxxB", len(raw), 6)
        seg.sum = dpkt.in_cksum(pseudo + raw)
        p = dpkt.ip6.IP6(v=6, fc=ip.fc, flow=ip.flow, nxt=6, hlim=ip.hlim, src=ip.src, dst=ip.dst,
                         plen=len(raw), data=seg)
        out.append(bytes(p))
    return out


def transfer(gso: bool, size: int, loss_every: int = 0, seed: int = 3, v6: bool = False):
    """A sends `size` bytes to B in virtual time (RTT 2 ms); A's super-segments are cut by
    `segment_like_the_kernel`. Returns (wire frames A->B with their times, data B got, A's
    counters, the super-segments' segment counts)."""
    a = build_stack(addr=f"{A}/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=seed,
                    addr6=f"{A6}/64")
    b = build_stack(addr=f"{B}/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=seed + 1,
                    addr6=f"{B6}/64")
    if gso:
        a.gso_max = GSO_MAX_PAYLOAD
    fam, there = (6, ip6_int(B6)) if v6 else (4, ip_int(B))
    ls = b.tcp.open(fam)
    ls.bind(there, PORT)
    ls.listen(4)
    now = 0.0
    c = a.tcp.open(fam)
    c.connect(there, PORT, now)
    data = random.Random(seed).randbytes(size)
    sent, got, srv = 0, bytearray(), None
    wire: list[tuple[float, bytes]] = []
    supers: list[int] = []
    in_flight: list[tuple[float, str, bytes]] = []  # (arrival time, to, frame)
    n_out = 0
    for _ in range(200_000):
        now = round(now + 0.0001, 6)
        if sent < size and c.state is State.ESTABLISHED:
            sent += c.send(data[sent:sent + 65536], now)
        for f in a.poll(now):
            frames = [f]
            if type(f) is GsoPacket:
                supers.append(f.segments)
                frames = segment_like_the_kernel(f)
            for x in frames:
                n_out += 1
                wire.append((now, bytes(x)))
                if loss_every and n_out % loss_every == 0:
                    continue
                in_flight.append((now + 0.001, "b", bytes(x)))
        for f in b.poll(now):
            in_flight.append((now + 0.001, "a", bytes(f)))
        due = [x for x in in_flight if x[0] <= now]
        in_flight = [x for x in in_flight if x[0] > now]
        for _, to, f in due:
            (b if to == "b" else a).receive(f, now)
        if srv is None:
            srv = ls.accept()
        if srv is not None and srv.readable_bytes:
            got += srv.recv(1 << 20)
        if len(got) == size:
            break
    for st in (a, b):
        cnt = st.counters.snapshot()
        assert cnt.get("stack.internal_error", 0) == 0 and cnt.get("tcp.internal_error", 0) == 0
    transfer.last_socket = c  # type: ignore[attr-defined]
    return wire, bytes(got), a.counters.snapshot(), supers, data


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("loss_every", [0, 97])
def test_super_segments_put_the_same_segments_on_the_wire(loss_every, v6):
    """Same seeds, same path: with TSO the kernel-cut segments are the per-segment frames, byte
    for byte (IP IDs, checksums, flags, options) at the same virtual times; loss and recovery
    (per-MSS retransmissions) included. So congestion control, SACK/RACK recovery and the ACK
    clock see exactly what they see without offload."""
    plain, got_p, cnt_p, supers_p, data = transfer(False, 3_000_000, loss_every, v6=v6)
    tso, got_t, cnt_t, supers, _ = transfer(True, 3_000_000, loss_every, v6=v6)
    assert got_p == data and got_t == data
    assert hashlib.sha256(got_t).digest() == hashlib.sha256(data).digest()
    ip = "ipv6" if v6 else "ipv4"
    assert not supers_p and cnt_p.get(f"{ip}.gso_out", 0) == 0
    assert cnt_t[f"{ip}.gso_out"] == len(supers) > 0
    assert sum(supers) == cnt_t[f"{ip}.gso_segs_out"]
    assert max(supers) > 2  # real super-segments, not pairs
    assert plain == tso
    if loss_every:
        assert cnt_t.get("tcp.retransmitted_segments", 0) > 0
        assert cnt_t["tcp.retransmitted_segments"] == cnt_p["tcp.retransmitted_segments"]


def test_super_segment_sizes_follow_linux_autosizing():
    """Every super-segment is whole MSS-sized segments, at most gso_max, never more than half the
    congestion window at once (tcp_cwnd_test), at least 2 segments (min_tso_segs); the size is
    tcp_tso_autosize's: pacing rate (2x cwnd/SRTT in slow start below ssthresh/2, else 1.2x)
    >> 10, plus gso_max >> (min RTT in us >> 9)."""
    wire, got, cnt, supers, data = transfer(True, 2_000_000)
    assert got == data
    assert min(supers) >= 2
    assert max(supers) * 1448 <= GSO_MAX_PAYLOAD
    assert supers[0] == 5  # the first flight: IW10, half of it at once
    conn = transfer.last_socket.conn  # type: ignore[attr-defined]
    snd, mss = conn.snd, 1448
    assert snd.mss == mss

    def size(srtt: float, min_rtt: float, cwnd_segs: int, ssthresh_segs: int, flight_segs: int = 0) -> int:
        snd.srtt, snd.min_rtt = srtt, min_rtt
        snd.cc.cwnd, snd.cc.ssthresh = cwnd_segs * mss, ssthresh_segs * mss
        return conn._tso_limit(GSO_MAX_PAYLOAD, snd.cc.cwnd, flight_segs * mss) // mss

    # 2 ms, 20 segments, slow start: 28960*2/0.002 >> 10 = 28281, + 65455 >> 3 = 8181 -> 25
    # segments, but at most half the window: 10
    assert size(0.002, 0.002, 20, 1 << 20) == 10
    assert size(0.002, 0.002, 200, 1 << 20) == 45  # ~1 ms at the pacing rate: over 64 KB, capped
    # 10 ms, 100 segments, slow start: 144800*2/0.01 >> 10 = 28281 (65455 >> 19 = 0): 19
    assert size(0.010, 0.010, 100, 1 << 20) == 19
    assert size(0.010, 0.010, 100, 1 << 20, flight_segs=200) == 39  # pacing from max(cwnd, flight)
    # 100 ms, congestion avoidance (1.2x): 1.2*434400/0.1 >> 10 = 5090 bytes: 3 segments
    assert size(0.1, 0.1, 300, 300) == 3
    assert size(0.1, 0.1, 10, 10) == 2  # 169 bytes: min_tso_segs


def test_no_super_segments_over_loopback_or_without_offload():
    st = build_stack(addr=f"{A}/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=1)
    assert st.gso_max_for(ip_int(B)) == 0
    st.gso_max = GSO_MAX_PAYLOAD
    assert st.gso_max_for(ip_int(B)) == GSO_MAX_PAYLOAD
    assert st.gso_max_for(ip_int(A)) == 0  # our own address: looped back inside the stack
    assert st.gso_max_for(ip_int("127.0.0.1")) == 0
    assert st.gso_max_for(ip_int("198.18.0.255")) == 0  # broadcast
    assert st.gso_max_for(ip_int("203.0.113.1")) == 0  # no route
    assert GSO_TCP_AT == VNET_HDR_LEN + 20
    st6 = build_stack(addr=f"{A}/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=1, addr6=f"{A6}/64")
    assert st6.gso_max_for6(ip6_int(B6)) == 0  # offload off
    st6.gso_max = GSO_MAX_PAYLOAD
    assert st6.gso_max_for6(ip6_int(B6)) == GSO_MAX_PAYLOAD
    assert st6.gso_max_for6(ip6_int(A6)) == 0  # our own
    assert st6.gso_max_for6(1) == 0  # ::1
    assert st6.gso_max_for6(ip6_int("ff02::1")) == 0  # multicast
