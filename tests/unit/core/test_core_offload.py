"""Receive checksum offload in the core (`receive(frame, now, trusted=True)`) and the batch entry
point `receive_batch`, whose fast path must behave exactly like `receive` for every frame."""

from __future__ import annotations

import pytest
from corehelpers import LO, ME, OTHER, PEER, assert_no_internal_error, icmp_frame, ip_frame, make, udp_frame

from ustack.core.frag import fragment
from ustack.core.rx import RX_TRUSTED
from ustack.wire import IcmpMessage, UdpDatagram
from ustack.wire.ipv4 import ip_int
from ustack.wire.tcp import ACK, SYN, TcpOptions, TcpSegment


def corrupt(frame: bytes, at: int) -> bytes:
    b = bytearray(frame)
    b[at] ^= 0x5A
    return bytes(b)


def bound_udp(stack, port: int = 5000):
    s = stack.udp.open()
    s.bind(0, port)
    return s


def test_trusted_udp_skips_the_checksum_untrusted_does_not(stack):
    s = bound_udp(stack)
    bad = corrupt(udp_frame(PEER, ME, 1, 5000, b"payload"), 26)  # UDP checksum field
    stack.receive(bad, 0.0)
    assert s.recvfrom() is None and stack.counters.get("udp.bad_checksum") == 1
    stack.receive(bad, 0.0, trusted=True)  # the device vouched for it (NEEDS_CSUM/DATA_VALID)
    assert s.recvfrom() == (b"payload", PEER, 1)
    assert stack.counters.get("udp.bad_checksum") == 1
    assert stack.counters.get("ipv4.csum_offloaded") == 1


def test_trusted_frames_still_verify_the_ipv4_header(stack):
    s = bound_udp(stack)
    stack.receive(corrupt(udp_frame(PEER, ME, 1, 5000, b"x"), 10), 0.0, trusted=True)
    stack.receive_batch([(corrupt(udp_frame(PEER, ME, 1, 5000, b"y"), 10), True)], 0.0)
    assert s.recvfrom() is None
    assert stack.counters.get("ipv4.bad_checksum") == 2


def test_offload_never_covers_fragments(stack):
    """A reassembled datagram is verified even when every fragment came marked trusted."""
    s = bound_udp(stack)
    udp = bytearray(UdpDatagram(1, 5000, bytes(range(200)) * 8).emit(PEER, ME))
    udp[6] ^= 0x11  # wrong UDP checksum
    frags = fragment(PEER, ME, 17, bytes(udp), 77, 576)
    assert len(frags) > 1
    stack.receive_batch([(f, True) for f in frags], 0.0)
    assert s.recvfrom() is None
    assert stack.counters.get("udp.bad_checksum") == 1


def test_trusted_icmp_echo_request_is_answered(stack):
    bad = corrupt(icmp_frame(PEER, ME, IcmpMessage(8, 0, 0x10001, b"ping")), 22)
    stack.receive(bad, 0.0)
    assert stack.poll(0.0) == [] and stack.counters.get("icmp.bad_checksum") == 1
    stack.receive(bad, 0.0, trusted=True)  # like Linux with CHECKSUM_UNNECESSARY
    assert len(stack.poll(0.0)) == 1


def tcp_frame(src: int, dst: int, seg: TcpSegment, **kw) -> bytes:
    return ip_frame(src, dst, 6, seg.emit(src, dst), **kw)


