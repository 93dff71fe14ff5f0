"""Fragmentation on output and reassembly on input (RFC 791, RFC 815, RFC 1122 3.3.2, RFC 5722)."""

import random

import pytest
from corehelpers import ME, PEER, ips, make, udp_frame
from scapy.layers.inet import IP, UDP, defragment

from ustack.core.frag import FRAG_OVERHEAD, fragment
from ustack.wire import IcmpMessage, Ipv4Packet, UdpDatagram
from ustack.wire.checksum import internet_checksum


def frags_of(payload: bytes, ident=0x1234, mtu=1500, src=PEER, dst=ME, proto=17):
    return fragment(src, dst, proto, payload, ident, mtu)


def udp_payload(n=4000, seed=0):
    data = random.Random(seed).randbytes(n)
    return data, UdpDatagram(1111, 9, data).emit(PEER, ME)


def test_4000_byte_udp_datagram_makes_3_fragments_scapy_reassembles(stack):
    data = random.Random(1).randbytes(4000)
    u = stack.udp.open()
    u.sendto(data, PEER, 7777, 0.0)
    out = stack.poll(0.0)
    assert len(out) == 3
    pk = ips(out)
    assert [len(f) for f in out] == [1500, 1500, 20 + 4008 - 2 * 1480]
    assert [p.frag_offset for p in pk] == [0, 1480, 2960]
    assert [p.mf for p in pk] == [True, True, False]
    assert len({p.ident for p in pk}) == 1
    whole = defragment([IP(f) for f in out])
    assert len(whole) == 1
    sc = whole[0]
    assert sc[UDP].dport == 7777 and bytes(sc[UDP].payload) == data
    assert stack.counters.get("ipv4.fragments_out") == 3


def test_fragment_offsets_are_8_byte_aligned_for_odd_mtu():
    out = frags_of(bytes(3000), mtu=1006)
    pk = [Ipv4Packet.parse(f) for f in out]
    assert all(p.frag_offset % 8 == 0 for p in pk)
    assert all(len(f) <= 1006 for f in out)
    assert all(len(p.payload) % 8 == 0 for p in pk[:-1])
    assert sum(len(p.payload) for p in pk) == 3000


def test_small_mtu_stack_fragments_big_ping():
    s = make(mtu=576)
    s.icmp.ping(PEER, 1, 1, bytes(1000), 0.0)
    out = s.poll(0.0)
    assert len(out) == 2 and all(len(f) <= 576 for f in out)
    whole = defragment([IP(f) for f in out])[0]
    assert whole.proto == 1 and len(bytes(whole.payload)) == 1008


def deliver_all(stack, frames, now=0.0):
    for f in frames:
        stack.receive(f, now)


@pytest.mark.parametrize("order", ["in", "reverse", "shuffle", "dup"])
def test_reassembly_orders(stack, order):
    data, dgram = udp_payload()
    fr = frags_of(dgram)
    if order == "reverse":
        fr = fr[::-1]
    elif order == "shuffle":
        random.Random(3).shuffle(fr)
    elif order == "dup":
        fr = [fr[0], fr[1], fr[0], fr[1], fr[2]]
    u = stack.udp.open()
    u.bind(0, 9)
    deliver_all(stack, fr)
    assert u.recvfrom() == (data, PEER, 1111)
    assert u.recvfrom() is None
    assert stack.counters.get("ipv4.reasm_ok") == 1
    if order == "dup":
        assert stack.counters.get("ipv4.reasm_duplicate") >= 1
    assert stack.reassembler.mem == 0 and not stack.reassembler.table


def test_interleaved_datagrams_reassembled_separately(stack):
    d1, g1 = udp_payload(3000, 1)
    d2, g2 = udp_payload(3000, 2)
    f1, f2 = frags_of(g1, ident=1), frags_of(g2, ident=2)
    u = stack.udp.open()
    u.bind(0, 9)
    deliver_all(stack, [f1[0], f2[1], f2[0], f1[2], f1[1], f2[2]])
    assert {u.recvfrom()[0], u.recvfrom()[0]} == {d1, d2}


