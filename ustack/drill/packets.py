"""Packets of a script: build the inbound ones as bytes, decode the outbound ones ustack sends,
and compare them with packetdrill's rules (see docs/drill.md).

Sequence spaces: the remote (scripted) side's numbers are used live as written (packetdrill
does the same: the live remote ISN is the script's); ustack's own numbers are mapped by the
offset learned from its SYN or SYN-ACK. TS ecr values of inbound packets are mapped to the
live TS val ustack sent for that script value (or interpolated from the first one seen).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ustack.wire.checksum import internet_checksum, pseudo_sum

from .model import Mismatch, PacketSpec, ScriptError, TcpOption, Unsupported

MASK = 0xFFFFFFFF
_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "U": 0x20, "E": 0x40, "W": 0x80}
_ECN_BITS = {None: 0, "noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}
_OPT_KIND = {"eol": 0, "nop": 1, "mss": 2, "wscale": 3, "sackOK": 4, "sack": 5, "TS": 8}
_OPT_NAME = {v: k for k, v in _OPT_KIND.items()}
ICMP_UNREACH_CODES = {"net_unreachable": 0, "host_unreachable": 1, "protocol_unreachable": 2,
                      "port_unreachable": 3, "frag_needed": 4, "source_route_failed": 5,
                      "net_unknown": 6, "host_unknown": 7, "source_host_isolated": 8,
                      "net_prohibited": 9, "host_prohibited": 10, "net_tos": 11, "host_tos": 12,
                      "prohibited": 13, "precedence_violation": 14, "precedence_cutoff": 15}


def flag_bits(flags: str) -> int:
    bits = 0
    for ch in flags:
        bits |= _FLAG_BITS.get(ch, 0)
    if "A" in flags:
        raise Unsupported("TCP flag A (AccECN)")
    return bits


def flags_text(bits: int) -> str:
    letters = "".join(ch for ch, b in _FLAG_BITS.items() if bits & b and ch != ".")
    return letters + ("." if bits & 0x10 else "")


@dataclass
class SeqMap:
    """Per connection: how ustack's live numbers relate to the script's."""

    local_offset: int | None = None  # live - script for ustack's sequence numbers
    ts_map: dict[int, int] = field(default_factory=dict)  # script TS val -> live TS val
    first_ts: tuple[int, int] | None = None  # (script, live) of the first outbound TS val
    # --tcp_ts_tick_usecs: (tick, tolerance) in seconds to check outbound TS vals against the
    # script's, after mapping them by the first one; None: TS vals are not compared
    ts_check: tuple[float, float] | None = None

    def local_to_live(self, script: int) -> int:
        return (script + (self.local_offset or 0)) & MASK

    def local_to_script(self, live: int) -> int:
        return (live - (self.local_offset or 0)) & MASK

    def ecr_to_live(self, script_ecr: int) -> int:
        if script_ecr in self.ts_map:
            return self.ts_map[script_ecr]
        if self.first_ts is not None:
            return (script_ecr - self.first_ts[0] + self.first_ts[1]) & MASK
        return script_ecr


def encode_options(opts: list[TcpOption], seqmap: SeqMap, line: int) -> bytes:
    out = bytearray()
    for o in opts:
        kind = _OPT_KIND[o.name]
        if o.name in ("nop", "eol"):
            out.append(kind)
        elif o.name == "mss":
            out += struct.pack("!BBH", kind, 4, o.values[0] & 0xFFFF)
        elif o.name == "wscale":
            out += struct.pack("!BBB", kind, 3, o.values[0] & 0xFF)
        elif o.name == "sackOK":
            out += bytes((kind, 2))
        elif o.name == "sack":
            out += bytes((kind, 2 + 8 * len(o.values)))
            for left, right in o.values:
                out += struct.pack("!II", seqmap.local_to_live(left), seqmap.local_to_live(right))
        elif o.name == "TS":
            out += struct.pack("!BBII", kind, 10, o.values[0] & MASK, seqmap.ecr_to_live(o.values[1]))
    if len(out) > 40:
        raise ScriptError(f"TCP options of {len(out)} bytes (more than 40)", line)
    while len(out) % 4:
        out.append(0)  # packetdrill pads with EOL
    return bytes(out)


def ipv4(src: int, dst: int, proto: int, payload: bytes, tos: int = 0, ident: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBHII", 0x45, tos, 20 + len(payload), ident, 0x4000, 64, proto, 0, src, dst)
    csum = internet_checksum(hdr)
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + payload


def tcp_segment(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int, win: int,
                options: bytes, payload: bytes, urg: int = 0) -> bytes:
    hlen = 20 + len(options)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & MASK, ack & MASK, (hlen // 4) << 4, flags, win, 0,
                      urg)
    seg = hdr + options + payload
    csum = internet_checksum(seg, pseudo_sum(src, dst, 6, len(seg)))
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


@dataclass
class Outbound:
    """A decoded TCP segment ustack sent (live values)."""

    at: float
    src: int
    dst: int
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    win: int
    urg: int
    options: list[tuple[int, bytes]]  # (kind, data after kind/len) in wire order
    payload: bytes
    tos: int
    ip_ok: bool

    def describe(self, seqmap: SeqMap) -> str:
        seq = seqmap.local_to_script(self.seq)
        s = f"{flags_text(self.flags) or '-'} {seq}:{(seq + len(self.payload)) & MASK}({len(self.payload)})"
        if self.flags & 0x10:
            s += f" ack {self.ack}"
        s += f" win {self.win}"
        if self.options:
            s += " <" + ",".join(_describe_opt(k, d, seqmap) for k, d in self.options) + ">"
        return s


def _describe_opt(kind: int, data: bytes, seqmap: SeqMap) -> str:
    if kind == 1:
        return "nop"
    if kind == 0:
        return "eol"
    if kind == 2 and len(data) == 2:
        return f"mss {struct.unpack('!H', data)[0]}"
    if kind == 3 and len(data) == 1:
        return f"wscale {data[0]}"
    if kind == 4:
        return "sackOK"
    if kind == 8 and len(data) == 8:
        val, ecr = struct.unpack("!II", data)
        return f"TS val {val} ecr {ecr}"
    if kind == 5:
        blocks = [struct.unpack_from("!II", data, i) for i in range(0, len(data) - 7, 8)]
        return "sack " + " ".join(f"{b[0]}:{b[1]}" for b in blocks)
    return f"opt{kind}"


def decode(frame: bytes, at: float) -> Outbound | None:
    """A TCP/IPv4 packet ustack sent, or None for anything else (ICMP, ARP...)."""
    if len(frame) < 20 or frame[0] >> 4 != 4:
        return None
    ihl = (frame[0] & 15) * 4
    tos = frame[1]
    total = struct.unpack_from("!H", frame, 2)[0]
    proto = frame[9]
    src, dst = struct.unpack_from("!II", frame, 12)
    if proto != 6 or total > len(frame) or total < ihl + 20:
        return None
    ip_ok = internet_checksum(frame[:ihl]) == 0
    seg = frame[ihl:total]
    sport, dport, seq, ack, off, flags, win, _csum, urg = struct.unpack_from("!HHIIBBHHH", seg)
    hlen = (off >> 4) * 4
    raw = seg[20:hlen]
    opts: list[tuple[int, bytes]] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind in (0, 1):
            opts.append((kind, b""))
            i += 1
            if kind == 0:
                break  # what follows EOL is padding
            continue
        n = raw[i + 1] if i + 1 < len(raw) else 0
        if n < 2:
            break
        opts.append((kind, bytes(raw[i + 2:i + n])))
        i += n
    return Outbound(at, src, dst, sport, dport, seq, ack, flags, win, urg, opts, bytes(seg[hlen:]), tos & 3,
                    ip_ok)


def strip_padding(opts: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """packetdrill's option iterator stops at EOL: trailing EOL padding is not an option."""
    out = []
    for kind, data in opts:
        if kind == 0:
            break
        out.append((kind, data))
    return out


def check_tcp(script: PacketSpec, live: Outbound, seqmap: SeqMap, *, final: bool, payload_len: int) -> None:
    """Raise Mismatch when `live` (one segment, or the first of an aggregate) is not `script`.
    `final`: this segment ends the scripted packet (FIN/PSH are checked only there)."""
    want = flag_bits(script.flags)
    got = live.flags
    # PSH is not compared: Linux sets it per TSO skb (tcp_mark_push, moved to the tail by
    # tso_fragment), a unit ustack does not have; FIN and CWR only on an aggregate's last part
    ignore = 0x08 if final else (0x01 | 0x08 | 0x80)
    if (want ^ got) & ~ignore & 0xFF:
        raise Mismatch(f"expected flags {script.flags or '-'}, got {flags_text(got) or '-'}")
    seq = seqmap.local_to_script(live.seq)
    if seq != script.seq:
        raise Mismatch(f"expected seq {script.seq}, got {seq}")
    want_ack = script.ack if script.ack is not None else 0
    if live.ack != want_ack & MASK:
        raise Mismatch(f"expected ack {want_ack}, got {live.ack}")
    if script.win is not None and live.win != script.win:
        raise Mismatch(f"expected win {script.win}, got {live.win}")
    if live.urg != script.urg:
        raise Mismatch(f"expected urg {script.urg}, got {live.urg}")
    if script.tos is not None and script.tos != "ect01" and live.tos != _ECN_BITS[script.tos]:
        raise Mismatch(f"expected IP ECN field {script.tos}, got {live.tos}")
    if script.tos == "ect01" and live.tos not in (1, 2):
        raise Mismatch(f"expected IP ECN field ect0 or ect1, got {live.tos}")
    if not live.ip_ok:
        raise Mismatch("bad outbound IP checksum")
    if script.options is not None:
        check_options(script.options, strip_padding(live.options), seqmap)


