"""The drill self-tests: every script under tests/drill/scripts passes under --profile linux,
and the runner really checks (a changed expectation fails, naming the line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ustack.cli.main import main
from ustack.drill import parse, run_script

SCRIPTS = sorted((Path(__file__).parent / "scripts").glob("*.pkt"))


def test_the_self_test_scripts_cover_the_brief():
    names = {p.stem for p in SCRIPTS}
    assert {"handshake-passive", "handshake-active", "close-active", "close-passive", "shutdown-wr",
            "rst-established", "sack-recovery", "rto", "zero-window", "paws", "rfc5961",
            "syscalls-misc", "tlp-fin", "tlp-short-rtt", "maxseg", "icmp-frag-needed",
            "window-update"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_script_passes(path: Path):
    outcome = run_script(parse(path.read_text(), str(path)), "linux")
    assert (outcome.status, outcome.reason, outcome.line) == ("PASS", "", 0)


def _run_text(text: str, tmp_path: Path, capsys) -> tuple[int, str]:
    p = tmp_path / "t.pkt"
    p.write_text(text)
    rc = main(["drill", str(p)])
    return rc, capsys.readouterr().out


@pytest.mark.parametrize(("old", "new", "line", "why"), [
    ("ecr 5000,nop,wscale 8>", "ecr 5000,nop,wscale 7>", 14, "bad value in outbound TCP option wscale"),
    ("read(4, ..., 1000) = 200", "read(4, ..., 1000) = 201", 28, "read() returned 200, expected 201"),
    ("tcpi_snd_mss == 1388", "tcpi_snd_mss == 1400", 19,
     "python assertion failed: 1388 (in: assert tcpi_snd_mss == 1400, tcpi_snd_mss)"),
    ("+.05 < P. 1:201(200)", "+.05 < P. 1:201(200)", 0, ""),
    ("   +0 > . 501:501(0) ack 201", "  +.1 > . 501:501(0) ack 201", 27, "timing error"),
    ("> P. 1:501(500) ack 1 <", "> P. 1:501(500) ack 2 <", 25, "expected ack 2, got 1"),
])
def test_a_changed_expectation_fails_at_its_line(tmp_path, capsys, old, new, line, why):
    text = (Path(__file__).parent / "scripts" / "handshake-passive.pkt").read_text()
    assert old in text
    rc, out = _run_text(text.replace(old, new), tmp_path, capsys)
    if not why:
        assert rc == 0 and out.startswith("PASS ")
        return
    assert rc == 1 and out.startswith("FAIL ") and why in out and f"(line {line})" in out, out
    assert "1 scripts: 0 passed, 1 failed, 0 skipped (profile linux)" in out


def test_unknown_syntax_and_calls_are_skips_naming_the_construct(tmp_path, capsys):
    rc, out = _run_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
                        "+0 epoll_create(1) = 4\n", tmp_path, capsys)
    assert rc == 0 and "SKIP" in out and "system call epoll_create (line 2)" in out
    rc, out = _run_text("0 < S 0:0(0) win 100 <FO abcd>\n", tmp_path, capsys)
    assert rc == 0 and "TCP option FO (line 1)" in out
    rc, out = _run_text("`echo 3 > /sys/module/tcp_cubic/parameters/hystart_detect`\n0 socket(..., "
                        "SOCK_STREAM, IPPROTO_TCP) = 3\n", tmp_path, capsys)
    assert rc == 0 and "SKIP" in out and "shell command" in out
    rc, out = _run_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 %{ assert tcpi_lost == 0 }%\n",
                        tmp_path, capsys)
    assert rc == 0 and "SKIP" in out and "tcpi_lost" in out


def test_a_python_loop_is_bounded(tmp_path, capsys):
    rc, out = _run_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"
                        "+0 listen(3, 1) = 0\n+0 < S 0:0(0) win 1000 <mss 1000>\n"
                        "+0 > S. 0:0(0) ack 1 <mss 1460>\n+0 %{\nwhile True:\n    pass\n}%\n",
                        tmp_path, capsys)
    assert rc == 1 and "python block ran more than" in out and "(line 6)" in out


def test_a_blocking_call_without_an_end_time_fails(tmp_path, capsys):
    rc, out = _run_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"
                        "+0 listen(3, 1) = 0\n+0 accept(3, ..., ...) = 4\n", tmp_path, capsys)
    assert rc == 1 and "accept() blocked" in out and "(line 4)" in out


def test_default_profile_differs_where_windows_does(tmp_path, capsys):
    """Under --profile default ustack offers the window scale of its own buffer, not Linux's 8."""
    path = Path(__file__).parent / "scripts" / "syn-retransmit.pkt"
    assert run_script(parse(path.read_text()), "linux").status == "PASS"
    out = run_script(parse(path.read_text()), "default")
    assert out.status == "FAIL" and "option wscale: expected wscale 8" in out.reason and out.line == 7


