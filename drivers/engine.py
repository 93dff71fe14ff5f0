"""The running side of a Scenario: targeted rules with their match counts, the TCP ISN table,
the schedule of link changes, and the fault events sent to listeners (trace, pcapng comments).

One FaultEngine may serve several FaultInjectors (the ports of a simulator link share one, so a
rule's `nth=` counts frames on the whole link and a scheduled change hits every port at once).
Time comes only from the `now` values passed in; the origin of scheduled times is `start(now)`
(or the first `now` seen).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

from .filters import PROTO_TCP, Decoded, IsnTable, RuleState, decode
from .scenario import Change, Scenario
from .trace import format_frame

# Event kinds. Frame faults: what happened to one frame; link changes: "change" and "restore".
FRAME_KINDS = ("loss", "drop", "duplicate", "corrupt", "truncate", "delay", "reorder", "rate-drop",
               "oversize", "down-drop", "blackhole", "mtu-drop", "icmp-frag-needed")
LINK_KINDS = ("change", "restore")


class FaultEvent(NamedTuple):
    """One fault that fired. `lane`: "tx"/"rx" (prefixed with the port on a simulator link),
    or "link" for a scheduled change. `cause`: the rule, "random" or the change's text."""
    t: float
    kind: str
    lane: str
    cause: str
    frame: bytes | None = None
    medium: str = "ip"

    def text(self) -> str:
        """One line: `fault drop tx (drop tcp data dir=out nth=50): IP 198.18.0.2.49152 > ...`."""
        line = f"fault {self.kind} {self.lane} ({self.cause})"
        if self.frame is not None:
            line += ": " + format_frame(self.frame, self.medium)
        return line


Listener = Callable[[FaultEvent], Any]


class _ChangeState:
    __slots__ = ("change", "start_at", "end_at", "state")

    def __init__(self, change: Change) -> None:
        self.change = change
        self.start_at: float | None = None
        self.end_at: float | None = None
        self.state = "pending"  # -> "active" -> "done"


