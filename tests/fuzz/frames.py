"""Frame fuzzing harness: mutated real frames into `Stack.receive`, with invariants after each.

A *target* is a ustack Stack (TUN medium: bare IPv4 packets, or TAP medium: Ethernet frames) in
a known, busy state, built by a real conversation with a second ustack stack (the peer) in
virtual time: a UDP socket on port 7, a TCP listener on port 80, one established connection
with data queued both ways and out-of-order data waiting behind a hole, an ICMP echo exchange,
a fragmented UDP datagram, and (TAP) ARP. Every frame the peer sent during that conversation is
the seed corpus: real frames, addressed to the target's own addresses and ports, in sequence
space the target's connection accepts, so mutations reach deep into each layer.

An input is a list of steps (corpus index, mutations, fix checksums?, time step). Mutations are
data (`Mutation` tuples), so hypothesis shrinks them and the long run (tools/fuzz_frames.py)
draws the same kinds with a seeded `random.Random`.

Invariants, checked after every frame (`check_frame`) and at the end (`check_final`):
- nothing swallowed: `stack.internal_error` and `tcp.internal_error` stay 0;
- every frame is accounted for at the link/IP layer: delivered to a transport, held for
  reassembly, consumed by ARP, or dropped with a counter (a `drop:` counter of
  `ustack.core.counters.describe` or a codec's `Malformed` reason); never more than one drop
  reason per frame;
- memory: `stack.memory.used` stays within `[0, high]`, and every queue stays within its
  configured bound (reassembly datagrams and fragments, SYN and accept queues, ARP queues);
- at the end, after every socket is closed and every timer has run: the connection table is
  empty and the memory budget is back to exactly 0 (nothing leaked in the accounting).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ustack.core import StackConfig, make_stack
from ustack.core.counters import describe
from ustack.tcp import TcpConfig
from ustack.wire.checksum import internet_checksum, pseudo_sum
from ustack.wire.ipv4 import ip_int

PEER, TARGET = "198.18.0.1", "198.18.0.2"
UDP_PORT, TCP_PORT = 7, 80
SWALLOWED = ("stack.internal_error", "tcp.internal_error")
# A small budget, so fuzzed input reaches memory pressure and the high mark (the defaults are 48,
# 64 and 96 MB: no short run gets near them).
MEM = dict(mem_low=96 * 1024, mem_pressure=160 * 1024, mem_high=256 * 1024)
# Frames consumed at the link/IP layer without being "delivered": ARP, held fragments.
ACCOUNTED = ("ipv4.delivered", "ipv4.reasm_fragments", "arp.requests_in", "arp.replies_in",
             "ipv4.loopback_in")


def is_drop(name: str) -> bool:
    """A counter that says input was discarded (core drops and codec rejections)."""
    return describe(name).startswith("drop:")


class Mutation(NamedTuple):
    kind: str  # one of KINDS
    pos: int  # byte offset (taken modulo the frame length) or field selector
    value: int  # the new byte / field value / length / corpus index to splice


KINDS = ("flip", "byte", "truncate", "extend", "splice", "ip_field", "tcp_field", "udp_field", "dup_frag")


class Step(NamedTuple):
    seed: int  # corpus index (modulo its length)
    mutations: tuple[Mutation, ...]
    fix_checksums: bool
    dt: float  # virtual seconds before this frame
    repeat: int = 1  # sent this many times (a flood), copy i with its TCP sequence number ...
    stride: int = 0  # ... moved by i * stride (holes: the out-of-order queue fills) or IP ID
    batch: bool = False  # through Stack.receive_batch (the TUN fast path) instead of receive


@dataclass
class Target:
    """The stack under test, the peer that brought it into its state, and the corpus."""
    medium: str
    stack: Any
    peer: Any
    corpus: list[bytes]
    now: float
    sockets: list[Any] = field(default_factory=list)
    link_header: int = 0  # 14 on Ethernet
    sent: int = 0  # frames the target sent in answer to the fuzzed input (each one checked)

    def receive(self, frame: bytes, dt: float, batch: bool = False) -> None:
        self.now += dt
        if batch:
            self.stack.receive_batch([(frame, False)], self.now)
        else:
            self.stack.receive(frame, self.now)
        # output is checked, then discarded (the peer stays passive)
        out = self.stack.poll(self.now)
        self.sent += len(out)
        check_output(self, out)


def _shuttle(a: Any, b: Any, now: float, record: list[bytes] | None) -> None:
    """Carry what each stack has to send to the other until both are quiet."""
    for _ in range(200):
        fa, fb = a.poll(now), b.poll(now)
        if not fa and not fb:
            return
        for f in fa:
            if record is not None:
                record.append(bytes(f))
            b.receive(f, now)
        for f in fb:
            a.receive(f, now)


def build_target(medium: str = "ip", seed: int = 1) -> Target:
    """The target stack in its busy state, and the corpus of the peer's frames that built it."""
    tcp = TcpConfig(timestamps=True, sack=True, window_scaling=True)
    mk = dict(medium=medium, tcp=tcp, **MEM)
    target = make_stack(StackConfig(addr=f"{TARGET}/24", seed=seed, **mk))
    peer = make_stack(StackConfig(addr=f"{PEER}/24", seed=seed + 1000, **mk))
    corpus: list[bytes] = []
    now = 0.0
    target.start(now)
    peer.start(now)
    _shuttle(peer, target, now, corpus)
    udp = target.udp.open()
    udp.bind(0, UDP_PORT)
    lst = target.tcp.open()
    lst.bind(0, TCP_PORT)
    lst.listen(8)
    cli = peer.tcp.open()
    cli.connect(ip_int(TARGET), TCP_PORT, now)
    _shuttle(peer, target, now, corpus)
    conn = lst.accept()
    assert conn is not None, "the handshake did not complete"
    now += 0.01
    cli.send(b"a" * 3000, now)  # in-order data (two segments and a bit)
    conn.send(b"b" * 2000, now)  # data the target sends: the peer's ACKs acknowledge it
    _shuttle(peer, target, now, corpus)
    psock = peer.udp.open()
    psock.sendto(b"ping over udp", ip_int(TARGET), UDP_PORT, now)
    psock.sendto(b"x" * 3000, ip_int(TARGET), UDP_PORT, now)  # fragmented (MTU 1500)
    peer.icmp.ping(ip_int(TARGET), 0x1234, 1, b"echo-payload", now)
    _shuttle(peer, target, now, corpus)
    # a hole: drop the peer's next segment, keep the ones after it (out-of-order queue)
    now += 0.01
    cli.send(b"c" * 4000, now)
    held = peer.poll(now)
    corpus.extend(bytes(f) for f in held)
    for f in held[1:]:
        target.receive(f, now)
    target.poll(now)  # the target's duplicate ACKs with SACK go nowhere
    t = Target(medium, target, peer, corpus, now, [udp, lst, conn], 14 if medium == "ethernet" else 0)
    return t


