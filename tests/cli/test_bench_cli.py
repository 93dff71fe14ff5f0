"""`ustack bench` without a source checkout: one line naming what is missing, exit status 1."""

from __future__ import annotations

from ustack.cli import bench as bench_cli
from ustack.cli.main import main


def test_bench_without_tools_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench_cli, "tool_path", lambda: tmp_path / "tools" / "bench.py")
    assert main(["bench", "--smoke"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a source checkout" in err[0] and "bench.py" in err[0]


def test_bench_finds_the_checkouts_tool():
    assert bench_cli.tool_path().is_file()
