"""`ustack plot`: TCP time-sequence graphs from a pcap, congestion window from a trace file.

The time-sequence graph is the classic one (tcptrace, Wireshark's Stevens/tcptrace view) for
the data direction of one connection: each data segment is a vertical bar from its first to its
last sequence number at the time it was seen, retransmissions (a segment that starts below the
highest sequence already sent) in red; the ACK line from the other side (a step line); the
receive-window line (ACK + advertised window, scaled when both SYNs agreed on window scaling);
SACK blocks as short bars at the time of the ACK that carried them. Sequence numbers are
relative to the sender's ISN and unwrapped across 2**32.

The analysis (`analyze_pcap`, `seq_series`) needs no matplotlib; drawing needs the `plot` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .options import CommandError, UsageError

if TYPE_CHECKING:
    from ustack.drivers import PcapTruncated

ETH_IPV4 = 0x0800
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_IPV4 = 228


@dataclass(frozen=True)
class Seg:
    """One TCP segment as captured."""
    t: float
    src: int
    sport: int
    dst: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    length: int
    wscale: int | None
    sack: tuple[tuple[int, int], ...]
    syn_opts: bool  # carried a SYN (its options negotiate window scaling)


@dataclass
class Conn:
    """One TCP connection (both directions) found in a capture."""
    a: tuple[int, int]  # (addr, port) of the endpoint seen first
    b: tuple[int, int]
    segs: list[Seg] = field(default_factory=list)

    def bytes_from(self, end: tuple[int, int]) -> int:
        return sum(s.length for s in self.segs if (s.src, s.sport) == end)

    @property
    def total_bytes(self) -> int:
        return sum(s.length for s in self.segs)

    def name(self, sender: tuple[int, int] | None = None) -> str:
        from ustack.wire.ipv4 import ip_str

        x, y = (self.a, self.b) if sender in (None, self.a) else (self.b, self.a)
        return f"{ip_str(x[0])}:{x[1]}>{ip_str(y[0])}:{y[1]}"


def _ip_payload(frame: bytes, linktype: int) -> bytes | memoryview | None:
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14 or int.from_bytes(frame[12:14], "big") != ETH_IPV4:
            return None
        return memoryview(frame)[14:]
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
        return frame if frame and frame[0] >> 4 == 4 else None
    return None


def read_segments(path: str, on_cut: Callable[[PcapTruncated], None] | None = None) -> Iterator[Seg]:
    """Every decodable IPv4/TCP segment of a pcap (others, and malformed ones, are skipped).

    A capture cut off inside a record (killed while writing) raises `PcapTruncated` after its
    complete records, unless `on_cut` is given: then it is told and the segments so far stand."""
    from ustack import wire
    from ustack.drivers import PcapTruncated, read_pcap
    from ustack.wire import tcp as tcpw

    records = read_pcap(path)
    while True:
        try:
            ts, frame, linktype = next(records)
        except StopIteration:
            return
        except PcapTruncated as e:
            if on_cut is None:
                raise
            on_cut(e)
            return
        buf = _ip_payload(frame, linktype)
        if buf is None:
            continue
        try:
            ip = wire.Ipv4Packet.parse(buf)
            if ip.proto != 6 or ip.mf or ip.frag_offset:
                continue
            seg = wire.TcpSegment.parse(ip.payload, ip.src, ip.dst, verify=False)
        except wire.Malformed:
            continue
        opts = seg.options
        yield Seg(ts, ip.src, seg.sport, ip.dst, seg.dport, seg.seq, seg.ack, seg.flags, seg.window,
                  len(seg.payload), opts.wscale, tuple(opts.sack or ()), bool(seg.flags & tcpw.SYN))


def analyze_pcap(path: str, on_cut: Callable[[PcapTruncated], None] | None = None) -> list[Conn]:
    """The TCP connections of a capture, largest (payload bytes) first (`on_cut`: see
    `read_segments`).

    A new SYN (without ACK) on a 4-tuple already seen with data starts a new connection."""
    from ustack.wire import tcp as tcpw

    conns: dict[tuple[tuple[int, int], tuple[int, int]], Conn] = {}
    done: list[Conn] = []
    for s in read_segments(path, on_cut):
        x, y = (s.src, s.sport), (s.dst, s.dport)
        key = (x, y) if x <= y else (y, x)
        c = conns.get(key)
        if c is not None and s.flags & tcpw.SYN and not s.flags & tcpw.ACK and any(
                not (q.flags & tcpw.SYN) for q in c.segs):
            done.append(c)
            c = None
        if c is None:
            c = conns[key] = Conn(x, y)
        c.segs.append(s)
    done.extend(conns.values())
    done.sort(key=lambda c: c.total_bytes, reverse=True)
    return done


def pick_conn(conns: list[Conn], spec: str | None) -> Conn:
    """The connection named by --conn ("A:P>B:P", "A:P-B:P" or one endpoint "A:P"), or the largest."""
    if not conns:
        raise UsageError("no TCP connection in the capture")
    if not spec:
        return conns[0]
    from ustack.wire.ipv4 import ip_int

    ends = []
    for part in spec.replace(">", "-").split("-"):
        host, _, port = part.strip().rpartition(":")
        try:
            ends.append((ip_int(host), int(port)))
        except (ValueError, TypeError):
            raise UsageError(f"--conn: cannot read endpoint {part!r} (want ADDR:PORT)") from None
    for c in conns:
        if all(e in (c.a, c.b) for e in ends):
            return c
    raise UsageError(f"--conn {spec}: no such connection (try --list)")


def sender_of(spec: str | None) -> tuple[int, int] | None:
    """The data sender named by a directed --conn "A:P>B:P" (A:P), else None (the busier side)."""
    if not spec or ">" not in spec:
        return None
    from ustack.wire.ipv4 import ip_int

    host, _, port = spec.split(">")[0].strip().rpartition(":")
    return ip_int(host), int(port)


@dataclass
class SeqSeries:
    """What the time-sequence graph shows (relative sequence numbers, seconds from the start)."""
    conn: str
    sender: tuple[int, int]
    data: list[tuple[float, int, int]] = field(default_factory=list)  # (t, start, end) first sends
    retrans: list[tuple[float, int, int]] = field(default_factory=list)  # (t, start, end)
    acks: list[tuple[float, int]] = field(default_factory=list)  # (t, ack)
    window: list[tuple[float, int]] = field(default_factory=list)  # (t, ack + window)
    sacks: list[tuple[float, int, int]] = field(default_factory=list)  # (t, left, right)
    bytes_sent: int = 0
    faults: list[Any] = field(default_factory=list)  # plotfaults.FaultMark from the pcapng comments
    start: float = 0.0  # capture time of the connection's first segment
    isn: int = 0
    receiver: tuple[int, int] = (0, 0)

    @property
    def retransmissions(self) -> int:
        return len(self.retrans)


class _Unwrap:
    """Map 32-bit sequence numbers to integers relative to a base, unwrapping across 2**32."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.last = 0

    def __call__(self, seq: int) -> int:
        rel = (seq - self.base) & 0xFFFFFFFF
        # choose the representative of rel mod 2**32 nearest to the last value
        cand = rel + ((self.last - rel + (1 << 31)) >> 32 << 32)
        self.last = cand
        return cand