# -- mutations -----------------------------------------------------------------------------------
def _ip_off(t: Target) -> int:
    return t.link_header


def apply(t: Target, frame: bytes, muts: tuple[Mutation, ...], fix: bool) -> bytes:
    b = bytearray(frame)
    for m in muts:
        n = len(b)
        if m.kind == "flip" and n:
            b[m.pos % n] ^= 1 << (m.value % 8)
        elif m.kind == "byte" and n:
            b[m.pos % n] = m.value & 0xFF
        elif m.kind == "truncate":
            del b[max(0, n - m.value % 64):]
        elif m.kind == "extend":
            b += bytes([m.pos & 0xFF]) * (m.value % 64)
        elif m.kind == "splice" and t.corpus:
            other = t.corpus[m.value % len(t.corpus)]
            cut = m.pos % (n + 1)
            b = b[:cut] + other[cut:]
        elif m.kind == "ip_field":
            _set_ip_field(b, _ip_off(t), m.pos, m.value)
        elif m.kind == "tcp_field":
            _set_l4_field(b, _ip_off(t), 6, m.pos, m.value)
        elif m.kind == "udp_field":
            _set_l4_field(b, _ip_off(t), 17, m.pos, m.value)
        elif m.kind == "dup_frag":
            _make_fragment(b, _ip_off(t), m.pos, m.value)
    if fix:
        fix_checksums(b, _ip_off(t))
    return bytes(b)


