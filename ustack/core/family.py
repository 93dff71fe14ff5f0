"""Address families of the transports: IPv4 addresses are 32-bit ints, IPv6 addresses 128-bit
ints, and one int says which it is.

IPv4 addresses the stack uses as a source or a peer lie in [2**24, 2**32) (0.0.0.0/8 is never
one), and an IPv6 address in that range would be an IPv4-compatible address (::a.b.c.d,
deprecated by RFC 4291 2.5.5.1), which the transports refuse in calls and drop on receive. So
`is_ipv6(addr)` decides the family of any address of a connection or a datagram, and a
connection key (laddr, lport, raddr, rport) of one family never equals one of the other. The
wildcard (0) is the exception: it belongs to both, which is why each family has its own port
tables (`stack.tcp_ports`/`tcp6_ports`, `stack.udp_ports`/`udp6_ports`).

A dual-mode socket (family 6, `v6only` False) names IPv4 peers by their v4-mapped address
::ffff:a.b.c.d (RFC 4291 2.5.5.2): `v4mapped(a4)`, `unmap(a6)`.
"""

from __future__ import annotations

V4MAPPED = 0xFFFF << 32  # ::ffff:0.0.0.0
_V4_LOW = 1 << 24
_V4_END = 1 << 32
MAX6 = (1 << 128) - 1
LOOPBACK6 = 1  # ::1


def is_ipv6(addr: int) -> bool:
    """The family of a (non-wildcard) address of a connection or datagram: see the module doc."""
    return not _V4_LOW <= addr < _V4_END


def is_v4mapped(addr: int) -> bool:
    return addr >> 32 == 0xFFFF


def v4mapped(addr4: int) -> int:
    return V4MAPPED | addr4


def unmap(addr6: int) -> int:
    """The IPv4 address inside a v4-mapped one."""
    return addr6 & 0xFFFFFFFF


def is_v4compat(addr6: int) -> bool:
    """An IPv4-compatible address ::a.b.c.d (deprecated; refused): see the module doc."""
    return _V4_LOW <= addr6 < _V4_END


def is_multicast6(addr6: int) -> bool:
    return addr6 >> 120 == 0xFF


__all__ = ["LOOPBACK6", "MAX6", "V4MAPPED", "is_ipv6", "is_multicast6", "is_v4compat", "is_v4mapped",
           "unmap", "v4mapped"]
