"""`ustack plot`: TCP time-sequence graphs from a pcap, congestion window from a trace file.

The time-sequence graph is the classic one (tcptrace, Wireshark's Stevens/tcptrace view) for
the data direction of one connection: each data segment is a vertical bar from its first to its
last sequence number at the time it was seen, retransmissions (a segment that starts below the
highest sequence already sent) in red; the ACK line from the other side (a step line); the
receive-window line (ACK + advertised window, scaled when both SYNs agreed on window scaling);
SACK blocks as short bars at the time of the ACK that carried them. Sequence numbers are
relative to the sender's ISN and unwrapped across 2**32.

The analysis (plotseries.py: `analyze_pcap`, `seq_series`, `cwnd_series`, `flight_series`) needs no
matplotlib; drawing (plotdraw.py) needs the `plot` extra; fault marks come from plotfaults.py.
This module is the command: checking its inputs and options, and saying what it drew.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from .options import UsageError
from .plotdraw import check_image_path, draw_cwnd, draw_seq, draw_side_by_side
from .plotseries import (
    Conn,
    CwndSeries,
    SeqSeries,
    analyze_pcap,
    clip_seq,
    cwnd_series,
    flight_series,
    pick_conn,
    sender_of,
    seq_series,
    with_fault_marks,
)

if TYPE_CHECKING:
    from ustack.drivers import PcapTruncated


def parse_window(text: str | None) -> tuple[float | None, float | None]:
    """"0.5:1.2", "0.5:" or ":1.2" (seconds) for --time."""
    if not text:
        return None, None
    a, sep, b = text.partition(":")
    try:
        t0 = float(a) if a.strip() else None
        t1 = float(b) if b.strip() else None
    except ValueError:
        raise UsageError(f"--time {text!r}: want START:END in seconds, e.g. 0.5:1.5") from None
    if not sep or (t0 is not None and t1 is not None and t1 <= t0):
        raise UsageError(f"--time {text!r}: want START:END in seconds with START < END")
    return t0, t1

def _read_trace(path: str) -> list[Any]:
    """A --trace file's events, or a one-line UsageError saying what is wrong with it."""
    from .tracefile import read_trace

    try:
        return read_trace(path)
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a JSON-lines trace file (a pcap? draw it with --kind seq)") from None
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None

def load_series(kind: str, path: str, conn: str | None) -> Any:
    """The series `kind` ("seq", "flight" or "cwnd") draws, from a pcap or (cwnd) a trace."""
    if kind == "cwnd":
        return cwnd_series(_read_trace(path), conn)
    series = seq_series(pick_conn(_load_conns(path), conn), sender_of(conn))
    return flight_series(series) if kind == "flight" else series

def plot_seq(pcap: str, output: str, conn: str | None = None, title: str | None = None) -> SeqSeries:
    """Draw the time-sequence graph of one connection of `pcap` into `output`; returns its data."""
    series = with_fault_marks(seq_series(pick_conn(analyze_pcap(pcap), conn), sender_of(conn)), pcap)
    draw_seq(series, output, title)
    return series

def plot_cwnd(trace: str, output: str, conn: str | None = None, title: str | None = None) -> CwndSeries:
    series = cwnd_series(_read_trace(trace), conn)
    draw_cwnd(series, output, title)
    return series