# IPv4 header fields: (offset, struct format, mask)
_IP_FIELDS = [(0, "B", 0xFF), (2, "H", 0xFFFF), (4, "H", 0xFFFF), (6, "H", 0xFFFF), (8, "B", 0xFF),
              (9, "B", 0xFF), (12, "I", 0xFFFFFFFF), (16, "I", 0xFFFFFFFF), (1, "B", 0xFF)]
# TCP: sport, dport, seq, ack, offset byte, flags, window, urgent; UDP: sport, dport, length
_L4_FIELDS = {6: [(0, "H"), (2, "H"), (4, "I"), (8, "I"), (12, "B"), (13, "B"), (14, "H"), (18, "H")],
              17: [(0, "H"), (2, "H"), (4, "H")]}


def _set_ip_field(b: bytearray, off: int, which: int, value: int) -> None:
    pos, fmt, mask = _IP_FIELDS[which % len(_IP_FIELDS)]
    if len(b) >= off + pos + struct.calcsize(fmt):
        struct.pack_into("!" + fmt, b, off + pos, value & mask)


def _l4_start(b: bytearray, off: int, proto: int) -> int | None:
    if len(b) < off + 20 or b[off + 9] != proto:
        return None
    return off + (b[off] & 0xF) * 4


def _set_l4_field(b: bytearray, off: int, proto: int, which: int, value: int) -> None:
    start = _l4_start(b, off, proto)
    if start is None:
        return
    fields = _L4_FIELDS[proto]
    pos, fmt = fields[which % len(fields)]
    size = struct.calcsize(fmt)
    if len(b) >= start + pos + size:
        if pos in (4, 8) and fmt == "I" and value < 1 << 17:  # small: a nearby sequence number
            old = struct.unpack_from("!I", b, start + pos)[0]
            value = old + value - (1 << 16)
        struct.pack_into("!" + fmt, b, start + pos, value & ((1 << (8 * size)) - 1))


def _make_fragment(b: bytearray, off: int, offset8: int, more: int) -> None:
    """Turn the packet into a fragment: offset (8-byte units) and the MF flag."""
    if len(b) >= off + 20:
        struct.pack_into("!H", b, off + 6, ((more & 1) << 13) | (offset8 & 0x1FFF))


def fix_checksums(b: bytearray, off: int) -> None:
    """Recompute the IPv4 header checksum and (for an unfragmented TCP/UDP/ICMP packet whose
    lengths are consistent) the transport checksum, so a mutation gets past the checksum
    checks and reaches the code behind them."""
    if len(b) < off + 20 or b[off] >> 4 != 4:
        return
    ihl = (b[off] & 0xF) * 4
    if ihl < 20 or len(b) < off + ihl:
        return
    struct.pack_into("!H", b, off + 10, 0)
    struct.pack_into("!H", b, off + 10, internet_checksum(b[off:off + ihl]))
    total = struct.unpack_from("!H", b, off + 2)[0]
    frag = struct.unpack_from("!H", b, off + 6)[0]
    if frag & 0x3FFF or total < ihl or off + total > len(b):
        return
    proto = b[off + 9]
    seg = off + ihl
    n = total - ihl
    at = {6: 16, 17: 6, 1: 2}.get(proto)
    if at is None or n < at + 2:
        return
    struct.pack_into("!H", b, seg + at, 0)
    if proto == 1:
        c = internet_checksum(b[seg:seg + n])
    else:
        src, dst = struct.unpack_from("!II", b, off + 12)
        c = internet_checksum(b[seg:seg + n], pseudo_sum(src, dst, proto, n))
        if proto == 17 and c == 0:
            c = 0xFFFF
    struct.pack_into("!H", b, seg + at, c)


