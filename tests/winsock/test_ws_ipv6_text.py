"""IPv6 address text in Winsock: inet_pton/InetPtonW, inet_ntop/InetNtopW, WSAStringToAddressA/W,
WSAAddressToStringA/W (issue 12). Cases derived from Wine's protocol.c (run on real Windows);
every IPv6 parse is cross-checked against the Linux C library's inet_pton where both accept."""

from __future__ import annotations

import ctypes
import socket as pysocket
import struct

import pytest

from ustack.winsock import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    SOCKADDR_IN,
    SOCKADDR_IN6,
    SOCKET_ERROR,
    WSAEAFNOSUPPORT,
    WSAEFAULT,
    WSAEINVAL,
    WSANOTINITIALISED,
    Winsock,
)

# (text, words as on the wire) that Windows' inet_pton takes (protocol.c ipv6_tests, ret 1)
V6_VALID = [
    ("0000:0000:0000:0000:0000:0000:0000:0001", (0, 0, 0, 0, 0, 0, 0, 1)),
    ("0:0:0:0:0:0:0::", (0,) * 8),
    ("0:0:0:0:0:0:13.1.68.3", (0, 0, 0, 0, 0, 0, 0x0D01, 0x4403)),
    ("0:0:0:0:0:FFFF:129.144.52.38", (0, 0, 0, 0, 0, 0xFFFF, 0x8190, 0x3426)),
    ("1080:0:0:0:8:800:200c:417a", (0x1080, 0, 0, 0, 8, 0x800, 0x200C, 0x417A)),
    ("0:a:b:c:d:e:f::", (0, 0xA, 0xB, 0xC, 0xD, 0xE, 0xF, 0)),
    ("1111:2222:3333:4444:5555:6666:123.123.123.123",
     (0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7B7B, 0x7B7B)),
    ("1111::", (0x1111, 0, 0, 0, 0, 0, 0, 0)),
    ("1111::8888", (0x1111, 0, 0, 0, 0, 0, 0, 0x8888)),
    ("1:2:3:4:5:6::8", (1, 2, 3, 4, 5, 6, 0, 8)),
    ("2001:db8:85a3::8a2e:370:7334", (0x2001, 0xDB8, 0x85A3, 0, 0, 0x8A2E, 0x370, 0x7334)),
    ("::", (0,) * 8),
    ("::0:a:b:c:d:e:f", (0, 0, 0xA, 0xB, 0xC, 0xD, 0xE, 0xF)),
    ("::123.123.123.123", (0, 0, 0, 0, 0, 0, 0x7B7B, 0x7B7B)),
    ("1::001.2.3.4", (1, 0, 0, 0, 0, 0, 0x0102, 0x0304)),  # Windows allows 3-digit parts here
    ("1::1.002.3.4", (1, 0, 0, 0, 0, 0, 0x0102, 0x0304)),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", (0xFFFF,) * 8),
]
V6_INVALID = [
    "1111:2222:3333:4444:0x5555:6666:7777:8888", "1111:2222:3333:4444:5555:6666::7777:8888",
    "1111:2222:3333:4444:5555:6666:7777::8888", "1111:2222:3333:4444:5555::08888",
    "::%16", "::/16", "::01234", "1.2.3.4", "1111:2222:1.2.3.4", "1111:2222:::", "1111::5555:",
    "1111::3333::5555:6666:1.2.3.4", "1::0001.2.3.4", "1::1.2.3.256", "1::1.2.3.4::1", "1::1.2",
    "1::1a.2.3.4", "2001:0000:1234: 0000:0000:C1C0:ABCD:0876", "2001::FFD3::57ab", ":", ":1111::",
    "::-1", "::0x80000000", "::.", "[::]", "", "1111:2222:3333:4444:5555:6666::1.2.3.4",
]
V4_VALID = [("1.1.1.1", "1.1.1.1"), ("0.0.0.0", "0.0.0.0"), ("127.127.127.255", "127.127.127.255")]
V4_INVALID = ["", " ", "127.127.127.255:123", "127.127.127.256", "a", "1.1.1.0xaA", "1.1.1.010",
              "1.1.1.00", "1", "1.2.3", "203569230", "3.4.5.6.7", " 3.4.5.6", "3.4.5.6 ", "[0.1.2.3]",
              "0x00010203", "::1"]


