"""Per-packet receive context, passed to transports as a value (an int of flags).

`Transport.on_packet(ip, now, rx)` and `Transport.on_ipv4(buf, start, end, src, dst, now, rx,
gso_size)` get these bits for the one packet they are handed, so nothing about the packet being
delivered lives in mutable stack fields (a transport reading the stack mid-delivery, a looped
packet delivered in between, or an exception cannot see a stale value).
"""

RX_TRUSTED = 1  # the device vouched for the transport checksum (receive offload): skip the check
RX_LINK_BROADCAST = 2  # the frame was a link-layer broadcast or multicast (RFC 1122 3.3.6, 3.2.2)

__all__ = ["RX_LINK_BROADCAST", "RX_TRUSTED"]
