"""Address classes and the routing decision of a single-interface host."""

from __future__ import annotations

from ..wire.ipv4 import parse_cidr, prefix_mask

LIMITED_BROADCAST = 0xFFFFFFFF
LOOPBACK = 0x7F000001  # 127.0.0.1
_LOOPBACK_NET = 0x7F000000
_MULTICAST_NET = 0xE0000000  # 224.0.0.0/4
_CLASS_E = 0xF0000000  # 240.0.0.0/4 (reserved; 255.255.255.255 handled first)


def is_loopback(addr: int) -> bool:
    return addr & 0xFF000000 == _LOOPBACK_NET


def is_multicast(addr: int) -> bool:
    return addr & 0xF0000000 == _MULTICAST_NET


class Routes:
    """One interface with an on-link prefix and an optional default gateway, plus loopback."""

    def __init__(self, cidr: str, gateway: int | None) -> None:
        self.addr, self.prefix = parse_cidr(cidr)
        self.mask = prefix_mask(self.prefix) if self.prefix else 0
        self.network = self.addr & self.mask
        # /31 and /32 have no broadcast address (RFC 3021)
        self.directed_broadcast = (self.network | (~self.mask & 0xFFFFFFFF)) if self.prefix < 31 else None
        self.gateway = gateway
        if gateway is not None and gateway & self.mask != self.network:
            raise ValueError("the gateway must be on the on-link prefix")

    def is_local(self, addr: int) -> bool:
        """An address of this host: ours or anything in 127.0.0.0/8."""
        return addr == self.addr or addr & 0xFF000000 == _LOOPBACK_NET

    def is_broadcast(self, addr: int) -> bool:
        """255.255.255.255, the directed broadcast of our prefix, or its all-zeros host form
        (RFC 1122 3.3.6: hosts recognise the obsolete {<net>, 0} broadcast on receipt)."""
        if addr == LIMITED_BROADCAST:
            return True
        if self.directed_broadcast is None:
            return False
        return addr == self.directed_broadcast or (addr == self.network and self.prefix < 31)

    def is_unicast_host(self, addr: int) -> bool:
        """A source that may receive an ICMP error (RFC 1122 3.2.2): not 0.0.0.0, broadcast,
        multicast or class E."""
        return addr != 0 and addr < _MULTICAST_NET and not self.is_broadcast(addr)

    def route(self, dst: int) -> tuple[int, int] | None:
        """(source address, next hop) for `dst`, or None when there is no route.

        Local addresses route to themselves (the stack loops them back); broadcasts and multicast
        go on-link; anything off-link goes to the gateway.
        """
        if dst & 0xFF000000 == _LOOPBACK_NET:
            return (LOOPBACK, dst)
        if dst == self.addr:
            return (self.addr, dst)
        if dst == LIMITED_BROADCAST or dst & self.mask == self.network or is_multicast(dst):
            return (self.addr, dst)
        if self.gateway is not None and dst != 0 and dst < _CLASS_E:
            return (self.addr, self.gateway)
        return None
