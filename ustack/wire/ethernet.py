"""Ethernet II frames."""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._fields import check_ints, check_mac
from .errors import Malformed

_HDR = struct.Struct("!6s6sH")
HEADER_LEN = 14
ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str) -> bytes:
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"bad MAC address {text!r}")
    return bytes(int(p, 16) for p in parts)


class EthernetFrame(NamedTuple):
    """An Ethernet II frame. `payload` keeps any link padding (the IPv4 total length trims it);
    no FCS is expected. 802.3 length frames (type < 0x0600) are rejected."""

    dst: bytes
    src: bytes
    ethertype: int
    payload: memoryview | bytes

    @classmethod
    def parse(cls, buf: bytes | memoryview) -> EthernetFrame:
        if len(buf) < HEADER_LEN:
            raise Malformed("ethernet.truncated", f"{len(buf)} bytes, header needs {HEADER_LEN}")
        dst, src, ethertype = _HDR.unpack_from(buf)
        if ethertype < 0x0600:
            raise Malformed("ethernet.not_ethernet_ii", f"length/type field {ethertype:#06x} is 802.3")
        return tuple.__new__(cls, (dst, src, ethertype, memoryview(buf)[HEADER_LEN:]))

    def emit(self) -> bytes:
        return EthernetFrame.header(self.dst, self.src, self.ethertype) + bytes(self.payload)

    @staticmethod
    def header(dst: bytes, src: bytes, ethertype: int) -> bytes:
        """The 14-byte header; raises ValueError for a MAC that is not 6 bytes or a bad type."""
        # "6s" would silently pad or cut a wrong-sized MAC, so check lengths explicitly.
        if len(dst) != 6 or len(src) != 6:
            check_mac("EthernetFrame", "dst", dst)
            check_mac("EthernetFrame", "src", src)
        try:
            return _HDR.pack(dst, src, ethertype)
        except struct.error as e:
            check_mac("EthernetFrame", "dst", dst)
            check_mac("EthernetFrame", "src", src)
            check_ints("EthernetFrame", (("ethertype", ethertype, 16),))
            raise ValueError(f"cannot encode an Ethernet header: {e}") from e
