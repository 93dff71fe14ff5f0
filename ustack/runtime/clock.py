"""Clocks: the real one the Host uses, and the virtual one the Simulator advances."""

from __future__ import annotations

import time


class VirtualClock:
    """Seconds of virtual time. Only the simulator moves it, and only forward."""

    __slots__ = ("t",)

    def __init__(self, start: float = 0.0) -> None:
        self.t = float(start)

    def __call__(self) -> float:
        return self.t

    def advance_to(self, t: float) -> None:
        if t > self.t:
            self.t = t

    def __repr__(self) -> str:
        return f"VirtualClock({self.t:.6f})"


real_clock = time.monotonic