@pytest.fixture
def ws(net) -> Winsock:
    return net.ws


def _words(raw: bytes) -> tuple[int, ...]:
    return struct.unpack("!8H", raw)


def test_item_124_inet_pton(ws: Winsock) -> None:
    """inet_pton / InetPtonW: 1 and the network-order bytes for Windows' IPv6 and strict IPv4
    forms, 0 for the rest (InetPtonW also sets WSAEINVAL, inet_pton leaves the last error);
    a NULL string is WSAEFAULT even with AF_UNSPEC, an unknown family WSAEAFNOSUPPORT (-1)."""
    buf = bytearray(16)
    for text, words in V6_VALID:
        for call in (ws.inet_pton, ws.InetPtonW):
            buf[:] = b"\xab" * 16
            assert call(AF_INET6, text, buf) == 1, text
            assert _words(bytes(buf)) == words, text
        try:
            assert pysocket.inet_pton(pysocket.AF_INET6, text) == bytes(buf), text  # glibc agrees
        except OSError:
            assert text in ("1::001.2.3.4", "1::1.002.3.4")  # glibc refuses leading zeros there
    for text in V6_INVALID:
        ws.WSASetLastError(12345)
        assert ws.inet_pton(AF_INET6, text, buf) == 0, text
        assert ws.WSAGetLastError() == 12345
        assert ws.InetPtonW(AF_INET6, text, buf) == 0, text
        assert ws.WSAGetLastError() == WSAEINVAL
    for text, _ in V4_VALID:
        out = bytearray(4)
        assert ws.inet_pton(AF_INET, text, out) == 1
        assert bytes(out) == pysocket.inet_aton(text)
    for text in V4_INVALID:
        assert ws.inet_pton(AF_INET, text, bytearray(4)) == 0, text
    assert ws.inet_pton(AF_UNSPEC, None, buf) == -1 and ws.WSAGetLastError() == WSAEFAULT
    assert ws.InetPtonW(AF_INET, None, buf) == -1 and ws.WSAGetLastError() == WSAEFAULT
    assert ws.inet_pton(AF_UNSPEC, "127.0.0.1", buf) == -1 and ws.WSAGetLastError() == WSAEAFNOSUPPORT
    assert ws.inet_pton(AF_UNSPEC, "2607:f0d0:1002:51::4", buf) == -1
    assert ws.WSAGetLastError() == WSAEAFNOSUPPORT


NTOP = [
    (bytes(10) + b"\xff\xfe\xcc\x98\xbd\x74", "::fffe:cc98:bd74"),
    (bytes([0x20, 0x30, 0xA4, 0xB1]) + bytes(12), "2030:a4b1::"),
    (bytes(12) + b"\xcc\x98\xbd\x74", "::204.152.189.116"),  # IPv4-compatible: dotted
    (bytes(10) + b"\xff\xff\x01\x02\x03\x04", "::ffff:1.2.3.4"),  # v4-mapped
    (bytes(8) + b"\xff\xff\x00\x00\x01\x02\x03\x04", "::ffff:0:1.2.3.4"),  # v4-translated
    (bytes(15) + b"\x01", "::1"),
    (bytes(16), "::"),
    (bytes(12) + b"\x00\x00\x01\x02", "::102"),  # last-but-one word 0: not dotted
    (bytes.fromhex("20010002000000010000000000000001"), "2001:2:0:1::1"),
    (bytes.fromhex("20010000000000010000000000000000"), "2001:0:0:1::"),  # the first longest run
    (bytes.fromhex("00010000000200030004000500060007"), "1:0:2:3:4:5:6:7"),  # one zero: not "::"
]


