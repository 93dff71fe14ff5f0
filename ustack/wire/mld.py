"""MLD (RFC 3810 version 2, RFC 2710 version 1): the ICMPv6 messages of IPv6 group membership.

`parse_mld(buf)` takes a whole ICMPv6 message (type, code, checksum, body) whose checksum the
ICMPv6 layer has checked, and returns an `MldQuery` (version 1: 24 bytes; version 2: 28 or
more, RFC 3810 8.1), an `MldReport` (v1 report 131 or done 132) or an `MldV2Report` (143). Each
record has `emit(src, dst) -> bytes` with the ICMPv6 checksum over the IPv6 pseudo-header
(addresses are 128-bit ints). MLDv2 is IGMPv3 for IPv6: the record types are the same.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .checksum import fold, wide_sum
from .errors import Malformed

PROTO_ICMPV6 = 58
QUERY = 130
V1_REPORT = 131
V1_DONE = 132
V2_REPORT = 143
TYPES = frozenset({QUERY, V1_REPORT, V1_DONE, V2_REPORT})

ALL_NODES = 0xFF02 << 112 | 1  # ff02::1
ALL_ROUTERS = 0xFF02 << 112 | 2  # ff02::2: MLDv1 done messages go here
V2_ROUTERS = 0xFF02 << 112 | 0x16  # ff02::16: MLDv2 reports go here
# The options of the Hop-by-Hop header every MLD message carries (RFC 3810 5): Router Alert
# (RFC 2711, value 0 = MLD) and a 2-byte PadN, filling the header to 8 bytes with its next
# header and length bytes
ROUTER_ALERT_HBH = b"\x05\x02\x00\x00\x01\x00"

_HDR = struct.Struct("!BBHHH")  # type, code, checksum, max resp code, reserved
_V2R = struct.Struct("!BBHHH")  # type, reserved, checksum, reserved, number of records
_REC = struct.Struct("!BBH")  # record type, aux data length (words), number of sources
V1_LEN = 24
V2_QUERY_MIN = 28


def decode_code(code: int) -> int:
    """An MLDv2 Maximum Response Code in milliseconds (RFC 3810 5.1.3): the value itself below
    32768, else a floating-point form with a 3-bit exponent and a 12-bit mantissa."""
    if code < 0x8000:
        return code
    return ((code & 0x0FFF) | 0x1000) << (((code >> 12) & 0x07) + 3)


def encode_code(ms: int) -> int:
    """The smallest code whose value is >= ms (saturating at 0xffff)."""
    if ms < 0x8000:
        return max(ms, 0)
    for exp in range(8):
        mant = -(-ms // (1 << (exp + 3))) - 0x1000
        if 0 <= mant <= 0x0FFF:
            return 0x8000 | exp << 12 | mant
    return 0xFFFF


def decode_qqic(code: int) -> int:
    """QQIC in seconds (RFC 3810 5.1.9, the IGMPv3 form)."""
    if code < 128:
        return code
    return ((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3)


def _addr(buf: memoryview, at: int) -> int:
    return int.from_bytes(buf[at:at + 16], "big")


def _a(value: int) -> bytes:
    return value.to_bytes(16, "big")


def icmp6_checksum(src: int, dst: int, message: bytes) -> int:
    """The ICMPv6 checksum (RFC 4443 2.3) of `message` (checksum field zero) between src and dst."""
    n = len(message)
    pseudo = wide_sum(_a(src) + _a(dst)) + n + PROTO_ICMPV6
    return ~fold(pseudo + wide_sum(message)) & 0xFFFF


def _finish(body: bytes, src: int, dst: int) -> bytes:
    return body[:2] + icmp6_checksum(src, dst, body).to_bytes(2, "big") + body[4:]


class MldQuery(NamedTuple):
    """A multicast listener query; `group` 0 is a general query."""

    version: int
    max_resp_code: int  # v1: Maximum Response Delay in ms; v2: `decode_code` ms
    group: int
    s_flag: bool = False
    qrv: int = 0
    qqic: int = 0
    sources: tuple[int, ...] = ()

    @property
    def max_resp_s(self) -> float:
        ms = self.max_resp_code if self.version == 1 else decode_code(self.max_resp_code)
        return ms / 1000

    @property
    def query_interval_s(self) -> int:
        return decode_qqic(self.qqic)

    def emit(self, src: int, dst: int) -> bytes:
        try:
            head = _HDR.pack(QUERY, 0, 0, self.max_resp_code, 0) + _a(self.group)
            if self.version == 2:
                head += struct.pack("!BBH", (0x08 if self.s_flag else 0) | (self.qrv & 7), self.qqic,
                                    len(self.sources)) + b"".join(_a(s) for s in self.sources)
            return _finish(head, src, dst)
        except (struct.error, OverflowError) as e:
            raise ValueError(f"cannot encode {self!r}: {e}") from e


class MldReport(NamedTuple):
    """An MLDv1 report (131) or done (132)."""

    type: int
    group: int

    def emit(self, src: int, dst: int) -> bytes:
        try:
            return _finish(_HDR.pack(self.type, 0, 0, 0, 0) + _a(self.group), src, dst)
        except (struct.error, OverflowError) as e:
            raise ValueError(f"cannot encode {self!r}: {e}") from e


class AddressRecord(NamedTuple):
    type: int
    group: int
    sources: tuple[int, ...] = ()
    aux: bytes = b""

    def emit(self) -> bytes:
        if len(self.aux) & 3:
            raise ValueError("AddressRecord.aux must be a multiple of 4 bytes")
        return (_REC.pack(self.type, len(self.aux) // 4, len(self.sources)) + _a(self.group)
                + b"".join(_a(s) for s in self.sources) + bytes(self.aux))


class MldV2Report(NamedTuple):
    records: tuple[AddressRecord, ...]

    def emit(self, src: int, dst: int) -> bytes:
        try:
            body = _V2R.pack(V2_REPORT, 0, 0, 0, len(self.records)) + b"".join(r.emit() for r in self.records)
            return _finish(body, src, dst)
        except (struct.error, OverflowError) as e:
            raise ValueError(f"cannot encode {self!r}: {e}") from e


MldMessage = MldQuery | MldReport | MldV2Report


def parse_mld(buf: bytes | memoryview) -> MldMessage:
    """Decode an MLD message (the checksum is the ICMPv6 layer's to check). Raises Malformed
    ``mld.truncated`` (too short, or a list past the end), ``mld.bad_query_length`` (25-27
    bytes: RFC 3810 8.1 says to ignore it) or ``mld.not_mld`` (another ICMPv6 type)."""
    mv = memoryview(buf)
    n = len(mv)
    if n < 4:
        raise Malformed("mld.truncated", f"{n} bytes, the ICMPv6 header needs 4")
    typ = mv[0]
    if typ not in TYPES:
        raise Malformed("mld.not_mld", f"ICMPv6 type {typ}")
    if typ == V2_REPORT:
        if n < 8:
            raise Malformed("mld.truncated", f"v2 report of {n} bytes")
        count = _V2R.unpack_from(mv)[4]
        at = 8
        records = []
        for _ in range(count):
            if at + 20 > n:
                raise Malformed("mld.truncated", f"v2 report lists {count} records in {n} bytes")
            rtype, aux_words, nsrc = _REC.unpack_from(mv, at)
            end = at + 20 + 16 * nsrc + 4 * aux_words
            if end > n:
                raise Malformed("mld.truncated", f"address record at byte {at} runs past {n} bytes")
            srcs = tuple(_addr(mv, at + 20 + 16 * i) for i in range(nsrc))
            records.append(AddressRecord(rtype, _addr(mv, at + 4), srcs, bytes(mv[end - 4 * aux_words:end])))
            at = end
        return MldV2Report(tuple(records))
    if n < V1_LEN:
        raise Malformed("mld.truncated", f"{n} bytes, MLD needs {V1_LEN}")
    _t, _c, _csum, code, _r = _HDR.unpack_from(mv)
    group = _addr(mv, 8)
    if typ != QUERY:
        return MldReport(typ, group)
    if n == V1_LEN:
        return MldQuery(1, code, group)
    if n < V2_QUERY_MIN:
        raise Malformed("mld.bad_query_length", f"query of {n} bytes (24 or >= 28 expected)")
    flags, qqic, count = struct.unpack_from("!BBH", mv, 24)
    if V2_QUERY_MIN + 16 * count > n:
        raise Malformed("mld.truncated", f"query lists {count} sources in {n} bytes")
    return MldQuery(2, code, group, bool(flags & 0x08), flags & 7, qqic,
                    tuple(_addr(mv, V2_QUERY_MIN + 16 * i) for i in range(count)))
