"""Smoke test of tools/bench.py (and `ustack bench`): rx, tx, latency, connections and Simulator
throughput on tiny cases, those that send packets each in its own private namespace. No timing
assertions: every run must complete and be correct (all bytes delivered and, in the Simulator,
hashed equal; every round trip answered; every connection opened, echoed, and echoed again),
with the table, the JSON and the plot written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import require_netns

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench.py"


@pytest.mark.netns
def test_bench_smoke_all_runs_complete(tmp_path):
    require_netns()
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "ustack", "bench", "--smoke", "--json", str(out)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "220"})
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    rep = json.loads(out.read_text())
    res = rep["results"]
    assert set(res) == {"rx", "tx", "latency", "conns", "sim", "pytcp"}, res
    assert not any("error" in x for x in res.values()), res
    for name, role in (("rx", "receiver"), ("tx", "sender")):
        runs = res[name]["result"]["runs"]
        assert {x[role] for x in runs} == {"bare", "ustack"}, runs
        for x in runs:
            assert "error" not in x and x.get("complete", True) and x["bytes"] > 0, x
    rx = res["rx"]["result"]  # every offload mode against the same bare sink
    assert {x.get("offload") for x in rx["runs"] if x["receiver"] == "ustack"} == {"auto", "csum", "none"}
    assert set(rx["by_offload"]) == {"auto", "csum", "none"}, rx["by_offload"]
    tx = res["tx"]["result"]  # likewise for the sender; auto sends super-segments (TSO)
    assert set(tx["by_offload"]) == {"auto", "csum", "none"}, tx["by_offload"]
    auto = [x for x in tx["runs"] if x.get("offload") == "auto"]
    assert auto and all(x["counters"].get("ipv4.gso_out", 0) > 0 for x in auto), auto
    assert all(x["counters"].get("ipv4.gso_out", 0) == 0 for x in tx["runs"] if x.get("offload") == "csum")
    tx_rows = [row for row in rep["rows"] if row[0].startswith("send MB/s")]
    assert len(tx_rows) == 3 and "(target >= 1.0)" in next(r[3] for r in tx_rows if "offload auto" in r[0])
    conns = res["conns"]["result"]
    serve = conns["serve"][0]
    assert serve["rate"]["done"] > 0 and serve["rate"]["failed"] == 0
    assert "latency" not in serve and "latency_kernel_loopback" not in conns  # bench_latency's entry
    lat = res["latency"]["result"]
    for path in ("ustack_tun", "kernel_loopback"):
        assert lat[path]["round_trips"] == 200 and 0 < lat[path]["p50_us"] <= lat[path]["p99_us"], lat
    assert lat["ratio_p50"] == round(lat["ustack_tun"]["p50_us"] / lat["kernel_loopback"]["p50_us"], 2)
    hold = serve["hold"]
    assert hold["opened_and_echoed"] == hold["still_echoing"] == hold["asked"] == 200, hold
    assert hold["serve_threads"] <= 4  # no thread per connection
    sim = conns["sim"]
    assert sim["established"] == sim["echoed"] == sim["accepted"] == 200 and sim["internal_errors"] == 0
    assert 0 < conns["sim_mem"]["bytes_per_conn_both_ends"]
    sim_tp = res["sim"]["result"]
    for case, loss in (("lossy", 0.01), ("no_loss", 0.0)):
        x = sim_tp[case]
        assert x["loss"] == loss and x["complete"] and x["bytes"] == 2_000_000, x
        assert x["sim_errors"] == x["tcp.internal_error"] == x["stack.internal_error"] == 0, x
        assert 0 < x["virtual_s"] and 0 < x["wall_s"], x
    assert sim_tp["lossy"]["frames_dropped_by_faults"] > 0 == sim_tp["no_loss"]["frames_dropped_by_faults"]
    assert sim_tp["lossy"]["virtual_s"] > sim_tp["no_loss"]["virtual_s"]  # loss costs virtual time
    pytcp = res["pytcp"]
    if "skipped" in pytcp:  # one line naming why
        why = pytcp["skipped"]
        assert "\n" not in why and ("Python >= 3.14" in why or "PyTCP" in why), why
    png = out.with_suffix(".png")
    assert rep["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rate_row = next(row for row in rep["rows"] if row[0] == "connect+echo+close /s")
    assert rate_row[2] == "target >= 2000" and rate_row[3].startswith(f"{serve['rate']['per_s'] / 2000:.2f};")
    for text in ("ustack benchmarks", "connect+echo+close", "round trip", "Simulator 2 MB at 1% loss",
                 "offload csum) ", "(target >= 0.3)",
                 "PyTCP reference", "plot:"):
        assert text in r.stdout, text


def _tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_python(root: Path, version: str, imports_pytcp: bool) -> None:
    exe = root / "versions" / version / "bin" / "python"  # laid out as pyenv's
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!/bin/sh\nexit {0 if imports_pytcp else 1}\n")
    exe.chmod(0o755)


def test_pytcp_reference_names_why_it_is_skipped(tmp_path):
    """PyTCP only with a Python >= 3.14: otherwise one line naming the newest Python found."""
    bench = _tool()
    pattern = (str(tmp_path / "versions" / "*" / "bin" / "python"),)
    assert "the newest here is none" in bench.pytcp_reference(pattern)["skipped"]
    _fake_python(tmp_path, "3.13.0", True)
    _fake_python(tmp_path, "3.9.18", True)
    why = bench.pytcp_reference(pattern)["skipped"]
    assert why.startswith("needs Python >= 3.14; the newest here is 3.13 ") and "\n" not in why, why
    _fake_python(tmp_path, "3.14.1", False)  # "import pytcp" fails there
    why = bench.pytcp_reference(pattern)["skipped"]
    assert "PyTCP is not installed for" in why and "3.14.1" in why, why
