"""Smoke run of tools/bench_faults.py: every configuration runs, the baseline loads from git,
and the ratios are the per-frame costs over the bare port's (the real run is in faults.md)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_faults_smoke():
    baseline = ["--baseline", "HEAD"] if (ROOT / ".git").exists() else []
    argv = [sys.executable, str(ROOT / "tools" / "bench_faults.py"), "--frames", "3000", "--repeat", "1",
            "--json", *baseline]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    want = {"bare", "noop", "loss", "gilbert", "rules", "schedule"}
    if baseline:
        want |= {"base-noop", "base-loss"}
    assert set(out) == want
    bare = out["bare"]["us_per_frame"]
    for k, v in out.items():
        assert v["us_per_frame"] > 0
        assert abs(v["ratio_to_bare"] - v["us_per_frame"] / bare) < 0.02, k