def test_item_125_inet_ntop(ws: Winsock) -> None:
    """inet_ntop / InetNtopW: Windows' text (first longest run of two or more zero groups as
    "::", lowercase, dotted tail for IPv4-compatible / mapped / translated / ISATAP addresses);
    a buffer shorter than the text and its NUL, a NULL buffer or size 0 is WSAEINVAL; an unknown
    family WSAEAFNOSUPPORT."""
    isatap = bytes.fromhex("fe800000000000000200" + "5efe" + "0a000001")
    cases = [*NTOP, (isatap, "fe80::200:5efe:10.0.0.1")]
    for raw, text in cases:
        buf = ctypes.create_string_buffer(64)
        assert ws.inet_ntop(AF_INET6, raw, buf, 64) == text
        assert buf.value == text.encode()
        wbuf = ctypes.create_unicode_buffer(64)
        assert ws.InetNtopW(AF_INET6, raw, wbuf, 64) == text
        assert wbuf.value == text
        if "." not in text:
            assert pysocket.inet_ntop(pysocket.AF_INET6, raw) == text  # glibc prints these the same
    raw = bytes(10) + b"\xff\xfe\xcc\x98\xbd\x74"  # 16 characters
    assert ws.inet_ntop(AF_INET6, raw, ctypes.create_string_buffer(64), 16) is None
    assert ws.WSAGetLastError() == WSAEINVAL
    assert ws.inet_ntop(AF_INET6, raw, ctypes.create_string_buffer(64), 17) == "::fffe:cc98:bd74"
    assert ws.inet_ntop(AF_INET6, raw, None, 64) is None and ws.WSAGetLastError() == WSAEINVAL
    assert ws.inet_ntop(AF_INET6, raw, ctypes.create_string_buffer(64), 0) is None
    v4 = struct.pack("<I", 0x20201015)
    assert ws.inet_ntop(AF_INET, v4, ctypes.create_string_buffer(16), 16) == "21.16.32.32"
    assert ws.inet_ntop(AF_INET, v4, ctypes.create_string_buffer(16), 6) is None
    assert ws.WSAGetLastError() == WSAEINVAL
    assert ws.inet_ntop(1, v4, ctypes.create_string_buffer(16), 16) is None
    assert ws.WSAGetLastError() == WSAEAFNOSUPPORT


def _s2a(ws: Winsock, text: str, family: int, wide: bool) -> tuple[int, int, bytes, int]:
    size = 28 if family == AF_INET6 else 16
    out = bytearray(b"\xab" * size)
    n = ctypes.c_int(size + 10)
    call = ws.WSAStringToAddressW if wide else ws.WSAStringToAddressA
    r = call(text, family, None, out, n)
    return r, ws.WSAGetLastError(), bytes(out), n.value


S2A_V4 = [  # (text, address, port) accepted (protocol.c ipv4_tests)
    ("1.1.1.1", 0x01010101, 0), ("127.127.127.127:123", 0x7F7F7F7F, 123),
    ("127.127.127.127:65535", 0x7F7F7F7F, 65535), ("127.127.127.127:0xAbCd", 0x7F7F7F7F, 43981),
    ("127.127.127.127:010", 0x7F7F7F7F, 8), ("1.1.1.0xaA", 0x010101AA, 0), ("1.1.1.010", 0x01010108, 0),
    ("1", 1, 0), ("1:1", 1, 1), ("1.2", 0x01000002, 0), ("1.2.3:1", 0x01020003, 1),
    ("203569230:123", 0x0C22384E, 123), ("1.223756", 0x01036A0C, 0), ("0x00010203:10", 0x00010203, 10),
    ("017700000001", 0x7F000001, 0), ("0777:10", 0x1FF, 10),
]
S2A_V4_BAD = ["", " ", "127.127.127.127:", "127.127.127.127:0", "127.127.127.127:65537",
              "127.127.127.127::1", "127.127.127.127:0x", "127.127.127.127:08", "255.255.255.256", "a",
              "1.1.1.0x100", "1.1.1.08", "-1", "1000.2000", "1.2.", "1..2", "3.4.756.1", "3.4.5.6.7",
              " 3.4.5.6", "3. 4.5.6", ".", "[0.1.2.3]", "x00010203", "::1", ":1"]
