"""Targeted faults: a small filter language over decoded headers, and the action a rule takes.

    drop tcp data dir=out nth=50          the 50th outgoing TCP data segment, nothing else
    delay 300ms tcp syn dir=in            every incoming SYN (and SYN-ACK) 300 ms late
    corrupt tcp.window=0 tcp dir=in nth=3 the 3rd incoming segment claims a zero window
    truncate 40 udp dport=53              UDP to port 53 cut to 40 bytes (IP length kept)
    reorder 3 tcp data seq=1-20000        data segments in the first 20 kB overtaken by 3 frames
    duplicate 2 tcp fin                   every FIN sent three times

A rule is `ACTION [ARGS] TERM...`. Terms (all must hold):
  protocol   tcp udp icmp (IPv4 by protocol number)
  TCP flags  syn fin rst psh ack urg ece cwr (set), !syn ... (clear), flags=SA (exactly these;
             letters S F R P A U E C), data (payload length > 0), nodata (= 0)
  dir=       out (sent by the stack) or in (received)
  src= dst=  an address or network (198.18.0.0/24)
  ranges     port sport dport len seq ack, each with = (N or A-B), >, >=, <, <=;
             len is the transport payload length; seq/ack are relative to the connection's
             ISNs as Wireshark shows them (the SYN is 0, the first data byte 1)
  nth=N      only the Nth frame that matches the other terms (1-based); nth=A-B: the Ath to
             the Bth. Every rule counts every frame its terms match, as frames arrive,
             whatever other rules do to them; actions apply in rule order, and after a drop
             nothing else happens to that frame.

Decoding uses `ustack.wire` and never raises: a frame that does not decode matches no protocol
term. TCP ISNs are learned from SYNs in either direction (a bounded table).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from .faultconfig import parse_duration

PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
PROTOCOLS = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp": PROTO_ICMP}
FLAG_BITS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20,
             "ece": 0x40, "cwr": 0x80}
FLAG_LETTERS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
ACTIONS = ("drop", "duplicate", "delay", "corrupt", "truncate", "reorder")
RANGE_KEYS = {"port": 0xFFFF, "sport": 0xFFFF, "dport": 0xFFFF, "len": 0xFFFF, "seq": 0xFFFFFFFF,
              "ack": 0xFFFFFFFF}
TCP_ONLY = ("seq", "ack")  # range keys only TCP has (ports: TCP and UDP)
ISN_TABLE_MAX = 4096

# name -> (protocol or None for IP, byte offset in its header, width in bytes, is a checksum)
FIELDS: dict[str, tuple[int | None, int, int, bool]] = {
    "ip.tos": (None, 1, 1, False), "ip.len": (None, 2, 2, False), "ip.id": (None, 4, 2, False),
    "ip.ttl": (None, 8, 1, False), "ip.proto": (None, 9, 1, False), "ip.checksum": (None, 10, 2, True),
    "ip.src": (None, 12, 4, False), "ip.dst": (None, 16, 4, False),
    "tcp.sport": (PROTO_TCP, 0, 2, False), "tcp.dport": (PROTO_TCP, 2, 2, False),
    "tcp.seq": (PROTO_TCP, 4, 4, False), "tcp.ack": (PROTO_TCP, 8, 4, False),
    "tcp.flags": (PROTO_TCP, 13, 1, False), "tcp.window": (PROTO_TCP, 14, 2, False),
    "tcp.checksum": (PROTO_TCP, 16, 2, True), "tcp.urg": (PROTO_TCP, 18, 2, False),
    "udp.sport": (PROTO_UDP, 0, 2, False), "udp.dport": (PROTO_UDP, 2, 2, False),
    "udp.len": (PROTO_UDP, 4, 2, False), "udp.checksum": (PROTO_UDP, 6, 2, True),
    "icmp.type": (PROTO_ICMP, 0, 1, False), "icmp.code": (PROTO_ICMP, 1, 1, False),
    "icmp.checksum": (PROTO_ICMP, 2, 2, True),
    "tcp.payload": (PROTO_TCP, -1, 0, False), "udp.payload": (PROTO_UDP, -1, 0, False),
}


class FilterError(ValueError):
    """A rule that cannot be parsed, or whose terms can never all hold."""


class Decoded(NamedTuple):
    """What the filter terms look at, for one frame (None where the frame has no such header)."""
    proto: int | None
    src: int
    dst: int
    sport: int | None
    dport: int | None
    flags: int
    seq: int | None  # raw sequence number
    ack: int | None
    length: int | None  # transport payload bytes
    ip_off: int  # where the IPv4 header starts in the frame
    l4_off: int  # where the transport header starts
    l4_hlen: int  # its length (payload starts at l4_off + l4_hlen)


UNDECODED = Decoded(None, 0, 0, None, None, 0, None, None, None, 0, 0, 0)


def decode(frame: bytes, medium: str) -> Decoded:
    """The headers a filter looks at; UNDECODED when the frame is not IPv4 (or is malformed)."""
    wire = _wire()
    off = 14 if medium == "ethernet" else 0
    try:
        if medium == "ethernet" and (len(frame) < 14 or frame[12:14] != b"\x08\x00"):
            return UNDECODED
        ip = wire.Ipv4Packet.parse(memoryview(frame)[off:], verify=False)
        l4 = off + ip.header_len()
        if ip.frag_offset:  # a later fragment has no transport header
            return Decoded(ip.proto, ip.src, ip.dst, None, None, 0, None, None, None, off, l4, 0)
        if ip.proto == PROTO_TCP:
            seg = wire.TcpSegment.parse(ip.payload, ip.src, ip.dst, verify=False)
            hlen = len(ip.payload) - len(seg.payload)
            return Decoded(PROTO_TCP, ip.src, ip.dst, seg.sport, seg.dport, seg.flags, seg.seq, seg.ack,
                           len(seg.payload), off, l4, hlen)
        if ip.proto == PROTO_UDP:
            d = wire.UdpDatagram.parse(ip.payload, ip.src, ip.dst, verify=False)
            return Decoded(PROTO_UDP, ip.src, ip.dst, d.sport, d.dport, 0, None, None, len(d.payload),
                           off, l4, 8)
        if ip.proto == PROTO_ICMP:
            return Decoded(PROTO_ICMP, ip.src, ip.dst, None, None, 0, None, None, max(0, len(ip.payload) - 8),
                           off, l4, 8)
        return Decoded(ip.proto, ip.src, ip.dst, None, None, 0, None, None, len(ip.payload), off, l4, 0)
    except wire.Malformed:
        return UNDECODED
    except Exception:  # noqa: BLE001 - a decoder bug must not stop traffic: such a frame matches nothing
        _decoder_error()
        return UNDECODED


decoder_errors = 0  # frames whose decoding raised something other than Malformed (tests assert none)


def _decoder_error() -> None:
    """Called inside decode()'s except block (tests/conftest.py watches it)."""
    global decoder_errors
    decoder_errors += 1


