"""Fault marks on a time-sequence graph: the fault events a pcapng capture carries as comments
(drivers.PcapWriter with comments, see docs/faults.md) placed where they happened.

- a scheduled link change is a shaded span from "change" to its "restore" (a line if never
  restored), labelled with the change;
- a fault on one of the plotted sender's segments is a marker at its time and sequence number
  (triangles for frames lost: black by a rule, purple to a link change, red at random;
  a diamond for corruption, ...);
- a fault on the other direction (the ACK path) is a small tick at the bottom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SUMMARY = re.compile(r"IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): Flags \[[^\]]*\], "
                      r"seq (\d+)(?::(\d+))?")
LINK_DROPS = ("down-drop", "blackhole", "mtu-drop")
RANDOM_DROPS = ("loss", "oversize", "rate-drop")
# kind -> (marker, colour, legend text)
STYLE = {
    "drop": ("v", "black", "dropped by a rule"),
    "link-drop": ("v", "tab:purple", "lost to a link change"),
    "random-drop": ("v", "tab:red", "lost (loss model, rate or MTU cap)"),
    "duplicate": ("P", "tab:cyan", "duplicated"),
    "corrupt": ("D", "tab:brown", "corrupted"),
    "truncate": ("|", "tab:brown", "truncated"),
    "delay": (">", "tab:orange", "delayed by a rule"),
    "reorder": ("s", "tab:pink", "reordered"),
    "other": ("o", "tab:gray", "other fault"),
}


@dataclass(frozen=True)
class FaultMark:
    t: float  # seconds from the connection's first segment
    kind: str
    text: str
    seq: int | None = None  # relative sequence number (end) when it hit the plotted data
    ack_path: bool = False  # it hit the other direction of the plotted connection


def _style_kind(kind: str) -> str:
    if kind in LINK_DROPS:
        return "link-drop"
    if kind in RANDOM_DROPS:
        return "random-drop"
    return kind if kind in STYLE else "other"


def fault_marks(pcap: str, t0: float, sender: tuple[int, int], receiver: tuple[int, int],
                isn: int) -> list[FaultMark]:
    """The fault comments of `pcap` as marks for the connection sender -> receiver."""
    from ustack.drivers.pcap import read_fault_comments
    from ustack.wire.ipv4 import ip_int

    out = []
    for ts, text in read_fault_comments(pcap):
        parts = text.split(maxsplit=2)
        if len(parts) < 2 or parts[0] != "fault":
            continue
        kind = parts[1]
        m = _SUMMARY.search(text)
        seq = None
        ack_path = False
        if m:
            src = (ip_int(m.group(1)), int(m.group(2)))
            dst = (ip_int(m.group(3)), int(m.group(4)))
            if (src, dst) == (sender, receiver):
                end = int(m.group(6) or m.group(5))
                seq = (end - isn) & 0xFFFFFFFF
            elif (src, dst) == (receiver, sender):
                ack_path = True
            else:
                continue  # another connection's frame
        out.append(FaultMark(ts - t0, kind, text, seq, ack_path))
    return out


def draw_fault_marks(ax: Any, marks: list[FaultMark]) -> None:
    """Draw `marks` on a time-sequence axes (after the data, so autoscale already happened)."""
    if not marks:
        return
    ymin, _ = ax.get_ylim()
    open_changes: dict[str, float] = {}
    spans: list[tuple[float, float | None, str]] = []
    for mk in marks:
        cause = mk.text[mk.text.find("(") + 1:mk.text.rfind(")")]
        if mk.kind == "change":
            open_changes[cause] = mk.t
        elif mk.kind == "restore" and cause in open_changes:
            spans.append((open_changes.pop(cause), mk.t, cause))
    spans += [(t, None, cause) for cause, t in open_changes.items()]
    for i, (a, b, cause) in enumerate(sorted(spans)):
        if b is None:
            ax.axvline(a, color="tab:gray", lw=1.0, ls="--", label=f"link change: {cause}")
        else:
            ax.axvspan(a, b, color=f"C{(i % 6) + 4}", alpha=0.15, lw=0, label=f"link change: {cause}")
    by_kind: dict[str, list[FaultMark]] = {}
    ticks: list[float] = []
    for mk in marks:
        if mk.kind in ("change", "restore"):
            continue
        if mk.seq is not None:
            by_kind.setdefault(_style_kind(mk.kind), []).append(mk)
        else:
            ticks.append(mk.t)
    for kind, ms in by_kind.items():
        marker, colour, label = STYLE[kind]
        ax.scatter([m.t for m in ms], [m.seq for m in ms], marker=marker, color=colour, s=36, zorder=4,
                   label=f"{label} ({len(ms)})")
    if ticks:
        ax.scatter(ticks, [ymin] * len(ticks), marker="^", color="tab:gray", s=14, zorder=4, clip_on=False,
                   label=f"fault on the ACK path ({len(ticks)})")