class FaultEngine:
    """Shared state of one scenario (see the module docstring)."""

    def __init__(self, scenario: Scenario, medium: str = "ip", *, origin: float | None = None) -> None:
        self.scenario = scenario
        self.medium = medium
        self.origin = origin
        self.rules = [RuleState(r) for r in scenario.rules]
        self.isns = IsnTable()
        self.needs_decode = scenario.needs_decode
        self.listeners: list[Listener] = []
        self.counts: dict[str, int] = {}
        self.listener_errors = 0  # exceptions raised by listeners (tests assert none)
        self.injectors: list[Any] = []
        self.down = 0  # active "down" changes
        self.blackholes: list[Any] = []  # active blackhole filters
        self.mtus: list[tuple[int, bool]] = []  # active (mtu, icmp), the last one wins
        self._changes = [_ChangeState(c) for c in scenario.schedule]
        self._pending_time = [c for c in self._changes if c.change.at_s is not None]
        self._pending_bytes = [c for c in self._changes if c.change.after_bytes is not None]
        self._active_until: list[_ChangeState] = []
        self.scheduled = bool(self._changes)  # guard: no schedule, no per-frame work for it

    # -- wiring ------------------------------------------------------------------------------
    def attach(self, injector: Any) -> None:
        self.injectors.append(injector)

    def add_listener(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def start(self, now: float) -> None:
        if self.origin is None:
            self.origin = now

    # -- events ------------------------------------------------------------------------------
    def fire(self, t: float, kind: str, lane: str, cause: str, frame: bytes | None = None) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.listeners:
            ev = FaultEvent(t, kind, lane, cause, frame, self.medium)
            for fn in self.listeners:
                try:
                    fn(ev)
                except Exception:  # noqa: BLE001 - a broken listener never stops traffic: counted
                    self._listener_error()

    def _listener_error(self) -> None:
        """Called inside the except block (tests/conftest.py watches it, as Stack._internal_error)."""
        self.listener_errors += 1

    @property
    def rule_counts(self) -> list[tuple[str, int, int]]:
        """(rule text, frames it matched, times it fired) for each rule, in order."""
        return [(s.rule.text, s.matched, s.fired) for s in self.rules]

    # -- per frame ---------------------------------------------------------------------------
    def decode(self, frame: bytes) -> Decoded:
        d = decode(frame, self.medium)
        if d.proto == PROTO_TCP and d.flags & 0x02:
            self.isns.learn(d)
        return d

    def after_frame(self, d: Decoded, direction: str, now: float) -> None:
        """Byte-count triggers: a TCP segment that takes its connection past N bytes."""
        if not self._pending_bytes or d.proto != PROTO_TCP or not d.length:
            return
        rel = self.isns.rel_seq(d)
        if rel is None:
            return
        carried = rel - 1 + d.length  # the first data byte has relative sequence number 1
        for cs in list(self._pending_bytes):
            ch = cs.change
            if carried >= ch.after_bytes and (ch.on is None or ch.on.matches(d, direction, self.isns)):  # type: ignore[operator]
                self._pending_bytes.remove(cs)
                self._begin(cs, now)

    # -- time --------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        if self.origin is None:
            self.origin = now
        if not self._pending_time and not self._active_until:
            self.scheduled = bool(self._pending_bytes)  # nothing left to happen by time
            return
        for _ in range(2 * len(self._changes) + 1):
            t = self.next_at()
            if t is None or t > now:
                return
            start = min(self._pending_time, key=lambda c: c.change.at_s, default=None)  # type: ignore[arg-type,return-value]
            end = min(self._active_until, key=lambda c: c.end_at, default=None)  # type: ignore[arg-type,return-value]
            if end is not None and end.end_at <= t:  # restore first: a flap that ends and one that starts
                self._end(end)
            else:
                self._pending_time.remove(start)  # type: ignore[arg-type]
                self._begin(start, t)  # type: ignore[arg-type]

    def next_at(self) -> float | None:
        best = None
        origin = self.origin if self.origin is not None else 0.0
        for cs in self._pending_time:
            t = origin + cs.change.at_s  # type: ignore[operator]
            best = t if best is None or t < best else best
        for cs in self._active_until:
            best = cs.end_at if best is None or cs.end_at < best else best  # type: ignore[operator]
        return best

    def _begin(self, cs: _ChangeState, t: float) -> None:
        ch = cs.change
        cs.state = "active"
        cs.start_at = t
        if ch.down:
            self.down += 1
        if ch.blackhole is not None:
            self.blackholes.append(ch.blackhole)
        if ch.mtu is not None:
            self.mtus.append((ch.mtu, ch.icmp))
        if ch.settings:
            changes = dict(ch.settings)
            for inj in self.injectors:
                if "loss" in changes:  # a plain loss replaces a [loss] model while it lasts
                    changes["loss_model"] = None
                inj.config = replace(inj.config, **changes)
        self.fire(t, "change", "link", ch.text)
        if ch.for_s is not None:
            cs.end_at = t + ch.for_s
            self._active_until.append(cs)
            self.scheduled = True
        else:
            cs.state = "done"

    def _end(self, cs: _ChangeState) -> None:
        ch = cs.change
        self._active_until.remove(cs)
        cs.state = "done"
        if ch.down:
            self.down -= 1
        if ch.blackhole is not None:
            self.blackholes.remove(ch.blackhole)
        if ch.mtu is not None:
            self.mtus.remove((ch.mtu, ch.icmp))
        if ch.settings:
            keys = [k for k, _ in ch.settings]
            if "loss" in keys:
                keys.append("loss_model")
            for inj in self.injectors:
                base = inj.base_config
                inj.config = replace(inj.config, **{k: getattr(base, k) for k in keys})
        self.fire(cs.end_at, "restore", "link", ch.text)  # type: ignore[arg-type]


__all__ = ["FRAME_KINDS", "FaultEngine", "FaultEvent", "LINK_KINDS"]
