"""Smoke test of tools/bench.py (and `ustack bench`): rx, tx and connections on tiny cases, each
in its own private namespace. No timing assertions: every run must complete and be correct
(all bytes delivered; every connection opened, echoed, and echoed again)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import require_netns

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench.py"


@pytest.mark.netns
def test_bench_smoke_all_runs_complete(tmp_path):
    require_netns()
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "ustack", "bench", "--smoke", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    rep = json.loads(out.read_text())
    res = rep["results"]
    assert set(res) == {"rx", "tx", "conns"} and not any("error" in x for x in res.values()), res
    for name, role in (("rx", "receiver"), ("tx", "sender")):
        runs = res[name]["result"]["runs"]
        assert {x[role] for x in runs} == {"bare", "ustack"}, runs
        for x in runs:
            assert "error" not in x and x.get("complete", True) and x["bytes"] > 0, x
    conns = res["conns"]["result"]
    serve = conns["serve"][0]
    assert serve["rate"]["done"] > 0 and serve["rate"]["failed"] == 0
    assert serve["latency"]["round_trips"] == conns["latency_kernel_loopback"]["round_trips"] == 200
    assert 0 < serve["latency"]["p50_us"] <= serve["latency"]["p99_us"]
    hold = serve["hold"]
    assert hold["opened_and_echoed"] == hold["still_echoing"] == hold["asked"] == 200, hold
    assert hold["serve_threads"] <= 4  # no thread per connection
    sim = conns["sim"]
    assert sim["established"] == sim["echoed"] == sim["accepted"] == 200 and sim["internal_errors"] == 0
    assert 0 < conns["sim_mem"]["bytes_per_conn_both_ends"]
    assert "ustack benchmarks" in r.stdout and "connect+echo+close" in r.stdout
