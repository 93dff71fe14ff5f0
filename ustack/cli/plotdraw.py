"""The drawings of `ustack plot` (matplotlib, the `plot` extra): the time-sequence graph, the
congestion window, bytes in flight, and panels side by side for comparing two runs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from .options import CommandError, UsageError
from .plotseries import CwndSeries, FlightSeries, SeqSeries


def _figure() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise CommandError("plotting needs matplotlib: pip install 'ustack[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:,.0f}")

def _segments(rows: Iterable[tuple[float, int, int]]) -> list[list[tuple[float, int]]]:
    return [[(t, a), (t, b)] for t, a, b in rows]

def draw_seq(series: SeqSeries, output: str, title: str | None = None) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(11, 6.5), dpi=110)
    _seq_axes(ax, series, title or f"TCP time-sequence: {series.conn}  ({series.bytes_sent:,} bytes, "
                                   f"{series.retransmissions} retransmissions)")
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)

def _seq_axes(ax: Any, series: SeqSeries, title: str) -> None:
    from matplotlib.collections import LineCollection

    if series.window:
        wt, wv = zip(*series.window, strict=True)
        ax.step(wt, wv, where="post", color="tab:olive", lw=0.9, label="receive window (ack + win)")
    if series.acks:
        at, av = zip(*series.acks, strict=True)
        ax.step(at, av, where="post", color="tab:green", lw=0.9, label="ACK")
    ax.add_collection(LineCollection(_segments(series.data), colors="tab:blue", lw=1.2, label="data"))
    if series.sacks:
        ax.add_collection(LineCollection(_segments(series.sacks), colors="tab:purple", lw=2.5, alpha=0.7,
                                         label="SACK blocks"))
    if series.retrans:
        ax.add_collection(LineCollection(_segments(series.retrans), colors="tab:red", lw=2.0,
                                         label=f"retransmissions ({series.retransmissions})"))
        rt = [t for t, _, _ in series.retrans]
        rs = [b for _, _, b in series.retrans]
        ax.scatter(rt, rs, marker="x", color="tab:red", s=18, zorder=3)
    ax.autoscale()
    if series.faults:
        from .plotfaults import draw_fault_marks

        draw_fault_marks(ax, series.faults)
    ax.set_xlabel("time (s) from the connection's first segment")
    ax.yaxis.set_major_formatter(_thousands())  # 20,000,000 rather than 2.0 with a "1e7" corner
    ax.set_ylabel("relative sequence number (bytes)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")

def draw_cwnd(series: CwndSeries, output: str, title: str | None = None) -> None:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    _cwnd_axes(ax, series, title or f"congestion window: {series.conn}")
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)

def _cwnd_axes(ax: Any, series: CwndSeries, title: str) -> None:
    ax.step(series.t, series.cwnd, where="post", color="tab:blue", lw=1.2, label="cwnd")
    if series.ssthresh:
        st, sv = zip(*series.ssthresh, strict=True)
        ax.step(st, sv, where="post", color="tab:orange", lw=0.9, ls="--", label="ssthresh")
    for i, t in enumerate(series.retrans):
        ax.axvline(t, color="tab:red", lw=0.6, alpha=0.5,
                   label="loss event (fast retransmit or RTO)" if i == 0 else None)
    ax.set_xlabel("time (s) from the connection's first event")
    ax.set_ylabel("bytes")
    ax.yaxis.set_major_formatter(_thousands())
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")  # slow start's peak is often at the upper left

def _flight_axes(ax: Any, series: FlightSeries, title: str) -> None:
    if series.points:
        t, v = zip(*series.points, strict=True)
        ax.step(t, v, where="post", color="tab:blue", lw=1.0, label="bytes in flight")
    for i, t in enumerate(series.retrans):
        ax.axvline(t, color="tab:red", lw=0.5, alpha=0.4, label="retransmission" if i == 0 else None)
    ax.set_xlabel("time (s) from the connection's first segment")
    ax.set_ylabel("bytes")
    ax.yaxis.set_major_formatter(_thousands())
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")

_AXES = {"seq": _seq_axes, "cwnd": _cwnd_axes, "flight": _flight_axes}

def draw_side_by_side(kind: str, panels: list[tuple[str, Any]], output: str,
                      title: str | None = None) -> None:
    """Panels of one kind next to each other, same axes scales, for comparing two runs (e.g.
    ustack and Linux on the same path)."""
    plt = _figure()
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5.5), dpi=110,
                             sharex=True, sharey=True, squeeze=False)
    for ax, (label, series) in zip(axes[0], panels, strict=True):
        _AXES[kind](ax, series, label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)

def check_image_path(output: str) -> None:
    """Before any work: the image's directory exists and matplotlib can write its format."""
    from .options import check_output_file

    check_output_file(output, "-o")
    ext = os.path.splitext(output)[1][1:].lower()
    if ext:
        plt = _figure()
        formats = plt.figure().canvas.get_supported_filetypes()
        plt.close("all")
        if ext not in formats:
            raise UsageError(f"-o {output}: cannot write .{ext} images (use .png, .svg or .pdf)")
