"""Stack configuration: one plain dataclass, every knob with a documented default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class StackConfig:
    addr: str = "198.18.0.2/24"  # our address and on-link prefix
    gateway: str | None = None  # default router (None: only the on-link prefix is reachable)
    dns_servers: tuple[str, ...] = ()  # name servers for ustack.services.resolver (DHCP may add)
    mtu: int = 1500  # IP MTU of the device (bytes of IPv4 packet, not counting Ethernet)
    medium: str = "ip"  # "ip" (TUN: frames are bare IPv4 packets) or "ethernet" (TAP)
    mac: bytes | str | None = None  # our MAC on ethernet ("02:00:..." accepted); None: random
    # locally administered, from `seed`
    seed: int = 0  # seeds stack.rng (ports, IP IDs, RFC 6056/6528 secrets)
    ephemeral_low: int = 49152  # IANA dynamic range, also the Windows default
    ephemeral_high: int = 65535
    ttl: int = 64  # default TTL of what we send
    verify_checksums: bool = True  # False: trust the device (checksum offload)
    # ARP (ethernet only)
    arp_cache_ttl_s: float = 60.0  # a learned entry is used this long, then resolved again
    # An entry in use this close to expiring is re-confirmed by a unicast request to the cached
    # MAC (RFC 1122 2.3.2.1; Linux's STALE -> PROBE), at most every arp_retry_s: the answer
    # extends it, so busy traffic never waits for a broadcast resolution. 0 disables.
    arp_refresh_s: float = 5.0
    arp_retry_s: float = 1.0  # interval between requests for an unresolved address
    arp_tries: int = 3  # requests sent before the waiting packets fail with HOST_UNREACH
    arp_queue_limit: int = 32  # packets waiting per unresolved address (oldest dropped beyond)
    arp_cache_limit: int = 1024  # learned entries (oldest evicted beyond: a spoofing flood is bounded)
    arp_pending_limit: int = 256  # addresses being resolved at once (new ones dropped beyond)
    # One memory budget for every receive queue of the stack (TCP, UDP, reassembly), in true
    # size (payload + object overhead + the frame a view keeps alive), like Linux's tcp_mem:
    # above mem_pressure until below mem_low again, TCP clamps its offered windows and refuses
    # out-of-order data, UDP sockets keep at most udp_rmem_min; above mem_high nothing new is
    # queued. Every refusal is counted (docs/robustness.md, "Memory and queues").
    mem_low: int = 96 * 1024 * 1024
    mem_pressure: int = 128 * 1024 * 1024
    mem_high: int = 192 * 1024 * 1024
    # IPv4 reassembly
    reassembly_timeout_s: float = 30.0  # RFC 1122 3.3.2: 60 to 120 s recommended, Linux/Windows use 30/60
    reassembly_mem_limit: int = 4 * 1024 * 1024  # true size of incomplete datagrams (ipfrag_high_thresh)
    reassembly_max_datagrams: int = 256  # incomplete datagrams at once
    reassembly_max_fragments: int = 64  # fragments held per datagram (FreeBSD maxfragsperpacket: 16)
    # ICMP errors we send: token bucket (echo replies are not limited)
    icmp_rate: float = 100.0  # tokens per second
    icmp_burst: int = 50
    echo_broadcast: bool = False  # answer pings sent to a broadcast address (Linux/Windows: no)
    broadcast_loopback: bool = True  # broadcasts we send are also delivered to our own sockets
    # IGMP (RFC 3376; core/igmp.py)
    igmp_version: int = 3  # highest version spoken: 2 or 1 force that mode (Linux force_igmp_version)
    igmp_robustness: int = 2  # Robustness Variable until a v3 querier says otherwise (QRV)
    igmp_unsolicited_v3_s: float = 1.0  # repeats of a v3 state change: random within this
    igmp_unsolicited_v2_s: float = 10.0  # repeats of a v1/v2 unsolicited report (RFC 2236 8.10)
    # UDP
    udp_rcvbuf: int = 65536  # per-socket receive queue limit in bytes (Windows default)
    # ... of payload; the queue's true size may reach twice that (Linux doubles SO_RCVBUF for
    # the same reason), so a flood of empty datagrams is bounded too
    udp_rmem_min: int = 4096  # true size a socket may always hold under memory pressure (Linux udp_rmem_min)
    # Broadcasts reach sockets bound to 0.0.0.0. True: also sockets bound to our unicast address
    # (reported Windows behaviour, not verified against the reference; off by default)
    udp_broadcast_to_specific: bool = False
    # IPv6 (docs/ipv6.md). Link-local from the MAC always; `addr6` a static "2001:2::2/64";
    # `slaac` also takes addresses and routers from router advertisements (TAP)
    # None (auto): on for a TUN (it never speaks first), on for a TAP only with addr6 or slaac
    # (an IPv6 host on Ethernet sends DAD solicitations as it starts); False: IPv6 packets are
    # counted and dropped (ipv6.disabled), nothing sent
    ipv6: bool | None = None
    addr6: str | None = None
    slaac: bool = False
    hop_limit: int = 64  # default hop limit (an RA's Cur Hop Limit replaces it)
    ipv6_stable_privacy: bool = False  # RFC 7217 interface identifiers instead of EUI-64
    ipv6_secret: bytes | None = None  # RFC 7217 secret_key (None: random from `seed`)
    dad_transmits: int = 1  # RFC 4862 DupAddrDetectTransmits (0: no DAD, addresses usable at once)
    rtr_solicitations: int = 3  # RFC 4861 MAX_RTR_SOLICITATIONS (with slaac)
    rtr_solicitation_interval_s: float = 4.0
    pmtu6_expiry_s: float = 600.0  # RFC 8201 5.3: a learned path MTU is retried after this
    # Neighbor Discovery (RFC 4861 10, TAP only)
    nd_retrans_s: float = 1.0  # RetransTimer
    nd_reachable_s: float = 30.0  # BaseReachableTime
    nd_delay_s: float = 5.0  # DELAY_FIRST_PROBE_TIME
    nd_max_multicast_solicit: int = 3
    nd_max_unicast_solicit: int = 3
    nd_queue_limit: int = 32  # packets waiting per unresolved neighbour (oldest dropped beyond)
    nd_cache_limit: int = 1024  # neighbour entries (oldest resolved one evicted beyond)
    nd_pending_limit: int = 256  # neighbours being resolved at once (new ones dropped beyond)
    # TCP reads its own settings from here (ustack.tcp defines the type); None: TCP defaults
    tcp: Any = None