def test_overlap_drops_whole_datagram_including_later_fragments(stack):
    data, dgram = udp_payload(3000)
    fr = frags_of(dgram)
    u = stack.udp.open()
    u.bind(0, 9)
    stack.receive(fr[0], 0.0)
    # a fragment overlapping the first one at offset 8 with different content
    bad = Ipv4Packet(PEER, ME, 17, bytes(800), ident=0x1234, mf=True, frag_offset=8).emit()
    stack.receive(bad, 0.0)
    assert stack.counters.get("ipv4.reasm_overlap") == 1
    deliver_all(stack, fr[1:])
    assert u.recvfrom() is None
    assert stack.counters.get("ipv4.reasm_dead_fragment") == 2
    stack.poll(31.0)  # the dead entry expires silently: no time exceeded for it
    assert stack.counters.get("ipv4.reasm_timeout") == 0
    assert stack.poll(31.0) == []
    assert not stack.reassembler.table


def test_timeout_30s_sends_time_exceeded_quoting_first_fragment(stack):
    data, dgram = udp_payload(3000)
    fr = frags_of(dgram)
    stack.receive(fr[0], 5.0)
    stack.receive(fr[2], 6.0)
    assert stack.poll_at() == 35.0
    assert stack.poll(34.9) == []
    (out,) = stack.poll(35.0)
    ip = Ipv4Packet.parse(out)
    assert (ip.src, ip.dst, ip.proto) == (ME, PEER, 1)
    msg = IcmpMessage.parse(ip.payload)
    assert (msg.type, msg.code) == (11, 1)
    q, qp = msg.quoted()
    assert (q.src, q.dst, q.ident, q.proto, q.mf) == (PEER, ME, 0x1234, 17, True)
    assert qp[:8] == dgram[:8]
    assert stack.counters.get("ipv4.reasm_timeout") == 1
    assert stack.poll_at() is None


def test_timeout_without_first_fragment_sends_nothing(stack):
    data, dgram = udp_payload(3000)
    fr = frags_of(dgram)
    stack.receive(fr[1], 0.0)
    assert stack.poll(30.0) == []
    assert stack.counters.get("ipv4.reasm_timeout") == 1


def test_memory_bound_evicts_oldest():
    s = make(reassembly_mem_limit=5000)
    u = s.udp.open()
    u.bind(0, 9)
    for ident in range(1, 5):  # four incomplete datagrams of 1480 bytes each
        s.receive(frags_of(udp_payload(3000, ident)[1], ident=ident)[0], float(ident))
    assert s.reassembler.mem <= 5000
    assert s.counters.get("ipv4.reasm_evicted") == 1
    assert (PEER, ME, 17, 1) not in s.reassembler.table
    # the newest can still complete
    d4, g4 = udp_payload(3000, 4)
    deliver_all(s, frags_of(g4, ident=4)[1:], 5.0)
    assert u.recvfrom()[0] == d4
    assert s.counters.get("stack.internal_error") == 0


def test_the_oldest_datagram_growing_evicts_the_next_oldest_not_itself():
    """Room for a fragment of the oldest datagram is made by evicting the others, oldest first."""
    s = make(reassembly_mem_limit=3 * (1480 + FRAG_OVERHEAD) + 48 + FRAG_OVERHEAD)
    u = s.udp.open()
    u.bind(0, 9)
    d1, g1 = udp_payload(3000, 1)  # fragments of 1480, 1480 and 48 bytes
    f1 = frags_of(g1, ident=1)
    for ident, g in ((1, g1), (2, udp_payload(3000, 2)[1]), (3, udp_payload(3000, 3)[1])):
        s.receive(frags_of(g, ident=ident)[0], float(ident))
    assert s.counters.get("ipv4.reasm_evicted") == 0 and len(s.reassembler.table) == 3
    deliver_all(s, f1[1:], 4.0)  # datagram 1 (the oldest) completes: datagram 2 made room
    assert u.recvfrom()[0] == d1
    assert s.counters.get("ipv4.reasm_evicted") == 1
    assert list(s.reassembler.table) == [(PEER, ME, 17, 3)]


