"""`--faults FILE` on every command that takes the fault options: a bad scenario is one line on
stderr, exit status 2, before anything starts (no device, no namespace, no program); the
shorthands combine with a file."""

from __future__ import annotations

import argparse

import pytest

from ustack.cli.options import UsageError, fault_scenario
from ustack.drivers import FaultConfig

from .helpers import ustack

DEV = ["--tun", "fbad0", "--addr", "198.18.0.2/24"]
COMMANDS = {
    "serve": ["serve", *DEV, "--echo", "7"],
    "connect": ["connect", "198.18.0.1", "7", *DEV],
    "lab": ["lab"],
    "run": ["run", *DEV, "--", "python", "-c", "print('must not run')"],
}


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_a_bad_scenario_stops_every_command_before_it_starts(cmd, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('seed = 1\n\n[[at]]\ntime = "1s"\nfor = "2s"\ndwon = true\n')
    argv = COMMANDS[cmd]
    cut = argv.index("--") if "--" in argv else len(argv)  # run: the options come before the program
    r = ustack(*argv[:cut], "--faults", str(bad), *argv[cut:])
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == (f"ustack {cmd}: error: --faults {bad}:6: [[at]] #1: unknown key 'dwon' (keys: time, "
                        "bytes, on, for, down, mtu, icmp, blackhole, loss, delay, jitter, rate, duplicate, "
                        "reorder, corrupt)\n")


def test_a_missing_scenario_file(tmp_path):
    r = ustack(*COMMANDS["serve"], "--faults", str(tmp_path / "nope.toml"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"--faults {tmp_path}/nope.toml: No such file or directory" in r.stderr


def ns(**kw) -> argparse.Namespace:
    base = {"faults": None, "seed": None, "loss": None, "duplicate": None, "reorder": None, "corrupt": None,
            "delay": None, "jitter": None, "rate": None, "mtu_cap": None}
    base.update(kw)
    return argparse.Namespace(**base)


def test_shorthands_and_a_file_build_one_scenario(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('seed = 3\nrules = ["drop tcp syn nth=1"]\n[link]\ndelay = "10ms"\nrate = "1mbit"\n')
    sc = fault_scenario(ns(faults=str(f), delay="30ms"))
    assert sc.link == FaultConfig(seed=3, delay_s=0.03, rate_bps=1e6)  # the option wins over [link]
    assert [r.text for r in sc.rules] == ["drop tcp syn nth=1"]
    assert fault_scenario(ns(faults=str(f), seed=9)).seed == 9
    assert fault_scenario(ns(loss="2%")).link == FaultConfig(loss=0.02)
    assert fault_scenario(ns(faults="loss=2%")).link == fault_scenario(ns(loss="2%")).link
    assert fault_scenario(ns()) is None


def test_loss_option_and_a_loss_model_conflict(tmp_path):
    f = tmp_path / "ge.toml"
    f.write_text('[loss]\nmodel = "simple-gilbert"\np = "1%"\nr = "30%"\n')
    with pytest.raises(UsageError, match="--loss and the \\[loss\\] model of .*ge.toml both set the loss"):
        fault_scenario(ns(faults=str(f), loss="1%"))


def test_plot_marks_the_fault_events_of_a_capture(tmp_path):
    """`ustack plot` on a pcapng with fault comments: link changes become spans, faults on the
    plotted data markers at their sequence number, faults on the ACK path ticks."""
    from tests.drivers.faultsim import transfer
    from ustack.cli import plot
    from ustack.cli.plotfaults import fault_marks

    sc = tmp_path / "s.toml"
    sc.write_text('rules = ["drop tcp data dir=out nth=40", "drop tcp dir=in nodata nth=7"]\n'
                  '[[at]]\ntime = "40ms"\nfor = "0.2s"\nblackhole = "out"\n')
    run = transfer(tmp_path, str(sc), nbytes=400_000)
    assert run.sha_ok
    r = ustack("plot", str(run.a_pcap), "-o", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr
    n_events = len(run.events)
    assert f"{n_events} fault events marked" in r.stdout
    series = plot.with_fault_marks(plot.seq_series(plot.pick_conn(plot.analyze_pcap(str(run.a_pcap)), None)),
                                   str(run.a_pcap))
    by_kind = {}
    for m in series.faults:
        by_kind.setdefault(m.kind, []).append(m)
    (drop_data, drop_ack) = sorted(by_kind["drop"], key=lambda m: m.ack_path)
    assert drop_data.seq == 40 * 1448 + 1 and not drop_data.ack_path  # where the 40th segment ends
    assert drop_ack.seq is None and drop_ack.ack_path
    assert [m.kind for m in series.faults if m.kind in ("change", "restore")] == ["change", "restore"]
    assert all(m.seq is not None for m in by_kind["blackhole"])
    # another connection's faults are not marked on this one
    assert fault_marks(str(run.a_pcap), series.start, (1, 1), (2, 2), 0) == [
        m for m in series.faults if m.seq is None and not m.ack_path]


@pytest.mark.netns
def test_lab_runs_a_scenario_file(tmp_path):
    """`ustack lab --faults examples/burst-and-flap.toml`: the transfer goes through the README's
    scenario (five segments dropped by the rule, a 1 s link flap) and still checks out."""
    import json
    from pathlib import Path

    from tests.netns import require_netns
    from ustack.drivers.pcap import read_fault_comments

    require_netns()
    scenario = Path(__file__).resolve().parents[2] / "examples" / "burst-and-flap.toml"
    r = ustack("lab", "--json", "--out", str(tmp_path), "--only", "transfer", "--transfer-mb", "2",
               "--faults", str(scenario), timeout=240)
    report = json.loads(r.stdout)
    assert r.returncode == 0, (report, r.stderr[-2000:])
    assert report["faults_done"]["rule_dropped"] == 5 and report["faults_done"]["down_dropped"] > 0
    assert "rule: drop tcp data dir=out nth=30-34" in report["link"]["faults"]
    transfer = next(s for s in report["scenarios"] if s["id"] == "transfer")
    assert transfer["info"]["frames_dropped_by_faults"] >= 5
    kinds = [c.split()[1] for _, c in read_fault_comments(report["pcap"])]
    assert kinds.count("drop") == 5 and "change" in kinds and "restore" in kinds
