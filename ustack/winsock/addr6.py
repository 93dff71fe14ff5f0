"""IPv6 addresses as Winsock has them: SOCKADDR_IN6 and the text forms Windows reads and writes.

Addresses are 128-bit `int`s inside ustack (docs/contracts.md); on the API they are the 16
network-order bytes of IN6_ADDR inside a 28-byte SOCKADDR_IN6. The text rules are Windows' own
(ntdll's RtlIpv6StringToAddress / RtlIpv6AddressToString, as Wine's protocol.c checks them on
real Windows), which are not Python's `ipaddress` rules in every corner:
- parsing: groups of 1-4 hex digits, one "::" standing for at least one zero group, a dotted
  IPv4 tail whose parts may have leading zeros up to three digits ("1::001.2.3.4");
  `inet_pton(AF_INET)` wants exactly four decimal parts without leading zeros;
- printing: the first longest run of two or more zero groups becomes "::", groups in lowercase
  hex without leading zeros, and the last 32 bits in dotted form for IPv4-compatible (::a.b.c.d,
  a.b != 0), v4-mapped (::ffff:a.b.c.d), v4-translated (::ffff:0:a.b.c.d) and ISATAP
  (...:0:5efe:a.b.c.d) addresses;
- WSAStringToAddress forms: "a.b.c.d[:port]" with the classic inet_addr parts and a C-style
  port (decimal, 0-octal, 0x-hex; 0 is refused), "addr[%scope]" and "[addr[%scope]][:port]".
"""

from __future__ import annotations

import ctypes
import re
import struct

from .constants import AF_INET6

SOCKADDR_IN6_SIZE = 28
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{1,4}")
_DEC_V4_IN_V6 = re.compile(r"[0-9]{1,3}")
_DEC_STRICT = re.compile(r"0|[1-9][0-9]{0,2}")


class IN6_ADDR(ctypes.Structure):  # noqa: N801 - Windows name
    _fields_ = [("Byte", ctypes.c_ubyte * 16)]  # network byte order


class SOCKADDR_IN6(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("sin6_family", ctypes.c_short),
        ("sin6_port", ctypes.c_ushort),  # network byte order
        ("sin6_flowinfo", ctypes.c_uint32),  # network byte order
        ("sin6_addr", IN6_ADDR),
        ("sin6_scope_id", ctypes.c_uint32),  # host byte order (Windows)
    ]

    @classmethod
    def make(cls, addr: str | int, port: int, flowinfo: int = 0, scope_id: int = 0,
             family: int = AF_INET6) -> SOCKADDR_IN6:
        """Build from IPv6 text (Windows' rules) or a 128-bit int, and host-order numbers."""
        value = addr if isinstance(addr, int) else parse_ipv6(addr)
        if value is None:
            raise ValueError(f"not an IPv6 address: {addr!r}")
        s = cls()
        ctypes.memmove(ctypes.addressof(s), sockaddr6_bytes(value, port, flowinfo, scope_id, family), 28)
        return s

    @property
    def addr_int(self) -> int:
        return int.from_bytes(bytes(self.sin6_addr.Byte), "big")

    @property
    def addr(self) -> str:
        return format_ipv6(self.addr_int)

    @property
    def port(self) -> int:
        return struct.unpack("!H", struct.pack("=H", self.sin6_port))[0]

    @property
    def flowinfo(self) -> int:
        return struct.unpack("!I", struct.pack("=I", self.sin6_flowinfo))[0]

    def __repr__(self) -> str:
        return f"SOCKADDR_IN6(family={self.sin6_family}, [{self.addr}%{self.sin6_scope_id}]:{self.port})"


def sockaddr6_bytes(addr: int, port: int, flowinfo: int = 0, scope_id: int = 0,
                    family: int = AF_INET6) -> bytes:
    """The 28 bytes of a SOCKADDR_IN6."""
    return (struct.pack("<h", family) + struct.pack("!HI", port, flowinfo) + addr.to_bytes(16, "big")
            + struct.pack("<I", scope_id & 0xFFFFFFFF))


def unpack_sockaddr6(raw: bytes) -> tuple[int, int, int, int]:
    """(addr, port, flowinfo, scope_id) from the first 28 bytes of a SOCKADDR_IN6."""
    port, flowinfo = struct.unpack_from("!HI", raw, 2)
    (scope,) = struct.unpack_from("<I", raw, 24)
    return int.from_bytes(raw[8:24], "big"), port, flowinfo, scope


# -- parsing -------------------------------------------------------------------------------------
def _v4_tail(text: str) -> int | None:
    """The dotted IPv4 tail of an IPv6 text: four decimal parts of 1-3 digits, each <= 255."""
    parts = text.split(".")
    if len(parts) != 4 or not all(_DEC_V4_IN_V6.fullmatch(p) and int(p) <= 255 for p in parts):
        return None
    return int.from_bytes(bytes(int(p) for p in parts), "big")


def _groups(text: str, last: bool) -> list[int] | None:
    """16-bit words of a ':'-separated run; `last`: it ends the address (an IPv4 tail may end it)."""
    if not text:
        return []
    words: list[int] = []
    parts = text.split(":")
    for i, part in enumerate(parts):
        if last and i == len(parts) - 1 and "." in part:
            v4 = _v4_tail(part)
            if v4 is None:
                return None
            words += [v4 >> 16, v4 & 0xFFFF]
        elif _HEX_GROUP.fullmatch(part):
            words.append(int(part, 16))
        else:
            return None
    return words