# -- invariants ----------------------------------------------------------------------------------
def check_output(t: Target, frames: list[bytes]) -> None:
    """Whatever hostile input provoked, what the target sends is well formed: from its own
    address, exact IPv4 length, valid header and transport checksums (recomputed here and
    compared), Ethernet from its own MAC; dpkt (an independent decoder) reads it."""
    import dpkt

    own = ip_int(TARGET).to_bytes(4, "big")
    for f in frames:
        b = bytes(f)
        if t.link_header:
            eth = dpkt.ethernet.Ethernet(b)
            assert b[6:12] == t.stack.mac, "Ethernet source is not our MAC"
            if eth.type != 0x0800:
                assert eth.type == 0x0806, f"unexpected ethertype {eth.type:#x}"
                continue
        pkt = b[t.link_header:]
        ip = dpkt.ip.IP(pkt)
        assert ip.v == 4 and ip.hl >= 5 and ip.len == len(pkt), ("bad IPv4 length", pkt[:24].hex())
        assert pkt[12:16] == own, "output from another address"
        assert internet_checksum(pkt[:ip.hl * 4]) == 0, "bad IPv4 header checksum"
        fixed = bytearray(b)
        fix_checksums(fixed, t.link_header)
        assert bytes(fixed) == b, ("bad transport checksum in output", pkt[:40].hex())



@dataclass
class Stats:
    frames: int = 0
    dropped: int = 0
    delivered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    peak_memory: int = 0

    def add(self, other: Stats) -> None:
        self.frames += other.frames
        self.dropped += other.dropped
        self.delivered += other.delivered
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v
        self.peak_memory = max(self.peak_memory, other.peak_memory)


def check_no_internal_error(stack: Any) -> None:
    bad = {n: stack.counters.get(n) for n in SWALLOWED if stack.counters.get(n)}
    assert not bad, (bad, list(stack.internal_errors)[:1])


def check_bounds(t: Target) -> None:
    """Memory within the budget; every queue an attacker can fill within its configured bound."""
    st = t.stack
    mem = st.memory
    # A connection whose receive buffer is empty takes one segment even at the high mark (so it
    # can never stall for good, as in Linux): the budget may be passed by that much per connection.
    slack = len(st.tcp.conns) * PER_CONN_SLACK
    assert 0 <= mem.used <= mem.high + slack, (mem, dict(mem.by_kind))
    assert all(v >= 0 for v in mem.by_kind.values()), dict(mem.by_kind)
    cfg = st.config
    r = st.reassembler
    assert len(r.table) <= cfg.reassembly_max_datagrams and r.mem <= cfg.reassembly_mem_limit
    assert all(len(d.pieces) <= cfg.reassembly_max_fragments for d in r.table.values())
    for lst in _listeners(t):
        assert len(lst.syn_queue) <= st.tcp.config.max_syn_backlog
        assert len(lst.accept_queue) <= max(lst.backlog, 1)
    if st.arp is not None:
        assert len(st.arp.entries) <= cfg.arp_cache_limit and len(st.arp.pending) <= cfg.arp_pending_limit
        assert all(len(p.queue) <= cfg.arp_queue_limit for p in st.arp.pending.values())


def _listeners(t: Target) -> list[Any]:
    out = []
    for s in t.sockets:
        lst = getattr(s, "listener", None)
        if lst is not None:
            out.append(lst)
    return out


TRANSPORTS = {1: "icmp", 6: "tcp", 17: "udp"}
PER_CONN_SLACK = 2048  # one full-size segment's true size, rounded up
# Drops of input that arrived earlier (evicted to make room, timed out): a frame may cause one
# besides its own fate.
EARLIER_INPUT = frozenset({"ipv4.reasm_evicted", "ipv4.reasm_timeout", "arp.queue_overflow",
                           "arp.queue_dropped"})


