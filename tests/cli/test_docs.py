"""The docs this side owns state numbers that come from the code; keep them honest."""

from __future__ import annotations

from pathlib import Path

from ustack.cli import labscenarios
from ustack.core.config import StackConfig
from ustack.tcp.config import TcpConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_differences_from_linux_match_the_defaults():
    doc = (DOCS / "differences-from-linux.md").read_text()
    tcp = TcpConfig()
    assert (tcp.syn_rto_s, tcp.syn_retries) == (3.0, 2)
    assert "initial RTO 3 s, 2 retries: a connect to a silent host fails after 21 s" in doc
    assert labscenarios.syn_schedule(tcp.syn_rto_s, tcp.syn_retries)[1] == 21.0
    assert tcp.data_retries == 5 and "| 5 (Windows `TcpMaxDataRetransmissions`)" in doc
    cfg = StackConfig(addr="198.18.0.2/24")
    assert f"{cfg.ephemeral_low}-{cfg.ephemeral_high} (IANA, Windows)" in doc
    assert (tcp.keepalive_idle_s, tcp.keepalive_interval_s, tcp.keepalive_probes) == (7200.0, 1.0, 10)
    assert "2 h idle, 1 s interval, 10 probes" in doc
    assert tcp.max_backlog == 200 and "clamped to 200" in doc
    assert tcp.initial_cwnd_segments == 10 and tcp.congestion_control == "cubic"
    assert (tcp.delack_s, tcp.delack_segments, tcp.ack_stretch_segments) == (0.040, 2, 32)
    assert "one ACK for up to 32 segments" in doc
    import inspect

    from ustack.winsock import Winsock

    params = inspect.signature(Winsock.__init__).parameters
    rst = (params["syn_rst_retries"].default, params["syn_rst_retry_s"].default)
    assert rst == (2, 1.0) and "retries twice, 1 s apart" in doc


def test_cli_doc_states_the_lab_syn_schedule():
    doc = (DOCS / "cli.md").read_text()
    assert labscenarios.syn_schedule_text() == "SYNs at 0 s, 0.25 s, 0.75 s; gives up at 1.75 s"
    assert "SYNs at 0, 0.25 and 0.75 s, giving up at 1.75 s" in doc
    for sc in labscenarios.SCENARIOS:
        assert f"| `{sc.id}` |" in doc, sc.id


def test_cli_doc_lists_every_trace_event_tcp_emits():
    """The trace-file format in cli.md names every `ev` kind and congestion `event` that the TCP
    connection code emits (read from its `_trace(...)` calls in connection.py and its mixins)."""
    import re

    tcp = DOCS.parent / "ustack" / "tcp"
    src = "".join((tcp / f"{name}.py").read_text()
                  for name in ("connection", "input", "output", "recovery", "timeouts"))
    kinds = set(re.findall(r'_trace\(\s*"(\w+)"', src))
    events = set(re.findall(r'_trace\(\s*"cwnd".*?event="(\w+)"', src))
    assert {"state", "cwnd"} <= kinds and {"loss", "rto"} <= events
    doc = (DOCS / "cli.md").read_text()
    fmt = doc[doc.index("## Trace file format"):]
    for name in kinds | events:
        assert f"`{name}`" in fmt, name


def test_architecture_names_every_package_and_only_real_paths():
    """docs/architecture.md's diagram and table cover each package of ustack (and drivers/, tools/,
    tests/), and every path the table names exists."""
    import re

    root = DOCS.parent
    doc = (DOCS / "architecture.md").read_text()
    packages = sorted(p.name for p in (root / "ustack").iterdir() if (p / "__init__.py").exists())
    assert {"wire", "core", "tcp", "runtime", "winsock", "cli"} <= set(packages)
    for name in packages:
        assert f"ustack.{name}" in doc and f"`ustack/{name}/`" in doc, name
    table = doc[doc.index("## Where things live"):]
    for path in re.findall(r"^\| `([^`]+)`", table, re.M):
        assert (root / path).exists(), path
    for d in ("drivers/", "tools/", "tests/"):
        assert f"| `{d}`" in table, d
    for test_dir in sorted(p.name for p in (root / "tests").iterdir() if p.is_dir() and p.name[0] != "_"
                           and any(p.glob("test_*.py"))):
        assert f"`{test_dir}`" in table, test_dir


def test_robustness_doc_has_every_section():
    """docs/robustness.md keeps its sections (each filled by the area that measures it)."""
    doc = (DOCS / "robustness.md").read_text()
    heads = [h.strip() for h in doc.splitlines() if h.startswith("## ")]
    assert heads == ["## SYN flood", "## Challenge ACKs", "## Memory and queues", "## Fuzzing", "## Soak",
                     "## Bad input at the command line"]
    assert "(to be measured)" not in doc  # every section is filled


def test_robustness_doc_names_real_tests_and_the_lab_limit():
    """The sections of docs/robustness.md name tests that exist, and the lab's limit it states."""
    import re

    from ustack.cli.lab import KEEP_RUNS

    doc = (DOCS / "robustness.md").read_text()
    tests_text = "\n".join(p.read_text() for p in (DOCS.parent / "tests").rglob("test_*.py"))
    for name in sorted(set(re.findall(r"(?<![/\w])(test_\w+)\b(?!\.py)", doc))):
        assert re.search(rf"def {name}\b", tests_text), name
    assert f"the lab keeps its last {KEEP_RUNS} runs" in doc
