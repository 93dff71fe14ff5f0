"""DHCPv4 client (RFC 2131) as a sans-I/O state machine, and its binding to a Stack.

`DhcpClient` never touches a socket or a clock: it is fed DHCP messages (`on_message`), ARP
packets (`on_arp`) and time (`poll`), and leaves what to do in `actions` (send a message, probe
an address, configure or remove the lease). `poll_at()` is its next deadline. Randomness (xids,
the +-1 s retransmission jitter, the RFC 5227 probe spacing) comes from the `random.Random` it
is given. `DhcpService` runs one on a Stack: a UDP socket on port 68, ARP probes through
`stack.arp`, the lease installed with `stack.set_address`, DNS servers into `stack.dns_servers`;
`stack.attach` makes the stack poll it, so it runs the same in the Simulator and on a Host.

States (RFC 2131 figure 5): INIT -> SELECTING -> REQUESTING -> PROBING (RFC 5227 check of the
offered address; DECLINE on conflict) -> BOUND -> RENEWING (T1, unicast) -> REBINDING (T2,
broadcast) -> lease expiry (address removed, back to INIT). REBOOTING is INIT-REBOOT with a
remembered address. RELEASED after `release()`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..core.counters import Counters
from ..core.errors import UsageError
from ..wire import dhcp as D
from ..wire.arp import OP_REQUEST, ArpPacket
from ..wire.errors import Malformed
from ..wire.ipv4 import ip_str

BROADCAST = 0xFFFFFFFF
INIT, SELECTING, REQUESTING, PROBING, BOUND, RENEWING, REBINDING, REBOOTING, RELEASED = (
    "INIT", "SELECTING", "REQUESTING", "PROBING", "BOUND", "RENEWING", "REBINDING", "REBOOTING",
    "RELEASED")
PARAMS = bytes((D.OPT_SUBNET_MASK, D.OPT_ROUTER, D.OPT_DNS, D.OPT_DOMAIN, D.OPT_LEASE_TIME,
                D.OPT_RENEWAL_T1, D.OPT_REBINDING_T2))


@dataclass
class DhcpConfig:
    """Timing knobs; the defaults are the RFCs' values."""

    first_retry_s: float = 4.0  # RFC 2131 4.1: 4 s, then 8, 16, 32, 64, each +-1 s
    max_retry_s: float = 64.0
    jitter_s: float = 1.0
    request_tries: int = 4  # REQUEST (SELECTING or INIT-REBOOT) sent this often, then INIT
    renew_min_retry_s: float = 60.0  # RFC 2131 4.4.5: half the time left, at least 60 s
    decline_wait_s: float = 10.0  # RFC 2131 3.1 step 5: wait 10 s after a DECLINE
    nak_wait_s: float = 2.0  # pause after a NAK before DISCOVER again (a NAK loop stays slow)
    probe: bool = True  # RFC 5227 check before using an address (ethernet only)
    probe_wait_s: float = 1.0  # RFC 5227 PROBE_WAIT: random 0..1 s before the first probe
    probe_num: int = 3  # PROBE_NUM
    probe_min_s: float = 1.0  # PROBE_MIN .. PROBE_MAX between probes
    probe_max_s: float = 2.0
    announce_wait_s: float = 2.0  # ANNOUNCE_WAIT after the last probe before using it
    default_lease_s: int = 3600  # an ACK without option 51 (never from a conforming server)


class Lease(NamedTuple):
    addr: int
    prefix: int
    router: int | None
    dns: tuple[int, ...]
    server: int
    lease_s: float
    t1_s: float
    t2_s: float
    start: float  # when the REQUEST that got it was sent: lease times count from there

    @property
    def cidr(self) -> str:
        return f"{ip_str(self.addr)}/{self.prefix}"


# actions: what the binding must do
class Send(NamedTuple):
    message: D.DhcpMessage
    dst: int  # BROADCAST or the server (unicast renewal, RELEASE)


class Probe(NamedTuple):
    addr: int


class Configure(NamedTuple):
    lease: Lease


class Unconfigure(NamedTuple):
    reason: str  # "expired", "nak", "released", "declined"


def _prefix(mask: int | None, addr: int) -> int:
    if mask is None or mask & (mask + (mask & -mask)) & 0xFFFFFFFF:  # absent or not contiguous
        return 8 if addr >> 31 == 0 else 16 if addr >> 30 == 2 else 24  # classful (RFC 2131 says SHOULD send)
    return bin(mask).count("1")


