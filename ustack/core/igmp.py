"""IGMP host side (RFC 3376 version 3, with the RFC 2236 version 2 and RFC 1112 version 1
compatibility modes): which IPv4 groups this host is in, and the reports that say so.

Sockets join and leave through `join(group, now)` / `leave(group, now)`; the layer counts users
per group, so the first join sends a report and the last leave a leave (v2) or a TO_IN{} record
(v3). State changes are repeated [Robustness Variable] - 1 times at random delays within the
Unsolicited Report Interval (RFC 3376 5.1, RFC 2236 3). Queries are answered after a random delay
up to their Max Response Time (RFC 3376 5.2, RFC 2236 3). A host hears another member's v1/v2
report and stays quiet (suppression; not in v3). An older querier switches the host to v1 or v2
mode for the Older Version Querier Present Timeout (RFC 3376 7.2.1).

Only any-source membership (EXCLUDE {}) exists: there is no source filtering API, so v3 reports
carry IS_EX{} / TO_EX{} / TO_IN{} records, and a group-and-source-specific query is answered
with IS_IN of the queried sources (RFC 3376 5.2: B - A with A = {}).

Every message goes out with TTL 1, TOS 0xc0 and the Router Alert option (RFC 3376 4, RFC 2113).
Randomness comes from the stack's RNG and time from `now`: the whole protocol runs in virtual time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..wire import igmp as W
from ..wire.errors import Malformed
from ..wire.ipv4 import Ipv4Packet
from .reasons import Reason
from .routing import is_multicast
from .rx import RX_TRUSTED

if TYPE_CHECKING:
    from .stack import Stack

QUERY_RESPONSE_INTERVAL_S = 10.0  # RFC 3376 8.3 default (used for the older-querier timeout)
IGMP_TOS = 0xC0  # internetwork control (RFC 3376 4)
_MAX_RECORDS = 64  # group records per v3 report: 8 + 64 * 8 bytes stays far below any MTU


def multicast_mac(group: int) -> bytes:
    """The Ethernet address of an IPv4 group (RFC 1112 6.4): 01:00:5e and the low 23 bits."""
    return b"\x01\x00\x5e" + (group & 0x7FFFFF).to_bytes(3, "big")


class Membership:
    """One group this host is in (or has just left, while its leave is still being repeated)."""

    __slots__ = ("group", "users", "report_at", "sources", "change_type", "changes_left",
                 "change_at", "last_reporter")

    def __init__(self, group: int) -> None:
        self.group = group
        self.users = 0
        self.report_at: float | None = None  # answer to a query (v1/v2 any query, v3 group-specific)
        self.sources: frozenset[int] | None = None  # v3: queried sources (None: group-specific)
        self.change_type = 0  # v3 record type of the pending state change (TO_EX / TO_IN)
        self.changes_left = 0  # state-change (or v1/v2 unsolicited) reports still to send
        self.change_at: float | None = None
        self.last_reporter = False  # v2: we sent the last report heard for the group


class IgmpLayer:
    """The IGMP transport (protocol 2)."""

    proto = W.PROTO_IGMP

    def __init__(self, stack: Stack) -> None:
        cfg = stack.config
        self.stack = stack
        self.counters = stack.counters
        self.rng = stack.rng
        self.max_version = cfg.igmp_version
        self.robustness = cfg.igmp_robustness
        self.query_interval_s = 125.0
        self.unsolicited_v3_s = cfg.igmp_unsolicited_v3_s
        self.unsolicited_v2_s = cfg.igmp_unsolicited_v2_s
        self.groups: dict[int, Membership] = {}
        self.leaving: dict[int, Membership] = {}  # left groups whose TO_IN{} is being repeated
        self.general_at: float | None = None  # v3 interface timer (answer to a general query)
        self.v1_querier_until = float("-inf")
        self.v2_querier_until = float("-inf")

    # ---- state --------------------------------------------------------------------------------
    def is_member(self, group: int) -> bool:
        return group == W.ALL_SYSTEMS or group in self.groups

    def mode(self, now: float) -> int:
        """Host Compatibility Mode (RFC 3376 7.2.1): 1 or 2 while an older querier was heard."""
        if now < self.v1_querier_until:
            return 1
        if now < self.v2_querier_until or self.max_version == 2:
            return 2
        return self.max_version if self.max_version == 1 else 3

    def older_querier_timeout_s(self) -> float:
        """Older Version Querier Present Timeout (RFC 3376 8.12)."""
        return self.robustness * self.query_interval_s + QUERY_RESPONSE_INTERVAL_S

    # ---- joining and leaving ------------------------------------------------------------------
    def join(self, group: int, now: float) -> None:
        """One more user of `group`; the first one makes the host a member and reports it."""
        if not is_multicast(group):
            raise ValueError(f"{group:#x} is not an IPv4 multicast address")
        m = self.groups.get(group)
        if m is not None:
            m.users += 1
            return
        m = self.leaving.pop(group, None) or Membership(group)
        m.users = 1
        self.groups[group] = m
        self.stack.add_multicast_mac(multicast_mac(group))
        self.counters.inc("igmp.joins")
        if group != W.ALL_SYSTEMS:  # never reported (RFC 3376 5, RFC 2236 6)
            self._state_change(m, W.CHANGE_TO_EXCLUDE, now)

    def leave(self, group: int, now: float) -> None:
        """One user fewer; the last one ends the membership and announces it."""
        m = self.groups.get(group)
        if m is None:
            return
        m.users -= 1
        if m.users > 0:
            return
        del self.groups[group]
        self.stack.remove_multicast_mac(multicast_mac(group))
        self.counters.inc("igmp.leaves")
        m.report_at = None
        m.sources = None
        if group == W.ALL_SYSTEMS:
            return
        mode = self.mode(now)
        if mode == 3:
            self.leaving[group] = m
            self._state_change(m, W.CHANGE_TO_INCLUDE, now)
        else:
            m.changes_left = 0
            m.change_at = None
            if mode == 2 and m.last_reporter:  # RFC 2236 6: only the last reporter leaves
                self._send_v2(W.V2_LEAVE, group, W.ALL_ROUTERS, now)

    def _state_change(self, m: Membership, record: int, now: float) -> None:
        """Send a state change now and schedule its repetitions (RFC 3376 5.1, RFC 2236 3)."""
        m.change_type = record
        m.changes_left = max(self.robustness, 1)
        m.change_at = now
        self._send_change(m, now)

    def _send_change(self, m: Membership, now: float) -> None:
        mode = self.mode(now)
        if mode == 3:
            self._send_v3(((m.change_type, m.group, ()),), now)
            interval = self.unsolicited_v3_s
        elif m.change_type == W.CHANGE_TO_EXCLUDE:
            self._report_v12(m, mode, now)
            interval = self.unsolicited_v2_s
        else:
            m.changes_left = 0  # a v3 leave started before the mode changed: nothing to repeat
            interval = 0.0
        m.changes_left -= 1
        if m.changes_left > 0:
            m.change_at = now + self.rng.uniform(0.0, interval)
        else:
            m.change_at = None
            if m.change_type == W.CHANGE_TO_INCLUDE:
                self.leaving.pop(m.group, None)

    # ---- sending ------------------------------------------------------------------------------
    def _send(self, dst: int, payload: bytes, now: float) -> None:
        r = self.stack.send_ip(dst, W.PROTO_IGMP, payload, now, ttl=1, tos=IGMP_TOS,
                               options=W.ROUTER_ALERT)
        if r is None:
            self.counters.inc("igmp.out")
        else:
            self.counters.inc("igmp.out_failed")

    def _report_v12(self, m: Membership, mode: int, now: float) -> None:
        self._send_v2(W.V1_REPORT if mode == 1 else W.V2_REPORT, m.group, m.group, now)
        m.last_reporter = True

    def _send_v2(self, typ: int, group: int, dst: int, now: float) -> None:
        self.counters.inc("igmp.v1_reports_out" if typ == W.V1_REPORT else
                          "igmp.v2_leaves_out" if typ == W.V2_LEAVE else "igmp.v2_reports_out")
        self._send(dst, W.IgmpReport(typ, group).emit(), now)

    def _send_v3(self, records: tuple[tuple[int, int, tuple[int, ...]], ...], now: float) -> None:
        for i in range(0, len(records), _MAX_RECORDS):
            chunk = records[i:i + _MAX_RECORDS]
            report = W.IgmpV3Report(tuple(W.GroupRecord(t, g, s) for t, g, s in chunk))
            self.counters.inc("igmp.v3_reports_out")
            self._send(W.V3_REPORTS, report.emit(), now)

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
            self._on_report(msg.group, now)
        else:
            c.inc("igmp.v3_reports_in")  # for routers only: v3 hosts do not suppress

    def _on_report(self, group: int, now: float) -> None:
        """Another member reported `group`: in v1/v2 mode our pending answer is not needed."""
        m = self.groups.get(group)
        if m is None or self.mode(now) == 3:
            return
        if m.report_at is not None:
            self.counters.inc("igmp.reports_suppressed")
        m.report_at = None
        m.last_reporter = False

    def _on_query(self, ip: Ipv4Packet, q: W.IgmpQuery, now: float) -> None:
        c = self.counters
        c.inc(f"igmp.v{q.version}_queries_in")
        if q.group and not is_multicast(q.group):
            c.inc("igmp.bad_query_group")
            return
        if q.group == 0 and ip.dst != W.ALL_SYSTEMS:
            c.inc("igmp.general_query_not_all_systems")  # RFC 3376 9.1: ignored
            return
        before = self.mode(now)
        if q.version == 1:
            self.v1_querier_until = now + self.older_querier_timeout_s()
        elif q.version == 2:
            self.v2_querier_until = now + self.older_querier_timeout_s()
        elif q.qrv:
            self.robustness = q.qrv  # RFC 3376 4.1.6: adopt the querier's values
            self.query_interval_s = float(q.query_interval_s or 125)
        mode = self.mode(now)
        if mode != before:
            c.inc(f"igmp.mode_v{mode}")
            self._cancel_pending()
        if mode == 3:
            self._schedule_v3(q, now)
        else:
            self._schedule_v12(q, now)

    def _cancel_pending(self) -> None:
        """RFC 3376 7.2.1: a mode change cancels pending responses and retransmissions."""
        self.general_at = None
        for m in self.groups.values():
            m.report_at = None
            m.sources = None
            m.changes_left = 0
            m.change_at = None
        self.leaving.clear()

    def _schedule_v12(self, q: W.IgmpQuery, now: float) -> None:
        """RFC 2236 3: a timer per queried group, random up to Max Response Time; a running
        timer is reset only when the new limit is shorter."""
        max_resp = q.max_resp_s  # a v3 query in v1/v2 mode is answered like a v2 one (7.2.1)
        targets = self.groups.values() if q.group == 0 else [self.groups.get(q.group)]
        deadline = now + max_resp
        for m in targets:
            if m is None or m.group == W.ALL_SYSTEMS:
                continue
            if m.report_at is None or m.report_at > deadline:
                m.report_at = now + self.rng.uniform(0.0, max_resp)

    def _schedule_v3(self, q: W.IgmpQuery, now: float) -> None:
        """RFC 3376 5.2, the four rules."""
        delay = self.rng.uniform(0.0, q.max_resp_s)
        at = now + delay
        if self.general_at is not None and self.general_at <= at:
            return  # rule 1: a general answer goes out sooner anyway
        if q.group == 0:
            self.general_at = at  # rule 2
            return
        m = self.groups.get(q.group)
        if m is None or m.group == W.ALL_SYSTEMS:
            return
        if m.report_at is None:  # rule 3
            m.report_at = at
            m.sources = frozenset(q.sources) if q.sources else None
            return
        if not q.sources or m.sources is None:  # rule 4
            m.sources = None
        else:
            m.sources = m.sources | frozenset(q.sources)
        m.report_at = min(m.report_at, at)

    # ---- timers -------------------------------------------------------------------------------
    def poll(self, now: float) -> None:
        mode = self.mode(now)
        if self.general_at is not None and self.general_at <= now:
            self.general_at = None
            if mode == 3:
                records = tuple((W.MODE_IS_EXCLUDE, g, ()) for g in self.groups if g != W.ALL_SYSTEMS)
                if records:
                    self.counters.inc("igmp.general_answers")
                    self._send_v3(records, now)
        due: list[tuple[int, int, tuple[int, ...]]] = []
        for m in list(self.groups.values()) + list(self.leaving.values()):
            if m.report_at is not None and m.report_at <= now:
                m.report_at = None
                if mode == 3:
                    if m.sources is None:
                        due.append((W.MODE_IS_EXCLUDE, m.group, ()))
                    else:
                        due.append((W.MODE_IS_INCLUDE, m.group, tuple(sorted(m.sources))))
                    m.sources = None
                else:
                    self.counters.inc("igmp.query_answers")
                    self._report_v12(m, mode, now)
            if m.change_at is not None and m.change_at <= now:
                self._send_change(m, now)
        if due:
            self.counters.inc("igmp.query_answers", len(due))
            self._send_v3(tuple(due), now)

    def poll_at(self) -> float | None:
        best = self.general_at
        for table in (self.groups, self.leaving):
            for m in table.values():
                for t in (m.report_at, m.change_at):
                    if t is not None and (best is None or t < best):
                        best = t
        return best

    def on_icmp_error(self, kind: Reason, quoted: Ipv4Packet, quoted_payload: bytes, mtu: int,
                      now: float) -> None:
        self.counters.inc("igmp.icmp_ignored")