S2A_V6 = [  # (text, words, port, scope)
    ("::1", (0, 0, 0, 0, 0, 0, 0, 1), 0, 0), ("[::1]", (0, 0, 0, 0, 0, 0, 0, 1), 0, 0),
    ("[::1]:65535", (0, 0, 0, 0, 0, 0, 0, 1), 65535, 0), ("2001::1", (0x2001, 0, 0, 0, 0, 0, 0, 1), 0, 0),
    ("001::1", (1, 0, 0, 0, 0, 0, 0, 1), 0, 0), ("fe80::1%4", (0xFE80, 0, 0, 0, 0, 0, 0, 1), 0, 4),
    ("[2001:2::5%7]:80", (0x2001, 2, 0, 0, 0, 0, 0, 5), 80, 7),
]
S2A_V6_BAD = ["::1]:65535", "1.2.3.4", "1:2:3:", "", "[::1", "[::1]80", "[::1]:", "[::1]:65536",
              "::1%x", "[::1%]:80"]


@pytest.mark.parametrize("wide", [False, True], ids=["A", "W"])
def test_item_126_wsastringtoaddress(ws: Winsock, wide: bool) -> None:
    """WSAStringToAddressA/W: IPv4 in the classic inet_addr forms with an optional C-style port
    (not 0), IPv6 as "addr", "addr%scope", "[addr%scope]:port"; success sets the family and
    *lpAddressLength to 16 / 28; a bad text is WSAEINVAL with family and port 0 and the length
    untouched; a short *lpAddressLength is WSAEFAULT and asks for the size."""
    for text, addr, port in S2A_V4:
        r, err, out, n = _s2a(ws, text, AF_INET, wide)
        assert (r, err, n) == (0, 0, 16), text
        family, p, a = struct.unpack_from("<h", out)[0], *struct.unpack_from("!HI", out, 2)
        assert (family, a, p) == (AF_INET, addr, port), text
    for text in S2A_V4_BAD:
        r, err, out, n = _s2a(ws, text, AF_INET, wide)
        assert (r, err, n) == (SOCKET_ERROR, WSAEINVAL, 26), text
        assert out[:4] == bytes(4), text  # family and port zero
    r, err, out, _ = _s2a(ws, "127.127.127.127:0", AF_INET, wide)
    assert struct.unpack_from("!I", out, 4)[0] == 0x7F7F7F7F  # the valid address part stays
    for text, words, port, scope in S2A_V6:
        r, err, out, n = _s2a(ws, text, AF_INET6, wide)
        assert (r, err, n) == (0, 0, 28), text
        sin6 = SOCKADDR_IN6.from_buffer_copy(out)
        assert sin6.sin6_family == AF_INET6 and sin6.port == port and sin6.sin6_scope_id == scope, text
        assert _words(bytes(sin6.sin6_addr.Byte)) == words and sin6.flowinfo == 0, text
    for text in S2A_V6_BAD:
        r, err, out, n = _s2a(ws, text, AF_INET6, wide)
        assert (r, err, n) == (SOCKET_ERROR, WSAEINVAL, 38), text
        assert SOCKADDR_IN6.from_buffer_copy(out).sin6_family == 0, text
    n = ctypes.c_int(0)
    call = ws.WSAStringToAddressW if wide else ws.WSAStringToAddressA
    assert call("::1", AF_INET6, None, bytearray(28), n) == SOCKET_ERROR
    assert (ws.WSAGetLastError(), n.value) == (WSAEFAULT, 28)
    assert call("1.2.3.4", AF_INET, None, bytearray(16), ctypes.c_int(15)) == SOCKET_ERROR
    assert ws.WSAGetLastError() == WSAEFAULT
    assert call("::1", 1, None, bytearray(28), ctypes.c_int(28)) == SOCKET_ERROR
    assert ws.WSAGetLastError() == WSAEINVAL


