"""GRO on receive, sans-I/O: virtio-headed TCP super-segments (as a TUN with TSO4 hands them,
`drivers.tun.vnet_rx`) fed to `Stack.receive_batch` with a TCP layer. In order they are one
segment (one ACK, segs_in counts the segments inside, the receive MSS stays gso_size); anything
the fast path declines is cut back into gso_size segments (out-of-order queue, SACK, FIN); and
malformed gso fields are counted drops, never a raise."""

from __future__ import annotations

import struct

import pytest
from corehelpers import ME, PEER, assert_no_internal_error, ip_frame, udp_frame

from ustack.drivers.tun import VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, vnet_rx
from ustack.runtime.host import build_stack
from ustack.wire.ipv4 import Ipv4Packet
from ustack.wire.tcp import ACK, FIN, PSH, SYN, TcpOptions, TcpSegment

MSS = 1448
ISS = 1000
PORT, SPORT = 80, 40000


def vnet(frame: bytes, gso_size: int, gso_type: int = VNET_GSO_TCPV4,
         flags: int = VNET_F_NEEDS_CSUM) -> bytes:
    return struct.pack("=BBHHHH", flags, gso_type, 52, gso_size, 20, 16) + frame


def segments(frames: list[bytes]) -> list[TcpSegment]:
    out = []
    for f in frames:
        ip = Ipv4Packet.parse(f)
        out.append(TcpSegment.parse(ip.payload, ip.src, ip.dst))
    return out


class Peer:
    """A kernel-like sender (MSS 1460, timestamps, SACK, wscale) with an established connection."""

    def __init__(self) -> None:
        self.st = build_stack(addr="198.18.0.2/24", gateway=None, mtu=1500, medium="ip", mac=None, seed=7)
        lst = self.st.tcp.open()
        lst.bind(ME, PORT)
        lst.listen(4)
        self.tsval = 100
        self.send(SYN, ISS, 0, opts=TcpOptions(mss=1460, wscale=7, sack_perm=True, ts=(self.tsval, 0)))
        synack = segments(self.st.poll(0.0))[0]
        assert synack.flags == SYN | ACK
        self.ts_echo = synack.options.ts[0]
        self.una = synack.seq + 1
        self.nxt = ISS + 1
        self.send(ACK, self.nxt, self.una)
        self.sock = lst.accept()
        assert self.sock is not None
        self.conn = self.sock.conn

    def frame(self, flags: int, seq: int, ack: int, payload: bytes = b"",
              opts: TcpOptions | None = None) -> bytes:
        self.tsval += 1
        if opts is None:
            opts = TcpOptions(ts=(self.tsval, self.ts_echo))
        seg = TcpSegment(SPORT, PORT, seq, ack, flags, 502, payload, opts)
        return ip_frame(PEER, ME, 6, seg.emit(PEER, ME), df=True)

    def send(self, flags: int, seq: int, ack: int, payload: bytes = b"",
             opts: TcpOptions | None = None) -> None:
        self.st.receive(self.frame(flags, seq, ack, payload, opts), 0.0)

    def gso(self, raw: bytes, now: float = 0.0) -> None:
        got = vnet_rx(raw)
        assert not isinstance(got, str), got
        self.st.receive_batch([got], now)

    def read(self) -> bytes:
        out = b""
        while (d := self.sock.recv(1 << 20)):
            out += d
        return out

    def count(self, name: str) -> int:
        return self.st.counters.get(name)