_WIRE: list[Any] = []


def _wire() -> Any:
    """ustack.wire, imported once (drivers import no stack at module load)."""
    if not _WIRE:
        from ustack import wire

        _WIRE.append(wire)
    return _WIRE[0]


class IsnTable:
    """Each TCP sender's ISN, learned from its SYN; bounded (the oldest entry goes first)."""

    def __init__(self, limit: int = ISN_TABLE_MAX) -> None:
        self.limit = limit
        self._isn: dict[tuple[int, int, int, int], int] = {}

    def learn(self, d: Decoded) -> None:
        if d.proto == PROTO_TCP and d.flags & 0x02 and d.seq is not None:
            key = (d.src, d.sport, d.dst, d.dport)
            self._isn.pop(key, None)
            if len(self._isn) >= self.limit:
                del self._isn[next(iter(self._isn))]
            self._isn[key] = d.seq  # type: ignore[assignment]

    def rel_seq(self, d: Decoded) -> int | None:
        isn = self._isn.get((d.src, d.sport, d.dst, d.dport))  # type: ignore[arg-type]
        return None if isn is None or d.seq is None else (d.seq - isn) & 0xFFFFFFFF

    def rel_ack(self, d: Decoded) -> int | None:
        isn = self._isn.get((d.dst, d.dport, d.src, d.sport))  # type: ignore[arg-type]
        return None if isn is None or d.ack is None else (d.ack - isn) & 0xFFFFFFFF

    def __len__(self) -> int:
        return len(self._isn)


