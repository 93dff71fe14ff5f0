"""FaultInjector middleware: seeded loss, duplication, reordering, corruption, delay, jitter,
rate limiting and an MTU cap, on the rx side, the tx side or both.

Everything is driven by the `now` values passed in (no clock is read), and every random choice
comes from a `random.Random` seeded per direction, so a run is replayable: the same seed and the
same calls give the same frames at the same times. See docs/faults.md.

Per frame, in this order (each direction has its own pipeline and its own RNG):
  mtu cap -> loss -> duplicate -> corrupt (each copy) -> reorder -> rate limit -> delay/jitter
"""

from __future__ import annotations

import heapq
import random
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from .base import ETHERNET_HEADER_LEN, Device, Middleware, earliest

DIRECTIONS = ("both", "rx", "tx")
STAT_KEYS = ("seen", "dropped", "duplicated", "corrupted", "reordered", "delayed",
             "rate_queued", "rate_dropped", "oversize_dropped")
_MAX_PULL_ROUNDS = 16  # bound on inner reads per recv call when every frame gets dropped


@dataclass(frozen=True)
class FaultConfig:
    """What to do to frames. Probabilities are per frame, in [0, 1]."""

    seed: int = 0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_depth: int = 3  # a held frame is overtaken by this many later frames ...
    reorder_hold_s: float = 0.05  # ... or released after this long, whichever comes first
    corrupt: float = 0.0  # flip one random bit (never in the Ethernet header)
    delay_s: float = 0.0
    jitter_s: float = 0.0  # delay is uniform in [delay_s - jitter_s, delay_s + jitter_s], >= 0
    rate_bps: float | None = None  # token bucket in bits/s (None: unlimited)
    rate_burst_bytes: int = 0  # bucket depth; 0 means frames leave one serialization time apart
    rate_queue: int = 100  # frames waiting for tokens; more are dropped (tail drop)
    mtu_cap: int | None = None  # drop frames longer than this many bytes
    direction: str = "both"

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}={p} is not a probability in [0, 1]")
        for name in ("delay_s", "jitter_s", "reorder_hold_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.reorder_depth < 1:
            raise ValueError("reorder_depth must be >= 1")
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise ValueError("rate_bps must be > 0 (or None for unlimited)")
        if self.rate_burst_bytes < 0 or self.rate_queue < 0:
            raise ValueError("rate_burst_bytes and rate_queue must be >= 0")
        if self.mtu_cap is not None and self.mtu_cap < 1:
            raise ValueError("mtu_cap must be >= 1")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {self.direction!r}")

    @classmethod
    def from_spec(cls, spec: str, **overrides: Any) -> FaultConfig:
        """Parse "loss=2%,reorder=0.01,delay=20ms,jitter=5ms,rate=10mbit,mtu=1200,dir=rx,seed=7".

        Keys are field names or the short aliases in SPEC_ALIASES; `overrides` win over the
        spec. Empty, "none" and "off" mean no faults. Raises ValueError on anything unknown.
        """
        kw: dict[str, Any] = {}
        spec = spec.strip()
        if spec and spec.lower() not in ("none", "off"):
            for item in spec.split(","):
                item = item.strip()
                if not item:
                    continue
                key, sep, value = item.partition("=")
                key = key.strip().lower().replace("-", "_")
                key = SPEC_ALIASES.get(key, key)
                if not sep or key not in _PARSERS:
                    raise ValueError(f"bad fault spec item {item!r}; keys: {', '.join(spec_keys())}")
                try:
                    kw[key] = _PARSERS[key](value.strip())
                except ValueError as e:
                    raise ValueError(f"bad value in fault spec item {item!r}: {e}") from None
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def from_args(cls, args: Any) -> FaultConfig:
        """From an argparse namespace with a `faults` spec string (and optional `seed`)."""
        overrides = {}
        if getattr(args, "seed", None) is not None:
            overrides["seed"] = args.seed
        return cls.from_spec(getattr(args, "faults", "") or "", **overrides)

    def to_spec(self) -> str:
        """The non-default settings as a spec string (round-trips through from_spec)."""
        default = FaultConfig()
        parts = []
        for f in fields(self):
            v = getattr(self, f.name)
            if v != getattr(default, f.name) or f.name == "seed":
                parts.append(f"{f.name}={v}")
        return ",".join(parts)

    @property
    def is_noop(self) -> bool:
        return replace(self, seed=0, direction="both") == FaultConfig()


SPEC_ALIASES = {
    "drop": "loss", "dup": "duplicate", "depth": "reorder_depth", "hold": "reorder_hold_s",
    "delay": "delay_s", "jitter": "jitter_s", "rate": "rate_bps", "burst": "rate_burst_bytes",
    "queue": "rate_queue", "mtu": "mtu_cap", "dir": "direction",
}

_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_RATE_UNITS = {"": 1.0, "bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
_NUM_UNIT = re.compile(r"^([0-9.eE+-]+)\s*([a-zA-Z%]*)$")


def _split(value: str) -> tuple[float, str]:
    m = _NUM_UNIT.match(value)
    if not m:
        raise ValueError(f"not a number: {value!r}")
    return float(m.group(1)), m.group(2).lower()


def _prob(value: str) -> float:
    num, unit = _split(value)
    if unit == "%":
        return num / 100.0
    if unit:
        raise ValueError(f"unknown unit {unit!r} for a probability")
    return num


def _duration(value: str) -> float:
    num, unit = _split(value)
    if unit not in _TIME_UNITS:
        raise ValueError(f"unknown time unit {unit!r} (use s, ms, us, ns)")
    return num * _TIME_UNITS[unit]


def _rate(value: str) -> float | None:
    if value.lower() in ("none", "off", "0", ""):
        return None
    num, unit = _split(value)
    if unit not in _RATE_UNITS:
        raise ValueError(f"unknown rate unit {unit!r} (use bit, kbit, mbit, gbit: bits per second)")
    return num * _RATE_UNITS[unit]


def _opt_int(value: str) -> int | None:
    return None if value.lower() in ("none", "off") else int(value)


def _direction(value: str) -> str:
    return value.lower()


_PARSERS: dict[str, Callable[[str], Any]] = {
    "seed": int, "loss": _prob, "duplicate": _prob, "reorder": _prob, "reorder_depth": int,
    "reorder_hold_s": _duration, "corrupt": _prob, "delay_s": _duration, "jitter_s": _duration,
    "rate_bps": _rate, "rate_burst_bytes": int, "rate_queue": int, "mtu_cap": _opt_int,
    "direction": _direction,
}


def spec_keys() -> list[str]:
    return sorted(set(_PARSERS) | set(SPEC_ALIASES))


SPEC_HELP = (
    "comma-separated key=value: loss|drop, duplicate|dup, reorder, corrupt (probabilities, "
    "0.02 or 2%), reorder_depth|depth (frames), reorder_hold_s|hold, delay_s|delay, "
    "jitter_s|jitter (s, ms, us), rate_bps|rate (bit, kbit, mbit, gbit), "
    "rate_burst_bytes|burst, rate_queue|queue (frames), mtu_cap|mtu (bytes), "
    "direction|dir (both, rx, tx), seed"
)


class _Lane:
    """The fault pipeline of one direction. `emit(frame, t)` receives frames that made it,
    with the (virtual) time they leave the pipeline."""

    def __init__(self, owner: FaultInjector, name: str, emit: Callable[[bytes, float], None]) -> None:
        self.owner = owner
        self.name = name
        self.emit = emit
        self.rng = random.Random(f"ustack.faults:{owner.config.seed}:{name}")
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

    # -- arrival -----------------------------------------------------------------------------
    def arrive(self, frame: bytes, now: float) -> None:
        self.advance(now)
        cfg = self.owner.config
        st = self.stats
        rng = self.rng
        st["seen"] += 1
        if cfg.mtu_cap is not None and len(frame) > cfg.mtu_cap:
            st["oversize_dropped"] += 1
            return
        if cfg.loss and rng.random() < cfg.loss:
            st["dropped"] += 1
            return
        copies = 1
        if cfg.duplicate and rng.random() < cfg.duplicate:
            st["duplicated"] += 1
            copies = 2
        for _ in range(copies):
            f = frame
            if cfg.corrupt and rng.random() < cfg.corrupt:
                f = self._flip_bit(f)
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
        if cfg.reorder and self.rng.random() < cfg.reorder:
            self.stats["reordered"] += 1
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
        )

    def queued(self) -> int:
        return len(self._held) + len(self._rate_q) + len(self._delayed)


class FaultInjector(Middleware):
    """Wraps a Device and misbehaves on purpose, reproducibly for a given seed.

    Frames held back (delay, jitter, rate queue, reorder) are released by any call that gets
    `now` (`send`, `recv`, `recv_batch`, `advance`); `poll_at()` says when the next one is due,
    so a runtime that sleeps until `poll_at()` and then calls `recv_batch(now)` drives both
    directions. Delayed tx frames reach the inner device with their due time as `now`.
    """

    def __init__(self, inner: Device, seed: int = 0, loss: float = 0.0, duplicate: float = 0.0,
                 reorder: float = 0.0, reorder_depth: int = 3, corrupt: float = 0.0,
                 delay_s: float = 0.0, jitter_s: float = 0.0, rate_bps: float | None = None,
                 mtu_cap: int | None = None, direction: str = "both", *,
                 reorder_hold_s: float = 0.05, rate_burst_bytes: int = 0, rate_queue: int = 100,
                 config: FaultConfig | None = None) -> None:
        super().__init__(inner)
        if config is None:
            config = FaultConfig(
                seed=seed, loss=loss, duplicate=duplicate, reorder=reorder,
                reorder_depth=reorder_depth, reorder_hold_s=reorder_hold_s, corrupt=corrupt,
                delay_s=delay_s, jitter_s=jitter_s, rate_bps=rate_bps,
                rate_burst_bytes=rate_burst_bytes, rate_queue=rate_queue, mtu_cap=mtu_cap,
                direction=direction,
            )
        self.config = config
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

    def lane_stats(self, direction: str) -> dict[str, int]:
        lane = {"tx": self._tx, "rx": self._rx}[direction]
        return dict(lane.stats) if lane is not None else dict.fromkeys(STAT_KEYS, 0)

    def __repr__(self) -> str:
        return f"FaultInjector({self.inner!r}, {self.config.to_spec()})"
