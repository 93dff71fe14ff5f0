"""`ustack plot`: the time-sequence analysis on a crafted capture, and the rendered PNG."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import dpkt
import pytest

from ustack.cli import plot
from ustack.wire import TcpOptions, TcpSegment
from ustack.wire import tcp as tcpw
from ustack.wire.ipv4 import Ipv4Packet, ip_int

A, B = ip_int("198.18.0.2"), ip_int("198.18.0.1")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pkt(src, dst, sport, dport, seq, ack, flags, payload=b"", window=1000, **opts):
    seg = TcpSegment(sport, dport, seq, ack, flags, window, payload, options=TcpOptions(**opts) if opts
                     else tcpw.NO_OPTIONS)
    return Ipv4Packet(src, dst, 6, seg.emit(src, dst)).emit()


def write_lossy_capture(path, wrap_isn=False):
    """A 10-segment transfer A->B where segment 3 is lost once: B answers with duplicate ACKs
    carrying SACK blocks, A retransmits it. Window scale 2 on both SYNs."""
    isn = 0xFFFFF000 if wrap_isn else 1000
    isn_b = 5000
    mss = 1000
    frames = []
    t = 0.0

    def add(frame):
        nonlocal t
        t += 0.001
        frames.append((t, frame))
    add(_pkt(A, B, 40000, 80, isn, 0, tcpw.SYN, mss=mss, wscale=2, sack_perm=True))
    add(_pkt(B, A, 80, 40000, isn_b, isn + 1, tcpw.SYN | tcpw.ACK, mss=mss, wscale=2, sack_perm=True))
    add(_pkt(A, B, 40000, 80, isn + 1, isn_b + 1, tcpw.ACK))
    base = (isn + 1) & 0xFFFFFFFF
    for i in range(10):
        seq = (base + i * mss) & 0xFFFFFFFF
        if i != 3:
            add(_pkt(A, B, 40000, 80, seq, isn_b + 1, tcpw.ACK, b"x" * mss))
        if i < 3:
            add(_pkt(B, A, 80, 40000, isn_b + 1, (seq + mss) & 0xFFFFFFFF, tcpw.ACK, window=2000))
        elif i > 3:
            left = (base + 4 * mss) & 0xFFFFFFFF
            right = (seq + mss) & 0xFFFFFFFF
            add(_pkt(B, A, 80, 40000, isn_b + 1, (base + 3 * mss) & 0xFFFFFFFF, tcpw.ACK, window=2000,
                     sack=((left, right),)))
    add(_pkt(A, B, 40000, 80, (base + 3 * mss) & 0xFFFFFFFF, isn_b + 1, tcpw.ACK, b"x" * mss))
    add(_pkt(B, A, 80, 40000, isn_b + 1, (base + 10 * mss) & 0xFFFFFFFF, tcpw.ACK, window=2000))
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=101)
        for ts, fr in frames:
            w.writepkt(fr, ts=1700000000 + ts)


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "isn-wraps"])
def test_seq_series_marks_retransmission_and_sack(tmp_path, wrap):
    cap = tmp_path / "lossy.pcap"
    write_lossy_capture(cap, wrap_isn=wrap)
    conns = plot.analyze_pcap(str(cap))
    assert len(conns) == 1
    s = plot.seq_series(conns[0])
    assert s.conn == "198.18.0.2:40000>198.18.0.1:80"
    assert s.retransmissions == 1
    assert s.retrans[0][1:] == (3001, 4001)  # relative to the ISN (data starts at 1), across 2**32
    assert s.bytes_sent == 9000  # first transmissions only
    assert s.acks[-1][1] == 10001  # the final ACK covers all 10 segments
    # window line: ack + (2000 << 2) once both SYNs agreed on scaling
    t_last, w_last = s.window[-1]
    assert w_last == s.acks[-1][1] + 8000
    assert len(s.sacks) == 6 and s.sacks[-1][1:] == (4001, 10001)


def test_plot_seq_writes_png(tmp_path):
    cap = tmp_path / "lossy.pcap"
    out = tmp_path / "seq.png"
    write_lossy_capture(cap)
    s = plot.plot_seq(str(cap), str(out))
    assert s.retransmissions == 1
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])
    assert width > 500 and height > 300


def test_plot_cli_list_and_conn(tmp_path):
    cap = tmp_path / "lossy.pcap"
    write_lossy_capture(cap)
    r = subprocess.run([sys.executable, "-m", "ustack", "plot", str(cap), "-o", str(tmp_path / "x.png"),
                        "--list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "198.18.0.2:40000>198.18.0.1:80" in r.stdout
    r = subprocess.run([sys.executable, "-m", "ustack", "plot", str(cap), "-o", str(tmp_path / "x.png"),
                        "--conn", "198.18.0.9:1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_plot_cwnd_from_trace(tmp_path):
    trace = tmp_path / "t.jsonl"
    conn = "198.18.0.2:49152>198.18.0.1:7"
    lines = [{"t": 0.0, "conn": conn, "ev": "state", "from": "SYN_SENT", "to": "ESTABLISHED"}]
    cw = 14600
    for i in range(50):
        cw = cw // 2 if i == 30 else cw + 1460
        lines.append({"t": i * 0.01, "conn": conn, "ev": "cwnd", "cwnd": cw, "ssthresh": 60000})
    lines.insert(31, {"t": 0.3, "conn": conn, "ev": "retransmit", "seq": 1, "len": 1460, "why": "dupack"})
    trace.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    out = tmp_path / "cwnd.png"
    s = plot.plot_cwnd(str(trace), str(out))
    assert len(s.cwnd) == 50 and s.retrans == [0.3] and max(s.cwnd) > min(s.cwnd)
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_time_window_zooms(tmp_path):
    cap = tmp_path / "lossy.pcap"
    write_lossy_capture(cap)
    full = plot.seq_series(plot.analyze_pcap(str(cap))[0])
    part = plot.clip_seq(full, 0.0105, 0.0215)
    assert part.retrans == full.retrans  # the retransmission at 0.021 s is inside
    assert 0 < len(part.data) < len(full.data)
    assert all(0.0105 <= t <= 0.0215 for t, _ in part.acks)
    r = subprocess.run([sys.executable, "-m", "ustack", "plot", str(cap), "-o", str(tmp_path / "z.png"),
                        "--time", "0.0105:0.0215"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "z.png").read_bytes()[:8] == PNG_MAGIC
    for bad in ("2:1", "x:y", "5"):
        r = subprocess.run([sys.executable, "-m", "ustack", "plot", str(cap), "-o", str(tmp_path / "z.png"),
                            "--time", bad], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)


def test_directed_conn_picks_the_sender(tmp_path):
    """--conn B>A draws the direction B sends in (here: only ACKs, so no data but the ACK line)."""
    cap = tmp_path / "lossy.pcap"
    write_lossy_capture(cap)
    c = plot.pick_conn(plot.analyze_pcap(str(cap)), "198.18.0.1:80>198.18.0.2:40000")
    s = plot.seq_series(c, plot.sender_of("198.18.0.1:80>198.18.0.2:40000"))
    assert s.conn == "198.18.0.1:80>198.18.0.2:40000"
    assert s.bytes_sent == 0 and s.retransmissions == 0
    assert s.acks[-1][1] == 1  # A acknowledged only B's SYN
    assert plot.sender_of("198.18.0.1:80-198.18.0.2:40000") is None


def test_plot_bad_inputs_are_one_line_usage_errors(tmp_path):
    cap = tmp_path / "lossy.pcap"
    write_lossy_capture(cap)
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"t": 0, "conn": "a", "ev": "cwnd", "cwnd": 1, "ssthresh": 2}\n')
    cases = [
        ([str(cap), "--kind", "cwnd", "-o", str(tmp_path / "a.png")], "not a JSON-lines trace file"),
        ([str(trace), "-o", str(tmp_path / "a.png")], "not a pcap or pcapng file (unknown magic number) "
                                                     "(a JSON-lines trace? draw it with --kind cwnd)"),
        ([str(cap), "-o", str(tmp_path / "no" / "such" / "a.png")], "no such directory"),
        ([str(cap), "-o", str(tmp_path / "a.bmpx")], "cannot write .bmpx images"),
        ([str(trace), "--kind", "cwnd", "--time", "0:1", "-o", str(tmp_path / "a.png")], "--time"),
        ([str(cap)], "-o FILE.png"),
    ]
    for argv, words in cases:
        r = subprocess.run([sys.executable, "-m", "ustack", "plot", *argv], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stderr.startswith("ustack plot: error: "), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert words in r.stderr, (argv, r.stderr)
    assert not list(tmp_path.glob("a.*"))  # nothing written


def test_output_closed_by_its_reader_ends_quietly_with_141():
    """`ustack ... | head`: when the reader goes away, no traceback, exit status 141."""
    code = ("import sys\n"
            "import ustack.cli.plot as P\n"
            "from ustack.cli.main import main\n"
            "P.run = lambda args: [print('198.18.0.2:1>198.18.0.1:2 ' * 4) for _ in range(10 ** 6)]\n"
            "sys.exit(main(['plot', 'x.pcap', '--list']))\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().startswith(b"198.18.0.2:1>")
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 141 and b"Traceback" not in err and err.strip() == b"", err