def seq_series(conn: Conn, sender: tuple[int, int] | None = None) -> SeqSeries:
    """The series of the graph for the data direction (the side that sent most, by default)."""
    from ustack.wire import tcp as tcpw

    if sender is None:
        sender = conn.a if conn.bytes_from(conn.a) >= conn.bytes_from(conn.b) else conn.b
    receiver = conn.b if sender == conn.a else conn.a
    out_segs = [s for s in conn.segs if (s.src, s.sport) == sender]
    in_segs = [s for s in conn.segs if (s.src, s.sport) == receiver]
    if not out_segs:
        raise UsageError("the chosen sender sent nothing")
    syn = next((s for s in out_segs if s.flags & tcpw.SYN), None)
    isn = syn.seq if syn is not None else out_segs[0].seq
    t0 = conn.segs[0].t
    # Window scaling applies only when both SYNs carried the option (RFC 7323 2.2).
    syn_in = next((s for s in in_segs if s.flags & tcpw.SYN), None)
    rcv_shift = 0
    if syn is not None and syn_in is not None and syn.wscale is not None and syn_in.wscale is not None:
        rcv_shift = syn_in.wscale

    series = SeqSeries(conn.name(sender), sender, start=t0, isn=isn, receiver=receiver)
    unwrap_out = _Unwrap(isn)
    unwrap_in = _Unwrap(isn)
    highest = None  # highest end sequence sent so far
    events = sorted([(s.t, 0, s) for s in out_segs] + [(s.t, 1, s) for s in in_segs],
                    key=lambda e: (e[0], e[1]))
    for t, side, s in events:
        t -= t0
        if side == 0:
            start = unwrap_out(s.seq) + (1 if s.flags & tcpw.SYN else 0)
            n = s.length + (1 if s.flags & tcpw.FIN else 0)
            if n == 0:
                continue
            end = start + n
            if highest is not None and start < highest:
                series.retrans.append((t, start, end))
            else:
                series.data.append((t, start, end))
                series.bytes_sent += s.length
            highest = end if highest is None else max(highest, end)
        elif s.flags & tcpw.ACK:
            ack = unwrap_in(s.ack)
            series.acks.append((t, ack))
            win = s.window if s.flags & tcpw.SYN else s.window << rcv_shift
            series.window.append((t, ack + win))
            for left, right in s.sack:
                series.sacks.append((t, unwrap_in(left), unwrap_in(right)))
    return series


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


