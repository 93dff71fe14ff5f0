"""DHCPv4 messages (RFC 2131 section 2, options from RFC 2132): the BOOTP header plus options.

`DhcpMessage.parse` takes a UDP payload; `emit` builds one (padded to BOOTP's 300 bytes, as
RFC 1542 2.1 asks of clients). Options are kept as raw bytes in arrival order; a repeated option
is joined into one value (RFC 3396), and option overload (52) pulls options out of the `file`
and `sname` fields. Helpers decode the address-valued and integer-valued options.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_ints, check_mac
from .errors import Malformed

SERVER_PORT = 67
CLIENT_PORT = 68
MAGIC_COOKIE = 0x63825363
BOOTREQUEST, BOOTREPLY = 1, 2
FLAG_BROADCAST = 0x8000
_HDR = struct.Struct("!BBBBIHHIIII16s64s128sI")
HEADER_LEN = _HDR.size  # 240: the fixed BOOTP fields and the magic cookie
MIN_LEN = 300  # a BOOTP message's minimum size (RFC 951, RFC 1542 2.1)

# message types (option 53)
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
TYPE_NAMES = {DISCOVER: "DISCOVER", OFFER: "OFFER", REQUEST: "REQUEST", DECLINE: "DECLINE",
              ACK: "ACK", NAK: "NAK", RELEASE: "RELEASE", INFORM: "INFORM"}

# option codes (RFC 2132)
OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN = 15
OPT_REQUESTED_ADDR = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAM_LIST = 55
OPT_MESSAGE = 56
OPT_MAX_SIZE = 57
OPT_RENEWAL_T1 = 58
OPT_REBINDING_T2 = 59
OPT_CLIENT_ID = 61
OPT_END = 255


def _options(buf: bytes | memoryview, out: dict[int, bytes]) -> None:
    """Read (code, length, value) options into `out` until END or the end of `buf`."""
    i, n = 0, len(buf)
    while i < n:
        code = buf[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return
        if i + 1 >= n:
            raise Malformed("dhcp.bad_option", f"option {code} at offset {i} has no length byte")
        length = buf[i + 1]
        if i + 2 + length > n:
            raise Malformed("dhcp.bad_option", f"option {code} of {length} bytes runs past the end")
        value = bytes(buf[i + 2:i + 2 + length])
        out[code] = out[code] + value if code in out else value  # RFC 3396 concatenation
        i += 2 + length


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


class DhcpMessage(NamedTuple):
    """A DHCP (BOOTP) message. Addresses are ints; `options` maps code -> raw value bytes."""

    op: int
    xid: int
    chaddr: bytes  # the client's 6-byte MAC
    options: dict[int, bytes]
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    secs: int = 0
    flags: int = 0
    hops: int = 0
    sname: bytes = b""
    file: bytes = b""

    @classmethod
    def parse(cls, buf: bytes | memoryview) -> DhcpMessage:
        n = len(buf)
        if n < HEADER_LEN:
            raise Malformed("dhcp.truncated", f"{n} bytes, header and cookie need {HEADER_LEN}")
        (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
         file, cookie) = _HDR.unpack_from(buf)
        if op not in (BOOTREQUEST, BOOTREPLY):
            raise Malformed("dhcp.unsupported", f"op {op}")
        if htype != 1 or hlen != 6:
            raise Malformed("dhcp.unsupported", f"hardware type {htype}, length {hlen} (not Ethernet)")
        if cookie != MAGIC_COOKIE:
            raise Malformed("dhcp.bad_cookie", f"magic cookie {cookie:#010x}")
        options: dict[int, bytes] = {}
        _options(memoryview(buf)[HEADER_LEN:], options)
        overload = options.get(OPT_OVERLOAD, b"\0")[:1]
        if overload in (b"\x01", b"\x03"):
            _options(file, options)
            file = b""
        if overload in (b"\x02", b"\x03"):
            _options(sname, options)
            sname = b""
        return cls(op, xid, chaddr[:6], options, ciaddr, yiaddr, siaddr, giaddr, secs, flags, hops,
                   _cstring(sname), _cstring(file))

    def emit(self) -> bytes:
        """The message with its options in the order given (each split into 255-byte pieces),
        END, and zero padding up to 300 bytes."""
        check_mac("DhcpMessage", "chaddr", self.chaddr)
        try:
            head = _HDR.pack(self.op, 1, 6, self.hops, self.xid, self.secs, self.flags, self.ciaddr,
                             self.yiaddr, self.siaddr, self.giaddr, bytes(self.chaddr), self.sname,
                             self.file, MAGIC_COOKIE)
        except struct.error:
            check_ints("DhcpMessage", (("op", self.op, 8), ("hops", self.hops, 8), ("xid", self.xid, 32),
                                       ("secs", self.secs, 16), ("flags", self.flags, 16),
                                       ("ciaddr", self.ciaddr, 32), ("yiaddr", self.yiaddr, 32),
                                       ("siaddr", self.siaddr, 32), ("giaddr", self.giaddr, 32)))
            raise
        parts = [head]
        for code, value in self.options.items():
            if not 0 < code < OPT_END:
                raise ValueError(f"DhcpMessage option code {code} is out of range 1..254")
            value = bytes(value)
            for i in range(0, max(len(value), 1), 255):
                piece = value[i:i + 255]
                parts.append(bytes((code, len(piece))) + piece)
        parts.append(bytes((OPT_END,)))
        out = b"".join(parts)
        return out + bytes(MIN_LEN - len(out)) if len(out) < MIN_LEN else out

    # ---- option helpers -----------------------------------------------------------------------
    @property
    def message_type(self) -> int | None:
        v = self.options.get(OPT_MESSAGE_TYPE)
        return v[0] if v and len(v) == 1 else None

    def addresses(self, code: int) -> list[int]:
        """An address-list option (router, DNS servers) as ints; [] when absent or not 4n bytes."""
        v = self.options.get(code, b"")
        if len(v) % 4:
            return []
        return [int.from_bytes(v[i:i + 4], "big") for i in range(0, len(v), 4)]

    def address(self, code: int) -> int | None:
        v = self.options.get(code)
        return int.from_bytes(v, "big") if v is not None and len(v) == 4 else None

    def seconds(self, code: int) -> int | None:
        """A 32-bit unsigned option (lease time, T1, T2); None when absent or malformed."""
        v = self.options.get(code)
        return int.from_bytes(v, "big") if v is not None and len(v) == 4 else None
