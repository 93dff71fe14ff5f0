"""docs/winsock-fidelity.md is generated from a real run's JUnit report and must be up to date."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_fidelity", ROOT / "tools" / "gen_fidelity.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_fidelity", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_fidelity_doc_is_up_to_date() -> None:
    """The committed docs/winsock-fidelity.md equals what tools/gen_fidelity.py renders from the
    kept report (docs/data/winsock-fidelity-junit.xml)."""
    gen = _generator()
    committed = (ROOT / "docs" / "winsock-fidelity.md").read_text()
    assert committed == gen.render(), "run: .venv/bin/python tools/gen_fidelity.py --run"


def test_kept_report_ran_every_item_test() -> None:
    """Every test_item test in tests/winsock has an outcome in the kept report: the table was
    built from a run of the current tests, not from their names."""
    gen = _generator()
    run = gen.read_junit(gen.REPORT)
    missing = [t.name for t in gen.collect() if (t.file, t.name) not in run.outcomes]
    assert missing == [], "run: .venv/bin/python tools/gen_fidelity.py --run"


def test_every_reference_item_has_a_test() -> None:
    """Every numbered item of the reference (and every code of the connect page) has at least one test."""
    gen = _generator()
    tests = gen.collect()
    items = {t.item for t in tests}
    wanted = {n for _, section in gen.SECTIONS for n, _ in section}
    assert wanted - items == set()
    names = [t.name for t in tests if t.item == 0]
    for code in gen.CONNECT_ERRORS:
        prefix = f"test_item_0_connect_error_{code}"
        assert any(n == prefix or n.startswith(prefix + "_") for n in names), code
    assert all(t.doc for t in tests), [t.name for t in tests if not t.doc]


CRAFTED = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="7"
    timestamp="2026-01-02T03:04:05" hostname="ci">
 <testcase classname="tests.winsock.test_ws_x" name="test_item_12_ok" time="0.1"/>
 <testcase classname="tests.winsock.test_ws_x" name="test_item_12_broken" time="0.1">
  <failure message="AssertionError: WSAGetLastError() = 10048, expected 10013">trace</failure>
 </testcase>
 <testcase classname="tests.winsock.test_ws_x" name="test_item_13_tun" time="0.0">
  <skipped type="pytest.skip" message="needs root (CAP_NET_ADMIN) for a network namespace">s</skipped>
 </testcase>
 <testcase classname="tests.winsock.test_ws_x" name="test_item_14_gap" time="0.0">
  <skipped type="pytest.xfail" message="the stack has no urgent data"/>
 </testcase>
 <testcase classname="tests.winsock.test_ws_x" name="test_item_15_param[a]" time="0.0"/>
 <testcase classname="tests.winsock.test_ws_x" name="test_item_15_param[b]" time="0.0">
  <error message="fixture failed">boom</error>
 </testcase>
 <testcase classname="tests.other.test_y" name="test_item_12_elsewhere" time="0.0"/>
</testsuite></testsuites>
"""


def test_crafted_report_shows_failed_and_skipped(tmp_path) -> None:
    """A crafted JUnit report: a failing test shows as failed with its message, a skipped one as
    skipped with pytest's reason (e.g. no root for a TUN test), an xfail as a known gap, a
    parametrized test by its worst case, a test absent from the report as not run; the item
    summary counts an item as passed only when its tests passed; tests outside tests/winsock
    are ignored. The same report through `main --junit` writes the page and keeps the report."""
    gen = _generator()
    report = tmp_path / "junit.xml"
    report.write_text(CRAFTED)
    run = gen.read_junit(report)
    assert run.timestamp == "2026-01-02T03:04:05"
    status = {name: (o.status, o.detail) for (_f, name), o in run.outcomes.items()}
    assert status == {
        "test_item_12_ok": ("passed", ""),
        "test_item_12_broken": ("failed", "AssertionError: WSAGetLastError() = 10048, expected 10013"),
        "test_item_13_tun": ("skipped", "needs root (CAP_NET_ADMIN) for a network namespace"),
        "test_item_14_gap": ("known gap", "the stack has no urgent data"),
        "test_item_15_param": ("failed", "fixture failed"),
    }
    tests = [gen.TestInfo("test_ws_x.py", name, int(name.split("_")[2]), f"doc of {name}",
                          name.endswith("tun"))
             for name in ("test_item_12_ok", "test_item_12_broken", "test_item_13_tun",
                          "test_item_14_gap", "test_item_15_param", "test_item_11_never_ran")]
    page = gen.render(tests, run)
    rows = {line.split("`")[1]: line for line in page.splitlines()
            if line.startswith("|") and "`test_item_1" in line}
    assert "| passed |" in rows["test_item_12_ok"]
    assert ("| **failed**: AssertionError: WSAGetLastError() = 10048, expected 10013 |"
            in rows["test_item_12_broken"])
    assert ("| skipped (Linux kernel over TUN, netns): needs root (CAP_NET_ADMIN) for a network namespace |"
            in rows["test_item_13_tun"])
    assert "| known gap: the stack has no urgent data |" in rows["test_item_14_gap"]
    assert "| **failed**: fixture failed |" in rows["test_item_15_param"]
    assert "| **not run** |" in rows["test_item_11_never_ran"]
    assert "6 item tests; passed 1, failed 2, skipped 1, known gap 1, not run 1." in page
    summary = next(line for line in page.splitlines() if line.startswith("Items whose tests passed"))
    total = len({n for _, section in gen.SECTIONS for n, _ in section})
    assert summary.startswith(f"Items whose tests passed: **0 of {total}**")
    assert "; failed: 12, 15;" in summary and "; not run: 11;" in summary and "; skipped: 13, 14;" in summary

    out, kept = tmp_path / "page.md", tmp_path / "kept.xml"
    assert gen.main(["--junit", str(report), "--output", str(out), "--report", str(kept)]) == 0
    again = gen.read_junit(kept)
    assert again.outcomes == run.outcomes and again.timestamp == run.timestamp
    assert "| **not run** |" in out.read_text()  # the real tests are not in the crafted report
    assert gen.main(["--check", "--output", str(out), "--report", str(kept)]) == 0
    out.write_text(out.read_text().replace("**not run**", "passed"))
    assert gen.main(["--check", "--output", str(out), "--report", str(kept)]) == 1