def _usable(addr: int, prefix: int) -> bool:
    """A unicast host address: not 0/8, loopback, multicast or class E, and (below /31) not the
    network or broadcast address of its prefix (a hostile server must not make us one)."""
    if addr >> 24 in (0, 127) or addr >= 0xE0000000:
        return False
    if prefix < 31:
        host = addr & ((1 << (32 - prefix)) - 1)
        return host not in (0, (1 << (32 - prefix)) - 1)
    return True


class DhcpClient:
    def __init__(self, mac: bytes, rng: random.Random, *, config: DhcpConfig | None = None,
                 counters: Counters | None = None, remembered: int | None = None,
                 hostname: str | None = None, probe: bool | None = None) -> None:
        self.mac = bytes(mac)
        self.rng = rng
        self.cfg = config or DhcpConfig()
        self.counters = counters if counters is not None else Counters()
        self.remembered = remembered
        self.hostname = hostname
        self.probing_enabled = self.cfg.probe if probe is None else probe
        self.state = INIT
        self.lease: Lease | None = None  # the lease in use (BOUND, RENEWING, REBINDING)
        self.actions: list[Send | Probe | Configure | Unconfigure] = []
        self.xid = 0
        self.started_at = 0.0  # beginning of this acquisition (the secs field)
        self.sent_at = 0.0  # the last REQUEST/DISCOVER of this exchange
        self.next_at: float | None = None
        self.retry_s = self.cfg.first_retry_s
        self.tries = 0
        self.offer: D.DhcpMessage | None = None
        self.candidate: Lease | None = None  # ACKed, being probed
        self.probes_left = 0
        self.log: list[tuple[float, str]] = []  # (time, state entered), for tests and the CLI

    # ---- inputs -------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Begin: INIT-REBOOT with a remembered address, else INIT (DISCOVER at once)."""
        if self.remembered:
            self._enter(REBOOTING, now)
            self._new_exchange(now)
            self._send_request(now)
        else:
            self._init(now, 0.0)
            self._discover(now)

    def release(self, now: float) -> None:
        """Give the lease back (RELEASE, unicast to the server) and stop (RFC 2131 4.4.6)."""
        if self.lease is not None:
            lease = self.lease
            release = self._message(D.RELEASE, ciaddr=lease.addr, xid=self.rng.getrandbits(32),
                                    extra={D.OPT_SERVER_ID: lease.server.to_bytes(4, "big")})
            self.actions.append(Send(release, lease.server))
            self.counters.inc("dhcp.release_out")
            self._drop_lease("released")
        self._enter(RELEASED, now)
        self.next_at = None

    def on_message(self, payload: bytes | memoryview, now: float) -> None:
        c = self.counters
        try:
            m = D.DhcpMessage.parse(payload)
        except Malformed as e:
            c.inc(e.reason)
            return
        if m.op != D.BOOTREPLY or m.xid != self.xid or m.chaddr != self.mac:
            c.inc("dhcp.not_ours")
            return
        kind = m.message_type
        st = self.state
        if kind == D.OFFER and st == SELECTING:
            if m.address(D.OPT_SERVER_ID) is None or not m.yiaddr:
                c.inc("dhcp.bad_offer")
                return
            c.inc("dhcp.offer_in")
            self.offer = m
            self._enter(REQUESTING, now)
            self.tries = 0
            self.retry_s = self.cfg.first_retry_s
            self._send_request(now)
        elif kind == D.ACK and st in (REQUESTING, REBOOTING, RENEWING, REBINDING):
            c.inc("dhcp.ack_in")
            lease = self._lease_from(m)
            if lease is None:
                c.inc("dhcp.bad_ack")
                return
            if st in (RENEWING, REBINDING) and self.lease is not None and lease.addr == self.lease.addr:
                c.inc("dhcp.renewed")
                self._bind(lease, now)
            elif self.probing_enabled:
                if self.lease is not None:
                    self._drop_lease("readdressed")
                self._start_probe(lease, now)
            else:
                self._bind(lease, now)
        elif kind == D.NAK and st in (REQUESTING, REBOOTING, RENEWING, REBINDING):
            if st in (REQUESTING, RENEWING) and m.address(D.OPT_SERVER_ID) not in (None, self._server()):
                c.inc("dhcp.not_ours")  # a NAK from another server about someone else's offer
                return
            c.inc("dhcp.nak_in")
            self.remembered = None
            self._drop_lease("nak")
            self._init(now, self.cfg.nak_wait_s)
        else:
            c.inc("dhcp.unexpected")

    def on_arp(self, arp: ArpPacket, now: float) -> None:
        """RFC 5227 2.1.1: while probing, a packet from another host with the candidate as
        sender (it uses the address), or another probe for it (it wants it too), is a conflict."""
        if self.state != PROBING or self.candidate is None or arp.sha == self.mac:
            return
        addr = self.candidate.addr
        if arp.spa == addr or (arp.op == OP_REQUEST and arp.spa == 0 and arp.tpa == addr):
            self._decline(now)

    def poll(self, now: float) -> None:
        if self.next_at is None or now < self.next_at:
            return
        st = self.state
        if st == INIT:
            self._discover(now)
        elif st == SELECTING:
            self._send_discover(now)
        elif st in (REQUESTING, REBOOTING):
            if self.tries >= self.cfg.request_tries:
                self.counters.inc("dhcp.request_timeout")
                self.remembered = None
                self._init(now, 0.0)
            else:
                self._send_request(now)
        elif st == PROBING:
            self._probe_step(now)
        elif st in (BOUND, RENEWING, REBINDING):
            self._lease_timer(now)

    def poll_at(self) -> float | None:
        return self.next_at

    def take_actions(self) -> list[Send | Probe | Configure | Unconfigure]:
        out, self.actions = self.actions, []
        return out

    # ---- states -------------------------------------------------------------------------------
    def _enter(self, state: str, now: float) -> None:
        self.state = state
        self.log.append((now, state))
        if len(self.log) > 256:
            del self.log[:128]

    def _init(self, now: float, wait_s: float) -> None:
        self._enter(INIT, now)
        self.offer = self.candidate = None
        self.next_at = now + wait_s

    def _new_exchange(self, now: float) -> None:
        self.xid = self.rng.getrandbits(32)
        self.started_at = now
        self.tries = 0
        self.retry_s = self.cfg.first_retry_s

    def _discover(self, now: float) -> None:
        self._enter(SELECTING, now)
        self._new_exchange(now)
        self._send_discover(now)

    def _backoff(self, now: float) -> None:
        """Next retransmission: 4 s, 8 s, ... up to 64 s, each +-1 s (RFC 2131 4.1)."""
        cfg = self.cfg
        self.next_at = now + max(0.0, self.retry_s + self.rng.uniform(-cfg.jitter_s, cfg.jitter_s))
        self.retry_s = min(self.retry_s * 2, cfg.max_retry_s)

    def _send_discover(self, now: float) -> None:
        extra = {}
        if self.remembered:
            extra[D.OPT_REQUESTED_ADDR] = self.remembered.to_bytes(4, "big")
        self.actions.append(Send(self._message(D.DISCOVER, now=now, extra=extra), BROADCAST))
        self.counters.inc("dhcp.discover_out")
        self.tries += 1
        self._backoff(now)

    def _send_request(self, now: float) -> None:
        """REQUEST as SELECTING (server id + requested address) or INIT-REBOOT (requested
        address only), broadcast (RFC 2131 4.3.2 table 4)."""
        if self.state == REQUESTING and self.offer is not None:
            extra = {D.OPT_REQUESTED_ADDR: self.offer.yiaddr.to_bytes(4, "big"),
                     D.OPT_SERVER_ID: self.offer.options[D.OPT_SERVER_ID]}
        else:
            extra = {D.OPT_REQUESTED_ADDR: (self.remembered or 0).to_bytes(4, "big")}
        self.actions.append(Send(self._message(D.REQUEST, now=now, extra=extra), BROADCAST))
        self.counters.inc("dhcp.request_out")
        self.sent_at = now
        self.tries += 1
        self._backoff(now)

    def _lease_from(self, m: D.DhcpMessage) -> Lease | None:
        server = m.address(D.OPT_SERVER_ID) or self._server()
        if not m.yiaddr or server is None:
            return None
        lease_s = m.seconds(D.OPT_LEASE_TIME)
        if lease_s is None:
            lease_s = self.cfg.default_lease_s
        t1 = m.seconds(D.OPT_RENEWAL_T1)
        t2 = m.seconds(D.OPT_REBINDING_T2)
        # RFC 2131 4.4.5 defaults; a server's T1/T2 that break T1 <= T2 <= lease are ignored
        t1 = t1 if t1 is not None and t1 <= lease_s else 0.5 * lease_s
        t2 = t2 if t2 is not None and t1 <= t2 <= lease_s else 0.875 * lease_s
        t1 = min(t1, t2)
        routers = [r for r in m.addresses(D.OPT_ROUTER) if r]
        prefix = _prefix(m.address(D.OPT_SUBNET_MASK), m.yiaddr)
        if not _usable(m.yiaddr, prefix):
            return None
        router = routers[0] if routers else None
        if router is not None and prefix and (router ^ m.yiaddr) >> (32 - prefix):
            router = None  # not on the link: unusable as our default route
        return Lease(m.yiaddr, prefix, router, tuple(m.addresses(D.OPT_DNS)), server, float(lease_s),
                     float(t1), float(t2), self.sent_at)

    def _start_probe(self, lease: Lease, now: float) -> None:
        self._enter(PROBING, now)
        self.candidate = lease
        self.probes_left = self.cfg.probe_num
        self.next_at = now + self.rng.uniform(0.0, self.cfg.probe_wait_s)

    def _probe_step(self, now: float) -> None:
        cfg = self.cfg
        if self.probes_left > 0:
            self.probes_left -= 1
            self.actions.append(Probe(self.candidate.addr))  # type: ignore[union-attr]
            self.counters.inc("dhcp.probe_out")
            if self.probes_left:
                self.next_at = now + self.rng.uniform(cfg.probe_min_s, cfg.probe_max_s)
            else:
                self.next_at = now + cfg.announce_wait_s
            return
        lease, self.candidate = self.candidate, None
        self._bind(lease, now)  # type: ignore[arg-type]

    def _decline(self, now: float) -> None:
        lease = self.candidate
        assert lease is not None
        self.counters.inc("dhcp.conflict")
        self.counters.inc("dhcp.decline_out")
        self.actions.append(Send(self._message(D.DECLINE, xid=self.xid, extra={
            D.OPT_REQUESTED_ADDR: lease.addr.to_bytes(4, "big"),
            D.OPT_SERVER_ID: lease.server.to_bytes(4, "big")}), BROADCAST))
        self.remembered = None
        self._init(now, self.cfg.decline_wait_s)

    def _bind(self, lease: Lease, now: float) -> None:
        new = self.lease is None or self.lease[:4] != lease[:4]
        self.lease = lease
        self.remembered = lease.addr
        self.offer = None
        if new:
            self.actions.append(Configure(lease))
            self.counters.inc("dhcp.bound")
        self._enter(BOUND, now)
        self.next_at = lease.start + lease.t1_s

    def _lease_timer(self, now: float) -> None:
        lease = self.lease
        assert lease is not None
        t1, t2, end = lease.start + lease.t1_s, lease.start + lease.t2_s, lease.start + lease.lease_s
        if now >= end:
            self.counters.inc("dhcp.lease_expired")
            self._drop_lease("expired")
            self._init(now, 0.0)
            return
        if now >= t2:
            if self.state != REBINDING:
                self._enter(REBINDING, now)
                self.xid = self.rng.getrandbits(32)
            dst, until, name = BROADCAST, end, "dhcp.rebind_out"
        elif now >= t1:
            if self.state != RENEWING:
                self._enter(RENEWING, now)
                self.xid = self.rng.getrandbits(32)
                self.started_at = now
            dst, until, name = lease.server, t2, "dhcp.renew_out"
        else:
            self.next_at = t1
            return
        # RFC 2131 4.3.2: RENEWING/REBINDING REQUEST has ciaddr, no server id or requested addr
        self.actions.append(Send(self._message(D.REQUEST, now=now, ciaddr=lease.addr), dst))
        self.counters.inc(name)
        self.sent_at = now
        self.next_at = min(until, now + max((until - now) / 2, self.cfg.renew_min_retry_s))

    def _drop_lease(self, reason: str) -> None:
        if self.lease is not None:
            self.lease = None
            self.actions.append(Unconfigure(reason))

    def _server(self) -> int | None:
        if self.offer is not None:
            return self.offer.address(D.OPT_SERVER_ID)
        if self.lease is not None:
            return self.lease.server
        return None

    def _message(self, kind: int, *, now: float | None = None, ciaddr: int = 0,
                 extra: dict[int, bytes] | None = None, xid: int | None = None) -> D.DhcpMessage:
        opts: dict[int, bytes] = {D.OPT_MESSAGE_TYPE: bytes((kind,)),
                                  D.OPT_CLIENT_ID: b"\x01" + self.mac}
        if extra:
            opts.update(extra)
        if kind in (D.DISCOVER, D.REQUEST):
            opts[D.OPT_PARAM_LIST] = PARAMS
            opts[D.OPT_MAX_SIZE] = (1500).to_bytes(2, "big")
            if self.hostname:
                opts[D.OPT_HOSTNAME] = self.hostname.encode("ascii", "replace")[:63]
        secs = min(int(now - self.started_at), 0xFFFF) if now is not None else 0
        # no address yet: ask for broadcast replies (RFC 2131 4.1: we cannot take unicast to
        # an address we do not have)
        flags = D.FLAG_BROADCAST if not ciaddr else 0
        return D.DhcpMessage(D.BOOTREQUEST, self.xid if xid is None else xid, self.mac, opts,
                             ciaddr=ciaddr, secs=max(secs, 0), flags=flags)


