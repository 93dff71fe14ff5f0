"""The README's "Run your program over a lossy link" session runs as written, in a private
network namespace (`unshare -n`), and does what the prose says: the program's digest is the
file's, the kernel's web server saw ustack's address, and the plot is drawn from the pcap (the
image under docs/img/ comes from this session)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import require_tool

pytestmark = pytest.mark.netns
ROOT = Path(__file__).resolve().parents[2]


def session() -> str:
    text = (ROOT / "README.md").read_text()
    part = text[text.index("## Run your program over a lossy link"):]
    m = re.search(r"```sh\n(.*?)```", part, re.S)
    assert m
    return m.group(1)


def test_readme_run_session(tmp_path):
    unshare = require_tool("unshare")
    script = session()
    assert "ustack run --tun ust0" in script and "--loss 3%" in script
    assert "docs/img/run-fetch-seq.png" in (ROOT / "README.md").read_text()
    assert (ROOT / "docs" / "img" / "run-fetch-seq.png").exists()
    bindir = os.path.dirname(sys.executable)
    assert shutil.which("ustack", path=bindir), "ustack is not installed next to this python"
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    out = subprocess.run([unshare, "-n", "bash", "-e", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if not ln.startswith("Serving HTTP")]  # http.server's
    digest = lines[0]
    assert re.fullmatch(r"[0-9a-f]{64}", digest), out.stdout
    assert lines[1] == f"{digest}  www/blob"
    assert lines[2].startswith("fetch-seq.png: 198.18.0.1:8000>198.18.0.2:")
    assert re.search(r'^198\.18\.0\.2 - - \[.*\] "GET /blob HTTP/1\.1" 200', out.stderr, re.M), out.stderr
    assert (tmp_path / "fetch-seq.png").stat().st_size > 10_000
