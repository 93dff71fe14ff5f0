"""The one error type every codec raises on malformed input."""


class Malformed(ValueError):
    """Raised by `parse` when bytes are not a valid header.

    `reason` is a dotted counter name (``"ipv4.bad_checksum"``) so the stack can count the drop
    under the same name; `detail` says exactly what was wrong.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# Every `Malformed.reason` the codecs raise, with what it means (all are drops). The stack counts
# rejections under these names; a test keeps this catalogue in sync with the codecs' source.
REASONS: dict[str, str] = {
    "ethernet.truncated": "drop: frame shorter than the 14-byte Ethernet header",
    "ethernet.not_ethernet_ii": "drop: 802.3 frame (length field < 0x0600), not Ethernet II",
    "arp.truncated": "drop: ARP packet shorter than 28 bytes",
    "arp.unsupported": "drop: ARP not for IPv4 over Ethernet (htype, ptype or address lengths)",
    "arp.bad_op": "drop: ARP operation neither request (1) nor reply (2)",
    "ipv4.truncated": "drop: IPv4 header or total length longer than the bytes received",
    "ipv4.bad_version": "drop: IP version is not 4",
    "ipv4.bad_header_length": "drop: IPv4 IHL below 5",
    "ipv4.bad_length": "drop: IPv4 total length below the header length",
    "ipv4.bad_checksum": "drop: IPv4 header checksum does not verify",
    "ipv4.reserved_flag": "drop: IPv4 reserved flag bit set",
    "ipv4.bad_fragment": "drop: IPv4 fragment ending past byte 65535",
    "ipv6.truncated": "drop: IPv6 header or payload length longer than the bytes received",
    "ipv6.bad_version": "drop: IP version is not 6",
    "ipv6.bad_ext": "drop: IPv6 extension header truncated or running past the payload",
    "ipv6.too_many_ext": "drop: more than 8 IPv6 extension headers",
    "ipv6.bad_option": "drop: IPv6 option running past its header, or more than 7 padding bytes",
    "ipv6.too_many_options": "drop: more than 8 options in one IPv6 options header",
    "ipv6.option_discard": "drop: unknown IPv6 option whose type says discard silently (01)",
    "ipv6.hbh_not_first": "drop: hop-by-hop header not first after the IPv6 header (param. problem)",
    "ipv6.routing_refused": "drop: routing header with segments left (type 0 included) (param. problem)",
    "ipv6.unknown_option": "drop: unknown IPv6 option whose type says report (10/11) (param. problem)",
    "ipv6.frag_bad_length": "drop: IPv6 fragment with M set, not a multiple of 8 bytes (param. problem)",
    "ipv6.frag_too_big": "drop: IPv6 fragment ending past byte 65535 (param. problem)",
    "icmpv6.truncated": "drop: ICMPv6 message shorter than 8 bytes",
    "icmpv6.bad_checksum": "drop: ICMPv6 checksum (with the IPv6 pseudo-header) does not verify",
    "icmpv6.not_error": "drop: quoted packet asked of an ICMPv6 type that carries none",
    "icmpv6.bad_quote": "drop: ICMPv6 error quote: no IPv6 header, bad extension headers, < 8 data bytes",
    "ndp.truncated": "drop: neighbour discovery message shorter than its fixed part",
    "ndp.bad_option": "drop: ND option of length 0 or past the message, or a prefix option not 32 bytes",
    "icmp.truncated": "drop: ICMP message shorter than 8 bytes",
    "icmp.bad_checksum": "drop: ICMP checksum does not verify",
    "icmp.not_error": "drop: quoted datagram asked of an ICMP type that carries none",
    "icmp.bad_quote": "drop: ICMP error quoting no IPv4 header plus 8 bytes",
    "udp.truncated": "drop: UDP datagram shorter than 8 bytes",
    "udp.bad_length": "drop: UDP length field below 8 or beyond the IP payload",
    "udp.bad_checksum": "drop: UDP checksum does not verify",
    "udp.bad_port": "drop: UDP destination port 0",
    "tcp.truncated": "drop: TCP segment shorter than 20 bytes",
    "tcp.bad_data_offset": "drop: TCP data offset below 5 words or past the segment",
    "tcp.bad_checksum": "drop: TCP checksum does not verify",
    "tcp.bad_option_length": "drop: TCP option with a missing, impossible or wrong length",
    "igmp.truncated": "drop: IGMP message shorter than 8 bytes, or a source/record list past its end",
    "igmp.bad_checksum": "drop: IGMP checksum does not verify",
    "igmp.bad_query_length": "drop: IGMP query of 9-11 bytes (RFC 3376 7.1: ignored)",
    "igmp.unknown_type": "drop: IGMP type that is no query, report or leave",
    "mld.truncated": "drop: MLD message shorter than its type needs, or a source/record list past its end",
    "mld.bad_query_length": "drop: MLD query of 25-27 bytes (RFC 3810 8.1: ignored)",
    "mld.not_mld": "drop: ICMPv6 message handed to MLD is not of an MLD type",
    "dhcp.truncated": "drop: DHCP message shorter than the 240-byte BOOTP header and cookie",
    "dhcp.unsupported": "drop: BOOTP op not 1/2, or hardware not Ethernet (htype 1, hlen 6)",
    "dhcp.bad_cookie": "drop: DHCP magic cookie is not 99.130.83.99",
    "dhcp.bad_option": "drop: DHCP option without its length byte or running past the end",
    "dns.truncated": "drop: DNS message ends inside its header, a name, a question or a record",
    "dns.bad_name": "drop: DNS name with a forward/looping pointer, a reserved label type or > 255 bytes",
    "dns.bad_record": "drop: DNS A/AAAA record of the wrong size, or a name not filling its record",
}
