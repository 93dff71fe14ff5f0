"""Bad command lines: one line on stderr, exit status 2, nothing opened."""

from __future__ import annotations

import pytest

from .helpers import ustack

BAD = [
    [],
    ["bogus"],
    ["serve"],
    ["serve", "--tun", "ust0"],
    ["serve", "--tun", "ust0", "--tap", "ust1", "--addr", "198.18.0.2/24"],
    ["serve", "--tun", "ust0", "--addr", "not-an-address"],
    ["serve", "--tun", "ust0", "--addr", "198.18.0.2/24", "--udp-echo", "70000"],
    ["serve", "--tun", "ust0", "--addr", "198.18.0.2/24", "--echo", "0"],
    ["serve", "--tun", "ust0", "--addr", "198.18.0.2/24", "--mtu", "100"],
    ["serve", "--tun", "ust0", "--addr", "198.18.0.2/24", "--loss", "1.5"],
    ["serve", "--tun", "ust0", "--addr", "198.18.0.2/24", "--delay", "3 parsecs"],
    ["serve", "--tun", "ust0", "--addr", "198.18.0.2/24", "--echo", "7", "--http", "7"],
    ["serve", "--tun", "a-name-far-too-long-for-linux", "--addr", "198.18.0.2/24"],
    ["serve", "--tun", "ust0", "--addr", "10.0.0.2/24"],
    ["connect"],
    ["connect", "198.18.0.1", "80"],
    ["connect", "198.18.0.1", "http", "--tun", "ust0", "--addr", "198.18.0.2/24"],
    ["connect", "198.18.0.1", "80", "--tun", "ust0", "--addr", "198.18.0.2/24", "--nonblocking", "poll"],
    ["connect", "198.18.0.1", "80", "--tun", "ust0", "--addr", "198.18.0.2/24", "--bind", "nonsense"],
    ["serve", "--tun", "ust0", "--addr", "198.18.0.2/24", "--bogus"],
    ["serve", "--tun", "ust0", "--addr", "198.18.0.2/24", "--pcap", "/nonexistent-dir/x.pcap"],
    ["connect", "198.18.0.1", "80", "--tun", "ust0", "--addr", "198.18.0.2/24", "--trace-file",
     "/nonexistent-dir/t"],
    ["connect", "198.18.0.1", "80", "--tun", "ust0", "--addr", "198.18.0.2/24", "--pcap", "/"],
    ["lab", "--mtu", "10"],
    ["lab", "--loss", "-1"],
    ["lab", "--pcap", "/nonexistent-dir/x.pcap"],
    ["lab", "--trace-file", "/"],
    ["lab", "--out", "/proc/no/such/dir"],
    ["lab", "--only", "no-such-scenario"],
    ["plot"],
    ["plot", "/nonexistent.pcap", "-o", "x.png"],
    ["plot", "x.pcap", "-o", "x.png", "--kind", "bananas"],
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a) or "(nothing)")
def test_bad_arguments_exit_2_with_one_line(argv, tmp_path):
    r = ustack(*argv, cwd=tmp_path, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "error" in lines[0]
    assert r.stdout == ""
    if argv and argv[0] in ("serve", "connect", "lab", "plot"):
        assert lines[0].startswith(f"ustack {argv[0]}: error: "), lines[0]  # names the subcommand


def test_help_and_version():
    r = ustack("--help")
    assert r.returncode == 0 and "serve" in r.stdout and "lab" in r.stdout
    r = ustack("--version")
    assert r.returncode == 0 and r.stdout.startswith("ustack ")
    for cmd in ("serve", "connect", "lab", "plot"):
        r = ustack(cmd, "--help")
        assert r.returncode == 0 and "usage: ustack " + cmd in r.stdout


def test_cli_reference_documents_every_option():
    """docs/cli.md names every option of every subcommand (the docs match argparse)."""
    import argparse
    from pathlib import Path

    from ustack.cli.main import build_parser

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, p in sub.choices.items():
        assert f"## ustack {name}" in doc
        for action in p._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt != "--help" and f"`{opt}" not in doc:
                    missing.append(f"{name} {opt}")
    assert not missing, missing


def test_cli_reference_names_no_option_that_does_not_exist():
    """The other way round: every `--option` docs/cli.md and the README show is one argparse
    knows (in some subcommand), so no doc line describes an option that was renamed or removed."""
    import argparse
    import re
    from pathlib import Path

    from ustack.cli.main import build_parser

    root = Path(__file__).resolve().parents[2]
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    known = {"--help", "--version"} | {opt for p in sub.choices.values() for a in p._actions
                                       for opt in a.option_strings}
    for page in (root / "docs" / "cli.md", root / "README.md"):
        text = page.read_text()
        # options in code spans and in the command lines of code blocks (pip/make lines aside)
        shown = set(re.findall(r"`(--[a-z][a-z_-]*)", text))
        for line in re.findall(r"^\s*(?:ustack|\[).*$", text, re.M):
            shown |= set(re.findall(r"(?<![\w-])(--[a-z][a-z_-]*)", line))
        unknown = sorted(shown - known)
        assert not unknown, (page.name, unknown)