@dataclass(frozen=True)
class Filter:
    """Constraints that must all hold. Ranges are inclusive (lo, hi)."""
    protos: frozenset[int] | None = None  # None: any (including non-IPv4 frames)
    direction: str | None = None  # "out" / "in"
    flags_set: int = 0
    flags_clear: int = 0
    ranges: tuple[tuple[str, int, int], ...] = ()
    src: tuple[int, int] | None = None  # (network, mask)
    dst: tuple[int, int] | None = None
    nth: tuple[int, int] | None = None  # (first, last) match, 1-based

    @property
    def needs_decode(self) -> bool:
        return bool(self.protos is not None or self.flags_set or self.flags_clear or self.ranges
                    or self.src or self.dst)

    def impossible(self, link: bool = False) -> str | None:
        """Why these terms can never all hold (None when they can)."""
        if self.protos is not None and not self.protos:
            return "the protocol terms exclude each other"
        if self.flags_set & self.flags_clear:
            names = [n for n, b in FLAG_BITS.items() if b & self.flags_set & self.flags_clear]
            return f"flag {names[0]} is required and excluded"
        if self.flags_set and self.protos is not None and PROTO_TCP not in self.protos:
            return "TCP flags on a protocol that is not TCP"
        for key, lo, hi in self.ranges:
            if lo > hi:
                return f"{key} range {lo}-{hi} is empty"
            if key in TCP_ONLY and self.protos is not None and PROTO_TCP not in self.protos:
                return f"{key}= applies to TCP only"
            if key in ("port", "sport", "dport") and self.protos is not None and not (
                    self.protos & {PROTO_TCP, PROTO_UDP}):
                return f"{key}= applies to TCP and UDP only"
        if link and self.direction == "in":
            return "dir=in never matches on a link (every frame on it is sent by some host: use src=/dst=)"
        return None

    def matches(self, d: Decoded, direction: str, isns: IsnTable) -> bool:
        """The terms except nth (which the rule counts)."""
        if self.direction is not None and self.direction != direction:
            return False
        if self.protos is not None and d.proto not in self.protos:
            return False
        if self.src is not None and d.src & self.src[1] != self.src[0]:
            return False
        if self.dst is not None and d.dst & self.dst[1] != self.dst[0]:
            return False
        if self.flags_set or self.flags_clear:
            if d.proto != PROTO_TCP:
                return False
            if d.flags & self.flags_set != self.flags_set or d.flags & self.flags_clear:
                return False
        for key, lo, hi in self.ranges:
            if key == "len":
                v = d.length
            elif key == "sport":
                v = d.sport
            elif key == "dport":
                v = d.dport
            elif key == "port":
                if d.sport is None or not (lo <= d.sport <= hi or lo <= d.dport <= hi):  # type: ignore[operator]
                    return False
                continue
            elif key == "seq":
                v = isns.rel_seq(d) if d.proto == PROTO_TCP else None
            else:
                v = isns.rel_ack(d) if d.proto == PROTO_TCP and d.flags & 0x10 else None
            if v is None or not lo <= v <= hi:
                return False
        return True


@dataclass(frozen=True)
class Rule:
    """One targeted fault: an action on the frames its filter selects."""
    action: str
    filter: Filter
    text: str
    count: int = 1  # duplicate: extra copies; reorder: frames that overtake; truncate: bytes kept
    delay_s: float = 0.0  # delay: how long; reorder: longest hold
    field: str | None = None  # corrupt: which field
    value: int | None = None  # corrupt: the value to write (None: flip bits drawn from the seed)

    def describe(self) -> str:
        return self.text


class RuleState:
    __slots__ = ("rule", "matched", "fired")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.matched = 0
        self.fired = 0

    def hit(self, d: Decoded, direction: str, isns: IsnTable) -> bool:
        """True when this frame triggers the rule (counts matches for nth)."""
        f = self.rule.filter
        if not f.matches(d, direction, isns):
            return False
        self.matched += 1
        return f.nth is None or f.nth[0] <= self.matched <= f.nth[1]