def test_missing_path_is_a_usage_error(tmp_path, capsys):
    assert main(["drill", str(tmp_path / "nope.pkt")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_windows_resets_data_after_shutdown_rd_linux_acknowledges_it():
    """The knob behind the difference (rst_after_shutdown_rd): the linux profile ACKs data that
    arrives after shutdown(SHUT_RD); ustack's Windows default resets the connection."""
    path = Path(__file__).parent / "scripts" / "shutdown-rd.pkt"
    out = run_script(parse(path.read_text()), "linux", overrides={"rst_after_shutdown_rd": True})
    assert out.status == "FAIL" and "expected flags ., got R." in out.reason and out.line == 16


def test_rfc6298_rto_without_the_linux_variance_floor():
    """rto_min_on_variance off (ustack's default): RTO = max(SRTT + 4*RTTVAR, 200 ms) = 250 ms."""
    path = Path(__file__).parent / "scripts" / "rto-after-rtt-samples.pkt"
    out = run_script(parse(path.read_text()), "linux", overrides={"rto_min_on_variance": False})
    assert (out.status, out.line) == ("FAIL", 18)
    assert out.reason == "python assertion failed: 250000 (in: assert tcpi_rto == 300000, tcpi_rto)"


def test_terminal_output_keeps_one_line_per_script(tmp_path, capsys, monkeypatch):
    """On a terminal (rich), a long FAIL reason is not wrapped: still one line per script."""
    import sys

    text = (Path(__file__).parent / "scripts" / "handshake-passive.pkt").read_text()
    p = tmp_path / "t.pkt"
    p.write_text(text.replace("tcpi_snd_mss == 1388", "tcpi_snd_mss == 1400"))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "40")
    assert main(["drill", str(p), str(Path(__file__).parent / "scripts" / "rto.pkt")]) == 1
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and lines[0].startswith("FAIL ") and lines[0].endswith("(line 19)")
    assert lines[1].startswith("PASS ") and lines[2].startswith("2 scripts: 1 passed, 1 failed")


def test_tlp_with_the_10ms_floor_of_the_default():
    """ustack's default PTO floor (10 ms, no 2 ms extra) misses Linux's 4 ms probe."""
    path = Path(__file__).parent / "scripts" / "tlp-short-rtt.pkt"
    out = run_script(parse(path.read_text()), "linux", overrides={"tlp_min_s": 0.01, "tlp_extra_s": 0.0})
    assert out.status == "FAIL" and "ustack sent nothing by 0.005500 sec" in out.reason and out.line == 16


def test_the_default_answers_an_ack_of_unsent_data():
    """answer_ack_of_unsent (ustack's default, RFC 9293): the dropped segment draws an ACK that
    echoes the old TS.Recent (800, not the forged 900000), which the linux script does not expect."""
    path = Path(__file__).parent / "scripts" / "ts-recent-bad-ack.pkt"
    out = run_script(parse(path.read_text()), "linux", overrides={"answer_ack_of_unsent": True})
    assert out.status == "FAIL" and out.line == 18
    assert "expected ack 1001, got 1" in out.reason and "ecr 800>" in out.reason


def test_ts_tick_option_checks_outbound_ts_vals(tmp_path, capsys):
    """--tcp_ts_tick_usecs=1000 (paws.pkt): ustack's TS clock runs at 1 ms per tick, so a TS val
    50 ticks off the script's fails; without the option TS vals are not compared."""
    text = (Path(__file__).parent / "scripts" / "paws.pkt").read_text()
    assert "TS val 400 ecr 5200" in text
    rc, out = _run_text(text.replace("TS val 400 ecr 5200", "TS val 450 ecr 5200"), tmp_path, capsys)
    assert rc == 1 and "bad outbound TCP timestamp value: expected TS val 450, got 400" in out
    rc, out = _run_text(text.replace("TS val 400 ecr 5200", "TS val 450 ecr 5200").replace(
        "--tcp_ts_tick_usecs=1000\n", ""), tmp_path, capsys)
    assert rc == 0, out