def parse_ipv6(text: str) -> int | None:
    """A whole IPv6 address text (no brackets, scope or port) as an int, or None."""
    if text.count("::") > 1:
        return None
    if "::" in text:
        head_text, tail_text = text.split("::", 1)
        head = _groups(head_text, last=False)
        tail = _groups(tail_text, last=True)
        if head is None or tail is None or len(head) + len(tail) > 7:
            return None
        words = head + [0] * (8 - len(head) - len(tail)) + tail
    else:
        words = _groups(text, last=True)
        if words is None or len(words) != 8:
            return None
    value = 0
    for w in words:
        value = (value << 16) | w
    return value


def parse_ipv4_strict(text: str) -> int | None:
    """inet_pton(AF_INET): exactly a.b.c.d, decimal, no leading zeros, each <= 255."""
    parts = text.split(".")
    if len(parts) != 4 or not all(_DEC_STRICT.fullmatch(p) and int(p) <= 255 for p in parts):
        return None
    return int.from_bytes(bytes(int(p) for p in parts), "big")


def _c_number(text: str) -> int | None:
    """A C-style unsigned number: 0x.. hex, 0.. octal, else decimal; None if malformed."""
    if re.fullmatch(r"0[xX][0-9A-Fa-f]+", text):
        return int(text[2:], 16)
    if re.fullmatch(r"0[0-7]*", text):
        return int(text, 8)
    if re.fullmatch(r"[1-9][0-9]*", text):
        return int(text)
    return None


def parse_ipv4_classic(text: str) -> int | None:
    """The inet_addr forms a, a.b, a.b.c, a.b.c.d (each part C-style), as WSAStringToAddress
    reads them; no surrounding blanks."""
    parts = text.split(".")
    if len(parts) > 4:
        return None
    nums = [_c_number(p) for p in parts]
    if any(n is None for n in nums):
        return None
    values = [n for n in nums if n is not None]
    last_bits = 32 - 8 * (len(values) - 1)
    if any(n > 0xFF for n in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    value = 0
    for n in values[:-1]:
        value = (value << 8) | n
    return (value << last_bits) | values[-1]


def _port(text: str, c_style: bool) -> int | None:
    n = _c_number(text) if c_style else (int(text) if text.isdigit() and text.isascii() else None)
    return n if n is not None and 0 < n <= 0xFFFF else None


def parse_address_string(text: str, family: int) -> tuple[int | None, int, int, bool]:
    """WSAStringToAddress's reading of `text` for AF_INET (False) or AF_INET6 (True):
    (address or None, port, scope_id, ok). When not ok the address is still given if the
    address part itself was valid (Windows leaves it in the structure)."""
    if family != AF_INET6:
        addr_text, sep, port_text = text.partition(":")
        addr = parse_ipv4_classic(addr_text) if addr_text else None
        if not sep:
            return addr, 0, 0, addr is not None
        port = _port(port_text, c_style=True)
        return addr, port or 0, 0, addr is not None and port is not None
    port_text: str | None = None
    body = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None, 0, 0, False
        body, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return None, 0, 0, False
            port_text = rest[1:]
    addr_text, pct, scope_text = body.partition("%")
    addr = parse_ipv6(addr_text)
    if addr is None:
        return None, 0, 0, False
    scope = 0
    if pct:
        if not (scope_text.isdigit() and scope_text.isascii()) or int(scope_text) > 0xFFFFFFFF:
            return addr, 0, 0, False
        scope = int(scope_text)
    if port_text is None:
        return addr, 0, scope, True
    port = _port(port_text, c_style=False)
    return addr, port or 0, scope, port is not None


# -- printing ------------------------------------------------------------------------------------
def _ipv4_in_ipv6(words: list[int]) -> bool:
    """Windows prints the last 32 bits dotted for these (ISATAP, compatible, mapped, translated)."""
    if words[5] == 0x5EFE and words[4] & ~0x0200 == 0:
        return True
    if any(words[:4]) or words[4] not in (0, 0xFFFF):
        return False
    if words[4] == 0 and words[5] not in (0, 0xFFFF):
        return False
    if words[4] == 0xFFFF and words[5] != 0:
        return False
    return words[6] != 0


def format_ipv6(value: int, scope_id: int = 0, port: int = 0) -> str:
    """Windows' text for an IPv6 address; with a scope "%n", with a port "[...]:port"."""
    words = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    end = 6 if _ipv4_in_ipv6(words) else 8
    gap, gap_len = -1, 1  # the first longest run of at least two zero words
    i = 0
    while i < end:
        run = 0
        while i < end and words[i] == 0:
            i += 1
            run += 1
        if run > gap_len:
            gap, gap_len = i - run, run
        i += 1
    out: list[str] = []
    i = 0
    while i < end:
        if i == gap:
            out.append(":")
            i += gap_len
            if i == end:
                out.append(":")
            continue
        if i > 0:
            out.append(":")
        out.append(f"{words[i]:x}")
        i += 1
    text = "".join(out)
    if end == 6:
        if not text.endswith(":"):
            text += ":"
        text += ".".join(str(b) for b in (value & 0xFFFFFFFF).to_bytes(4, "big"))
    if scope_id:
        text += f"%{scope_id}"
    if port:
        text = f"[{text}]:{port}"
    return text


def format_ipv4(value: int, port: int = 0) -> str:
    text = ".".join(str(b) for b in (value & 0xFFFFFFFF).to_bytes(4, "big"))
    return f"{text}:{port}" if port else text