def test_datagram_larger_than_memory_limit_refused():
    s = make(reassembly_mem_limit=1000)
    s.receive(frags_of(udp_payload(3000)[1])[0], 0.0)
    assert s.counters.get("ipv4.reasm_mem_limit") == 1
    assert not s.reassembler.table


def test_max_datagrams_bound():
    s = make(reassembly_max_datagrams=3)
    for ident in range(10):
        s.receive(frags_of(udp_payload(3000, ident)[1], ident=ident)[0], float(ident))
    assert len(s.reassembler.table) == 3
    assert s.counters.get("ipv4.reasm_evicted") == 7


def test_fragment_past_65535_rejected(stack):
    # payload ending past 65535: the codec refuses it (built by patching a valid header,
    # since the emitter refuses such a fragment too)
    raw = bytearray(Ipv4Packet(PEER, ME, 17, bytes(16), ident=9, frag_offset=8).emit())
    raw[6:8] = (65520 >> 3).to_bytes(2, "big")
    raw[10:12] = b"\0\0"
    raw[10:12] = internet_checksum(bytes(raw[:20])).to_bytes(2, "big")
    stack.receive(bytes(raw), 0.0)
    assert stack.counters.get("ipv4.bad_fragment") == 1
    # payload fits but header + payload would exceed 65535 after reassembly (ping of death)
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(8), ident=9, mf=True).emit(), 0.0)
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(16), ident=9, frag_offset=65512).emit(), 0.0)
    assert stack.counters.get("ipv4.reasm_too_big") == 1
    assert all(d.dead for d in stack.reassembler.table.values())
    assert stack.reassembler.mem == 0


def test_non_last_fragment_must_be_multiple_of_8(stack):
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(13), ident=9, mf=True).emit(), 0.0)
    assert stack.counters.get("ipv4.reasm_bad_length") == 1


def test_inconsistent_last_fragments_drop_datagram(stack):
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(16), ident=9, mf=False, frag_offset=1600).emit(), 0.0)
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(16), ident=9, mf=False, frag_offset=800).emit(), 0.0)
    assert stack.counters.get("ipv4.reasm_inconsistent") == 1


def test_fragment_beyond_known_end_drops_datagram(stack):
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(16), ident=9, mf=False, frag_offset=800).emit(), 0.0)
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(16), ident=9, mf=True, frag_offset=1600).emit(), 0.0)
    assert stack.counters.get("ipv4.reasm_inconsistent") == 1


def test_reassembled_unknown_protocol_gets_protocol_unreachable(stack):
    fr = frags_of(bytes(3000), proto=200)
    deliver_all(stack, fr)
    (out,) = stack.poll(0.0)
    msg = IcmpMessage.parse(Ipv4Packet.parse(out).payload)
    assert (msg.type, msg.code) == (3, 2)


def test_single_fragment_error_never_sent_for_nonzero_offset(stack):
    # a lone non-first fragment that completes nothing must never trigger an error
    stack.receive(frags_of(udp_frame(PEER, ME, 1, 9999, bytes(3000))[20:])[1], 0.0)
    assert stack.poll(0.0) == []


def test_last_fragment_shorter_than_earlier_fragments_drops_datagram(stack):
    # found by fuzzing: a "last" fragment that ends before data already received
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(1480), ident=9, mf=True, frag_offset=1480).emit(), 0.0)
    stack.receive(Ipv4Packet(PEER, ME, 17, bytes(8), ident=9, mf=False, frag_offset=8).emit(), 0.0)
    assert stack.counters.get("ipv4.reasm_inconsistent") == 1
    assert stack.counters.get("ipv4.reasm_ok") == 0
