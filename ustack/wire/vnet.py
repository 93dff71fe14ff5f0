"""The virtio-net header (`struct virtio_net_hdr`, <linux/virtio_net.h>) that a TUN/TAP opened with
IFF_VNET_HDR puts in front of every packet, and the TCP super-segment a stack hands a device
with TSO (transmit segmentation offload).

A super-segment is one IPv4 header and one TCP header for up to 64 KB of payload, which the
kernel cuts into `gso_size`-byte segments (copying the headers, advancing the sequence number and
IP ID, FIN/PSH on the last piece only, every checksum computed): what Linux hands a virtio-net
NIC. Its TCP checksum field holds only the pseudo-header sum over the whole length
(VIRTIO_NET_HDR_F_NEEDS_CSUM with csum_start/csum_offset), so no payload is summed in Python.
"""

from __future__ import annotations

import struct

VNET_HDR_LEN = 10  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_F_NEEDS_CSUM = 0x01
VNET_F_DATA_VALID = 0x02
VNET_GSO_NONE = 0
VNET_GSO_TCPV4 = 1
VNET_GSO_TCPV6 = 4
VNET_GSO_ECN = 0x80
VNET_HDR = struct.Struct("=BBHHHH")  # native byte order: a legacy (non-VERSION_1) header
TCP_CSUM_OFFSET = 16  # the checksum field's offset in the TCP header
IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40
# Where the TCP header of a super-segment starts in its header buffer: virtio header, then the
# IPv4 (or IPv6) header.
GSO_TCP_AT = VNET_HDR_LEN + IPV4_HEADER_LEN
GSO_TCP_AT6 = VNET_HDR_LEN + IPV6_HEADER_LEN
# The most payload one super-segment can carry with any TCP header (IPv4 total length <= 65535;
# the IPv6 payload length allows 20 bytes more, unused).
GSO_MAX_PAYLOAD = 0xFFFF - IPV4_HEADER_LEN - 60


class GsoPacket:
    """A TCP super-segment ready for a TSO device: `header` is one buffer holding the virtio
    header, the IPv4 (IPv6) header and the TCP header (in that order, `GSO_TCP_AT` (`_AT6`) =
    where TCP starts), `payload` a view of the sender's buffer (not copied), `gso_size` the payload bytes
    per segment on the wire (the MSS), `segments` how many the kernel will make of it.

    A device with TSO writes it as `writev(header, payload)`; anything else that needs the
    packet as bytes (a pcap: what the device was given) uses `packet()`."""

    __slots__ = ("header", "payload", "gso_size", "segments")

    def __init__(self, header: bytearray, payload: memoryview, gso_size: int) -> None:
        self.header = header
        self.payload = payload
        self.gso_size = gso_size
        self.segments = -(-len(payload) // gso_size)

    def packet(self) -> bytes:
        """The IP packet as the device gets it (no virtio header; TCP checksum partial)."""
        return bytes(self.header[VNET_HDR_LEN:]) + self.payload

    def __len__(self) -> int:
        """The IP packet's length (virtio header not counted)."""
        return len(self.header) - VNET_HDR_LEN + len(self.payload)

    def __repr__(self) -> str:
        return f"GsoPacket({len(self)} bytes, {self.segments} x {self.gso_size})"


def pack_gso_tcp(header: bytearray, tcp_header_len: int, gso_size: int, v6: bool = False) -> None:
    """Fill the virtio header at the front of `header`: NEEDS_CSUM over TCP (csum_start = the
    IP header's length, csum_offset 16), gso_type TCPV4 (TCPV6), hdr_len = IP + TCP headers."""
    ip_len = IPV6_HEADER_LEN if v6 else IPV4_HEADER_LEN
    VNET_HDR.pack_into(header, 0, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6 if v6 else VNET_GSO_TCPV4,
                       ip_len + tcp_header_len, gso_size, ip_len, TCP_CSUM_OFFSET)
