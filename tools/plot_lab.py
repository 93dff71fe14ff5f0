#!/usr/bin/env python3
"""Regenerate the plots of docs/benchmarks.md from a fresh `ustack lab` transfer.

Runs `ustack lab --only transfer` (as root; the lab makes its own private network namespace),
then draws with `ustack plot`: the upload's and the download's time-sequence graphs and the
upload's congestion window. Prints the transfer's numbers for the table.

    .venv/bin/python tools/plot_lab.py [--out docs/img] [--transfer-mb 20] [--transfer-loss 1%]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    ap.add_argument("--transfer-mb", default="20")
    ap.add_argument("--transfer-loss", default="1%")
    args = ap.parse_args()
    ustack = [sys.executable, "-m", "ustack"]
    with tempfile.TemporaryDirectory(prefix="ustack-plot-lab-") as tmp:
        r = subprocess.run([*ustack, "lab", "--only", "transfer", "--json", "--out", tmp, "--transfer-mb",
                            args.transfer_mb, "--transfer-loss", args.transfer_loss],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
            return 1
        report = json.loads(r.stdout)
        info = report["scenarios"][0]["info"]
        print(report["scenarios"][0]["got"])
        print(json.dumps(info, indent=2))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        mb, loss = args.transfer_mb, args.transfer_loss
        jobs = [
            [report["pcap"], "-o", str(out / "lab-upload-seq.png"), "--conn", "198.18.0.1:9",
             "--title", f"ustack -> Linux, {mb} MB at {loss} injected loss (ustack lab)"],
            [report["pcap"], "-o", str(out / "lab-download-seq.png"), "--conn", "198.18.0.1:19",
             "--title", f"Linux -> ustack, {mb} MB at {loss} injected loss (ustack lab)"],
            [report["trace_file"], "--kind", "cwnd", "--conn", "198.18.0.1:9", "-o",
             str(out / "lab-upload-cwnd.png")],
        ]
        for job in jobs:
            subprocess.run([*ustack, "plot", *job], check=True, timeout=300)
    return 0


if __name__ == "__main__":
    sys.exit(main())