class DhcpService:
    """A DhcpClient running inside a Stack (ethernet or TUN): socket, ARP, configuration.

    Create it, then `start(now)` (under the host's lock: `host.call(svc.start, host.now())`).
    The stack polls it (`stack.attach`); every change is in `client.state` / `client.lease`.
    """

    def __init__(self, stack: Any, *, config: DhcpConfig | None = None, remembered: str | None = None,
                 hostname: str | None = None) -> None:
        from ..wire.ipv4 import ip_int

        self.stack = stack
        probe = (config or DhcpConfig()).probe and stack.arp is not None
        self.client = DhcpClient(stack.mac, random.Random(stack.rng.getrandbits(64)), config=config,
                                 counters=stack.counters,
                                 remembered=ip_int(remembered) if remembered else None,
                                 hostname=hostname, probe=probe)
        self.static_dns = list(stack.dns_servers)
        self.sock = None
        self.on_change: list[Any] = []  # callables(client) after every configuration change

    def start(self, now: float) -> None:
        stack = self.stack
        if stack.addr != 0:
            stack.set_address("0.0.0.0/32")
        sock = stack.udp.open()
        sock.broadcast = True
        sock.bind(0, D.CLIENT_PORT)
        self.sock = sock
        if stack.arp is not None:
            stack.arp.listeners.append(self._on_arp)
        stack.attach(self)
        self.client.start(now)
        self._act(now)

    def release(self, now: float) -> None:
        self.client.release(now)
        self._act(now)

    def close(self, now: float | None = None) -> None:
        self.stack.detach(self)
        if self.stack.arp is not None and self._on_arp in self.stack.arp.listeners:
            self.stack.arp.listeners.remove(self._on_arp)
        if self.sock is not None:
            self.sock.close()

    # the stack polls these
    def poll(self, now: float) -> None:
        sock = self.sock
        if sock is not None:
            for _ in range(64):  # bounded per poll; the rest waits for the next
                got = sock.recvfrom()
                if got is None:
                    break
                data, src, sport = got
                if sport == D.SERVER_PORT:
                    self.client.on_message(data, now)
                else:
                    self.stack.counters.inc("dhcp.not_ours")
        self.client.poll(now)
        self._act(now)

    def poll_at(self) -> float | None:
        if self.sock is not None and self.sock.readable:
            return 0.0  # a reply is waiting: poll at once (the stack polls after every receive)
        return self.client.poll_at()

    def _on_arp(self, arp: ArpPacket, now: float) -> None:
        self.client.on_arp(arp, now)

    def _act(self, now: float) -> None:
        stack = self.stack
        for action in self.client.take_actions():
            if isinstance(action, Send):
                try:
                    self.sock.sendto(action.message.emit(), action.dst, D.SERVER_PORT, now)  # type: ignore[union-attr]
                except UsageError:
                    stack.counters.inc("dhcp.send_failed")  # e.g. no route to the server any more
            elif isinstance(action, Probe):
                if stack.arp is not None:
                    stack.arp.probe(action.addr)
            elif isinstance(action, Configure):
                lease = action.lease
                stack.set_address(lease.cidr, ip_str(lease.router) if lease.router else None)
                stack.dns_servers = list(lease.dns) + [a for a in self.static_dns if a not in lease.dns]
                self._changed()
            elif isinstance(action, Unconfigure):
                stack.set_address("0.0.0.0/32")
                stack.dns_servers = list(self.static_dns)
                self._changed()

    def _changed(self) -> None:
        for cb in self.on_change:
            cb(self.client)