# -- parsing ---------------------------------------------------------------------------------------
_TERM = re.compile(r"^([a-z]+)(>=|<=|=|>|<)(.*)$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _int(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise FilterError(f"{what}: not an integer: {text!r}") from None


def _range(key: str, op: str, text: str) -> tuple[str, int, int]:
    top = RANGE_KEYS[key]
    if op == "=":
        m = _RANGE.match(text)
        if not m:
            raise FilterError(f"{key}={text}: want N or A-B")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
    else:
        n = _int(text, f"{key}{op}")
        lo, hi = {">": (n + 1, top), ">=": (n, top), "<": (0, n - 1), "<=": (0, n)}[op]
    if lo > top or (op == "=" and hi > top):
        raise FilterError(f"{key}{op}{text}: outside 0..{top}")
    return key, lo, min(hi, top)


def _network(key: str, text: str) -> tuple[int, int]:
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise FilterError(f"{key}={text}: not an IPv4 address or network") from None
    return int(net.network_address), int(net.netmask)


def parse_rule(text: str, *, link: bool = False) -> Rule:
    """A Rule from its text; FilterError (one line, naming the term) when it is wrong or can
    never match. `link`: the rule is for a simulator link (no dir=in there)."""
    words = text.split()
    if not words:
        raise FilterError("empty rule")
    action = words[0].lower()
    if action not in ACTIONS:
        raise FilterError(f"unknown action {words[0]!r} (actions: {', '.join(ACTIONS)})")
    rest = words[1:]
    kw: dict[str, Any] = {}

    def arg(what: str) -> str:
        if not rest or _TERM.match(rest[0].lower()):
            raise FilterError(f"{action} needs {what}")
        return rest.pop(0)

    if action == "duplicate":
        if rest and rest[0].isdigit():
            kw["count"] = _int(rest.pop(0), "duplicate")
            if kw["count"] < 1:
                raise FilterError("duplicate N: N must be >= 1")
    elif action == "delay":
        text = arg("a duration (e.g. 200ms)")
        try:
            kw["delay_s"] = parse_duration(text)
        except ValueError:
            raise FilterError(f"delay needs a duration (e.g. 200ms), not {text!r}") from None
        if kw["delay_s"] <= 0:
            raise FilterError("delay: the duration must be > 0")
    elif action == "truncate":
        kw["count"] = _int(arg("the number of bytes to keep"), "truncate")
        if kw["count"] < 0:
            raise FilterError("truncate N: N must be >= 0")
    elif action == "reorder":
        kw["count"] = _int(arg("K (frames that overtake)"), "reorder")
        if kw["count"] < 1:
            raise FilterError("reorder K: K must be >= 1")
        kw["delay_s"] = 1.0
    elif action == "corrupt":
        spec = arg("a field (e.g. tcp.checksum or tcp.window=0)")
        name, sep, value = spec.lower().partition("=")
        if name not in FIELDS:
            raise FilterError(f"corrupt: unknown field {name!r} (fields: {', '.join(FIELDS)})")
        kw["field"] = name
        if sep:
            proto, _off, width, _ck = FIELDS[name]
            if width == 0:
                raise FilterError(f"corrupt {name}: a payload takes no value")
            v = _int(value, f"corrupt {name}")
            if not 0 <= v < 1 << (8 * width):
                raise FilterError(f"corrupt {name}={v}: does not fit in {width * 8} bits")
            kw["value"] = v
    flt = _parse_terms(rest, kw)
    if "hold" in kw:
        if action != "reorder":
            raise FilterError("hold= goes with reorder K (how long a frame may wait)")
        kw["delay_s"] = kw.pop("hold")
    if action == "corrupt":
        proto = FIELDS[kw["field"]][0]
        if proto is not None:
            if flt.protos is None:
                flt = replace(flt, protos=frozenset({proto}))
            elif proto not in flt.protos:
                raise FilterError(f"corrupt {kw['field']} on frames that are not {kw['field'].split('.')[0]}")
    why = flt.impossible(link)
    if why:
        raise FilterError(f"can never match: {why}")
    return Rule(action, flt, " ".join(words), **kw)


def _parse_terms(words: list[str], kw: dict[str, Any]) -> Filter:
    protos: set[int] | None = None
    f: dict[str, Any] = {"flags_set": 0, "flags_clear": 0}
    ranges: list[tuple[str, int, int]] = []
    for word in words:
        w = word.lower()
        if w in PROTOCOLS:
            new = {PROTOCOLS[w]}
            protos = new if protos is None else protos & new
            continue
        if w in FLAG_BITS:
            f["flags_set"] |= FLAG_BITS[w]
            continue
        if w[:1] == "!" and w[1:] in FLAG_BITS:
            f["flags_clear"] |= FLAG_BITS[w[1:]]
            continue
        if w == "data":
            ranges.append(("len", 1, 0xFFFF))
            continue
        if w == "nodata":
            ranges.append(("len", 0, 0))
            continue
        m = _TERM.match(w)
        if not m:
            raise FilterError(f"unknown term {word!r}")
        key, op, value = m.groups()
        if key in RANGE_KEYS:
            ranges.append(_range(key, op, value))
        elif op != "=":
            raise FilterError(f"{key} takes =, not {op}")
        elif key == "dir":
            if value not in ("in", "out"):
                raise FilterError(f"dir={value}: want in or out")
            if f.get("direction") not in (None, value):
                raise FilterError("can never match: dir=in and dir=out")
            f["direction"] = value
        elif key in ("src", "dst"):
            f[key] = _network(key, value)
        elif key == "nth":
            m = _RANGE.match(value)
            if not m:
                raise FilterError(f"nth={value}: want N or A-B (counting from 1)")
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) is not None else lo
            if lo < 1:
                raise FilterError("nth=N counts from 1")
            if hi < lo:
                raise FilterError(f"nth={value}: range is empty")
            f["nth"] = (lo, hi)
        elif key == "flags":
            bits = 0
            for ch in word.split("=", 1)[1]:
                if ch.upper() not in FLAG_LETTERS:
                    raise FilterError(f"flags={value}: unknown flag letter {ch!r} (S F R P A U E C)")
                bits |= FLAG_LETTERS[ch.upper()]
            f["flags_set"] |= bits
            f["flags_clear"] |= 0xFF & ~bits
        elif key == "hold":
            try:
                kw["hold"] = parse_duration(value)
            except ValueError as e:
                raise FilterError(f"hold: {e}") from None
        else:
            raise FilterError(f"unknown term {word!r}")
    merged: dict[str, tuple[int, int]] = {}
    for key, lo, hi in ranges:  # several terms on one key: their intersection
        a, b = merged.get(key, (0, RANGE_KEYS[key]))
        merged[key] = (max(a, lo), min(b, hi))
    return Filter(protos=None if protos is None else frozenset(protos),
                  ranges=tuple((k, lo, hi) for k, (lo, hi) in merged.items()), **f)


