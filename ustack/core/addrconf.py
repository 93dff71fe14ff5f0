"""IPv6 addresses of the one interface (RFC 4291, RFC 4862, RFC 7217): link-local, static, SLAAC.

Each address has an origin ("link-local", "static", "slaac"), a state ("tentative" while
duplicate address detection runs, "preferred", "deprecated" once its preferred lifetime ran
out) and lifetimes as deadlines. Interface identifiers come from the MAC (modified EUI-64,
RFC 4291 appendix A) or, with `StackConfig.ipv6_stable_privacy`, from RFC 7217's hash.
The multicast groups a host is in: ff02::1 and the solicited-node group of each address.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ..wire.ipv6 import parse_cidr6

if TYPE_CHECKING:
    from ..wire.ndp import RouterAdvert
    from .ipv6 import Ipv6Layer
    from .stack import Stack

LOOPBACK6 = 1  # ::1
LINK_LOCAL_PREFIX = 0xFE80 << 112  # fe80::/64
ALL_NODES = 0xFF020000000000000000000000000001
SOLICITED_NODE = 0xFF0200000000000000000001FF000000  # ff02::1:ff00:0/104
_LOW64 = (1 << 64) - 1
INFINITE = float("inf")
TENTATIVE, PREFERRED, DEPRECATED = "tentative", "preferred", "deprecated"
IDGEN_RETRIES = 3  # RFC 7217 6: new identifiers tried after DAD conflicts
TWO_HOURS = 7200.0  # RFC 4862 5.5.3(e)
INFINITE_LIFETIME = 0xFFFFFFFF


def group_mac(group: int) -> bytes:
    """The Ethernet address of an IPv6 multicast group: 33:33 and its low 32 bits (RFC 2464 7)."""
    return b"\x33\x33" + (group & 0xFFFFFFFF).to_bytes(4, "big")


def _mask(plen: int) -> int:
    return ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1)


def _until(now: float, seconds: int) -> float:
    return INFINITE if seconds == INFINITE_LIFETIME else now + seconds


def is_link_local(addr: int) -> bool:
    """fe80::/10 unicast, or a link-local-scope multicast (ff02::/16)."""
    return addr >> 118 == 0x3FA or addr >> 112 == 0xFF02


def solicited_node(addr: int) -> int:
    """ff02::1:ffXX:XXXX for `addr` (RFC 4291 2.7.1)."""
    return SOLICITED_NODE | (addr & 0xFFFFFF)


def eui64_iid(mac: bytes) -> int:
    """Modified EUI-64 interface identifier of a 48-bit MAC (RFC 4291 appendix A)."""
    b = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return int.from_bytes(b, "big")


def stable_iid(prefix: int, mac: bytes, secret: bytes, dad_counter: int = 0,
               network_id: bytes = b"") -> int:
    """RFC 7217 5: F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), SHA-256's
    first 64 bits; changes with the prefix, stable across restarts with the same secret."""
    h = hashlib.sha256(prefix.to_bytes(8, "big") + mac + network_id
                       + dad_counter.to_bytes(1, "big") + secret).digest()
    iid = int.from_bytes(h[:8], "big")
    # RFC 7217 5 step 5 / RFC 5453: never a reserved interface identifier (subnet-router
    # anycast, the reserved subnet anycast range, the proxy mobile range)
    if iid == 0 or iid >> 7 == 0xFDFFFFFFFFFFFF80 >> 7 or (
            iid >> 16 == 0x02005EFFFE00 and iid & 0xFFFF <= 0x5212):
        iid ^= 1 << 40
    return iid


class Address:
    __slots__ = ("addr", "prefix", "origin", "state", "valid_until", "preferred_until",
                 "dad_left", "dad_at", "dad_counter")

    def __init__(self, addr: int, prefix: int, origin: str, state: str,
                 valid_until: float = INFINITE, preferred_until: float = INFINITE) -> None:
        self.addr = addr
        self.prefix = prefix
        self.origin = origin
        self.state = state
        self.valid_until = valid_until
        self.preferred_until = preferred_until
        self.dad_left = 0  # neighbour solicitations still to send for DAD
        self.dad_at: float | None = None  # when the next one goes (or DAD ends)
        self.dad_counter = 0  # RFC 7217 DAD_Counter: retries after a conflict

    def __repr__(self) -> str:
        from ..wire.ipv6 import ip6_str

        return f"Address({ip6_str(self.addr)}/{self.prefix} {self.origin} {self.state})"


class AddrConf:
    """The interface's IPv6 addresses, groups, on-link prefixes and default routers."""

    def __init__(self, stack: Stack, layer: Ipv6Layer) -> None:
        cfg = stack.config
        self.stack = stack
        self.layer = layer
        self.counters = stack.counters
        self.addresses: dict[int, Address] = {}
        self.groups: set[int] = set()
        self.join(ALL_NODES)
        self.on_link_prefixes: dict[tuple[int, int], float] = {}  # (network, plen) -> valid until
        self.routers: dict[int, float] = {}  # default routers -> lifetime end
        self.stable_privacy = cfg.ipv6_stable_privacy
        self.secret = stack.rng.getrandbits(128).to_bytes(16, "big")  # RFC 7217 secret_key
        if cfg.ipv6_secret is not None:
            self.secret = bytes(cfg.ipv6_secret)
        self.mac = stack.mac
        self.static: tuple[int, int] | None = parse_cidr6(cfg.addr6) if cfg.addr6 else None
        self.slaac = cfg.slaac
        self.dad_transmits = cfg.dad_transmits
        self.duplicates: dict[int, Address] = {}  # addresses DAD found taken (never used)
        self.rs_left = 0  # router solicitations still to send (RFC 4861 6.3.7)
        self.rs_at: float | None = None
        self.rs_interval_s = cfg.rtr_solicitation_interval_s
        self.rs_count = cfg.rtr_solicitations
        self.started = False
        # the earliest deadline of all the above (None: none), kept up to date by every change
        # that can bring one closer, so the stack's poll pays one comparison while idle
        self.next_at: float | None = None

    def iid(self, prefix: int, dad_counter: int = 0) -> int:
        if self.stable_privacy:
            return stable_iid(prefix >> 64, self.mac, self.secret, dad_counter)
        return eui64_iid(self.mac)

    def configure(self, now: float, dad: bool) -> None:
        """The link-local address and the static one (config `addr6`); tentative when `dad`."""
        ll = LINK_LOCAL_PREFIX | self.iid(LINK_LOCAL_PREFIX)
        self.add(ll, 64, "link-local", now, dad, counted=False)
        if self.static is not None:
            addr, plen = self.static
            self.add(addr, plen, "static", now, dad, counted=False)
            if plen < 128:
                self.on_link_prefixes[(addr & _mask(plen), plen)] = INFINITE

    def add(self, addr: int, prefix: int, origin: str, now: float, dad: bool,
            valid_until: float = INFINITE, preferred_until: float = INFINITE,
            dad_counter: int = 0, counted: bool = True) -> Address:
        """Assign `addr`: tentative while DAD runs (`dad`), otherwise preferred at once."""
        a = Address(addr, prefix, origin, TENTATIVE if dad else PREFERRED, valid_until,
                    preferred_until)
        a.dad_counter = dad_counter
        self.addresses[addr] = a
        self.duplicates.pop(addr, None)
        self.join(solicited_node(addr))
        if counted:  # (the configured ones are not: an idle stack's counters stay empty)
            self.counters.inc("ipv6.address_added")
        if dad and self.started:
            self._begin_dad(a, now, delay=False)
        self._recompute()
        return a

    # ---- duplicate address detection (RFC 4862 5.4) and router solicitation -----------------
    def start(self, now: float) -> None:
        """Begin DAD for every tentative address (after a random delay of up to a second,
        5.4.2) and, with `slaac`, router solicitation (RFC 4861 6.3.7)."""
        if self.started:
            return
        self.started = True
        for a in self.addresses.values():
            if a.state == TENTATIVE:
                self._begin_dad(a, now, delay=True)
        if self.slaac and self.layer.ndp is not None and self.rs_count > 0:
            self.rs_left = self.rs_count
            self.rs_at = now + self.stack.rng.random()  # MAX_RTR_SOLICITATION_DELAY 1 s
        self._recompute()

    def _begin_dad(self, a: Address, now: float, delay: bool) -> None:
        a.dad_left = self.dad_transmits
        a.dad_at = now + (self.stack.rng.random() if delay else 0.0)

    def duplicate(self, addr: int, now: float) -> None:
        """DAD failed for tentative `addr` (an NA for it, or someone else's DAD NS): it is never
        used. With stable privacy (RFC 7217 6) a new identifier is tried, up to 3 times."""
        a = self.addresses.get(addr)
        if a is None or a.state != TENTATIVE:
            return
        self.counters.inc("ipv6.dad_duplicate")
        self.remove(addr)
        a.state = "duplicate"
        a.dad_at = None
        self.duplicates[addr] = a
        if self.stable_privacy and a.origin != "static" and a.dad_counter < IDGEN_RETRIES:
            net = addr & ~_LOW64
            new = net | self.iid(net, a.dad_counter + 1)
            self.counters.inc("ipv6.dad_retry")
            self.add(new, a.prefix, a.origin, now, True, a.valid_until, a.preferred_until,
                     a.dad_counter + 1)

    def _poll_dad(self, now: float) -> None:
        ndp = self.layer.ndp
        for a in list(self.addresses.values()):
            if a.state != TENTATIVE or a.dad_at is None or a.dad_at > now:
                continue
            if a.dad_left > 0 and ndp is not None:
                a.dad_left -= 1
                a.dad_at = now + ndp.retrans_s
                ndp.send_ns(a.addr, now, dad=True)
                continue
            a.dad_at = None  # RetransTimer after the last NS and nobody objected: ours
            a.state = PREFERRED if a.preferred_until > now else DEPRECATED
            self.counters.inc("ipv6.dad_ok")
            if a.origin == "link-local" and self.rs_left and self.rs_at is not None:
                self.rs_at = min(self.rs_at, now)  # solicit from the link-local address now

    # ---- router advertisements (RFC 4861 6.3.4, RFC 4862 5.5.3) -----------------------------
    def on_router_advert(self, src: int, ra: RouterAdvert, now: float) -> None:
        c = self.counters
        self.rs_left = 0  # 6.3.7: an advertisement ends solicitation
        self.rs_at = None
        if ra.lifetime_s:
            if src not in self.routers:
                c.inc("ipv6.router_added")
            self.routers[src] = now + ra.lifetime_s
        elif self.routers.pop(src, None) is not None:
            c.inc("ipv6.router_removed")
        for p in ra.options.prefixes:
            if p.prefix >> 118 == 0x3FA:
                c.inc("ipv6.ra_link_local_prefix")  # 6.3.4 / 5.5.3(b): ignored
                continue
            if p.length > 128:
                c.inc("ipv6.ra_bad_prefix")
                continue
            net = p.prefix & _mask(p.length)
            if p.on_link:
                if p.valid_s:
                    self.on_link_prefixes[(net, p.length)] = _until(now, p.valid_s)
                else:
                    self.on_link_prefixes.pop((net, p.length), None)
            if p.autonomous and self.slaac:
                self._slaac(net, p.length, p.valid_s, p.preferred_s, now)
        self._recompute()

    def _slaac(self, net: int, plen: int, valid_s: int, preferred_s: int, now: float) -> None:
        c = self.counters
        if preferred_s > valid_s:
            c.inc("ipv6.slaac_bad_lifetimes")  # 5.5.3(c)
            return
        if plen != 64:
            c.inc("ipv6.slaac_bad_prefix_length")  # 5.5.3(d): prefix + 64-bit identifier != 128
            return
        for a in self.addresses.values():
            if a.origin == "slaac" and a.addr & ~_LOW64 == net:
                # 5.5.3(e): preferred lifetime as advertised; valid lifetime lowered only
                # down to two hours (a forged RA cannot kill the address at once)
                a.preferred_until = _until(now, preferred_s)
                if a.state == DEPRECATED and a.preferred_until > now:
                    a.state = PREFERRED
                remaining = a.valid_until - now
                if valid_s > TWO_HOURS or _until(now, valid_s) > a.valid_until:
                    a.valid_until = _until(now, valid_s)
                elif remaining > TWO_HOURS:
                    a.valid_until = now + TWO_HOURS
                c.inc("ipv6.slaac_updated")
                return
        if not valid_s:
            return
        addr = net | self.iid(net)
        if addr in self.addresses or addr in self.duplicates:
            return
        self.add(addr, plen, "slaac", now, self.dad_transmits > 0 and self.layer.ndp is not None,
                 _until(now, valid_s), _until(now, preferred_s))
        c.inc("ipv6.slaac_address")

    def remove(self, addr: int) -> None:
        a = self.addresses.pop(addr, None)
        if a is None:
            return
        group = solicited_node(addr)
        if not any(solicited_node(b) == group for b in self.addresses):
            self.leave(group)
        self.counters.inc("ipv6.address_removed")

    def join(self, group: int) -> None:
        """Be in `group` (its 33:33 MAC accepted on ethernet, RFC 2464 7). With a multicast
        layer (`stack.mld`, contracts.md) the group is joined there, which reports it."""
        if group in self.groups:
            return
        self.groups.add(group)
        mld = getattr(self.stack, "mld", None)
        if mld is not None:
            mld.join(group, self.stack.last_now)
        else:
            self.stack.add_multicast_mac(group_mac(group))

    def leave(self, group: int) -> None:
        if group not in self.groups:
            return
        self.groups.discard(group)
        mld = getattr(self.stack, "mld", None)
        if mld is not None:
            mld.leave(group, self.stack.last_now)
        else:
            self.stack.remove_multicast_mac(group_mac(group))

    # ---- lookups (receive and send) -------------------------------------------------------
    def accepts(self, addr: int) -> bool:
        """A unicast destination we take packets for (assigned, not tentative)."""
        a = self.addresses.get(addr)
        return a is not None and a.state != TENTATIVE

    def is_own(self, addr: int) -> bool:
        a = self.addresses.get(addr)
        return a is not None and a.state != TENTATIVE or addr == LOOPBACK6

    def is_tentative(self, addr: int) -> bool:
        a = self.addresses.get(addr)
        return a is not None and a.state == TENTATIVE

    def in_group(self, group: int) -> bool:
        """Our own groups, or one an application joined through the multicast layer."""
        if group in self.groups:
            return True
        mld = getattr(self.stack, "mld", None)
        return mld is not None and mld.is_member(group)

    def on_link(self, addr: int) -> bool:
        for (net, plen) in self.on_link_prefixes:
            if addr >> (128 - plen) == net >> (128 - plen):
                return True
        return False

    def default_router(self) -> int | None:
        return next(iter(self.routers), None)

    def link_local(self) -> int | None:
        for a in self.addresses.values():
            if a.origin == "link-local" and a.state != TENTATIVE:
                return a.addr
        return None

    def select_source(self, dst: int) -> int | None:
        """RFC 6724 source selection, the rules that matter for one interface: same scope
        first (link-local for link-local and ff02:: destinations), preferred over deprecated,
        then the longest matching prefix. None when no usable address exists."""
        want_ll = is_link_local(dst)
        best = None
        best_key: tuple[bool, int] | None = None
        for a in self.addresses.values():
            if a.state == TENTATIVE or (a.addr >> 118 == 0x3FA) != want_ll:
                continue
            key = (a.state == PREFERRED, 128 - (a.addr ^ dst).bit_length())
            if best_key is None or key > best_key:
                best, best_key = a.addr, key
        return best

    # ---- timers -----------------------------------------------------------------------------
    def poll(self, now: float) -> None:
        if self.next_at is None or now < self.next_at:
            return
        if self.started:
            self._poll_dad(now)
            if self.rs_left and self.rs_at is not None and self.rs_at <= now:
                self.rs_left -= 1
                self.rs_at = now + self.rs_interval_s if self.rs_left else None
                if self.layer.ndp is not None:
                    self.layer.ndp.send_rs(now)
        for a in [a for a in self.addresses.values() if a.valid_until <= now]:
            self.remove(a.addr)
            self.counters.inc("ipv6.address_expired")
        for a in self.addresses.values():
            if a.state == PREFERRED and a.preferred_until <= now:
                a.state = DEPRECATED
                self.counters.inc("ipv6.address_deprecated")
        for key in [k for k, t in self.on_link_prefixes.items() if t <= now]:
            del self.on_link_prefixes[key]
        for r in [r for r, t in self.routers.items() if t <= now]:
            del self.routers[r]
            self.counters.inc("ipv6.router_expired")
        self._recompute()

    def poll_at(self) -> float | None:
        return self.next_at

    def _recompute(self) -> None:
        best = None
        for a in self.addresses.values():
            for t in (a.valid_until, a.preferred_until if a.state == PREFERRED else INFINITE,
                      a.dad_at if a.dad_at is not None else INFINITE):
                if t != INFINITE and (best is None or t < best):
                    best = t
        for t in (*self.on_link_prefixes.values(), *self.routers.values(),
                  self.rs_at if self.rs_left and self.rs_at is not None else INFINITE):
            if t != INFINITE and (best is None or t < best):
                best = t
        self.next_at = best