def check_options(want: list[TcpOption], got: list[tuple[int, bytes]], seqmap: SeqMap) -> None:
    if len(want) != len(got) or any(_OPT_KIND[w.name] != g[0] for w, g in zip(want, got, strict=True)):
        raise Mismatch("bad outbound TCP options: expected <" + ",".join(_spec_opt(w) for w in want)
                       + ">, got <" + ",".join(_describe_opt(k, d, seqmap) for k, d in got) + ">")
    for w, (kind, data) in zip(want, got, strict=True):
        if w.name == "TS":
            if len(data) == 8:
                val = struct.unpack("!I", data[:4])[0]
                seqmap.ts_map[w.values[0]] = val
                if seqmap.first_ts is None:
                    seqmap.first_ts = (w.values[0], val)
                if seqmap.ts_check is not None:
                    tick, tol = seqmap.ts_check
                    mapped = (seqmap.first_ts[0] + val - seqmap.first_ts[1]) & MASK
                    off = ((mapped - w.values[0] + (1 << 31)) & MASK) - (1 << 31)
                    if abs(off) * tick > tol + 1e-9:
                        raise Mismatch(f"bad outbound TCP timestamp value: expected TS val {w.values[0]}, "
                                       f"got {mapped} (script space), tolerance {tol:.6f} sec")
            continue
        if w.name in ("nop", "eol"):
            continue
        expect = encode_options([w], seqmap, 0)[2:2 + len(data)] if w.name != "sack" else None
        if w.name == "sack":
            blocks = [struct.unpack_from("!II", data, i) for i in range(0, len(data) - 7, 8)]
            # outbound SACK blocks cover the remote side's data, whose numbers are the script's
            if tuple(blocks) != tuple(w.values):
                raise Mismatch(f"bad outbound TCP option sack: expected {_spec_opt(w)}, "
                               f"got {_describe_opt(kind, data, seqmap)}")
        elif expect != data:
            raise Mismatch(f"bad value in outbound TCP option {w.name}: expected {_spec_opt(w)}, "
                           f"got {_describe_opt(kind, data, seqmap)}")


def _spec_opt(o: TcpOption) -> str:
    if o.name == "sack":
        return "sack " + " ".join(f"{a}:{b}" for a, b in o.values)
    if o.name == "TS":
        return f"TS val {o.values[0]} ecr {o.values[1]}"
    return " ".join([o.name, *map(str, o.values)])
