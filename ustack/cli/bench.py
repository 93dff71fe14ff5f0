"""`ustack bench`: tools/bench.py of a source checkout (rx, tx, latency, connection and Simulator
benchmarks side by side, docs/benchmarks.md). The benchmarks live in tools/, next to the package,
not in it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .options import CommandError


def tool_path() -> Path:
    return Path(__file__).resolve().parents[2] / "tools" / "bench.py"


def run(args: argparse.Namespace) -> int:
    tool = tool_path()
    if not tool.exists():
        raise CommandError(f"needs a source checkout of ustack ({tool} not found)")
    cmd = [sys.executable, str(tool)]
    if args.only:
        cmd += ["--only", args.only]
    if args.smoke:
        cmd.append("--smoke")
    if args.json:
        cmd += ["--json", args.json]
    return subprocess.run(cmd, check=False).returncode