def clip_seq(series: SeqSeries, t0: float | None, t1: float | None) -> SeqSeries:
    """Only what happened between t0 and t1 (seconds from the connection's first segment)."""
    lo = float("-inf") if t0 is None else t0
    hi = float("inf") if t1 is None else t1

    def keep(rows: list[Any]) -> list[Any]:
        return [r for r in rows if lo <= r[0] <= hi]
    return SeqSeries(series.conn, series.sender, keep(series.data), keep(series.retrans), keep(series.acks),
                     keep(series.window), keep(series.sacks), series.bytes_sent,
                     [m for m in series.faults if lo <= m.t <= hi], series.start, series.isn, series.receiver)


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


@dataclass
class CwndSeries:
    conn: str
    t: list[float] = field(default_factory=list)
    cwnd: list[float] = field(default_factory=list)
    ssthresh: list[tuple[float, float]] = field(default_factory=list)
    retrans: list[float] = field(default_factory=list)
    states: list[tuple[float, str]] = field(default_factory=list)


def cwnd_series(events: list[dict[str, Any]], conn: str | None) -> CwndSeries:
    with_cwnd = [e for e in events if e.get("ev") == "cwnd" and isinstance(e.get("cwnd"), int | float)]
    if not with_cwnd:
        raise UsageError("the trace file has no cwnd events (record one with --trace-file)")
    names: dict[str, int] = {}
    for e in with_cwnd:
        names[e["conn"]] = names.get(e["conn"], 0) + 1
    if conn:
        wanted = {part.strip() for part in conn.replace("-", ">").split(">") if part.strip()}
        matches = [n for n in names if wanted <= set(n.split(">"))]
        if not matches:
            raise UsageError(f"--conn {conn}: not in the trace (connections: {', '.join(sorted(names))})")
        name = matches[0]
    else:
        name = max(names, key=lambda n: names[n])
    s = CwndSeries(name)
    t0 = min(float(e["t"]) for e in events if e.get("conn") == name)  # the connection's first event
    for e in events:
        if e.get("conn") != name:
            continue
        t = float(e["t"]) - t0
        ev = e.get("ev")
        if ev == "cwnd" and isinstance(e.get("cwnd"), int | float):
            s.t.append(t)
            s.cwnd.append(float(e["cwnd"]))
            th = e.get("ssthresh")
            if isinstance(th, int | float) and th < 1 << 30:  # "infinite" ssthresh is not drawn
                s.ssthresh.append((t, float(th)))
            if e.get("event") in ("loss", "rto"):
                s.retrans.append(t)
        elif ev in ("retransmit", "rto"):
            s.retrans.append(t)
        elif ev == "state":
            s.states.append((t, str(e.get("new", e.get("to", "")))))
    return s


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


@dataclass
class FlightSeries:
    """Bytes in flight (highest sequence sent minus highest ACK) as seen where the capture was
    taken: at the sender, the window the congestion control actually used."""
    conn: str
    points: list[tuple[float, int]] = field(default_factory=list)
    retrans: list[float] = field(default_factory=list)


def flight_series(series: SeqSeries) -> FlightSeries:
    events = sorted([(t, 0, end) for t, _, end in series.data] + [(t, 1, a) for t, a in series.acks])
    out = FlightSeries(series.conn, retrans=[t for t, _, _ in series.retrans])
    top = ack = 0
    for t, kind, v in events:
        if kind == 0:
            top = max(top, v)
        else:
            ack = max(ack, v)
        out.points.append((t, max(0, top - ack)))
    return out


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


def plot_seq(pcap: str, output: str, conn: str | None = None, title: str | None = None) -> SeqSeries:
    """Draw the time-sequence graph of one connection of `pcap` into `output`; returns its data."""
    series = with_fault_marks(seq_series(pick_conn(analyze_pcap(pcap), conn), sender_of(conn)), pcap)
    draw_seq(series, output, title)
    return series


def with_fault_marks(series: SeqSeries, pcap: str) -> SeqSeries:
    """The series with the fault events of a pcapng capture (its comments) to mark."""
    from .plotfaults import fault_marks

    series.faults = fault_marks(pcap, series.start, series.sender, series.receiver, series.isn)
    return series


def plot_cwnd(trace: str, output: str, conn: str | None = None, title: str | None = None) -> CwndSeries:
    series = cwnd_series(_read_trace(trace), conn)
    draw_cwnd(series, output, title)
    return series


def _check_image_path(output: str) -> None:
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
        _check_image_path(args.output)
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
