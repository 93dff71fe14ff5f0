"""The Device protocol every link speaks, a forwarding Middleware base, and device counters.

A device moves whole frames: IPv4 packets for medium "ip" (TUN), Ethernet II frames for
medium "ethernet" (TAP). Time is never read from a clock here: every call gets `now`, so the
same code runs under a real clock and the simulator's virtual one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, Self, runtime_checkable

MEDIA = ("ip", "ethernet")
ETHERNET_HEADER_LEN = 14


@runtime_checkable
class Device(Protocol):
    medium: str  # "ip" (frames are IPv4 packets) or "ethernet" (frames are Ethernet II)
    mtu: int  # largest IP packet; an ethernet frame may be mtu + 14 bytes

    def send(self, frame: bytes, now: float) -> None:
        """Queue one frame for transmission. Never blocks; a full queue is a counted drop."""

    def recv(self, now: float) -> bytes | None:
        """One received frame, or None when nothing is ready. Never blocks."""

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        """Up to `limit` ready frames (possibly none). Never blocks."""

    def fileno(self) -> int | None:
        """A readable fd for select/poll, or None for in-memory devices."""

    def poll_at(self) -> float | None:
        """The next time `recv` may return something without the fd becoming readable
        (delayed frames, queued in-memory frames), or None."""

    def close(self) -> None: ...


def max_frame_len(medium: str, mtu: int) -> int:
    """The largest frame a device of this medium carries (no VLAN tag, no FCS)."""
    return mtu + ETHERNET_HEADER_LEN if medium == "ethernet" else mtu


def check_medium(medium: str) -> str:
    if medium not in MEDIA:
        raise ValueError(f"medium must be one of {MEDIA}, not {medium!r}")
    return medium


class DeviceCounters:
    """Frame/byte counters kept by concrete devices. `drops` breaks drops down by reason."""

    __slots__ = ("rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "rx_dropped", "tx_dropped", "drops")

    def __init__(self) -> None:
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.rx_dropped = 0
        self.tx_dropped = 0
        self.drops: dict[str, int] = {}

    def drop_tx(self, reason: str, n: int = 1) -> None:
        self.tx_dropped += n
        self.drops[reason] = self.drops.get(reason, 0) + n

    def drop_rx(self, reason: str, n: int = 1) -> None:
        self.rx_dropped += n
        self.drops[reason] = self.drops.get(reason, 0) + n

    def snapshot(self) -> dict[str, int]:
        out = {name: getattr(self, name) for name in self.__slots__ if name != "drops"}
        out.update({f"drop.{k}": v for k, v in sorted(self.drops.items())})
        return out

    def __repr__(self) -> str:
        return f"DeviceCounters({self.snapshot()})"


# Never reached through middleware: `inner` (a half-constructed object must not recurse) and the
# trusted-checksum read, which would let frames skip a middleware that may change them.
_NOT_FORWARDED = frozenset({"inner", "recv_batch_trusted"})


class Middleware:
    """Wraps a Device and is one. Everything is forwarded to `inner`; subclasses override
    only what they change. Unknown attributes (a TAP's `.mac`, a memlink port's `.pending()`)
    are looked up on the inner device so a wrapped device stays usable."""

    def __init__(self, inner: Device) -> None:
        self.inner = inner

    @property
    def medium(self) -> str:
        return self.inner.medium

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    def send(self, frame: bytes, now: float) -> None:
        self.inner.send(frame, now)

    def send_batch(self, frames: Iterable[bytes], now: float) -> None:
        send = self.send
        for frame in frames:
            send(frame, now)

    def recv(self, now: float) -> bytes | None:
        return self.inner.recv(now)

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        return self.inner.recv_batch(now, limit)

    def fileno(self) -> int | None:
        return self.inner.fileno()

    def advance(self, now: float) -> None:
        """Release whatever is due at `now` (frames held by delaying middleware, down the chain).

        Not part of the Device protocol: `recv`/`recv_batch` already do this, so a runtime only
        needs it for a send-only device."""
        adv = getattr(self.inner, "advance", None)
        if adv is not None:
            adv(now)

    def poll_at(self) -> float | None:
        return self.inner.poll_at()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not found normally; guard `inner` itself so a
        # half-constructed object cannot recurse forever.
        if name in _NOT_FORWARDED:
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def earliest(*times: float | None) -> float | None:
    """The smallest of the deadlines that are not None (None if all are)."""
    best = None
    for t in times:
        if t is not None and (best is None or t < best):
            best = t
    return best