def check_input_file(path: str) -> None:
    """The file to read exists, is a file and is readable: one line saying which is not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied (a directory on the way is not readable by you; "
                         "what `sudo ustack lab` wrote belongs to root: use sudo, or chown it)") from None
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory (give the pcap or trace file in it)")
    if not os.access(path, os.R_OK):
        owner = "root" if st.st_uid == 0 else f"user id {st.st_uid}"
        raise UsageError(f"{path}: permission denied (owned by {owner}: use sudo, or chown it)")

def _cut_note(path: str, e: PcapTruncated) -> str:
    return (f"warning: {path}: {e} (a capture killed while writing?); using the {e.records} complete "
            "records")

def _starts_with(path: str, prefix: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(prefix)) == prefix

def _no_tcp(path: str, cut: list[PcapTruncated]) -> None:
    """Say why there is nothing to draw: no packets at all, or none of TCP."""
    from ustack.drivers import PcapTruncated, read_pcap

    n = 0
    try:
        for _ in read_pcap(path):
            n += 1
    except PcapTruncated:
        pass
    if n == 0:
        raise UsageError(f"{path}: no packets in the capture, only its file header (stopped before the "
                         "first packet?)")
    also = f" (and the capture is {cut[0]})" if cut else ""
    raise UsageError(f"{path}: no TCP connection among its {n} packets{also}")

def _load_conns(path: str, notes: list[str] | None = None) -> list[Conn]:
    """The capture's connections. A capture cut inside a record is read up to there; the warning
    goes to `notes` (printed once the command succeeded: an error stays one line) or, without
    `notes`, to stderr at once."""
    from ustack.drivers import PcapError

    cut: list[PcapTruncated] = []
    try:
        conns = analyze_pcap(path, on_cut=cut.append)
    except PcapError as e:
        hint = " (a JSON-lines trace? draw it with --kind cwnd)" if _starts_with(path, b"{") else ""
        raise UsageError(f"{path}: {e}{hint}") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read it ({e.strerror})") from None
    if cut and cut[0].records == 0:
        raise UsageError(f"{path}: {cut[0]}: no complete packet to plot")
    if not conns:
        _no_tcp(path, cut)
    if cut:
        if notes is None:
            sys.stderr.write(f"ustack plot: {_cut_note(path, cut[0])}\n")
        else:
            notes.append(_cut_note(path, cut[0]))
    return conns

def run(args: argparse.Namespace) -> int:
    check_input_file(args.file)
    if not args.output and not args.list:
        raise UsageError("the image to write is missing: -o FILE.png")
    if args.output and not args.list:
        check_image_path(args.output)
    if args.kind == "cwnd" and args.time:
        raise UsageError("--time zooms a time-sequence graph (--kind seq)")
    vs = getattr(args, "vs", None)
    if vs or args.kind == "flight":
        if args.time or args.list:
            raise UsageError("--time and --list work on one time-sequence graph, not with --vs/--kind flight")
        files = [args.file] + ([vs] if vs else [])
        for f in files[1:]:
            check_input_file(f)
        labels = (getattr(args, "labels", None) or ",".join(files)).split(",")
        if len(labels) != len(files):
            raise UsageError(f"--labels: want {len(files)} comma-separated labels")
        panels = [(label, load_series(args.kind, f, args.conn))
                  for label, f in zip(labels, files, strict=True)]
        draw_side_by_side(args.kind, panels, args.output, args.title)
        print(f"{args.output}: {args.kind} of {' | '.join(label for label, _ in panels)}")
        return 0
    if args.kind == "cwnd":
        cs = plot_cwnd(args.file, args.output, args.conn, args.title)
        print(f"{args.output}: cwnd of {cs.conn}, {len(cs.t)} samples, {len(cs.retrans)} loss events")
        return 0
    notes: list[str] = []
    conns = _load_conns(args.file, notes)
    if args.list:
        for c in conns:
            print(f"{c.name()}  {c.bytes_from(c.a):>12,} bytes >  {c.bytes_from(c.b):>12,} bytes <  "
                  f"{len(c.segs)} segments")
        _say(notes)
        return 0
    series = with_fault_marks(seq_series(pick_conn(conns, args.conn), sender_of(args.conn)), args.file)
    t0, t1 = parse_window(args.time)
    if t0 is not None or t1 is not None:
        series = clip_seq(series, t0, t1)
        if not series.data and not series.retrans and not series.acks:
            raise UsageError(f"--time {args.time}: nothing happened in that window")
    draw_seq(series, args.output, args.title)
    marks = f", {len(series.faults)} fault events marked" if series.faults else ""
    print(f"{args.output}: {series.conn}, {series.bytes_sent:,} bytes in {len(series.data)} segments, "
          f"{series.retransmissions} retransmissions, {len(series.sacks)} SACK blocks{marks}")
    _say(notes)
    return 0

def _say(notes: list[str]) -> None:
    for note in notes:
        sys.stderr.write(f"ustack plot: {note}\n")
