"""The README's examples are real: each ```python block runs as written, and where a ```text
block follows it directly, that is exactly what it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ustack.cli import plot

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def readme_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(README.read_text())]


def python_examples() -> list[tuple[str, str | None]]:
    """(code, expected output or None) for each python block."""
    blocks = readme_blocks()
    out = []
    for i, (lang, body) in enumerate(blocks):
        if lang != "python":
            continue
        expected = None
        if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
            # the text block must follow the code block with only prose between them
            expected = blocks[i + 1][1]
        out.append((body, expected))
    return out


def run_example(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_readme_starts_with_the_two_commands():
    lang, first = readme_blocks()[0]
    assert lang == "sh"
    commands = [ln.split("#")[0].strip() for ln in first.splitlines() if ln.strip()]
    assert commands == ["make lab", "make test"]


def test_ci_runs_the_readme_test_command():
    """CI runs exactly the README's second command (`make test`), as its last step, with CI=true
    and nothing that could mask a failure."""
    ci = (README.parent / ".ci" / "run").read_text()
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    readme_test = [ln.split("#")[0].strip() for ln in readme_blocks()[0][1].splitlines() if ln.strip()][1]
    assert lines[-1] in (readme_test, f"exec {readme_test}")
    assert "set -euo pipefail" in lines and "export CI=true" in lines
    assert "|| true" not in ci
    make = (README.parent / "Makefile").read_text()
    assert re.search(r"^test: setup\n\t\$\(VPY\) -m pytest ", make, re.M)  # the whole suite (testpaths)


EXAMPLES = python_examples()


def test_readme_has_the_four_examples():
    assert len(EXAMPLES) == 4
    winsock, pysock, faults, scenario = (code for code, _ in EXAMPLES)
    assert 'faults="examples/burst-and-flap.toml"' in scenario
    assert "Winsock(" in winsock and "WSAGetLastError" in winsock and len(winsock.splitlines()) <= 24
    assert "ustack import socket" in pysock and len(pysock.splitlines()) <= 13
    assert "faults=" in faults and "Simulator" in faults


def test_winsock_example_prints_what_the_readme_says(tmp_path):
    code, expected = EXAMPLES[0]
    r = run_example(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert expected is not None
    assert r.stdout == expected


def test_socket_example(tmp_path):
    r = run_example(EXAMPLES[1][0], tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"b'hello' \('198\.18\.0\.2', (\d+)\)\n", r.stdout), r.stdout
    port = int(r.stdout.split(", ")[1].rstrip(")\n"))
    assert 49152 <= port <= 65535


def test_fault_example_and_its_pcap(tmp_path):
    code = EXAMPLES[2][0]
    r = run_example(code, tmp_path)
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"1 MiB through 5% loss in (\d+\.\d\d) s of virtual time, (\d+) fast retransmits, "
                     r"(\d+) timeouts\n", r.stdout)
    assert m, r.stdout  # the counters the example reads exist (None would print "None")
    assert float(m.group(1)) > 0 and int(m.group(2)) > 0
    other = tmp_path / "again"
    other.mkdir()
    again = run_example(code, other)  # the README says: same seed, same run, byte for byte
    assert again.stdout == r.stdout
    assert (other / "sim.pcap").read_bytes() == (tmp_path / "sim.pcap").read_bytes()
    series = plot.plot_seq(str(tmp_path / "sim.pcap"), str(tmp_path / "seq.png"))
    assert series.bytes_sent == 1 << 20 and series.retransmissions > 0


def test_scenario_example_prints_what_the_readme_says_and_its_plot_marks_the_faults(tmp_path):
    """The README's scenario (a burst of loss in slow start, a link flap): the TOML block is the
    file in examples/, the run prints what the README shows, and the capture's fault comments
    become marks on the time-sequence graph (the image under docs/img/ comes from this run)."""
    import shutil

    blocks = readme_blocks()
    toml = next(body for lang, body in blocks if lang == "toml")
    example = README.parent / "examples" / "burst-and-flap.toml"
    assert toml == example.read_text()
    assert (README.parent / "docs" / "img" / "faults-burst-flap.png").exists()
    assert "docs/img/faults-burst-flap.png" in README.read_text()
    shutil.copytree(example.parent, tmp_path / "examples")
    code, expected = EXAMPLES[3]
    r = run_example(code, tmp_path)
    assert r.returncode == 0, r.stderr
    # The numbers that depend on TCP's dynamics may move as TCP changes; the shape may not.
    line = (r"4,000,000 bytes in (\d+\.\d\d) s of virtual time: 5 segments dropped by the rule, (\d+) frames "
            r"lost while the link was down\n")
    assert re.fullmatch(line, expected), expected
    m = re.fullmatch(line, r.stdout)
    assert m, r.stdout
    assert float(m.group(1)) > 2.2 and int(m.group(2)) > 0  # it outlived the flap, which cost frames
    other = tmp_path / "again"
    shutil.copytree(example.parent, other / "examples")
    again = run_example(code, other)
    assert again.stdout == r.stdout
    assert (other / "flap.pcap").read_bytes() == (tmp_path / "flap.pcap").read_bytes()
    series = plot.plot_seq(str(tmp_path / "flap.pcap"), str(tmp_path / "flap.png"))
    kinds = [m.kind for m in series.faults]
    assert kinds.count("drop") == 5 and kinds.count("change") == 1 and kinds.count("restore") == 1
    drops = [m for m in series.faults if m.kind == "drop"]
    assert all(m.seq is not None and m.t < 0.5 for m in drops)  # in slow start, on the data
    change = next(m for m in series.faults if m.kind == "change")
    restore = next(m for m in series.faults if m.kind == "restore")
    assert restore.t - change.t == pytest.approx(1.0, abs=1e-5)
    # nothing crossed the link while it was down: no data from the host in that second
    assert not [t for t, _, _ in series.data + series.retrans if change.t + 1e-4 < t < restore.t - 1e-4
                and t not in {m.t for m in series.faults if m.kind == "down-drop"}]


@pytest.mark.parametrize("cmd", ["serve", "run", "connect", "plot", "lab", "bench"])
def test_cli_lines_in_the_readme_parse(cmd):
    """The command lines shown in the README are accepted by the parser."""
    from ustack.cli.main import build_parser

    text = README.read_text()
    lines = [ln for ln in re.findall(r"^ustack (?:[^\n]*\\\n)*[^\n]*", text, re.M) if ln.split()[1] == cmd]
    assert lines
    for ln in lines:
        # optional parts are shown in [brackets]: parse the line with all of them given
        argv = ln.replace("\\\n", " ").split("#")[0].replace("[", " ").replace("]", " ").split()[1:]
        build_parser().parse_args(argv)
