"""A minimal sans-I/O stand-in for the Stack, to test the runtimes' mechanics in isolation
(scheduling, timers, batching, error containment) independently of the real core."""

from __future__ import annotations

from typing import Any


class FakeStack:
    """Frames are opaque bytes. `send(frame)` queues output; received frames land in `inbox`.

    `echo=True` sends every received frame back prefixed with b"re:" (once). `timers` is a
    list of deadlines; when one passes, b"tick@<deadline>" is sent. `explode_on` makes
    `receive` raise for frames starting with it (to test error containment).
    """

    def __init__(self, name: str = "fake", echo: bool = False, explode_on: bytes | None = None) -> None:
        self.name = name
        self.echo = echo
        self.explode_on = explode_on
        self.inbox: list[tuple[float, bytes]] = []
        self.out: list[bytes] = []
        self.timers: list[float] = []
        self.started_at: float | None = None
        self.polls = 0
        self.counters = _Counters()

    def start(self, now: float) -> None:
        self.started_at = now

    def send(self, frame: bytes) -> None:
        self.out.append(frame)

    def receive(self, frame: bytes, now: float) -> None:
        frame = bytes(frame)
        if self.explode_on is not None and frame.startswith(self.explode_on):
            raise ValueError(f"boom on {frame!r}")
        self.inbox.append((now, frame))
        if self.echo and not frame.startswith(b"re:"):
            self.out.append(b"re:" + frame)

    def poll(self, now: float) -> list[bytes]:
        self.polls += 1
        due = [t for t in self.timers if t <= now]
        if due:
            self.timers = [t for t in self.timers if t > now]
            self.out.extend(f"tick@{t:g}".encode() for t in due)
        out, self.out = self.out, []
        return out

    def poll_at(self) -> float | None:
        return min(self.timers) if self.timers else None

    def frames(self) -> list[bytes]:
        return [f for _, f in self.inbox]


class _Counters:
    def __init__(self) -> None:
        self.c: dict[str, int] = {}

    def inc(self, name: str, n: int = 1) -> None:
        self.c[name] = self.c.get(name, 0) + n

    def get(self, name: str) -> int:
        return self.c.get(name, 0)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.c)


class PipeDevice:
    """A device whose fd is the read end of a pipe: `poke()` makes it readable. It sends nothing
    anywhere and `recv_batch` yields no frame; subclasses change that to fake device trouble."""

    medium, mtu = "ip", 1500

    def __init__(self) -> None:
        import os

        self.r, self.w = os.pipe()

    def poke(self) -> None:
        import os

        os.write(self.w, b"x")

    def send(self, frame: bytes, now: float) -> None:
        pass

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        return []

    def fileno(self) -> int:
        return self.r

    def poll_at(self) -> None:
        return None

    def close(self) -> None:
        import os

        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass
