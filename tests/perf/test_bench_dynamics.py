"""Smoke test of tools/bench_dynamics.py: the whole machinery (relay between two private
namespaces, the Linux server, the Simulator pair, ustack on a TUN) on a tiny case. No timing
assertions: the numbers must exist and be sane, every run must complete."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import require_netns

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_dynamics.py"


@pytest.mark.netns
def test_dynamics_benchmark_smoke(tmp_path):
    require_netns()
    out = tmp_path / "dyn.json"
    cap = tmp_path / "cap"
    r = subprocess.run([sys.executable, str(TOOL), "--smoke", "--json", str(out), "--capture", str(cap),
                        "--capture-case", "64K@20"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(out.read_text())
    results = rep["results"]
    assert {x["side"] for x in results} == {"linux", "sim", "ustack-tun"}
    rtt = 0.020
    for x in results:
        assert x["failures"] == 0, x
        assert len(x["times"]) == (2 if x["case"]["loss"] else 1), x
        for t in x["times"]:
            # handshake + data + answer: at least two round trips; a run is bounded by 120 s
            assert math.isfinite(t) and 2 * rtt <= t < 120, x
    rows = {row["case"]: row for row in rep["rows"]}
    assert set(rows) == {"64 KB, RTT 20 ms", "64 KB, RTT 20 ms, 1% loss"}
    for row in rows.values():
        assert row["sim_ratio"] > 0 and row["ustack-tun_ratio"] > 0
    for side in ("sim", "linux"):  # captures for `ustack plot` (pcap and cwnd trace)
        got = rep["captures"]["64k-20ms"][side]
        assert Path(got["pcap"]).stat().st_size > 24 * 50
        assert Path(got["trace"]).read_text().count('"ev":"cwnd"') >= 2
    assert "sim/Linux" in r.stdout