def mixed_frames() -> list[tuple[bytes, bool]]:
    """Every kind of frame `_on_ipv4` distinguishes, trusted and not."""
    good = udp_frame(PEER, ME, 1, 5000, b"good")
    frames = [
        good,
        udp_frame(PEER, ME, 2, 5000, b"opts", options=b"\x01\x01\x01\x00"),  # NOPs + EOL
        udp_frame(PEER, ME, 3, 5001, b"closed port"),  # -> ICMP port unreachable
        corrupt(good, 10),  # header checksum
        corrupt(good, 26),  # UDP checksum
        good[:30],  # truncated (total length > bytes)
        good + b"\0" * 6,  # link padding: dropped silently, datagram delivered
        b"",
        b"\x60" + bytes(39),  # IPv6
        udp_frame(LO, ME, 4, 5000, b"martian"),
        udp_frame(ME, ME, 5, 5000, b"own source"),
        udp_frame(ip_int("224.0.0.9"), ME, 6, 5000, b"multicast source"),
        udp_frame(ip_int("198.18.0.255"), ME, 6, 5000, b"broadcast source"),
        udp_frame(PEER, OTHER, 7, 5000, b"not for us"),
        udp_frame(PEER, ip_int("198.18.0.255"), 8, 5000, b"directed broadcast"),
        ip_frame(PEER, ME, 99, b"unknown protocol"),
        tcp_frame(PEER, ME, TcpSegment(4000, 80, 1, 0, SYN, 1000, options=TcpOptions(mss=1460))),
        tcp_frame(PEER, ME, TcpSegment(4001, 80, 1, 9, ACK, 1000, b"x" * 40,
                                       TcpOptions(ts=(1, 2)))),  # the TCP fast path's shape
        corrupt(tcp_frame(PEER, ME, TcpSegment(4002, 80, 1, 0, SYN, 1000)), 36),
        icmp_frame(PEER, ME, IcmpMessage(8, 0, 0x20002, b"echo")),
        ip_frame(PEER, ME, 17, UdpDatagram(9, 5000, b"df").emit(PEER, ME), df=True, ttl=3, tos=4),
    ]
    frames += fragment(PEER, ME, 17, UdpDatagram(10, 5000, b"f" * 1500).emit(PEER, ME), 5, 576)
    return [(f, trusted) for trusted in (False, True) for f in frames]


def test_receive_batch_behaves_like_receive_frame_by_frame():
    frames = mixed_frames()
    one, many = make(), make()
    socks = [bound_udp(one), bound_udp(many)]
    one.receive(udp_frame(PEER, ME, 1, 5000, b"warm up"), 0.0)  # PEER known as a valid source
    many.receive(udp_frame(PEER, ME, 1, 5000, b"warm up"), 0.0)
    for frame, trusted in frames:
        one.receive(frame, 1.0, trusted)
    for i in range(0, len(frames), 7):
        many.receive_batch(frames[i:i + 7], 1.0)
    assert one.counters.snapshot() == many.counters.snapshot()
    assert one.poll(1.0) == many.poll(1.0)
    got = []
    for s in socks:
        out = []
        while (d := s.recvfrom()) is not None:
            out.append(d)
        got.append(out)
    assert got[0] == got[1]
    assert (b"good", PEER, 1) in got[0] and any(d[0] == b"f" * 1500 for d in got[0])
    assert many.counters.get("ipv4.csum_offloaded") == len(frames) // 2
    for st in (one, many):
        assert_no_internal_error(st)


class Boom:
    proto = 17

    def __init__(self) -> None:
        self.seen = []

    def on_packet(self, ip, now, rx):
        self.seen.append(bytes(ip.payload))
        if bytes(ip.payload) == b"boom":
            raise RuntimeError("transport bug")

    def on_icmp_error(self, *a): ...

    def poll(self, now): ...

    def poll_at(self):
        return None


@pytest.mark.internal_error_expected
@pytest.mark.parametrize("trusted", [False, True])
def test_a_transport_bug_costs_one_frame_of_the_batch(trusted):
    st = make()
    boom = Boom()
    st.register(boom)
    frames = [ip_frame(PEER, ME, 17, p) for p in (b"one", b"boom", b"three")]
    st.receive_batch([(f, trusted) for f in frames], 0.0)
    assert boom.seen == [b"one", b"boom", b"three"]
    assert st.counters.get("stack.internal_error") == 1
    assert st.counters.get("ipv4.delivered") == 3 and st.counters.get("ipv4.in") == 3


def test_transports_get_rx_trusted_as_a_value_for_their_frame_only():
    st = make()
    seen = []

    class Spy(Boom):
        def on_packet(self, ip, now, rx):
            seen.append((bytes(ip.payload), bool(rx & RX_TRUSTED)))

    st.register(Spy())
    st.receive_batch([(ip_frame(PEER, ME, 17, b"a"), True), (ip_frame(PEER, ME, 17, b"b"), False),
                      (ip_frame(PEER, ME, 17, b"c"), True)], 0.0)
    st.receive(ip_frame(PEER, ME, 17, b"d"), 0.0)
    st.receive(ip_frame(PEER, ME, 17, b"e"), 0.0, True)
    assert seen == [(b"a", True), (b"b", False), (b"c", True), (b"d", False), (b"e", True)]
