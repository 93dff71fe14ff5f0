"""What `ustack plot` draws, computed without matplotlib: the TCP segments and connections of
a pcap (`read_segments`, `analyze_pcap`, `pick_conn`), the time-sequence series of one
direction (`seq_series`, sequence numbers relative to the ISN and unwrapped across 2**32), bytes
in flight (`flight_series`) and the congestion window from a trace file's events (`cwnd_series`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .options import UsageError

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

def clip_seq(series: SeqSeries, t0: float | None, t1: float | None) -> SeqSeries:
    """Only what happened between t0 and t1 (seconds from the connection's first segment)."""
    lo = float("-inf") if t0 is None else t0
    hi = float("inf") if t1 is None else t1

    def keep(rows: list[Any]) -> list[Any]:
        return [r for r in rows if lo <= r[0] <= hi]
    return SeqSeries(series.conn, series.sender, keep(series.data), keep(series.retrans), keep(series.acks),
                     keep(series.window), keep(series.sacks), series.bytes_sent,
                     [m for m in series.faults if lo <= m.t <= hi], series.start, series.isn, series.receiver)

def with_fault_marks(series: SeqSeries, pcap: str) -> SeqSeries:
    """The series with the fault events of a pcapng capture (its comments) to mark."""
    from .plotfaults import fault_marks

    series.faults = fault_marks(pcap, series.start, series.sender, series.receiver, series.isn)
    return series

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
