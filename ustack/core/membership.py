"""The host side of a group membership protocol, shared by IGMP (IPv4, core/igmp.py) and MLD
(IPv6, core/mld.py): MLDv2 (RFC 3810) is IGMPv3 (RFC 3376) for IPv6, and MLDv1 (RFC 2710) is
IGMPv2 (RFC 2236), so one engine keeps the rules and each protocol supplies its messages.

Levels: `CURRENT` (IGMPv3 / MLDv2: state-change and current-state records, no suppression),
`OLD` (IGMPv2 / MLDv1: reports, suppression by other members, leave/done by the last reporter)
and `OLDEST` (IGMPv1: reports only). The engine counts users per group, so the first join sends
a report and the last leave a leave. State changes are repeated [Robustness Variable] - 1 times
at random delays within the Unsolicited Report Interval (RFC 3376 5.1, RFC 3810 6.1, RFC 2236 3).
Queries are answered after a random delay up to their Maximum Response Time (RFC 3376 5.2,
RFC 3810 6.2). An older querier switches the host to its level for the Older Version Querier
Present Timeout (RFC 3376 7.2.1, RFC 3810 8.2.1), cancelling what was pending.

Memberships are any-source only (EXCLUDE {}): records are IS_EX{} / TO_EX{} / TO_IN{}, and a
group-and-source-specific query is answered with IS_IN of the queried sources (B - A, A = {}).
Randomness comes from the stack's RNG and time from `now`: everything runs in virtual time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from .counters import Counters

OLDEST, OLD, CURRENT = 1, 2, 3
QUERY_RESPONSE_INTERVAL_S = 10.0  # RFC 3376 8.3 / RFC 3810 9.3 default
# record types (the same numbers in RFC 3376 4.2.12 and RFC 3810 5.2.12)
MODE_IS_INCLUDE, MODE_IS_EXCLUDE, CHANGE_TO_INCLUDE, CHANGE_TO_EXCLUDE = 1, 2, 3, 4

Record = tuple[int, int, tuple[int, ...]]  # (record type, group, sources)


class Membership:
    """One group this host is in (or has just left, while its leave is still being repeated)."""

    __slots__ = ("group", "users", "report_at", "sources", "change_type", "changes_left",
                 "change_at", "last_reporter")

    def __init__(self, group: int) -> None:
        self.group = group
        self.users = 0
        self.report_at: float | None = None  # answer to a query (v1/v2 any query, v3 group-specific)
        self.sources: frozenset[int] | None = None  # queried sources (None: group-specific)
        self.change_type = 0  # record type of the pending state change (TO_EX / TO_IN)
        self.changes_left = 0  # state-change (or old-level unsolicited) reports still to send
        self.change_at: float | None = None
        self.last_reporter = False  # OLD level: we sent the last report heard for the group


class GroupMembership:
    """The shared engine. A protocol subclass provides `send_records`, `send_old_report` and
    `send_old_leave`, and feeds `on_query` / `on_old_report` from what it receives."""

    name = "membership"  # counter prefix ("igmp", "mld")
    level_names = {OLDEST: "v1", OLD: "v2", CURRENT: "v3"}  # the protocol's version numbers

    def __init__(self, counters: Counters, rng: random.Random, *, max_level: int, robustness: int,
                 unsolicited_current_s: float, unsolicited_old_s: float,
                 never_reported: Callable[[int], bool],
                 on_mac: tuple[Callable[[int], None], Callable[[int], None]] | None = None) -> None:
        self.counters = counters
        self.rng = rng
        self.max_level = max_level
        self.robustness = robustness
        self.query_interval_s = 125.0
        self.unsolicited_current_s = unsolicited_current_s
        self.unsolicited_old_s = unsolicited_old_s
        self.never_reported = never_reported
        self.on_mac = on_mac  # (added, removed) called with a group as it joins / leaves
        self.groups: dict[int, Membership] = {}
        self.leaving: dict[int, Membership] = {}  # left groups whose TO_IN{} is being repeated
        self.general_at: float | None = None  # CURRENT level: answer to a general query
        self.oldest_querier_until = float("-inf")
        self.old_querier_until = float("-inf")

    # ---- what a protocol provides -------------------------------------------------------------
    def send_records(self, records: tuple[Record, ...], now: float) -> None:
        raise NotImplementedError

    def send_old_report(self, group: int, level: int, now: float) -> None:
        raise NotImplementedError

    def send_old_leave(self, group: int, now: float) -> None:
        raise NotImplementedError

    # ---- state --------------------------------------------------------------------------------
    def _inc(self, what: str, n: int = 1) -> None:
        self.counters.inc(f"{self.name}.{what}", n)

    def level(self, now: float) -> int:
        """Host Compatibility Mode (RFC 3376 7.2.1, RFC 3810 8.2.1)."""
        if now < self.oldest_querier_until:
            return OLDEST
        if now < self.old_querier_until:
            return min(OLD, self.max_level)
        return self.max_level

    def older_querier_timeout_s(self) -> float:
        """Older Version Querier Present Timeout (RFC 3376 8.12, RFC 3810 9.12)."""
        return self.robustness * self.query_interval_s + QUERY_RESPONSE_INTERVAL_S

    # ---- joining and leaving ------------------------------------------------------------------
    def join(self, group: int, now: float) -> None:
        """One more user of `group`; the first one makes the host a member and reports it."""
        m = self.groups.get(group)
        if m is not None:
            m.users += 1
            return
        m = self.leaving.pop(group, None) or Membership(group)
        m.users = 1
        self.groups[group] = m
        if self.on_mac is not None:
            self.on_mac[0](group)
        self._inc("joins")
        if not self.never_reported(group):
            self._state_change(m, CHANGE_TO_EXCLUDE, now)

    def leave(self, group: int, now: float) -> None:
        """One user fewer; the last one ends the membership and announces it."""
        m = self.groups.get(group)
        if m is None:
            return
        m.users -= 1
        if m.users > 0:
            return
        del self.groups[group]
        if self.on_mac is not None:
            self.on_mac[1](group)
        self._inc("leaves")
        m.report_at = None
        m.sources = None
        if self.never_reported(group):
            return
        level = self.level(now)
        if level == CURRENT:
            self.leaving[group] = m
            self._state_change(m, CHANGE_TO_INCLUDE, now)
            return
        m.changes_left = 0
        m.change_at = None
        if level == OLD and m.last_reporter:  # RFC 2236 6, RFC 2710 4: only the last reporter
            self.send_old_leave(group, now)

    def _state_change(self, m: Membership, record: int, now: float) -> None:
        """Send a state change now and schedule its repetitions."""
        m.change_type = record
        m.changes_left = max(self.robustness, 1)
        m.change_at = now
        self._send_change(m, now)

    def _send_change(self, m: Membership, now: float) -> None:
        level = self.level(now)
        if level == CURRENT:
            self.send_records(((m.change_type, m.group, ()),), now)
            interval = self.unsolicited_current_s
        elif m.change_type == CHANGE_TO_EXCLUDE:
            self.send_old_report(m.group, level, now)
            m.last_reporter = True
            interval = self.unsolicited_old_s
        else:
            m.changes_left = 0  # a leave started at the current level: nothing more to repeat
            interval = 0.0
        m.changes_left -= 1
        if m.changes_left > 0:
            m.change_at = now + self.rng.uniform(0.0, interval)
        else:
            m.change_at = None
            if m.change_type == CHANGE_TO_INCLUDE:
                self.leaving.pop(m.group, None)

    # ---- receiving ----------------------------------------------------------------------------
    def on_old_report(self, group: int, now: float) -> None:
        """Another member reported `group`: at the OLD/OLDEST level our answer is not needed."""
        m = self.groups.get(group)
        if m is None or self.level(now) == CURRENT:
            return
        if m.report_at is not None:
            self._inc("reports_suppressed")
        m.report_at = None
        m.last_reporter = False

    def on_query(self, level: int, group: int, sources: Iterable[int], max_resp_s: float,
                 qrv: int, query_interval_s: float, now: float) -> None:
        """A query of `level` (OLDEST, OLD or CURRENT) for `group` (0: general)."""
        before = self.level(now)
        if level == OLDEST:
            self.oldest_querier_until = now + self.older_querier_timeout_s()
        elif level == OLD:
            self.old_querier_until = now + self.older_querier_timeout_s()
        elif qrv:
            self.robustness = qrv  # adopt the querier's values (RFC 3376 4.1.6, RFC 3810 5.1.8)
            self.query_interval_s = float(query_interval_s or 125)
        mode = self.level(now)
        if mode != before:
            self._inc(f"mode_{self.level_names[mode]}")
            self._cancel_pending()
        if mode == CURRENT:
            self._schedule_current(group, tuple(sources), max_resp_s, now)
        else:
            self._schedule_old(group, max_resp_s, now)

    def _cancel_pending(self) -> None:
        """A mode change cancels pending responses and retransmissions."""
        self.general_at = None
        for m in self.groups.values():
            m.report_at = None
            m.sources = None
            m.changes_left = 0
            m.change_at = None
        self.leaving.clear()

    def _schedule_old(self, group: int, max_resp_s: float, now: float) -> None:
        """RFC 2236 3 / RFC 2710 4: a timer per queried group, random up to Max Response Time;
        a running timer is reset only when the new limit is shorter."""
        targets = self.groups.values() if group == 0 else [self.groups.get(group)]
        deadline = now + max_resp_s
        for m in targets:
            if m is None or self.never_reported(m.group):
                continue
            if m.report_at is None or m.report_at > deadline:
                m.report_at = now + self.rng.uniform(0.0, max_resp_s)

    def _schedule_current(self, group: int, sources: tuple[int, ...], max_resp_s: float,
                          now: float) -> None:
        """RFC 3376 5.2 / RFC 3810 6.2, the four rules."""
        at = now + self.rng.uniform(0.0, max_resp_s)
        if self.general_at is not None and self.general_at <= at:
            return  # rule 1: a general answer goes out sooner anyway
        if group == 0:
            self.general_at = at  # rule 2
            return
        m = self.groups.get(group)
        if m is None or self.never_reported(group):
            return
        if m.report_at is None:  # rule 3
            m.report_at = at
            m.sources = frozenset(sources) if sources else None
            return
        if not sources or m.sources is None:  # rule 4
            m.sources = None
        else:
            m.sources = m.sources | frozenset(sources)
        m.report_at = min(m.report_at, at)

    # ---- timers -------------------------------------------------------------------------------
    def poll(self, now: float) -> None:
        level = self.level(now)
        if self.general_at is not None and self.general_at <= now:
            self.general_at = None
            if level == CURRENT:
                records = tuple((MODE_IS_EXCLUDE, g, ()) for g in self.groups if not self.never_reported(g))
                if records:
                    self._inc("general_answers")
                    self.send_records(records, now)
        due: list[Record] = []
        for m in list(self.groups.values()) + list(self.leaving.values()):
            if m.report_at is not None and m.report_at <= now:
                m.report_at = None
                if level == CURRENT:
                    if m.sources is None:
                        due.append((MODE_IS_EXCLUDE, m.group, ()))
                    else:
                        due.append((MODE_IS_INCLUDE, m.group, tuple(sorted(m.sources))))
                    m.sources = None
                else:
                    self._inc("query_answers")
                    self.send_old_report(m.group, level, now)
                    m.last_reporter = True
            if m.change_at is not None and m.change_at <= now:
                self._send_change(m, now)
        if due:
            self._inc("query_answers", len(due))
            self.send_records(tuple(due), now)

    def poll_at(self) -> float | None:
        best = self.general_at
        for table in (self.groups, self.leaving):
            for m in table.values():
                for t in (m.report_at, m.change_at):
                    if t is not None and (best is None or t < best):
                        best = t
        return best
