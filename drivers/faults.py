"""FaultInjector middleware: runs a fault Scenario on a Device, on the rx side, the tx side or
both: targeted rules, scheduled link changes, and the independent per-frame faults (loss or a
bursty loss model, duplication, reordering, corruption, delay, jitter, rate limit, MTU cap).

Everything is driven by the `now` values passed in (no clock is read), and every random choice
comes from a `random.Random` seeded per direction and per kind of fault, so a run is replayable:
the same seed and the same calls give the same frames at the same times, and the i-th frame of
a direction gets the same loss decision whatever the frames' contents. See docs/faults.md.

Per frame, in this order (each direction has its own pipeline):
  link down -> blackhole -> scheduled MTU -> rules (in order) ->
  mtu cap -> loss -> duplicate -> corrupt (each copy) -> reorder -> rate limit -> delay/jitter
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from .base import ETHERNET_HEADER_LEN, Device, Middleware, earliest
from .engine import FaultEngine, FaultEvent, Listener
from .faultconfig import DIRECTIONS, SPEC_ALIASES, SPEC_HELP, FaultConfig, spec_keys
from .filters import UNDECODED, Decoded, corrupt_field, truncate
from .lossmodel import LossState
from .scenario import Scenario

STAT_KEYS = ("seen", "dropped", "duplicated", "corrupted", "reordered", "delayed",
             "rate_queued", "rate_dropped", "oversize_dropped",
             "rule_dropped", "rule_duplicated", "rule_delayed", "rule_corrupted", "rule_truncated",
             "rule_reordered", "down_dropped", "blackholed", "mtu_dropped", "icmp_sent")
DROP_KEYS = ("dropped", "rate_dropped", "oversize_dropped", "rule_dropped", "down_dropped", "blackholed",
             "mtu_dropped")  # every way a frame can be lost in an injector
_MAX_PULL_ROUNDS = 16  # bound on inner reads per recv call when every frame gets dropped
_RULE_STAT = {"drop": "rule_dropped", "duplicate": "rule_duplicated", "delay": "rule_delayed",
              "corrupt": "rule_corrupted", "truncate": "rule_truncated", "reorder": "rule_reordered"}


class _Lane:
    """The fault pipeline of one direction. `emit(frame, t)` receives frames that made it,
    with the (virtual) time they leave the pipeline."""

    def __init__(self, owner: FaultInjector, name: str, emit: Callable[[bytes, float], None]) -> None:
        self.owner = owner
        self.name = name
        self.direction = "out" if name == "tx" else "in"
        self.label = f"{owner.name}.{name}" if owner.name else name
        self.emit = emit
        seed = owner.config.seed

        def rng(kind: str) -> random.Random:
            return random.Random(f"ustack.faults:{seed}:{name}:{kind}")

        # One stream per kind of decision: the loss decisions do not shift when a corrupted
        # frame draws a bit position or a jittered one a delay.
        self.rng = rng("other")  # corrupt bit positions, jitter
        self._rng_dup = rng("duplicate")
        self._rng_corrupt = rng("corrupt")
        self._rng_reorder = rng("reorder")
        self._rng_rules = rng("rules")
        self._loss = LossState(owner.config.loss_process(), rng("loss"))
        self._loss_for = owner.config
        self.stats = dict.fromkeys(STAT_KEYS, 0)
        self._seq = 0  # tie-breaker that keeps equal-time frames FIFO
        # reorder: [remaining frames, release_at, seq, frame]
        self._held: list[list[Any]] = []
        # rate limit: token bucket (bits, may go negative: a frame leaves when tokens >= 0)
        self._tokens = float(owner.config.rate_burst_bytes * 8)
        self._tokens_at: float | None = None
        self._rate_q: deque[bytes] = deque()
        # delay: heap of (due, seq, frame)
        self._delayed: list[tuple[float, int, bytes]] = []
        # frames a rule delays: heap of (due, seq, frame), re-entering the link faults when due
        self._ruled: list[tuple[float, int, bytes]] = []

    def _fire(self, t: float, kind: str, cause: str, frame: bytes | None) -> None:
        self.owner.engine.fire(t, kind, self.label, cause, frame)

    # -- arrival -----------------------------------------------------------------------------
    def arrive(self, frame: bytes, now: float) -> None:
        eng = self.owner.engine
        if eng.scheduled:
            eng.advance(now)
        self.advance(now)
        st = self.stats
        st["seen"] += 1
        d = eng.decode(frame) if eng.needs_decode else UNDECODED
        if eng.down:
            st["down_dropped"] += 1
            self._fire(now, "down-drop", "link down", frame)
            return
        if eng.blackholes:
            for bh in eng.blackholes:
                if bh.matches(d, self.direction, eng.isns):
                    st["blackholed"] += 1
                    self._fire(now, "blackhole", "blackhole", frame)
                    return
        if eng.mtus:
            mtu, icmp = eng.mtus[-1]
            if len(frame) - d.ip_off > mtu:
                st["mtu_dropped"] += 1
                self._fire(now, "mtu-drop", f"mtu {mtu}", frame)
                if icmp:
                    self.owner.frag_needed(self, frame, d, mtu, now)
                return
        if eng.rules:
            self._rules(frame, d, now)
        else:
            self._link(frame, now)
        if eng.scheduled:
            eng.after_frame(d, self.direction, now)

    def _rules(self, frame: bytes, d: Decoded, now: float) -> None:
        eng = self.owner.engine
        copies = 1
        delay = 0.0
        reorder: tuple[int, float] | None = None
        dropped = False
        for rs in eng.rules:  # every rule counts its matches, even after a drop
            if not rs.hit(d, self.direction, eng.isns) or dropped:
                continue
            rs.fired += 1
            rule = rs.rule
            self.stats[_RULE_STAT[rule.action]] += 1
            self._fire(now, rule.action, rule.text, frame)
            if rule.action == "drop":
                dropped = True
            elif rule.action == "duplicate":
                copies += rule.count
            elif rule.action == "delay":
                delay = max(delay, rule.delay_s)
            elif rule.action == "corrupt":
                frame = corrupt_field(frame, d, rule.field, rule.value,  # type: ignore[arg-type]
                                      self._rng_rules.getrandbits)
            elif rule.action == "truncate":
                frame = truncate(frame, d, rule.count)
            elif rule.action == "reorder":
                reorder = (rule.count, rule.delay_s)
        if dropped:
            return
        for _ in range(copies):
            if delay:
                self._seq += 1
                heapq.heappush(self._ruled, (now + delay, self._seq, frame))
            elif reorder is not None:
                self._seq += 1
                self._held.append([reorder[0], now + reorder[1], self._seq, frame])
            else:
                self._link(frame, now)

    def _link(self, frame: bytes, now: float) -> None:
        """The independent per-frame faults of the link."""
        cfg = self.owner.config
        st = self.stats
        if cfg.mtu_cap is not None and len(frame) > cfg.mtu_cap:
            st["oversize_dropped"] += 1
            self._fire(now, "oversize", f"mtu_cap {cfg.mtu_cap}", frame)
            return
        if cfg is not self._loss_for:  # changed by set_config or a scheduled change
            self._loss.model = cfg.loss_process()
            self._loss_for = cfg
        loss = self._loss
        if loss.model.p and loss.lost():
            st["dropped"] += 1
            self._fire(now, "loss", self._loss.model.describe(), frame)
            return
        copies = 1
        if cfg.duplicate and self._rng_dup.random() < cfg.duplicate:
            st["duplicated"] += 1
            self._fire(now, "duplicate", "random", frame)
            copies = 2
        for _ in range(copies):
            f = frame
            if cfg.corrupt and self._rng_corrupt.random() < cfg.corrupt:
                f = self._flip_bit(f)
                self._fire(now, "corrupt", "random", f)
            self._reorder_stage(f, now)
    def _flip_bit(self, frame: bytes) -> bytes:
        # Never touch the Ethernet header: a changed MAC/ethertype is a misdelivery, not the
        # checksum error this fault is meant to provoke.
        skip = ETHERNET_HEADER_LEN if self.owner.medium == "ethernet" else 0
        nbits = (len(frame) - skip) * 8
        if nbits <= 0:
            return frame
        bit = skip * 8 + self.rng.randrange(nbits)
        b = bytearray(frame)
        b[bit >> 3] ^= 1 << (bit & 7)
        self.stats["corrupted"] += 1
        return bytes(b)

    def _reorder_stage(self, frame: bytes, now: float) -> None:
        cfg = self.owner.config
        released = []
        if self._held:
            # Every arriving frame overtakes each held one once.
            still = []
            for h in self._held:
                h[0] -= 1
                (released if h[0] <= 0 else still).append(h)
            self._held = still
        if cfg.reorder and self._rng_reorder.random() < cfg.reorder:
            self.stats["reordered"] += 1
            self._fire(now, "reorder", "random", frame)
            self._seq += 1
            self._held.append([cfg.reorder_depth, now + cfg.reorder_hold_s, self._seq, frame])
        else:
            self._rate_stage(frame, now)
        for h in released:
            self._rate_stage(h[3], now)

    def _rate_stage(self, frame: bytes, t: float) -> None:
        cfg = self.owner.config
        if cfg.rate_bps is None:
            self._delay_stage(frame, t)
            return
        self._refill(t)
        if not self._rate_q and self._tokens >= 0:
            self._tokens -= len(frame) * 8
            self._delay_stage(frame, t)
        elif len(self._rate_q) >= cfg.rate_queue:
            self.stats["rate_dropped"] += 1
            self._fire(t, "rate-drop", f"rate queue of {cfg.rate_queue} full", frame)
        else:
            self.stats["rate_queued"] += 1
            self._rate_q.append(frame)

    def _refill(self, t: float) -> None:
        cfg = self.owner.config
        last = self._tokens_at
        if last is None or t > last:
            if last is not None and cfg.rate_bps is not None:
                cap = cfg.rate_burst_bytes * 8
                self._tokens = min(cap, self._tokens + (t - last) * cfg.rate_bps)
            self._tokens_at = t

    def _rate_next_at(self) -> float | None:
        rate = self.owner.config.rate_bps
        if not self._rate_q or rate is None:
            return None
        last = self._tokens_at if self._tokens_at is not None else 0.0
        return last + max(0.0, -self._tokens) / rate

    def _delay_stage(self, frame: bytes, t: float) -> None:
        cfg = self.owner.config
        if not cfg.delay_s and not cfg.jitter_s:
            self.emit(frame, t)
            return
        due = t + cfg.delay_s
        if cfg.jitter_s:
            due = max(t, due + self.rng.uniform(-cfg.jitter_s, cfg.jitter_s))
        self.stats["delayed"] += 1
        self._seq += 1
        heapq.heappush(self._delayed, (due, self._seq, frame))

    # -- time --------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Release everything due by `now`, stage by stage in time order."""
        ruled = self._ruled
        while ruled and ruled[0][0] <= now:  # frames a rule delayed rejoin the link faults
            due, _, frame = heapq.heappop(ruled)
            self._link(frame, due)
        # Upstream events (held-frame timeouts, token-bucket releases) in time order. Bounded:
        # a held frame makes at most two events (timeout, then maybe a rate-queue release).
        for _ in range(2 * len(self._held) + len(self._rate_q) + 1):
            hold_at = min((h[1] for h in self._held), default=None)
            rate_at = self._rate_next_at()
            t = earliest(hold_at, rate_at)
            if t is None or t > now:
                break
            if hold_at is not None and (rate_at is None or hold_at <= rate_at):
                h = min(self._held, key=lambda h: (h[1], h[2]))
                self._held.remove(h)
                self._rate_stage(h[3], t)
            else:
                self._refill(t)
                self._tokens = max(self._tokens, 0.0)  # exactly due: absorb float rounding
                frame = self._rate_q.popleft()
                self._tokens -= len(frame) * 8
                self._delay_stage(frame, t)
        d = self._delayed
        while d and d[0][0] <= now:
            due, _, frame = heapq.heappop(d)
            self.emit(frame, due)

    def next_at(self) -> float | None:
        return earliest(
            min((h[1] for h in self._held), default=None),
            self._rate_next_at(),
            self._delayed[0][0] if self._delayed else None,
            self._ruled[0][0] if self._ruled else None,
        )

    def queued(self) -> int:
        return len(self._held) + len(self._rate_q) + len(self._delayed) + len(self._ruled)


