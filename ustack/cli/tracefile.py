"""TCP trace events: to stderr lines (`--trace`) and to a JSON-lines file (`--trace-file`).

File format, one JSON object per line (times in seconds since the host was opened):

    {"t": 0.0012, "conn": "198.18.0.2:49731>198.18.0.1:7", "ev": "state", "from": "SYN_SENT",
     "to": "ESTABLISHED"}
    {"t": 0.0450, "conn": "...", "ev": "cwnd", "cwnd": 14600, "ssthresh": null, "srtt": 0.0004, "rto": 0.2,
     "flight": 2920, "mss": 1460}
    {"t": 0.0461, "conn": "...", "ev": "retransmit", "seq": 123456, "len": 1460, "why": "rto"}

`ev` names and the extra fields are whatever the TCP layer's trace hook reports; `t`, `conn`
and `ev` are always present. `ustack plot --kind cwnd` reads the `cwnd` events (and marks
`retransmit` and `state` events).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO


def conn_name(conn: Any) -> str:
    """"laddr:lport>raddr:rport" of a TCP connection (or repr when it has no endpoints yet)."""
    from ustack.wire.ipv4 import ip_str

    try:
        la, lp = conn.local
        ra, rp = conn.remote
        return f"{ip_str(la)}:{lp}>{ip_str(ra)}:{rp}"
    except Exception:  # noqa: BLE001 - unbound or half-built connection
        return f"conn@{id(conn):x}"


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
        """Hook into the host's TCP layer; False when the layer offers no trace hook."""
        tcp = getattr(host.stack, "tcp", None)
        if tcp is None:
            return False
        for attr in ("on_trace", "trace_hook"):
            if hasattr(tcp, attr):
                setattr(tcp, attr, self.event)
                return True
        return False

    def event(self, conn: Any, ev: str, fields: dict[str, Any] | None = None,
              now: float | None = None) -> None:
        t = (now if now is not None else self.clock()) - self.origin
        name = conn_name(conn) if not isinstance(conn, str) else conn
        rec = {"t": round(t, 6), "conn": name, "ev": ev}
        if fields:
            for k, v in fields.items():
                rec[k] = _plain(v)
        with self._lock:
            self.events += 1
            if self.out is not None:
                self.out.write(json.dumps(rec, separators=(",", ":")) + "\n")
            if self.echo is not None and ev in ("state", "retransmit", "rto"):
                extra = " ".join(f"{k}={v}" for k, v in rec.items() if k not in ("t", "conn", "ev"))
                self.echo(f"{t:12.6f} TCP {name} {ev} {extra}")

    def close(self) -> None:
        if self.out is not None:
            try:
                self.out.close()
            finally:
                self.out = None


def read_trace(path: str) -> list[dict[str, Any]]:
    """The events of a trace file (lines that are not JSON objects are skipped)."""
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
            if isinstance(rec, dict) and "t" in rec and "ev" in rec:
                events.append(rec)
    return events