# -- actions on bytes ---------------------------------------------------------------------------
def corrupt_field(frame: bytes, d: Decoded, name: str, value: int | None,
                  draw: Callable[[int], int]) -> bytes:
    """The frame with field `name` set to `value` (None: XORed with a nonzero draw(bits)).

    Header fields get their checksums recomputed, so the lie reaches the receiver; a checksum
    field is just changed (the receiver drops the frame); a payload gets one bit flipped and
    keeps its old checksum (the receiver's checksum catches it)."""
    from ustack.wire.checksum import internet_checksum, pseudo_sum

    proto, off, width, is_checksum = FIELDS[name]
    if proto is not None and d.proto != proto:
        return frame
    b = bytearray(frame)
    if off < 0:  # payload: one bit
        start = d.l4_off + d.l4_hlen
        nbits = (len(b) - start) * 8
        if nbits <= 0:
            return frame
        bit = draw(nbits.bit_length() + 8) % nbits
        b[start + (bit >> 3)] ^= 1 << (bit & 7)
        return bytes(b)
    base = (d.ip_off if proto is None else d.l4_off) + off
    if base + width > len(b):
        return frame
    old = int.from_bytes(b[base:base + width], "big")
    new = value if value is not None else old ^ (draw(8 * width) or 1)
    b[base:base + width] = new.to_bytes(width, "big")
    if is_checksum:
        return bytes(b)
    ihl = (b[d.ip_off] & 0xF) * 4
    b[d.ip_off + 10:d.ip_off + 12] = b"\0\0"
    b[d.ip_off + 10:d.ip_off + 12] = internet_checksum(b[d.ip_off:d.ip_off + ihl]).to_bytes(2, "big")
    if d.proto in (PROTO_TCP, PROTO_UDP) and name.split(".")[0] in ("tcp", "udp", "ip"):
        ck = d.l4_off + (16 if d.proto == PROTO_TCP else 6)
        total = int.from_bytes(b[d.ip_off + 2:d.ip_off + 4], "big")
        end = min(len(b), d.ip_off + total)
        if ck + 2 <= end and not (d.proto == PROTO_UDP and b[ck:ck + 2] == b"\0\0"):
            src = int.from_bytes(b[d.ip_off + 12:d.ip_off + 16], "big")
            dst = int.from_bytes(b[d.ip_off + 16:d.ip_off + 20], "big")
            b[ck:ck + 2] = b"\0\0"
            seg = b[d.l4_off:end]
            c = internet_checksum(seg, pseudo_sum(src, dst, d.proto, len(seg)))
            if d.proto == PROTO_UDP and c == 0:
                c = 0xFFFF
            b[ck:ck + 2] = c.to_bytes(2, "big")
    if d.proto == PROTO_ICMP and name.startswith("icmp."):
        ck = d.l4_off + 2
        total = int.from_bytes(b[d.ip_off + 2:d.ip_off + 4], "big")
        end = min(len(b), d.ip_off + total)
        b[ck:ck + 2] = b"\0\0"
        b[ck:ck + 2] = internet_checksum(b[d.l4_off:end]).to_bytes(2, "big")
    return bytes(b)


def truncate(frame: bytes, d: Decoded, keep: int) -> bytes:
    """The frame cut to `keep` bytes of its IP packet (an Ethernet header is kept on top)."""
    return frame[:d.ip_off + keep]


__all__ = ["ACTIONS", "Decoded", "FIELDS", "Filter", "FilterError", "IsnTable", "Rule", "UNDECODED",
           "RuleState", "corrupt_field", "decode", "parse_rule", "truncate"]