def check_frame(t: Target, frame: bytes, before: dict[str, int], stats: Stats) -> None:
    """After one frame: no internal error, the frame accounted for at the link/IP layer and by
    the transport it was delivered to, at most one link/IP drop reason."""
    st = t.stack
    check_no_internal_error(st)
    after = st.counters.snapshot()
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    drops = {k: v for k, v in delta.items() if is_drop(k)}
    accounted = any(delta.get(k) for k in ACCOUNTED) or drops
    assert accounted, f"frame vanished without a counter: {delta}"
    ip_drops = {k: v for k, v in drops.items()
                if not k.startswith(("tcp.", "udp.", "icmp.", "memory.")) and k not in EARLIER_INPUT}
    assert sum(ip_drops.values()) <= 1, f"more than one link/IP drop reason for one frame: {drops}"
    if delta.get("ipv4.delivered") and len(frame) > t.link_header + 9:
        name = TRANSPORTS.get(frame[t.link_header + 9])
        if name is not None:  # the transport saw it: counted in, or rejected with its reason
            assert delta.get(f"{name}.in") or any(k.startswith(name + ".") for k in drops), \
                f"delivered to {name} but {name} did not count it: {delta}"
    if delta.get("udp.in"):  # a datagram UDP took is queued to a socket or dropped with a reason
        assert delta.get("udp.delivered") or any(k.startswith("udp.") for k in drops), \
            f"UDP datagram neither delivered nor dropped with a reason: {delta}"
    stats.frames += 1
    if drops:
        stats.dropped += 1
        for k in drops:
            stats.reasons[k] = stats.reasons.get(k, 0) + 1
    if delta.get("ipv4.delivered"):
        stats.delivered += 1
    stats.peak_memory = max(stats.peak_memory, st.memory.used)
    check_bounds(t)


def check_final(t: Target) -> None:
    """Close every socket, run every timer: no connection left, memory accounting back to 0."""
    st = t.stack
    for s in t.sockets:
        try:
            s.close(t.now)
        except TypeError:
            s.close()
    for _ in range(10_000):
        due = st.poll_at()
        if due is None:
            break
        t.now = max(t.now, due)
        st.poll(t.now)
        check_no_internal_error(st)
    assert st.poll_at() is None, "a timer is still pending after everything was closed"
    assert not st.tcp.conns, {k: c.state for k, c in st.tcp.conns.items()}
    assert st.memory.used == 0, st.memory.snapshot()


def run_input(t: Target, steps: list[Step], stats: Stats | None = None,
              on_frame: Callable[[bytes], None] | None = None) -> Stats:
    stats = stats if stats is not None else Stats()
    for step in steps:
        frame = apply(t, t.corpus[step.seed % len(t.corpus)], step.mutations, step.fix_checksums)
        for i in range(max(1, step.repeat)):
            if i:
                shift = (Mutation("tcp_field", 2, (i * step.stride) & 0xFFFFFFFF),
                         Mutation("ip_field", 2, i))  # sequence number; IP identification
                frame_i = apply(t, frame, shift, True)
            else:
                frame_i = frame
            if on_frame is not None:
                on_frame(frame_i)
            before = t.stack.counters.snapshot()
            t.receive(frame_i, step.dt if i == 0 else 0.0, step.batch)
            check_frame(t, frame_i, before, stats)
    return stats


def random_steps(rng: random.Random, n_corpus: int, max_steps: int = 8) -> list[Step]:
    """The long run's inputs: the same kinds of steps hypothesis draws."""
    steps = []
    for _ in range(rng.randint(1, max_steps)):
        muts = tuple(Mutation(rng.choice(KINDS), rng.randrange(1 << 16), rng.randrange(1 << 32))
                     for _ in range(rng.randint(0, 4)))
        flood = rng.random() < 0.1
        steps.append(Step(rng.randrange(n_corpus), muts, rng.random() < 0.8,
                          rng.choice((0.0, 0.001, 0.05, 0.5, 3.0)), rng.randint(2, 400) if flood else 1,
                          rng.choice((1, 2, 100, 1448, 2896, 65536)) if flood else 0, rng.random() < 0.5))
    return steps
