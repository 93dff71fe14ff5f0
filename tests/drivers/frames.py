"""Frames shared by driver tests, built with ustack.wire (198.18.0.2 -> 198.18.0.1)."""

from ustack.wire import EthernetFrame, IcmpMessage, Ipv4Packet, TcpOptions, TcpSegment, UdpDatagram, ip_int

A, B = ip_int("198.18.0.2"), ip_int("198.18.0.1")
MAC_A, MAC_B = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")


def udp(payload: bytes = b"hello", sport: int = 5000, dport: int = 7) -> bytes:
    return Ipv4Packet(A, B, 17, UdpDatagram(sport, dport, payload).emit(A, B), ident=1).emit()


def syn() -> bytes:
    seg = TcpSegment(49152, 7, 123, 0, 0x02, 65535, b"", TcpOptions(mss=1460, sack_perm=True, wscale=7))
    return Ipv4Packet(A, B, 6, seg.emit(A, B), ident=2, df=True).emit()


def echo() -> bytes:
    return Ipv4Packet(A, B, 1, IcmpMessage.echo(True, 0x1234, 1, b"x" * 32).emit(), ident=3).emit()


def eth(ip: bytes) -> bytes:
    return EthernetFrame(MAC_B, MAC_A, 0x0800, ip).emit()