A2S = [
    (SOCKADDR_IN.make("0.0.0.0", 0), "0.0.0.0"),
    (SOCKADDR_IN.make("255.255.255.255", 65535), "255.255.255.255:65535"),
    (SOCKADDR_IN6.make("::1", 0), "::1"),
    (SOCKADDR_IN6.make("20ab::1", 0), "20ab::1"),
    (SOCKADDR_IN6.make("20ab::2001", 33274), "[20ab::2001]:33274"),
    (SOCKADDR_IN6.make("20ab::2001", 33274, scope_id=4660), "[20ab::2001%4660]:33274"),
    (SOCKADDR_IN6.make("20ab::2001", 0, scope_id=4660), "20ab::2001%4660"),
    (SOCKADDR_IN6.make("::ffff:198.18.0.1", 80), "[::ffff:198.18.0.1]:80"),
]


@pytest.mark.parametrize("wide", [False, True], ids=["A", "W"])
def test_item_127_wsaaddresstostring(ws: Winsock, wide: bool) -> None:
    """WSAAddressToStringA/W: "a.b.c.d[:port]" and "addr[%scope]" / "[addr[%scope]]:port" with
    *lpdwAddressStringLength = characters + NUL; a short length or a NULL buffer is WSAEFAULT
    and reports the length needed; a short dwAddressLength for the family is WSAEFAULT, an
    unknown family WSAEINVAL."""
    call = ws.WSAAddressToStringW if wide else ws.WSAAddressToStringA
    for sa, text in A2S:
        buf = ctypes.create_unicode_buffer(64) if wide else ctypes.create_string_buffer(64)
        n = ctypes.c_uint32(64)
        assert call(sa, ctypes.sizeof(sa), None, buf, n) == 0, text
        assert buf.value == (text if wide else text.encode()) and n.value == len(text) + 1
        assert ws.WSAGetLastError() == 0
    n = ctypes.c_uint32(0)
    assert call(SOCKADDR_IN.make("0.0.0.0", 0), 16, None, None, n) == SOCKET_ERROR
    assert (ws.WSAGetLastError(), n.value) == (WSAEFAULT, 8)
    sa6 = SOCKADDR_IN6.make("20ab::2001", 33274, scope_id=4660)
    n = ctypes.c_uint32(10)
    buf = ctypes.create_unicode_buffer(64) if wide else ctypes.create_string_buffer(64)
    assert call(sa6, 28, None, buf, n) == SOCKET_ERROR
    assert (ws.WSAGetLastError(), n.value) == (WSAEFAULT, len("[20ab::2001%4660]:33274") + 1)
    assert call(sa6, 27, None, buf, ctypes.c_uint32(64)) == SOCKET_ERROR
    assert ws.WSAGetLastError() == WSAEFAULT
    assert call(SOCKADDR_IN6.make("::1", 0, family=1), 28, None, buf, ctypes.c_uint32(64)) == SOCKET_ERROR
    assert ws.WSAGetLastError() == WSAEINVAL


def test_item_126_string_calls_need_startup(net) -> None:
    """WSAStringToAddress and WSAAddressToString need WSAStartup (WSANOTINITIALISED); inet_pton
    and inet_ntop do not."""
    ws = Winsock(net.me)
    assert ws.WSAStringToAddressA("::1", AF_INET6, None, bytearray(28), ctypes.c_int(28)) == SOCKET_ERROR
    assert ws.WSAGetLastError() == WSANOTINITIALISED
    assert ws.inet_pton(AF_INET6, "::1", bytearray(16)) == 1
