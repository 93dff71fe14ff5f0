"""Named counters: every drop and every notable event has one ("udp.no_port", "ipv4.bad_checksum").

A counter name is "<protocol>.<what>"; `Malformed.reason` from the codecs is used as-is, so a codec
rejection and its counter share a name. Increments are a dict update (the hot path uses `inc`).
"""

from __future__ import annotations

from collections import defaultdict

from ..wire.errors import REASONS
from .counters6 import IPV6_DESCRIPTIONS


class Counters:
    __slots__ = ("_c",)

    def __init__(self) -> None:
        self._c: defaultdict[str, int] = defaultdict(int)

    @property
    def raw(self) -> defaultdict[str, int]:
        """The counts themselves, for hot paths that increment `raw[name] += 1` without a call."""
        return self._c

    def inc(self, name: str, n: int = 1) -> None:
        self._c[name] += n

    def get(self, name: str) -> int:
        return self._c.get(name, 0)

    def __getitem__(self, name: str) -> int:
        return self._c.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter that has been touched (name -> value).

        Safe to call from another thread without the stack lock: a copy that races with the
        network thread adding a new name is simply retried.
        """
        for _ in range(100):
            try:
                return dict(self._c)
            except RuntimeError:  # dictionary changed size during iteration
                continue
        return dict(self._c)

    def table(self) -> list[tuple[str, str, int]]:
        """(protocol, name within the protocol, value), grouped by protocol like `netstat -s`.

        Protocols in stack order (ethernet, arp, ipv4, icmp, udp, tcp, then the rest), names sorted
        within each. "ipv4.bad_checksum" appears as ("ipv4", "bad_checksum", n).
        """
        order = {p: i for i, p in enumerate(("stack", "ethernet", "arp", "ipv4", "icmp", "ipv6",
                                                 "icmpv6", "ndp", "udp", "tcp"))}
        rows = []
        for full, value in self.snapshot().items():
            proto, _, name = full.partition(".")
            rows.append((proto, name or proto, value))
        rows.sort(key=lambda r: (order.get(r[0], len(order)), r[0], r[1]))
        return rows

    def __repr__(self) -> str:
        return f"Counters({dict(sorted(self._c.items()))})"


# What each counter of the core means. "drop:" marks input or output the stack discarded.
# (Codec rejections are counted under their `Malformed.reason`; `describe` finds those in
# `ustack.wire.REASONS`.)
DESCRIPTIONS: dict[str, str] = {
    "stack.internal_error": "drop: a bug raised while handling a frame or timer (traceback kept)",
    "ethernet.in": "frames received on an ethernet (TAP) device",
    "ethernet.out": "frames handed to an ethernet (TAP) device (IPv4 and ARP)",
    "ethernet.not_for_us": "drop: unicast frame for another MAC",
    "ethernet.own_frame": "drop: our own frame came back (hub, loop)",
    "ethernet.unknown_type": "drop: ethertype other than IPv4, ARP, IPv6",
    "arp.requests_in": "ARP requests received",
    "arp.replies_in": "ARP replies received",
    "arp.requests_out": "ARP requests sent (resolution and retries)",
    "arp.replies_out": "ARP replies sent for our address",
    "arp.gratuitous_out": "gratuitous ARP announcements sent (start)",
    "arp.probes_out": "ARP probes sent (RFC 5227, sender 0.0.0.0: the DHCP client checking an offer)",
    "arp.addr_conflict": "drop: another host claims our IPv4 address",
    "arp.bad_sender": "drop: ARP sender MAC is multicast or zero",
    "arp.unsolicited": "drop: ARP reply we never asked for (not learned)",
    "arp.resolved": "addresses resolved after waiting",
    "arp.queued": "packets held while their next hop was resolved",
    "arp.queue_overflow": "drop: oldest packet waiting for ARP (queue full)",
    "arp.pending_overflow": "drop: too many addresses being resolved at once",
    "arp.resolve_failed": "resolutions that gave up after the last retry",
    "arp.queue_dropped": "drop: packets that waited for a resolution that failed",
    "arp.unreachable_reported": "HOST_UNREACH reported to a transport after ARP failed",
    "arp.expired": "cache entries that aged out",
    "arp.refresh_out": "unicast requests re-confirming a cache entry in use before it expires",
    "arp.cache_evicted": "cache entries evicted because the cache was full",
    "ipv4.in": "IPv4 packets received from the device",
    "ipv4.delivered": "datagrams handed to a transport (ICMP, UDP, TCP)",
    "ipv4.csum_offloaded": "frames whose transport checksum the device vouched for (receive "
                           "checksum offload: not verified again)",
    "ipv4.gso_not_tcp": "drop: a GSO super-segment (receive offload) that is not TCP",
    "ipv4.gso_full_path": "GSO super-segments not of the plain shape GRO takes, handled whole by "
                          "the full IPv4 path",
    "ipv4.bad_options": "drop: malformed IPv4 options",
    "tcp.gro_in": "GSO super-segments (receive offload) taken whole by the TCP fast path, as GRO",
    "tcp.gro_segs": "segments inside the GSO super-segments received (taken whole or cut up)",
    "tcp.gro_split": "GSO super-segments the fast path declined, cut back into gso_size segments",
    "ipv4.bad_source": "drop: broadcast, multicast or class E source address",
    "ipv4.martian_loopback": "drop: 127/8 source or destination on the link",
    "ipv4.martian_own_source": "drop: our own address as source on the link",
    "ipv4.not_for_us": "drop: destination is not ours (we do not forward)",
    "ipv4.link_broadcast_unicast": "drop: unicast IP in a link-layer broadcast (RFC 1122 3.3.6)",
    "ipv4.unknown_proto": "drop: no transport for the protocol (protocol unreachable sent)",
    "ipv4.out": "datagrams sent to the device",
    "ipv4.gso_out": "TCP super-segments handed to the device for segmentation (transmit offload, TSO)",
    "ipv4.gso_segs_out": "segments the device cuts the TCP super-segments into",
    "ipv4.out_too_big": "refused: datagram over 65535 bytes",
    "ipv4.no_route": "refused: no route (NET_UNREACH, nothing sent)",
    "ipv4.address_changed": "our address, prefix or router changed (Stack.set_address: DHCP)",
    "ipv4.frag_needed_local": "refused: DF set and larger than the MTU (FRAG_NEEDED)",
    "ipv4.fragmented": "datagrams fragmented on output",
    "ipv4.fragments_out": "fragments sent",
    "ipv4.loopback_out": "datagrams to a local address, kept inside the stack",
    "ipv4.loopback_in": "looped-back datagrams delivered",
    "ipv4.reasm_fragments": "fragments received",
    "ipv4.reasm_ok": "datagrams reassembled",
    "ipv4.reasm_duplicate": "drop: exact duplicate fragment",
    "ipv4.reasm_overlap": "drop: overlapping fragments, whole datagram discarded (RFC 5722)",
    "ipv4.reasm_dead_fragment": "drop: fragment of a datagram already discarded",
    "ipv4.reasm_inconsistent": "drop: fragments disagree about the datagram's length",
    "ipv4.reasm_bad_length": "drop: non-last fragment not a multiple of 8 bytes (or empty)",
    "ipv4.reasm_too_big": "drop: reassembled datagram would exceed 65535 bytes",
    "ipv4.reasm_timeout": "drop: incomplete datagram timed out",
    "ipv4.reasm_evicted": "drop: incomplete datagram evicted to bound memory",
    "ipv4.reasm_mem_limit": "drop: fragment refused by the reassembly memory limit",
    "ipv4.reasm_too_many_fragments": "drop: datagram over reassembly_max_fragments, discarded",
    "ipv4.reasm_mem_budget": "drop: fragment refused, the stack's memory budget is at its high mark",
    "icmp.in": "ICMP messages received",
    "icmp.out": "ICMP messages sent (echo requests and replies, errors)",
    "icmp.echo_requests_in": "echo requests received",
    "icmp.echo_replies_out": "echo replies sent",
    "icmp.echo_requests_out": "echo requests sent (ping)",
    "icmp.echo_replies_in": "echo replies received",
    "icmp.echo_errors": "errors about our echo requests",
    "icmp.echo_broadcast_ignored": "drop: echo request to a broadcast/multicast address",
    "icmp.echo_bad_source": "drop: echo request from a non-unicast source",
    "icmp.errors_in": "ICMP errors received",
    "icmp.errors_out": "ICMP errors sent",
    "icmp.error_not_ours": "drop: error quoting a datagram we did not send",
    "icmp.error_no_transport": "drop: error about a protocol with no transport",
    "icmp.error_about_icmp": "drop: error about an ICMP message other than echo",
    "icmp.no_error_about_error": "suppressed: no ICMP error about an ICMP error (RFC 1122)",
    "icmp.no_error_broadcast": "suppressed: no ICMP error about a broadcast (RFC 1122)",
    "icmp.no_error_fragment": "suppressed: no ICMP error about a non-first fragment (RFC 1122)",
    "icmp.no_error_bad_source": "suppressed: no ICMP error to a non-unicast source (RFC 1122)",
    "icmp.rate_limited": "suppressed: ICMP error over the rate limit",
    "icmp.source_quench_ignored": "drop: source quench (RFC 6633)",
    "icmp.redirect_ignored": "drop: redirect (hosts here have one gateway)",
    "icmp.unknown_type": "drop: ICMP type we do not handle",
    "udp.in": "UDP datagrams received",
    "udp.out": "UDP datagrams sent",
    "udp.delivered": "datagrams queued to a socket",
    "udp.no_port": "drop: no socket on the port (port unreachable sent)",
    "udp.no_port_broadcast": "drop: broadcast to a port nobody listens on",
    "udp.connected_filtered": "drop: datagram from a peer other than the connected one",
    "udp.v6_zero_checksum": "drop: UDP over IPv6 with a zero checksum (mandatory: RFC 8200 8.1)",
    "udp.v6_bad_source": "drop: IPv6 source is v4-mapped or IPv4-compatible (would pose as IPv4)",
    "udp.rcvbuf_overflow": "drop: socket receive buffer full (payload over rcvbuf, true size over "
                           "2 * rcvbuf)",
    "udp.mem_drop": "drop: stack memory under pressure (socket over udp_rmem_min) or at its high mark",
    "memory.pressure_entered": "the stack's memory budget went above mem_pressure (windows clamp, "
                               "out-of-order data refused until below mem_low)",
    "memory.high_drop": "drop: data refused because the memory budget is at mem_high",
    "udp.shutdown_dropped": "drop: socket shut down for receiving",
    "udp.reconnect_discarded": "drop: queued datagrams discarded by connect to a new name",
    "udp.icmp_error": "ICMP errors recorded on a socket",
    "udp.icmp_error_no_socket": "drop: ICMP error matching no socket",
    "udp.icmp_ignored": "drop: ICMP error UDP does not report (time exceeded...)",
    # counted in the stack's Counters by ustack.services (the DHCP client and the DNS resolver)
    "dhcp.discover_out": "DHCPDISCOVERs sent (first and retransmissions)",
    "dhcp.offer_in": "DHCPOFFERs taken (SELECTING)",
    "dhcp.request_out": "DHCPREQUESTs sent in SELECTING or INIT-REBOOT",
    "dhcp.ack_in": "DHCPACKs received",
    "dhcp.nak_in": "DHCPNAKs received (back to INIT, address dropped)",
    "dhcp.bound": "leases installed (Stack.set_address with a new address)",
    "dhcp.renewed": "leases extended in RENEWING or REBINDING",
    "dhcp.renew_out": "unicast renewal REQUESTs (RENEWING, from T1)",
    "dhcp.rebind_out": "broadcast rebinding REQUESTs (REBINDING, from T2)",
    "dhcp.lease_expired": "leases that ran out: address removed, back to INIT",
    "dhcp.request_timeout": "REQUESTs unanswered after the last retransmission: back to INIT",
    "dhcp.probe_out": "RFC 5227 ARP probes for an offered address",
    "dhcp.conflict": "an offered address answered an ARP probe (then DECLINE)",
    "dhcp.decline_out": "DHCPDECLINEs sent",
    "dhcp.release_out": "DHCPRELEASEs sent",
    "dhcp.send_failed": "drop: a DHCP message could not be sent (no route)",
    "dhcp.not_ours": "drop: DHCP reply for another xid/client, or from a port other than 67",
    "dhcp.bad_offer": "drop: DHCPOFFER without server identifier or address",
    "dhcp.bad_ack": "drop: DHCPACK without an address or server",
    "dhcp.unexpected": "drop: DHCP message not expected in the client's state",
    "ethernet.multicast_filtered": "drop: IPv4 multicast frame (01:00:5e) for a group nobody here joined",
    "ipv4.multicast_not_joined": "drop: multicast datagram to a group this host is not in",
    "ipv4.multicast_looped": "multicast we sent, also delivered to our own members (IP_MULTICAST_LOOP)",
    "udp.no_port_multicast": "drop: multicast datagram no socket on its port joined the group for",
    "igmp.in": "IGMP messages received",
    "igmp.out": "IGMP messages sent",
    "igmp.out_failed": "drop: an IGMP message could not be sent (no route)",
    "igmp.joins": "groups this host joined (first socket in the group)",
    "igmp.leaves": "groups this host left (last socket out of the group)",
    "igmp.v1_reports_out": "IGMPv1 membership reports sent (v1 compatibility mode)",
    "igmp.v2_reports_out": "IGMPv2 membership reports sent (v2 mode)",
    "igmp.v2_leaves_out": "IGMPv2 leave group messages sent",
    "igmp.v3_reports_out": "IGMPv3 membership reports sent",
    "igmp.v1_queries_in": "IGMPv1 queries received (v1 compatibility mode follows)",
    "igmp.v2_queries_in": "IGMPv2 queries received (v2 compatibility mode follows)",
    "igmp.v3_queries_in": "IGMPv3 queries received",
    "igmp.mode_v1": "switches of Host Compatibility Mode to IGMPv1",
    "igmp.mode_v2": "switches of Host Compatibility Mode to IGMPv2",
    "igmp.mode_v3": "switches of Host Compatibility Mode back to IGMPv3",
    "igmp.reports_in": "v1/v2 reports of other members heard",
    "igmp.reports_suppressed": "our pending v1/v2 answers cancelled by another member's report",
    "igmp.leaves_in": "v2 leave messages of other hosts (for routers; ignored)",
    "igmp.v3_reports_in": "v3 reports of other hosts (for routers; ignored)",
    "igmp.general_answers": "IGMPv3 answers to general queries (every group in one report)",
    "igmp.query_answers": "answers to group-specific (or v1/v2) queries",
    "igmp.bad_query_group": "drop: IGMP query for a group address that is not multicast",
    "igmp.general_query_not_all_systems": "drop: IGMP general query not sent to 224.0.0.1 (RFC 3376 9.1)",
    "igmp.icmp_ignored": "ICMP errors quoting an IGMP message (ignored)",
    "dns.udp_query": "DNS queries sent over UDP",
    "dns.tcp_query": "DNS queries retried over TCP after a truncated answer",
    "dns.timeout": "DNS queries a server left unanswered within the timeout",
    "dns.server_unreachable": "DNS servers that answered a query with ICMP port unreachable",
    "dns.mismatched_reply": "drop: DNS reply whose id or question did not match the query",
}

DESCRIPTIONS.update(IPV6_DESCRIPTIONS)


def describe(name: str) -> str:
    """A one-line explanation of a counter ('' when unknown). Codec rejections (the
    `Malformed.reason` names, catalogued in `ustack.wire.REASONS`) are drops."""
    text = DESCRIPTIONS.get(name) or REASONS.get(name)
    if text is not None:
        return text
    if name.startswith(("icmp.in_type", "icmp.out_type")):
        return "ICMP messages by type and code"
    if name.startswith(("icmpv6.in_type", "icmpv6.out_type")):
        return "ICMPv6 errors by type and code"
    return ""
