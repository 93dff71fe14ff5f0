"""TCP trace events: to stderr lines (`--trace`) and to a JSON-lines file (`--trace-file`).

File format, one JSON object per line (times in seconds since the host was opened):

    {"t": 0.0012, "conn": "198.18.0.2:49731>198.18.0.1:7", "ev": "state", "old": "SYN_SENT",
     "new": "ESTABLISHED"}
    {"t": 0.0450, "conn": "...", "ev": "cwnd", "cwnd": 14600, "ssthresh": 2147483647}
    {"t": 0.0461, "conn": "...", "ev": "cwnd", "cwnd": 7300, "ssthresh": 7300, "event": "loss"}

`ev` and the extra fields are what the TCP layer's trace hook reports: `ustack.tcp` calls
`on_trace(kind, now, conn=<Connection>, **fields)` with `state` (old/new) and `cwnd`
(cwnd/ssthresh and an optional `event` of "loss", "rto", "recovered" or "undo"); `conn` is
written as the connection's 4-tuple. `t`, `conn` and `ev` are always present. `ustack plot
--kind cwnd` draws the `cwnd` events and marks the loss/rto ones.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO


def conn_name(conn: Any) -> str:
    """"laddr:lport>raddr:rport" of a TCP connection (its `key` 4-tuple), or "?" if unknown."""
    from ustack.wire.ipv4 import ip_str

    try:
        la, lp, ra, rp = conn.key
        return f"{ip_str(la)}:{lp}>{ip_str(ra)}:{rp}"
    except Exception:  # noqa: BLE001 - not a connection
        return "?"


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    name = getattr(v, "name", None)  # enums: State.ESTABLISHED -> "ESTABLISHED"
    if isinstance(name, str):
        return name
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return str(v)


class TraceSink:
    """Receives TCP trace events from the stack (network thread, lock held: must be cheap)."""

    def __init__(self, out: TextIO | None, echo: Callable[[str], Any] | None, clock_origin: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.echo = echo
        self.origin = clock_origin
        self.clock = clock
        self.events = 0
        self._lock = threading.Lock()

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, clock_origin: float,
                  echo: Callable[[str], Any] | None) -> TraceSink | None:
        path = getattr(args, "trace_file", None)
        if not path and echo is None:
            return None
        out = open(path, "w", buffering=1 << 16) if path else None  # noqa: SIM115 - closed in close()
        return cls(out, echo, clock_origin)

    def attach(self, host: Any) -> bool:
        """Hook into the host's TCP layer; False when the layer offers no trace hook.

        The layer copies its `on_trace(kind, now, conn=..., **fields)` hook into each new
        connection."""
        # Share the frame tracer's time origin, so frame lines and TCP lines interleave correctly.
        dev = getattr(host, "device", None)
        for _ in range(8):
            if dev is None:
                break
            if hasattr(dev, "clock_origin"):
                self.origin = dev.clock_origin
                break
            dev = getattr(dev, "inner", None)
        tcp = getattr(host.stack, "tcp", None)
        if tcp is None or not hasattr(tcp, "on_trace"):
            return False
        tcp.on_trace = self.hook
        return True

    def hook(self, kind: str, now: float, conn: Any = None, **fields: Any) -> None:
        """The TCP layer's trace hook: `conn` is the Connection the event belongs to."""
        self.event(conn, kind, fields, now)

    def event(self, conn: Any, ev: str, fields: dict[str, Any] | None = None,
              now: float | None = None) -> None:
        t = (now if now is not None else self.clock()) - self.origin
        name = conn if isinstance(conn, str) else conn_name(conn)
        rec = {"t": round(t, 6), "conn": name, "ev": ev}
        if fields:
            for k, v in fields.items():
                rec[k] = _plain(v)
        with self._lock:
            self.events += 1
            if self.out is not None:
                self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            if self.echo is not None and (ev == "state" or rec.get("event") in ("loss", "rto")):
                if ev == "state":
                    what = f"{rec.get('old')} -> {rec.get('new')}"
                else:
                    what = (f"{rec.get('event')}: cwnd {rec.get('cwnd')} ssthresh {rec.get('ssthresh')}")
                self.echo(f"{t:.6f} TCP {name} {what}")

    def close(self) -> None:
        if self.out is not None:
            try:
                self.out.close()
            finally:
                self.out = None


def _is_event(rec: Any) -> bool:
    if not isinstance(rec, dict) or not (isinstance(rec.get("conn"), str) and isinstance(rec.get("ev"), str)):
        return False
    t = rec.get("t")
    return isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)


def read_trace(path: str) -> list[dict[str, Any]]:
    """The events of a trace file. Lines that are not events (not JSON, cut off by a killed run,
    or without a numeric `t`, a string `conn` and a string `ev`) are skipped."""
    events = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if _is_event(rec):
                events.append(rec)
    return events