def data(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


def test_in_order_super_segment_is_one_segment_with_its_segments_counted():
    p = Peer()
    payload = data(3 * MSS)
    segs_before = p.conn.segs_in
    p.gso(vnet(p.frame(ACK | PSH, p.nxt, p.una, payload), MSS))
    assert p.read() == payload
    assert p.count("tcp.gro_in") == 1 and p.count("tcp.gro_segs") == 3
    assert p.conn.segs_in - segs_before == 3
    assert p.conn.info()["rcv_mss"] <= 1448  # the real segment size, not the super-segment's
    out = segments(p.st.poll(0.0))
    acks = [s for s in out if s.flags & ACK and s.ack == p.nxt + len(payload)]
    assert len(acks) == 1 and len(out) == 1  # one ACK for the super-segment, as Linux GRO
    assert_no_internal_error(p.st)


def test_out_of_order_super_segment_is_cut_into_gso_size_pieces():
    p = Peer()
    hole = data(MSS, 1)
    later = data(4 * MSS, 2)
    p.gso(vnet(p.frame(ACK, p.nxt + MSS, p.una, later), MSS))
    assert p.count("tcp.gro_split") == 1 and p.count("tcp.gro_in") == 0
    assert p.count("tcp.gro_segs") == 4
    assert p.read() == b""
    ooo = p.conn.rcv.ooo
    assert ooo  # queued out of order, as the pieces
    sacks = [s.options.sack for s in segments(p.st.poll(0.0)) if s.options.sack]
    assert sacks and sacks[-1][0] == ((p.nxt + MSS) & 0xFFFFFFFF, (p.nxt + 5 * MSS) & 0xFFFFFFFF)
    p.send(ACK, p.nxt, p.una, hole)
    assert p.read() == hole + later
    assert_no_internal_error(p.st)


def test_fin_on_a_super_segment_ends_the_stream_after_all_its_data():
    p = Peer()
    payload = data(2 * MSS + 100, 3)
    p.gso(vnet(p.frame(ACK | PSH | FIN, p.nxt, p.una, payload), MSS))
    assert p.read() == payload
    assert p.sock.at_eof
    assert p.count("tcp.gro_split") == 1 and p.count("tcp.gro_segs") == 3
    assert_no_internal_error(p.st)


@pytest.mark.parametrize("raw, reason", [
    (b"\x01\x01\x00", "rx_vnet_short"),
    (vnet(b"x" * 60, 1448, gso_type=4), "rx_gso_unsupported"),  # TCPV6
    (vnet(b"x" * 60, 1448, gso_type=3), "rx_gso_unsupported"),  # UDP
    (vnet(b"x" * 60, 0), "rx_gso_malformed"),
    (vnet(b"x" * 60, 63), "rx_gso_malformed"),
    (vnet(b"x" * 60, 1448, flags=0), "rx_gso_malformed"),  # GSO without NEEDS_CSUM
])
def test_malformed_gso_headers_are_named_drops(raw, reason):
    assert vnet_rx(raw) == reason


def test_hostile_gso_frames_are_counted_never_raised():
    p = Peer()
    before = p.read()
    assert before == b""
    hostile = [
        (memoryview(udp_frame(PEER, ME, 1, 5000, b"u" * 3000)), 1448),  # GSO on UDP
        (memoryview(ip_frame(PEER, ME, 6, b"\x00" * 10)), 1448),  # truncated TCP header
        # tiny gso_size over a 60 KB super-segment: bounded pieces, data all delivered
        (memoryview(p.frame(ACK, p.nxt + 1, p.una, data(60000, 4))), 64),
        # a SYN with GSO for our connection
        (memoryview(p.frame(SYN | ACK, p.nxt, p.una, data(4000))), 1448),
        (memoryview(p.frame(ACK, p.nxt, p.una, data(3000), opts=TcpOptions())), 1448),  # no TS
        (memoryview(ip_frame(PEER, ME, 6, b"\x00" * 40, options=b"\x01\x01\x01\x00")), 1448),
    ]
    p.st.receive_batch(hostile, 0.0)
    assert p.count("ipv4.gso_not_tcp") == 1
    assert p.count("ipv4.gso_full_path") == 1  # the one with IP options
    assert p.count("tcp.gro_split") >= 1
    assert_no_internal_error(p.st)
    assert p.st.counters.get("tcp.internal_error") == 0
    p.st.poll(1.0)


def test_pieces_carry_the_flags_tso_would_give_each_segment(monkeypatch):
    """Cut back into the segments TSO would send: CWR on the first, PSH and FIN on the last,
    ACK/ECE on all, sequence numbers gso_size apart."""
    from ustack.tcp.connection import Connection
    from ustack.wire.tcp import CWR, ECE

    p = Peer()
    seen = []
    original = Connection.on_segment

    def spy(self, seg, now, fast=True):
        seen.append((seg.seq, seg.flags, len(seg.payload)))
        return original(self, seg, now, fast)

    monkeypatch.setattr(Connection, "on_segment", spy)
    payload = data(2 * MSS + 10, 5)
    frame = p.frame(ACK | ECE | CWR | PSH | FIN, p.nxt, p.una, payload)
    p.gso(vnet(frame, MSS, gso_type=VNET_GSO_TCPV4 | 0x80))  # the ECN GSO bit
    assert seen == [(p.nxt, ACK | ECE | CWR, MSS), (p.nxt + MSS, ACK | ECE, MSS),
                    (p.nxt + 2 * MSS, ACK | ECE | PSH | FIN, 10)]
    assert p.read() == payload and p.sock.at_eof
    assert_no_internal_error(p.st)
