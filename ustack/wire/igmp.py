"""IGMP (RFC 2236 version 2, RFC 3376 version 3; version 1 queries and reports per RFC 1112).

`parse_igmp(buf)` returns one of three records:
- `IgmpQuery`: a membership query of any version (RFC 3376 7.1 tells them apart by length and
  Max Resp Code: 8 bytes with code 0 is v1, 8 bytes with a code is v2, 12 or more is v3);
- `IgmpReport`: a v1/v2 membership report or a v2 leave group (8 bytes: type, max resp, group);
- `IgmpV3Report`: a v3 membership report, a list of `GroupRecord`s.
Every one has `emit() -> bytes` with the checksum filled in.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_ints
from .checksum import fold, wide_sum
from .errors import Malformed

PROTO_IGMP = 2
MEMBERSHIP_QUERY = 0x11
V1_REPORT = 0x12
V2_REPORT = 0x16
V2_LEAVE = 0x17
V3_REPORT = 0x22

# v3 group record types (RFC 3376 4.2.12)
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE = 3
CHANGE_TO_EXCLUDE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6
RECORD_NAMES = {
    MODE_IS_INCLUDE: "IS_IN", MODE_IS_EXCLUDE: "IS_EX", CHANGE_TO_INCLUDE: "TO_IN",
    CHANGE_TO_EXCLUDE: "TO_EX", ALLOW_NEW_SOURCES: "ALLOW", BLOCK_OLD_SOURCES: "BLOCK",
}

ALL_SYSTEMS = 0xE0000001  # 224.0.0.1
ALL_ROUTERS = 0xE0000002  # 224.0.0.2: v2 leave messages go here
V3_REPORTS = 0xE0000016  # 224.0.0.22: v3 reports go here
ROUTER_ALERT = b"\x94\x04\x00\x00"  # IPv4 option (RFC 2113) every IGMP message we send carries

_HDR = struct.Struct("!BBHI")
_V3Q = struct.Struct("!BBHIBBH")
_V3R = struct.Struct("!BBHHH")
_REC = struct.Struct("!BBHI")
HEADER_LEN = 8
V3_QUERY_MIN = 12


def decode_code(code: int) -> int:
    """A v3 Max Resp Code or QQIC (RFC 3376 4.1.1, 4.1.7): below 128 the value itself, else a
    floating-point form with a 3-bit exponent and 4-bit mantissa."""
    if code < 128:
        return code
    return ((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3)


def encode_code(value: int) -> int:
    """The smallest code whose decoded value is >= value (values above 31744 saturate)."""
    if value < 128:
        return max(value, 0)
    for code in range(128, 256):
        if decode_code(code) >= value:
            return code
    return 255


def _checksum_ok(buf: bytes | memoryview) -> bool:
    return fold(wide_sum(buf)) == 0xFFFF


def _with_checksum(body: bytes) -> bytes:
    csum = ~fold(wide_sum(body)) & 0xFFFF
    return body[:2] + csum.to_bytes(2, "big") + body[4:]


class IgmpQuery(NamedTuple):
    """A membership query. `group` 0 is a general query; `sources` makes it group-and-source
    specific (v3). `max_resp_code` is the raw field (v2: tenths of a second; v3: `decode_code`
    tenths; v1: 0, meaning 10 s)."""

    version: int
    max_resp_code: int
    group: int
    s_flag: bool = False  # v3: suppress router-side processing
    qrv: int = 0  # v3: querier's robustness variable (0: not given)
    qqic: int = 0  # v3: querier's query interval code
    sources: tuple[int, ...] = ()

    @property
    def max_resp_s(self) -> float:
        """The Max Response Time in seconds (v1 queries carry none: RFC 2236 4 says 10 s)."""
        if self.version == 1:
            return 10.0
        if self.version == 2:
            return self.max_resp_code / 10
        return decode_code(self.max_resp_code) / 10

    @property
    def query_interval_s(self) -> int:
        return decode_code(self.qqic)

    def emit(self) -> bytes:
        try:
            if self.version < 3:
                code = 0 if self.version == 1 else self.max_resp_code
                return _with_checksum(_HDR.pack(MEMBERSHIP_QUERY, code, 0, self.group))
            head = _V3Q.pack(MEMBERSHIP_QUERY, self.max_resp_code, 0, self.group,
                             (0x08 if self.s_flag else 0) | (self.qrv & 7), self.qqic, len(self.sources))
            return _with_checksum(head + b"".join(s.to_bytes(4, "big") for s in self.sources))
        except (struct.error, OverflowError) as e:
            check_ints("IgmpQuery", (("max_resp_code", self.max_resp_code, 8), ("group", self.group, 32),
                                     ("qqic", self.qqic, 8), ("sources", len(self.sources), 16)))
            raise ValueError(f"cannot encode {self!r}: {e}") from e


class IgmpReport(NamedTuple):
    """A v1 report (0x12), v2 report (0x16) or v2 leave group (0x17)."""

    type: int
    group: int
    max_resp_code: int = 0  # unused in reports; kept to round-trip what was received

    def emit(self) -> bytes:
        try:
            return _with_checksum(_HDR.pack(self.type, self.max_resp_code, 0, self.group))
        except struct.error as e:
            check_ints("IgmpReport", (("type", self.type, 8), ("group", self.group, 32),
                                      ("max_resp_code", self.max_resp_code, 8)))
            raise ValueError(f"cannot encode {self!r}: {e}") from e


class GroupRecord(NamedTuple):
    type: int
    group: int
    sources: tuple[int, ...] = ()
    aux: bytes = b""  # auxiliary data (none defined for IGMPv3; kept as received)

    def emit(self) -> bytes:
        if len(self.aux) & 3:
            raise ValueError("GroupRecord.aux must be a multiple of 4 bytes")
        return (_REC.pack(self.type, len(self.aux) // 4, len(self.sources), self.group)
                + b"".join(s.to_bytes(4, "big") for s in self.sources) + bytes(self.aux))


class IgmpV3Report(NamedTuple):
    records: tuple[GroupRecord, ...]

    def emit(self) -> bytes:
        try:
            body = _V3R.pack(V3_REPORT, 0, 0, 0, len(self.records))
            return _with_checksum(body + b"".join(r.emit() for r in self.records))
        except (struct.error, OverflowError) as e:
            raise ValueError(f"cannot encode {self!r}: {e}") from e


IgmpMessage = IgmpQuery | IgmpReport | IgmpV3Report


def _addresses(buf: memoryview, at: int, count: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(buf[at + 4 * i: at + 4 * i + 4], "big") for i in range(count))


def parse_igmp(buf: bytes | memoryview, verify: bool = True) -> IgmpMessage:
    """Decode one IGMP message. Raises Malformed: ``igmp.truncated`` (< 8 bytes, or a list
    running past the end), ``igmp.bad_checksum``, ``igmp.bad_query_length`` (a query of 9-11
    bytes, which RFC 3376 7.1 says to ignore), ``igmp.unknown_type``."""
    mv = memoryview(buf)
    n = len(mv)
    if n < HEADER_LEN:
        raise Malformed("igmp.truncated", f"{n} bytes, header needs {HEADER_LEN}")
    if verify and not _checksum_ok(mv):
        csum = int.from_bytes(mv[2:4], "big")
        raise Malformed("igmp.bad_checksum", f"checksum {csum:#06x} does not verify")
    typ, code, _csum, group = _HDR.unpack_from(mv)
    if typ == MEMBERSHIP_QUERY:
        if n == HEADER_LEN:
            return IgmpQuery(1 if code == 0 else 2, code, group)
        if n < V3_QUERY_MIN:
            raise Malformed("igmp.bad_query_length", f"query of {n} bytes (8 or >= 12 expected)")
        _t, _c, _s, _g, flags, qqic, count = _V3Q.unpack_from(mv)
        if V3_QUERY_MIN + 4 * count > n:
            raise Malformed("igmp.truncated", f"query lists {count} sources in {n} bytes")
        return IgmpQuery(3, code, group, bool(flags & 0x08), flags & 7, qqic,
                         _addresses(mv, V3_QUERY_MIN, count))
    if typ in (V1_REPORT, V2_REPORT, V2_LEAVE):
        return IgmpReport(typ, group, code)
    if typ == V3_REPORT:
        if n < HEADER_LEN:
            raise Malformed("igmp.truncated", "v3 report header")
        count = _V3R.unpack_from(mv)[4]
        at = HEADER_LEN
        records = []
        for _ in range(count):
            if at + _REC.size > n:
                raise Malformed("igmp.truncated", f"v3 report lists {count} records in {n} bytes")
            rtype, aux_words, nsrc, rgroup = _REC.unpack_from(mv, at)
            end = at + _REC.size + 4 * nsrc + 4 * aux_words
            if end > n:
                raise Malformed("igmp.truncated", f"group record at byte {at} runs past {n} bytes")
            srcs = _addresses(mv, at + _REC.size, nsrc)
            records.append(GroupRecord(rtype, rgroup, srcs, bytes(mv[end - 4 * aux_words:end])))
            at = end
        return IgmpV3Report(tuple(records))
    raise Malformed("igmp.unknown_type", f"type {typ:#04x}")
