"""Smoke test of tools/bench_hostile.py at tiny sizes: every scenario runs, its numbers exist and
the bounds it reports hold. No timing assertions (docs/robustness.md has the measured run)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ustack.core.udp import DATAGRAM_OVERHEAD

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "bench_hostile.py"


def _run(*args: str) -> dict:
    r = subprocess.run([sys.executable, str(TOOL), "--smoke", "--json", *args],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_hostile_benchmark_smoke():
    after = _run("--only", "after")["after"]
    for name in ("sack", "ooo", "frag", "tiny", "inorder"):
        res = after[name]
        assert res["points"] and all(math.isfinite(v) and v > 0 for v in res["points"].values()), res
        assert res["internal_errors"] == 0, res
    assert after["sack"]["board"] <= 8  # 1-byte SACK islands: sub-MSS blocks ignored
    frag = after["frag"]
    assert frag["mem_accounted_bytes"] <= frag["reassembly_mem_limit"]
    tiny = after["tiny"]
    assert tiny["tcp_queued_bytes"] == tiny["tcp_rcvbuf"]  # every byte kept...
    assert tiny["tcp_accounted"] < 2 * tiny["tcp_rcvbuf"]  # ...at about a byte per byte
    assert tiny["udp_queued"] == 2 * tiny["udp_rcvbuf"] // DATAGRAM_OVERHEAD


def test_hostile_benchmark_runs_a_baseline_from_git():
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout: the baseline comes from git archive")
    both = _run("--baseline", "HEAD", "--scenarios", "frag")
    before, after = both["before"]["frag"], both["after"]["frag"]
    assert before["points"] and after["points"]
    assert both["before"]["ustack"] != both["after"]["ustack"]  # the archive, not this tree