class FaultInjector(Middleware):
    """Wraps a Device and misbehaves on purpose, reproducibly for a given seed.

    `scenario` (a Scenario: link faults, rules, schedule) or `config` (link faults only) or the
    keyword arguments say what to do. `engine`: a FaultEngine shared with other injectors (a
    simulator link's ports); by default each injector has its own. `origin`: the time scheduled
    changes count from (default: the first `now` seen). `name` labels its fault events.

    Frames held back (delay, jitter, rate queue, reorder) are released by any call that gets
    `now` (`send`, `recv`, `recv_batch`, `advance`); `poll_at()` says when the next one is due
    (scheduled changes included), so a runtime that sleeps until `poll_at()` and then calls
    `recv_batch(now)` drives both directions. Delayed tx frames reach the inner device with
    their due time as `now`. Every fault that fires is counted (`stats`, `engine.counts`) and
    sent to the listeners (`add_listener(fn)`, fn(FaultEvent)).
    """

    def __init__(self, inner: Device, seed: int = 0, loss: float = 0.0, duplicate: float = 0.0,
                 reorder: float = 0.0, reorder_depth: int = 3, corrupt: float = 0.0,
                 delay_s: float = 0.0, jitter_s: float = 0.0, rate_bps: float | None = None,
                 mtu_cap: int | None = None, direction: str = "both", *,
                 reorder_hold_s: float = 0.05, rate_burst_bytes: int = 0, rate_queue: int = 100,
                 config: FaultConfig | None = None, scenario: Scenario | None = None,
                 engine: FaultEngine | None = None, origin: float | None = None, name: str = "") -> None:
        super().__init__(inner)
        if scenario is not None:
            if config is not None:
                raise ValueError("give config or scenario, not both")
            config = scenario.link
        if config is None:
            config = FaultConfig(
                seed=seed, loss=loss, duplicate=duplicate, reorder=reorder,
                reorder_depth=reorder_depth, reorder_hold_s=reorder_hold_s, corrupt=corrupt,
                delay_s=delay_s, jitter_s=jitter_s, rate_bps=rate_bps,
                rate_burst_bytes=rate_burst_bytes, rate_queue=rate_queue, mtu_cap=mtu_cap,
                direction=direction,
            )
        if scenario is None:
            scenario = Scenario(config)
        self.name = name
        self.config = config
        self.base_config = config  # what a scheduled change restores
        self.scenario = scenario
        if engine is None:
            engine = FaultEngine(scenario, inner.medium, origin=origin)
        elif origin is not None:
            engine.start(origin)
        self.engine = engine
        engine.attach(self)
        self._rx_ready: deque[bytes] = deque()
        self._tx_last = float("-inf")
        self._last_now: float | None = None
        self._tx = _Lane(self, "tx", self._emit_tx) if config.direction in ("both", "tx") else None
        self._rx = _Lane(self, "rx", self._emit_rx) if config.direction in ("both", "rx") else None

    @classmethod
    def from_spec(cls, inner: Device, spec: str, **overrides: Any) -> FaultInjector:
        """`FaultInjector.from_spec(dev, "loss=2%,delay=10ms,seed=7")`; see FaultConfig.from_spec."""
        return cls(inner, config=FaultConfig.from_spec(spec, **overrides))

    def set_config(self, config: FaultConfig) -> None:
        """Change fault rates mid-run (same direction and seed: lanes and RNG state are kept)."""
        if config.direction != self.config.direction or config.seed != self.config.seed:
            raise ValueError("direction and seed cannot change on a live FaultInjector")
        self.config = config

    def add_listener(self, fn: Listener) -> None:
        """Call fn(FaultEvent) for every fault that fires (on this injector's engine)."""
        self.engine.add_listener(fn)

    def frag_needed(self, lane: _Lane, frame: bytes, d: Decoded, mtu: int, now: float) -> None:
        """An ICMP fragmentation-needed for a DF frame too big for a scheduled MTU, sent back to
        where the frame came from (as the router at the narrow hop would), from the frame's
        destination address."""
        from ustack import wire
        from ustack.wire import icmp as icmpw

        if d is UNDECODED or d.proto is None or not frame[d.ip_off + 6] & 0x40:
            return
        msg = wire.IcmpMessage.error(icmpw.DEST_UNREACH, icmpw.FRAG_NEEDED, frame[d.ip_off:], mtu).emit()
        pkt = wire.Ipv4Packet(d.dst, d.src, 1, msg, ttl=64).emit()
        if self.medium == "ethernet":
            pkt = frame[6:12] + frame[0:6] + b"\x08\x00" + pkt
        lane.stats["icmp_sent"] += 1
        self.engine.fire(now, "icmp-frag-needed", lane.label, f"mtu {mtu}", pkt)
        if lane.name == "tx":
            self._rx_ready.append(pkt)  # to our own stack
        else:
            self.inner.send(pkt, now)  # back to the peer

    # -- lane outputs ------------------------------------------------------------------------
    def _emit_tx(self, frame: bytes, t: float) -> None:
        # Keep the inner device's clock monotonic even when a delayed frame is released late.
        if t < self._tx_last:
            t = self._tx_last
        self._tx_last = t
        self.inner.send(frame, t)

    def _emit_rx(self, frame: bytes, t: float) -> None:
        self._rx_ready.append(frame)

    # -- Device ------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Release whatever is due at `now` in both directions."""
        self._last_now = now
        if self.engine.scheduled:
            self.engine.advance(now)
        if self._tx is not None:
            self._tx.advance(now)
        if self._rx is not None:
            self._rx.advance(now)
        super().advance(now)  # then whatever the tx lane just handed down

    def send(self, frame: bytes, now: float) -> None:
        self._last_now = now
        if self._tx is None:
            self.inner.send(frame, now)
        else:
            self._tx.arrive(frame, now)

    def recv(self, now: float) -> bytes | None:
        self.advance(now)
        ready = self._rx_ready
        if ready:
            return ready.popleft()
        if self._rx is None:
            return self.inner.recv(now)
        arrive = self._rx.arrive
        for _ in range(_MAX_PULL_ROUNDS * 64):
            frame = self.inner.recv(now)
            if frame is None:
                return None
            arrive(frame, now)
            if ready:
                return ready.popleft()
        return None

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        self.advance(now)
        ready = self._rx_ready
        if self._rx is None:
            out = [ready.popleft() for _ in range(min(limit, len(ready)))]
            if len(out) < limit:
                out.extend(self.inner.recv_batch(now, limit - len(out)))
            return out
        arrive = self._rx.arrive
        for _ in range(_MAX_PULL_ROUNDS):
            if len(ready) >= limit:
                break
            batch = self.inner.recv_batch(now, limit - len(ready))
            if not batch:
                break
            for frame in batch:
                arrive(frame, now)
        return [ready.popleft() for _ in range(min(limit, len(ready)))]

    def poll_at(self) -> float | None:
        if self._rx_ready and self._last_now is not None:
            return self._last_now  # already receivable
        return earliest(
            self.inner.poll_at(),
            self.engine.next_at(),
            self._tx.next_at() if self._tx is not None else None,
            self._rx.next_at() if self._rx is not None else None,
        )

    def queued(self) -> int:
        """Frames held inside the injector (delayed, rate-queued, reorder-held, ready)."""
        return (len(self._rx_ready) + (self._tx.queued() if self._tx else 0)
                + (self._rx.queued() if self._rx else 0))

    # -- statistics --------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """What the injector did, summed over both directions."""
        out = dict.fromkeys(STAT_KEYS, 0)
        for lane in (self._tx, self._rx):
            if lane is not None:
                for k, v in lane.stats.items():
                    out[k] += v
        return out

    @property
    def frames_dropped(self) -> int:
        """Frames lost in this injector, every cause (random loss, rules, link changes...)."""
        st = self.stats
        return sum(st[k] for k in DROP_KEYS)

    def lane_stats(self, direction: str) -> dict[str, int]:
        lane = {"tx": self._tx, "rx": self._rx}[direction]
        return dict(lane.stats) if lane is not None else dict.fromkeys(STAT_KEYS, 0)

    def __repr__(self) -> str:
        return f"FaultInjector({self.inner!r}, {self.scenario.describe() or 'no faults'})"


__all__ = ["DIRECTIONS", "DROP_KEYS", "FaultConfig", "FaultEvent", "FaultInjector", "SPEC_ALIASES",
           "SPEC_HELP",
           "STAT_KEYS", "spec_keys"]
