"""tools/bench_ipv6.py still runs (no timing asserted: speed targets live in the benchmark)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench_ipv6.py"


def test_bench_ipv6_quick_runs(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(BENCH), "--quick"])
    try:
        runpy.run_path(str(BENCH), run_name="__main__")
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert "echo request answered" in out and "UDP datagram delivered" in out and "idle poll" in out
