"""Congestion control behind a small interface; the sender owns loss detection and recovery."""

from __future__ import annotations

from .base import CongestionControl
from .cubic import Cubic
from .newreno import NewReno


def make(name: str, mss: int, initial_segments: int = 10, abc_limit_segments: int = 0) -> CongestionControl:
    if name == "cubic":
        return Cubic(mss, initial_segments, abc_limit_segments)
    if name == "newreno":
        return NewReno(mss, initial_segments, abc_limit_segments)
    raise ValueError(f"unknown congestion control {name!r}")


__all__ = ["CongestionControl", "Cubic", "NewReno", "make"]
