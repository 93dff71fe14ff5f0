"""`ustack plot --kind flight` (bytes in flight from a pcap) and `--vs` (two captures side by
side, e.g. ustack and Linux on the same path)."""

from __future__ import annotations

import subprocess
import sys

from ustack.cli import plot

from .test_plot import PNG_MAGIC, write_lossy_capture


def test_flight_series_follows_data_and_acks(tmp_path):
    cap = tmp_path / "lossy.pcap"
    write_lossy_capture(cap)
    seq = plot.seq_series(plot.analyze_pcap(str(cap))[0])
    fl = plot.flight_series(seq)
    values = [v for _, v in fl.points]
    assert values[-1] == 0  # the final ACK covers everything
    assert max(values) == 7000  # segment 3 lost: 3001..10001 outstanding before its retransmission
    assert all(v >= 0 for v in values)
    assert fl.retrans == [seq.retrans[0][0]]


def test_plot_vs_draws_two_panels_and_flight(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    write_lossy_capture(a)
    write_lossy_capture(b, wrap_isn=True)
    for kind in ("seq", "flight"):
        out = tmp_path / f"{kind}.png"
        r = subprocess.run([sys.executable, "-m", "ustack", "plot", str(a), "--vs", str(b), "--kind", kind,
                            "--labels", "ustack,Linux", "-o", str(out)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes().startswith(PNG_MAGIC)
        assert f"{kind} of ustack | Linux" in r.stdout
    r = subprocess.run([sys.executable, "-m", "ustack", "plot", str(a), "--vs", str(b), "--labels", "one",
                        "-o", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--labels: want 2" in r.stderr
