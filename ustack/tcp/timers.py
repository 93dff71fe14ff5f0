"""Per-connection deadlines in fixed slots; `earliest()` is what the layer's heap is keyed on."""

from __future__ import annotations


class Timers:
    """Absolute deadlines (seconds, `None` = not armed). One slot per purpose, no dictionaries."""

    __slots__ = ("rto_at", "probe_at", "delack_at", "persist_at", "keepalive_at", "time_wait_at",
                 "deadline_at", "pmtu_at")

    def __init__(self) -> None:
        self.rto_at: float | None = None  # retransmission (SYN, SYN-ACK, data, FIN)
        self.probe_at: float | None = None  # tail loss probe (RFC 8985)
        self.delack_at: float | None = None  # delayed ACK
        self.persist_at: float | None = None  # zero-window probe
        self.keepalive_at: float | None = None  # keepalive idle/interval
        self.time_wait_at: float | None = None  # end of 2*MSL
        self.deadline_at: float | None = None  # orphaned FIN-WAIT-2 lifetime
        self.pmtu_at: float | None = None  # a learned path MTU ages out (RFC 1191)

    def earliest(self) -> float | None:
        best = None
        for t in (self.rto_at, self.probe_at, self.delack_at, self.persist_at, self.keepalive_at,
                  self.time_wait_at, self.deadline_at, self.pmtu_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def clear(self) -> None:
        self.rto_at = self.probe_at = self.delack_at = self.persist_at = self.keepalive_at = None
        self.time_wait_at = self.deadline_at = self.pmtu_at = None
