"""DNS messages (RFC 1035 section 4; AAAA from RFC 3596): what a stub resolver sends and reads.

`DnsMessage.parse` follows compression pointers (only backwards, so a pointer loop cannot
exist, and at most 128 of them per name) and bounds names to 255 bytes and labels to 63.
Record data is decoded for A and AAAA (address text) and CNAME/NS/PTR (a name); any other type
keeps its raw bytes. `emit` writes names uncompressed. For TCP, `tcp_frame` adds the two-byte
length prefix (RFC 1035 4.2.2).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from .errors import Malformed

PORT = 53
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_AAAA = 1, 2, 5, 12, 28
CLASS_IN = 1
# response codes (RFC 1035 4.1.1)
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = range(6)
FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
UDP_LIMIT = 512  # a UDP answer without EDNS is at most this big (RFC 1035 4.2.1)
_HDR = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_Q = struct.Struct("!HH")
_NAME_TYPES = (TYPE_CNAME, TYPE_NS, TYPE_PTR)
_MAX_POINTERS = 128


def encode_name(name: str) -> bytes:
    """'www.example.org' -> length-prefixed labels ending with the root. ValueError if it cannot
    be a DNS name (empty label, label over 63 bytes, name over 255 bytes, non-ASCII)."""
    name = name.rstrip(".")
    out = bytearray()
    if name:
        for label in name.split("."):
            raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
            if not 0 < len(raw) <= 63:
                raise ValueError(f"DNS label {label!r} must be 1..63 bytes")
            out.append(len(raw))
            out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"DNS name of {len(out)} bytes (at most 255)")
    return bytes(out)


def _read_name(buf: bytes, i: int) -> tuple[str, int]:
    """(name, offset after it in the original position) at offset i of the whole message."""
    labels: list[str] = []
    end = -1
    total = 1
    hops = 0
    n = len(buf)
    while True:
        if i >= n:
            raise Malformed("dns.truncated", f"name runs past the end at offset {i}")
        length = buf[i]
        if length & 0xC0 == 0xC0:
            if i + 1 >= n:
                raise Malformed("dns.truncated", "compression pointer cut off")
            target = ((length & 0x3F) << 8) | buf[i + 1]
            hops += 1
            if target >= i or hops > _MAX_POINTERS:
                raise Malformed("dns.bad_name", f"compression pointer at {i} to {target} is not backwards")
            if end < 0:
                end = i + 2
            i = target
            continue
        if length & 0xC0:
            raise Malformed("dns.bad_name", f"label type {length >> 6} at offset {i}")
        if length == 0:
            return ".".join(labels), (end if end >= 0 else i + 1)
        if i + 1 + length > n:
            raise Malformed("dns.truncated", f"label at offset {i} runs past the end")
        total += length + 1
        if total > 255:
            raise Malformed("dns.bad_name", "name longer than 255 bytes")
        labels.append(buf[i + 1:i + 1 + length].decode("ascii", "replace"))
        i += 1 + length


class DnsQuestion(NamedTuple):
    name: str
    qtype: int = TYPE_A
    qclass: int = CLASS_IN


class DnsRecord(NamedTuple):
    """A resource record. `data`: address text (A, AAAA), a name (CNAME, NS, PTR) or raw bytes."""

    name: str
    rtype: int
    ttl: int
    data: str | bytes
    rclass: int = CLASS_IN

    def rdata(self) -> bytes:
        t, d = self.rtype, self.data
        if t == TYPE_A:
            return ipaddress.IPv4Address(d).packed
        if t == TYPE_AAAA:
            return ipaddress.IPv6Address(d).packed
        if t in _NAME_TYPES:
            return encode_name(str(d))
        return bytes(d)  # type: ignore[arg-type]


def _decode_rdata(buf: bytes, rtype: int, start: int, length: int) -> str | bytes:
    raw = buf[start:start + length]
    if rtype == TYPE_A:
        if length != 4:
            raise Malformed("dns.bad_record", f"A record of {length} bytes")
        return str(ipaddress.IPv4Address(raw))
    if rtype == TYPE_AAAA:
        if length != 16:
            raise Malformed("dns.bad_record", f"AAAA record of {length} bytes")
        return str(ipaddress.IPv6Address(raw))
    if rtype in _NAME_TYPES:
        name, end = _read_name(buf, start)
        if end != start + length:
            raise Malformed("dns.bad_record", "name in record data does not fill it")
        return name
    return raw


class DnsMessage(NamedTuple):
    id: int
    flags: int
    questions: tuple[DnsQuestion, ...] = ()
    answers: tuple[DnsRecord, ...] = ()
    authority: tuple[DnsRecord, ...] = ()
    additional: tuple[DnsRecord, ...] = ()

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_QR)

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TC)

    @classmethod
    def query(cls, ident: int, name: str, qtype: int = TYPE_A) -> DnsMessage:
        """A standard recursive query for one name (RD set, as a stub resolver sends)."""
        return cls(ident, FLAG_RD, (DnsQuestion(name, qtype),))

    @classmethod
    def parse(cls, data: bytes | memoryview) -> DnsMessage:
        buf = bytes(data)
        if len(buf) < _HDR.size:
            raise Malformed("dns.truncated", f"{len(buf)} bytes, header needs {_HDR.size}")
        ident, flags, qd, an, ns, ar = _HDR.unpack_from(buf)
        i = _HDR.size
        questions = []
        for _ in range(qd):
            name, i = _read_name(buf, i)
            if i + 4 > len(buf):
                raise Malformed("dns.truncated", "question cut off")
            qtype, qclass = _Q.unpack_from(buf, i)
            i += 4
            questions.append(DnsQuestion(name, qtype, qclass))
        sections: list[list[DnsRecord]] = [[], [], []]
        for section, count in zip(sections, (an, ns, ar), strict=True):
            for _ in range(count):
                name, i = _read_name(buf, i)
                if i + _RR.size > len(buf):
                    raise Malformed("dns.truncated", "record header cut off")
                rtype, rclass, ttl, length = _RR.unpack_from(buf, i)
                i += _RR.size
                if i + length > len(buf):
                    raise Malformed("dns.truncated", "record data cut off")
                section.append(DnsRecord(name, rtype, ttl, _decode_rdata(buf, rtype, i, length), rclass))
                i += length
        return cls(ident, flags, tuple(questions), *(tuple(s) for s in sections))

    def emit(self) -> bytes:
        if not (0 <= self.id <= 0xFFFF and 0 <= self.flags <= 0xFFFF):
            raise ValueError(f"DnsMessage id {self.id} / flags {self.flags} out of range 0..65535")
        parts = [_HDR.pack(self.id, self.flags, len(self.questions), len(self.answers),
                           len(self.authority), len(self.additional))]
        for q in self.questions:
            parts.append(encode_name(q.name) + _Q.pack(q.qtype, q.qclass))
        for rr in (*self.answers, *self.authority, *self.additional):
            rdata = rr.rdata()
            parts.append(encode_name(rr.name) + _RR.pack(rr.rtype, rr.rclass, rr.ttl, len(rdata)) + rdata)
        return b"".join(parts)

    def addresses(self, qtype: int = TYPE_A) -> list[str]:
        """The A (or AAAA) answers, in order, whatever name they are for (the CNAME chain a
        recursive server returns ends at them)."""
        return [str(r.data) for r in self.answers if r.rtype == qtype and r.rclass == CLASS_IN]


def tcp_frame(message: bytes) -> bytes:
    """A message as sent over TCP: two-byte length, then the message (RFC 1035 4.2.2)."""
    return len(message).to_bytes(2, "big") + message
