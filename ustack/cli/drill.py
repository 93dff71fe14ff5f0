"""`ustack drill`: run packetdrill scripts against ustack in the Simulator (docs/drill.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .options import UsageError


def register(sub: Any) -> None:
    d = sub.add_parser("drill", help="run packetdrill scripts (.pkt) against ustack in virtual time",
                       description="Run scripts in google/packetdrill's language against ustack in the "
                                   "Simulator (virtual time). Prints PASS/FAIL/SKIP per script and a "
                                   "summary; exits 0 when no script failed.")
    d.add_argument("paths", nargs="+", metavar="PATH", help=".pkt files or folders (searched recursively)")
    d.add_argument("--profile", choices=("linux", "default"), default="linux",
                   help="TCP profile: linux (what the scripts assume of Linux 6.x, the default) or "
                        "default (ustack's own Windows-like behaviour)")
    d.add_argument("--tolerance_usecs", "--tolerance-usecs", type=int, metavar="N", dest="tolerance_usecs",
                   help="timing tolerance in microseconds (default: max(4000, 12.5%% of the step), or "
                        "the script's own --tolerance_usecs)")
    d.add_argument("--wall-limit", type=float, default=30.0, metavar="S",
                   help="wall-clock seconds one script may take (default 30)")
    d.set_defaults(run="ustack.cli.drill:run")


def collect(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(q for q in path.rglob("*.pkt") if q.is_file())
        elif path.is_file():
            out.append(path)
        else:
            raise UsageError(f"no such file or folder: {p}")
    if not out:
        raise UsageError(f"no .pkt scripts in {' '.join(paths)}")
    return out


def run_one(path: Path, profile: str, tolerance_s: float | None, wall_limit_s: float) -> Any:
    from ustack.drill import DrillError, Outcome, Unsupported, parse, run_script

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return Outcome("FAIL", f"cannot read: {e.strerror}")
    try:
        script = parse(text, str(path))
    except Unsupported as e:
        return Outcome("SKIP", e.message, e.line)
    except DrillError as e:
        return Outcome("FAIL", e.message, e.line)
    except Exception as e:  # noqa: BLE001 - a parser bug: one line and counted, not a traceback
        from ustack.drill import runner

        runner.internal_errors += 1
        return Outcome("FAIL", f"drill internal error: {type(e).__name__}: {e}")
    return run_script(script, profile, tolerance_s, wall_limit_s=wall_limit_s)


def line_for(path: Path, outcome: Any) -> str:
    if outcome.status == "PASS":
        return f"PASS {path}"
    where = f" (line {outcome.line})" if outcome.line else ""
    if outcome.status == "SKIP":
        return f"SKIP {path}: {outcome.reason}{where}"
    return f"FAIL {path}: {outcome.reason}{where}"


def run(args: argparse.Namespace) -> int:
    if args.tolerance_usecs is not None and args.tolerance_usecs < 0:
        raise UsageError("--tolerance_usecs must be >= 0")
    if args.wall_limit <= 0:
        raise UsageError("--wall-limit must be > 0")
    scripts = collect(args.paths)
    tolerance_s = None if args.tolerance_usecs is None else args.tolerance_usecs / 1e6
    tty = sys.stdout.isatty()
    console = None
    if tty:
        from rich.console import Console

        console = Console(highlight=False)
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for path in scripts:
        outcome = run_one(path, args.profile, tolerance_s, args.wall_limit)
        counts[outcome.status] += 1
        text = line_for(path, outcome)
        if console is not None:
            style = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow"}[outcome.status]
            console.print(text, style=style, markup=False, soft_wrap=True)
        else:
            print(text, flush=True)
    summary = (f"{len(scripts)} scripts: {counts['PASS']} passed, {counts['FAIL']} failed, "
               f"{counts['SKIP']} skipped (profile {args.profile})")
    if console is not None:
        console.print(summary, style="bold", markup=False, soft_wrap=True)
    else:
        print(summary)
    return 1 if counts["FAIL"] else 0
