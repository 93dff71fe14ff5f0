"""FaultConfig: the independent per-frame faults of a link (the `--loss`-style shorthands), and
the spec strings that name them ("loss=2%,delay=20ms,seed=7"). See docs/faults.md."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from .lossmodel import LossModel

DIRECTIONS = ("both", "rx", "tx")


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
    loss_model: LossModel | None = None  # bursty loss (Gilbert-Elliott...) instead of `loss`

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
        if self.loss_model is not None and self.loss:
            raise ValueError("give loss or loss_model, not both")

    def loss_process(self) -> LossModel:
        """The loss model in force: `loss_model`, or independent loss with probability `loss`."""
        return self.loss_model if self.loss_model is not None else LossModel("bernoulli", self.loss)

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
            if f.name == "loss_model":  # not a spec key: a scenario file's [loss] table
                continue
            v = getattr(self, f.name)
            if v != getattr(default, f.name) or f.name == "seed":
                parts.append(f"{f.name}={v}")
        return ",".join(parts)

    @property
    def is_noop(self) -> bool:
        quiet = self.loss_model is None or self.loss_model.is_noop
        return quiet and replace(self, seed=0, direction="both", loss_model=None) == FaultConfig()


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


def parse_probability(value: str) -> float:
    """0.02 or 2% -> 0.02 (the range is checked by whoever uses it)."""
    num, unit = _split(value)
    if unit == "%":
        return num / 100.0
    if unit:
        raise ValueError(f"unknown unit {unit!r} for a probability")
    return num


def parse_duration(value: str) -> float:
    """"20ms", "1.5s", "0.02" -> seconds."""
    num, unit = _split(value)
    if unit not in _TIME_UNITS:
        raise ValueError(f"unknown time unit {unit!r} (use s, ms, us, ns)")
    return num * _TIME_UNITS[unit]


def parse_rate(value: str) -> float | None:
    """"10mbit" -> 1e7 bits/s; "none" -> None (unlimited)."""
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
    "seed": int, "loss": parse_probability, "duplicate": parse_probability,
    "reorder": parse_probability, "reorder_depth": int,
    "reorder_hold_s": parse_duration, "corrupt": parse_probability, "delay_s": parse_duration,
    "jitter_s": parse_duration,
    "rate_bps": parse_rate, "rate_burst_bytes": int, "rate_queue": int, "mtu_cap": _opt_int,
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


