"""IGMP host side (RFC 3376 version 3, with the RFC 2236 version 2 and RFC 1112 version 1
compatibility modes): which IPv4 groups this host is in, and the reports that say so.

The rules (reports on join and their repeats, leaves, answers to queries, suppression,
compatibility modes) are the shared engine's (core/membership.py); this module speaks IGMP:
it parses what arrives and builds what leaves. Every message goes out with TTL 1, TOS 0xc0 and
the Router Alert option (RFC 3376 4, RFC 2113); v3 reports to 224.0.0.22, v1/v2 reports to the
group, v2 leaves to 224.0.0.2. 224.0.0.1 is always joined and never reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire import igmp as W
from ..wire.errors import Malformed
from ..wire.ipv4 import Ipv4Packet
from .membership import CURRENT, OLD, OLDEST, GroupMembership, Record
from .reasons import Reason
from .routing import is_multicast
from .rx import RX_TRUSTED

if TYPE_CHECKING:
    from .stack import Stack

IGMP_TOS = 0xC0  # internetwork control (RFC 3376 4)
_MAX_RECORDS = 64  # group records per v3 report: 8 + 64 * 8 bytes stays far below any MTU
_LEVELS = {1: OLDEST, 2: OLD, 3: CURRENT}


def multicast_mac(group: int) -> bytes:
    """The Ethernet address of an IPv4 group (RFC 1112 6.4): 01:00:5e and the low 23 bits."""
    return b"\x01\x00\x5e" + (group & 0x7FFFFF).to_bytes(3, "big")


class IgmpLayer(GroupMembership):
    """The IGMP transport (protocol 2) and the host's IPv4 group memberships."""

    proto = W.PROTO_IGMP
    name = "igmp"
    level_names = {OLDEST: "v1", OLD: "v2", CURRENT: "v3"}

    def __init__(self, stack: Stack) -> None:
        cfg = stack.config
        if cfg.igmp_version not in _LEVELS:
            raise ValueError(f"igmp_version must be 1, 2 or 3, not {cfg.igmp_version!r}")
        super().__init__(
            stack.counters, stack.rng, max_level=_LEVELS[cfg.igmp_version],
            robustness=cfg.igmp_robustness, unsolicited_current_s=cfg.igmp_unsolicited_v3_s,
            unsolicited_old_s=cfg.igmp_unsolicited_v2_s,
            never_reported=lambda g: g == W.ALL_SYSTEMS,
            on_mac=(lambda g: stack.add_multicast_mac(multicast_mac(g)),
                    lambda g: stack.remove_multicast_mac(multicast_mac(g))),
        )
        self.stack = stack

    def is_member(self, group: int) -> bool:
        return group == W.ALL_SYSTEMS or group in self.groups

    def mode(self, now: float) -> int:
        """The IGMP version spoken now (Host Compatibility Mode): 1, 2 or 3."""
        return self.level(now)

    def join(self, group: int, now: float) -> None:
        if not is_multicast(group):
            raise ValueError(f"{group:#x} is not an IPv4 multicast address")
        super().join(group, now)

    # ---- sending ------------------------------------------------------------------------------
    def _send(self, dst: int, payload: bytes, now: float) -> None:
        r = self.stack.send_ip(dst, W.PROTO_IGMP, payload, now, ttl=1, tos=IGMP_TOS,
                               options=W.ROUTER_ALERT)
        self.counters.inc("igmp.out" if r is None else "igmp.out_failed")

    def send_records(self, records: tuple[Record, ...], now: float) -> None:
        for i in range(0, len(records), _MAX_RECORDS):
            chunk = records[i:i + _MAX_RECORDS]
            report = W.IgmpV3Report(tuple(W.GroupRecord(t, g, s) for t, g, s in chunk))
            self.counters.inc("igmp.v3_reports_out")
            self._send(W.V3_REPORTS, report.emit(), now)

    def send_old_report(self, group: int, level: int, now: float) -> None:
        typ = W.V1_REPORT if level == OLDEST else W.V2_REPORT
        self.counters.inc("igmp.v1_reports_out" if level == OLDEST else "igmp.v2_reports_out")
        self._send(group, W.IgmpReport(typ, group).emit(), now)

    def send_old_leave(self, group: int, now: float) -> None:
        self.counters.inc("igmp.v2_leaves_out")
        self._send(W.ALL_ROUTERS, W.IgmpReport(W.V2_LEAVE, group).emit(), now)

    # ---- receiving ----------------------------------------------------------------------------
    def on_packet(self, ip: Ipv4Packet, now: float, rx: int = 0) -> None:
        c = self.counters
        c.inc("igmp.in")
        try:
            msg = W.parse_igmp(ip.payload, self.stack.config.verify_checksums and not rx & RX_TRUSTED)
        except Malformed as e:
            c.inc(e.reason)
            return
        if isinstance(msg, W.IgmpQuery):
            self._on_query(ip, msg, now)
        elif isinstance(msg, W.IgmpReport):
            if msg.type == W.V2_LEAVE:
                c.inc("igmp.leaves_in")  # for routers only
                return
            c.inc("igmp.reports_in")
            self.on_old_report(msg.group, now)
        else:
            c.inc("igmp.v3_reports_in")  # for routers only: v3 hosts do not suppress

    def _on_query(self, ip: Ipv4Packet, q: W.IgmpQuery, now: float) -> None:
        c = self.counters
        c.inc(f"igmp.v{q.version}_queries_in")
        if q.group and not is_multicast(q.group):
            c.inc("igmp.bad_query_group")
            return
        if q.group == 0 and ip.dst != W.ALL_SYSTEMS:
            c.inc("igmp.general_query_not_all_systems")  # RFC 3376 9.1: ignored
            return
        # a v3 query met in v1/v2 mode is answered like a v2 one (7.2.1): same Max Resp in seconds
        self.on_query(_LEVELS[q.version], q.group, q.sources, q.max_resp_s, q.qrv,
                      q.query_interval_s, now)

    def on_icmp_error(self, kind: Reason, quoted: Ipv4Packet, quoted_payload: bytes, mtu: int,
                      now: float) -> None:
        self.counters.inc("igmp.icmp_ignored")
