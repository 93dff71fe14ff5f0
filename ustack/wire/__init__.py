"""Wire codecs: bytes <-> small immutable records. Stateless; they raise only `Malformed`."""

from .arp import ArpPacket
from .errors import REASONS, Malformed
from .ethernet import EthernetFrame
from .icmp import IcmpMessage
from .ipv4 import Ipv4Packet, ip_int, ip_str, parse_cidr
from .tcp import NO_OPTIONS, TcpOptions, TcpSegment
from .udp import UdpDatagram

__all__ = [
    "ArpPacket", "EthernetFrame", "IcmpMessage", "Ipv4Packet", "Malformed", "NO_OPTIONS", "REASONS",
    "TcpOptions", "TcpSegment", "UdpDatagram", "ip_int", "ip_str", "parse_cidr",
]
