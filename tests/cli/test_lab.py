"""`ustack lab` end to end: the tour against the Linux kernel in the namespace the lab makes
for itself. Its exit status, its JSON report, its pcap (tshark must find nothing malformed)
and a time-sequence plot of the lossy transfer in it."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess

import pytest

from tests.netns import require_netns, require_tool
from ustack.cli import plot
from ustack.drivers import read_pcap

from .helpers import ustack

pytestmark = pytest.mark.netns

SCENARIO_IDS = {
    "ping", "udp-echo", "udp-closed-port", "udp-connected-filter", "udp-broadcast", "tcp-connect",
    "tcp-refused", "tcp-timeout", "tcp-host-unreachable", "tcp-net-unreachable", "nonblocking-select",
    "nonblocking-async", "nonblocking-event", "tcp-oob", "overlapped", "iocp-echo", "dns-lookup", "transfer",
    "ping6",
}


def _run_lab(out_dir, *extra):
    require_netns()
    r = ustack("lab", "--json", "--out", str(out_dir), *extra, timeout=240)
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"lab printed no JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}")
    return r, report


@pytest.fixture(scope="module")
def tun_lab(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab-tun")
    return out, *_run_lab(out)


def _failures(report):
    return [(s["id"], s["expected"], s["got"]) for s in report.get("scenarios", []) if not s["pass"]]


def test_lab_exits_0_and_every_scenario_behaves(tun_lab):
    out, r, report = tun_lab
    assert r.returncode == 0, (_failures(report), r.stderr[-3000:])
    assert report["ok"] is True
    assert {s["id"] for s in report["scenarios"]} == SCENARIO_IDS
    assert report["seconds"] < 60  # "well under a minute"


def test_lab_report_shows_the_winsock_calls(tun_lab):
    _, _, report = tun_lab
    by_id = {s["id"]: s for s in report["scenarios"]}
    refused = [c for c in by_id["tcp-refused"]["calls"] if c["call"] == "connect"]
    assert refused[0]["line"] == "connect(s1, 198.18.0.1:81) = SOCKET_ERROR  WSAECONNREFUSED (10061)"
    assert refused[0]["error"] == 10061
    timeout = by_id["tcp-timeout"]
    assert "SYNs at 0 s, 0.25 s, 0.75 s; gives up at 1.75 s" in timeout["got"]
    assert 1.5 <= timeout["info"]["seconds"] <= 3.5
    assert by_id["tcp-net-unreachable"]["info"]["frames_sent"] == 0
    port = by_id["tcp-connect"]["info"]["local_port"]
    assert 49152 <= port <= 65535
    async_lines = [c["line"] for c in by_id["nonblocking-async"]["calls"] if c["call"] == "GetMessage"]
    assert "lParam=0x00000010 (FD_CONNECT, error 0)" in async_lines[0]
    udp_closed = [c for c in by_id["udp-closed-port"]["calls"] if c["call"] == "recvfrom"]
    assert udp_closed[0]["error_name"] == "WSAECONNRESET"
    transfer = by_id["transfer"]["info"]
    assert transfer["upload"]["sha256_ok"] and transfer["download"]["sha256_ok"]
    assert transfer["frames_dropped_by_faults"] > 0  # the loss really was injected


def test_lab_pcap_has_no_malformed_packets(tun_lab):
    out, _, report = tun_lab
    tshark = require_tool("tshark")
    pcap = report["pcap"]
    r = subprocess.run([tshark, "-r", pcap, "-n", "-Y", "_ws.malformed || _ws.expert.severity >= error",
                        "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"malformed frames in {pcap}: {r.stdout[:500]}"
    count = subprocess.run([tshark, "-r", pcap, "-n", "-T", "fields", "-e", "frame.number",
                            "-Y", "tcp.flags.syn==1"], capture_output=True, text=True, timeout=180)
    assert len(count.stdout.split()) >= 10  # the capture holds the tour's handshakes


def test_plot_of_the_lab_pcap_shows_retransmissions(tun_lab, tmp_path):
    _, _, report = tun_lab
    png = tmp_path / "seq.png"
    series = plot.plot_seq(report["pcap"], str(png), conn="198.18.0.1:9")
    assert series.bytes_sent == 20_000_000  # the upload is the largest connection
    assert series.retransmissions > 0
    assert len(series.sacks) > 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24])[0] > 500
    cwnd = plot.plot_cwnd(report["trace_file"], str(tmp_path / "cwnd.png"))
    assert len(cwnd.cwnd) > 10 and cwnd.retrans


def test_lab_over_tap_under_user_faults(tmp_path):
    r, report = _run_lab(tmp_path, "--tap", "--loss", "0.01", "--seed", "3", "--transfer-mb", "4")
    assert r.returncode == 0, (_failures(report), r.stderr[-3000:])
    assert report["link"]["device"] == "tap" and "loss=0.01" in report["link"]["faults"]
    assert report["faults_done"]["dropped"] > 0
    # The TAP capture is Ethernet: the plot decodes it too and sees the retransmissions.
    series = plot.seq_series(plot.pick_conn(plot.analyze_pcap(report["pcap"]), "198.18.0.1:9"))
    assert series.bytes_sent == 4_000_000 and series.retransmissions > 0


def test_lab_ctrl_c_tears_down_and_exits_130(tmp_path):
    """SIGINT in the middle of the tour (during the 1.75 s SYN timeout): cleanup, exit 130."""
    import signal

    from .helpers import Proc

    require_netns()
    p = Proc("lab", "--only", "tcp-refused", "--only", "tcp-timeout", "--out", str(tmp_path))
    try:
        p.wait_line("PASS tcp-refused", timeout=60)
        code, out, err = p.terminate(signal.SIGINT, timeout=20)
    finally:
        p.kill()
    assert code == 130, (out, err)
    assert "interrupted" in err


def test_lab_without_root_says_why(monkeypatch, capsys):
    from ustack.cli import main as cli_main
    from ustack.cli import netns as lab_netns

    monkeypatch.setattr(lab_netns.os, "geteuid", lambda: 1000)
    assert cli_main.main(["lab", "--only", "ping"]) == 1
    err = capsys.readouterr().err
    assert "needs root" in err and len(err.strip().splitlines()) == 1


def test_lab_ping_needs_no_ping_program(tmp_path):
    """The echo requests come from the lab itself (a raw ICMP socket on the kernel's side): with
    no `ping` on PATH the scenario passes, and the capture holds 3 requests and 3 replies."""
    require_netns()
    empty = tmp_path / "bin"
    empty.mkdir()
    r = ustack("lab", "--only", "ping", "--json", "--out", str(tmp_path), timeout=120,
               env={**os.environ, "PATH": str(empty)})
    assert r.returncode == 0, r.stderr
    sc = json.loads(r.stdout)["scenarios"][0]
    assert sc["pass"] and sc["got"] == "3/3 echo replies" and sc["info"]["rtt"].endswith(" ms")
    line = sc["calls"][0]["line"]
    assert line.startswith("ping(198.18.0.2, 3 echo requests from the kernel) = 3/3 replies"), line
    icmp = [(f[9], f[20]) for _, f, _ in read_pcap(str(tmp_path / "lab.pcap")) if f[9] == 1]
    assert icmp == [(1, 8), (1, 0)] * 3  # request, reply; three times


def test_lab_keeps_its_last_runs_and_says_where_and_how_much(tmp_path):
    """Without --out each run gets a new directory in the temp dir; only the last KEEP_RUNS stay,
    the summary says where and how much, and under sudo the files go to the invoking user."""
    from ustack.cli.lab import KEEP_RUNS

    require_netns()
    env = {**os.environ, "TMPDIR": str(tmp_path), "SUDO_UID": "65534", "SUDO_GID": "65534"}
    stranger = tmp_path / "ustack-lab-notours"  # no marker file: never touched
    stranger.mkdir()
    for i in range(KEEP_RUNS + 1):
        r = ustack("lab", "--only", "tcp-refused", timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        files = [ln for ln in r.stdout.splitlines() if ln.startswith("files: ")]
        assert len(files) == 1, r.stdout
        assert re.fullmatch(rf"files: {tmp_path}/ustack-lab-\w+ holds \d+\.\d kB; the lab keeps its last "
                            rf"{KEEP_RUNS} runs \({tmp_path}/ustack-lab-\*\)"
                            + (" and removed 1 older" if i == KEEP_RUNS else "")
                            + "; --out DIR keeps one elsewhere", files[0]), files[0]
    runs = sorted(p for p in tmp_path.glob("ustack-lab-*") if p != stranger)
    assert len(runs) == KEEP_RUNS and stranger.exists()
    newest = max(runs, key=lambda p: p.stat().st_mtime)
    assert str(newest) in files[0]
    for p in (newest, newest / "lab.pcap", newest / "lab-trace.jsonl"):
        assert (p.stat().st_uid, p.stat().st_gid) == (65534, 65534), p
    assert newest.stat().st_mode & 0o777 == 0o755


def test_lab_list_needs_nothing():
    r = ustack("lab", "--list")
    assert r.returncode == 0
    assert [ln.split()[0] for ln in r.stdout.splitlines()] == [
        "ping", "udp-echo", "udp-closed-port", "udp-connected-filter", "udp-broadcast", "tcp-connect",
        "tcp-refused", "tcp-timeout", "tcp-host-unreachable", "tcp-net-unreachable", "nonblocking-select",
        "nonblocking-async", "nonblocking-event", "tcp-oob", "overlapped", "iocp-echo", "dns-lookup",
        "transfer", "ping6"]


def test_lab_piped_output_is_plain(tmp_path):
    require_netns()
    r = ustack("lab", "--only", "tcp-net-unreachable", "--only", "udp-echo", "--out", str(tmp_path),
               timeout=120)
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout  # no colour or cursor codes when piped
    lines = r.stdout.splitlines()
    assert any(ln.startswith("PASS tcp-net-unreachable") and "WSAENETUNREACH (10051)" in ln for ln in lines)
    assert any(ln.startswith("2/2 passed") for ln in lines)
    assert any(ln.startswith("pcap:  " + str(tmp_path)) for ln in lines)


def test_lab_watchdog_aborts_a_tour_that_takes_too_long(tmp_path):
    require_netns()
    r = ustack("lab", "--only", "tcp-timeout", "--watchdog", "1", "--json", "--out", str(tmp_path),
               timeout=60)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["ok"] is False and "took longer than 1 s" in report["error"]


def test_plot_retransmissions_agree_with_tshark(tun_lab):
    """Cross-check the plot's analysis against Wireshark's: a segment starting below the highest
    sequence already seen is what tshark flags as a retransmission (fast, spurious) or, when it
    never saw the original (dropped before the capture point), out-of-order."""
    _, _, report = tun_lab
    tshark = require_tool("tshark")
    flagged = ("(tcp.analysis.retransmission || tcp.analysis.fast_retransmission || "
               "tcp.analysis.spurious_retransmission || tcp.analysis.out_of_order) && tcp.len > 0")
    r = subprocess.run([tshark, "-r", report["pcap"], "-n", "-Y", flagged, "-T", "fields",
                        "-e", "tcp.srcport", "-e", "tcp.dstport"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.strip()]
    conns = plot.analyze_pcap(report["pcap"])
    upload = plot.seq_series(plot.pick_conn(conns, "198.18.0.1:9"))
    download = plot.seq_series(plot.pick_conn(conns, "198.18.0.1:19"))
    assert upload.retransmissions == sum(1 for _, dport in rows if dport == "9") > 0
    assert download.retransmissions == sum(1 for sport, _ in rows if sport == "19") > 0
    # ... and close to the kernel's own RetransSegs for the run (a retransmission that was
    # itself dropped before the capture point is counted by the kernel but never seen)
    by_id = {s["id"]: s for s in report["scenarios"]}
    kernel = by_id["transfer"]["info"]["download"]["kernel_retransmits"]
    assert 0.85 * kernel <= download.retransmissions <= kernel


def test_lab_on_a_terminal_ctrl_c_restores_it(tmp_path):
    """On a TTY the lab draws colour and a live progress bar (cursor hidden). Ctrl-C in the
    middle must stop that display (cursor shown again, nothing drawn after the message), tear
    down and exit 130."""
    import fcntl
    import os
    import select
    import signal
    import struct
    import sys
    import termios
    import time

    require_netns()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "ustack", "lab", "--only", "tcp-refused", "--only",
                          "tcp-timeout", "--out", str(tmp_path)], stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True)
    os.close(slave)
    out = b""
    sent_at = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if sent_at is None and b"PASS" in out:  # tcp-refused done; tcp-timeout under way
                p.send_signal(signal.SIGINT)
                sent_at = time.monotonic()
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        code = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        os.close(master)
    assert sent_at is not None, out[-2000:]
    assert code == 130, out[-2000:]
    assert b"\x1b[32mPASS" in out  # colour on a terminal
    assert out.rfind(b"\x1b[?25l") < out.rfind(b"\x1b[?25h"), out[-800:]  # cursor back
    tail = out[out.rfind(b"interrupted"):]
    assert b"ustack lab: interrupted" in out and b"\x1b[2K" not in tail  # no redraw afterwards
    assert b"passed in" not in out  # no summary claims a finished tour


def test_lab_report_shows_the_discarded_stranger(tun_lab):
    _, _, report = tun_lab
    sc = next(s for s in report["scenarios"] if s["id"] == "udp-connected-filter")
    notes = [c["line"] for c in sc["calls"] if not c["call"]]
    assert any(n.startswith("# kernel sends b'stranger'") and n.endswith(": discarded") for n in notes), notes


def test_readme_sample_lines_are_what_the_lab_prints(tun_lab):
    """The README shows a few lines of the tour; each call on them (durations aside) is a call
    the lab really makes in that scenario, in that order."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    samples = re.findall(r"^PASS (\S+)\s+(.*)$", readme, re.M)
    assert len(samples) >= 3
    _, _, report = tun_lab
    by_id = {s["id"]: s for s in report["scenarios"]}
    for sid, text in samples:
        text = re.sub(r"  \([^()]*\)$", "", text)  # the scenario's duration
        shown = [re.sub(r"  \[[^\]]*\]$", "", part) for part in text.split("; ")]  # call durations
        lines = [c["line"] for c in by_id[sid]["calls"]]
        positions = [lines.index(x) if x in lines else -1 for x in shown]
        assert -1 not in positions and positions == sorted(positions), (sid, shown, lines)


def test_lab_exits_1_when_a_scenario_misbehaves(tmp_path):
    """A scenario that gets the wrong answer: FAIL on its line with expected/got, NO in the
    table, the count of misbehaving scenarios, exit status 1 (and ok=false in the JSON)."""
    import sys

    require_netns()
    code = (
        "import sys\n"
        "from ustack.cli import labscenarios as L\n"
        "from ustack.cli.main import main\n"
        "L.SCENARIOS.append(L.Scenario('always-fails', 'a scenario that misbehaves', 'WSAEFAULT',\n"
        "                              lambda ctx: L.Outcome(False, 'deliberately 0')))\n"
        "sys.exit(main(sys.argv[1:]))\n")
    base = [sys.executable, "-c", code, "lab", "--only", "udp-echo", "--only", "always-fails"]
    r = subprocess.run([*base, "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert any(ln.startswith("PASS udp-echo") for ln in lines)
    assert any(ln.startswith("FAIL always-fails") for ln in lines)
    assert any("expected WSAEFAULT, got deliberately 0" in ln for ln in lines)
    rows = [ln for ln in lines if ln.startswith("|always-fails")]
    assert rows and rows[0].rstrip("|").rstrip().endswith("NO"), lines
    assert any(ln.startswith("1/2 passed") and "1 scenario(s) misbehaved" in ln for ln in lines)
    r = subprocess.run([*base, "--json", "--out", str(tmp_path / "b")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["ok"] is False and [s["pass"] for s in report["scenarios"]] == [True, False]


def _children(pid: int) -> list[int]:
    import os

    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/status") as f:
                    if any(ln.split() == ["PPid:", str(pid)] for ln in f):
                        kids.append(int(d))
            except OSError:
                pass
    return kids


def test_lab_killed_outright_leaves_no_process(tmp_path):
    """Even SIGKILL (no teardown code runs) leaves nothing: the namespace goes with the process
    and the transfer peer process dies with its parent (PR_SET_PDEATHSIG)."""
    import os
    import signal
    import time

    from .helpers import Proc

    require_netns()
    p = Proc("lab", "--only", "transfer", "--transfer-mb", "200", "--out", str(tmp_path))
    try:
        kids: list[int] = []
        deadline = time.monotonic() + 30
        while not kids and time.monotonic() < deadline and p.p.poll() is None:
            time.sleep(0.1)
            kids = [k for k in _children(p.p.pid) if b"labpeer" in open(f"/proc/{k}/cmdline", "rb").read()]
        assert kids, "the transfer peer process never appeared"
        time.sleep(0.5)  # mid-transfer
        os.kill(p.p.pid, signal.SIGKILL)
        p.p.wait(10)
        deadline = time.monotonic() + 5
        while any(os.path.exists(f"/proc/{k}") for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(os.path.exists(f"/proc/{k}") for k in kids)
    finally:
        p.kill()


def test_lab_on_a_taken_device_name_says_what_to_do(tmp_path):
    require_netns()
    r = ustack("lab", "--ifname", "lo", "--only", "ping", "--out", str(tmp_path), timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == ("ustack lab: cannot open TUN device lo: an interface named lo already exists "
                                "and is not a TUN device (see `ip -d link show lo`); pick another name with "
                                "--ifname"), r.stderr


def test_lab_overlapped_and_iocp_scenarios_use_the_calls(tun_lab):
    """The overlapped scenario's ConnectEx pends (ERROR_IO_PENDING) and its result counts the
    data sent with it; the IOCP echo server takes its connection through AcceptEx and echoes
    every byte of the kernel client's messages through completion packets."""
    from ustack.cli.labscenarios import IOCP_MESSAGES

    _out, _r, report = tun_lab
    by_id = {s["id"]: s for s in report["scenarios"]}
    ov = by_id["overlapped"]
    assert ov["pass"], ov["got"]
    connect_ex = next(c for c in ov["calls"] if c["call"] == "ConnectEx")
    assert connect_ex["error"] == 997 and connect_ex["ret"] is False
    assert by_id["tcp-oob"]["pass"], by_id["tcp-oob"]["got"]  # urgent data both ways with Linux
    iocp = by_id["iocp-echo"]
    assert iocp["pass"], iocp["got"]
    names = [c["call"] for c in iocp["calls"]]
    assert {"AcceptEx", "GetQueuedCompletionStatus", "WSARecv", "WSASend"} <= set(names)
    assert iocp["info"]["bytes"] == sum(len(m) for m in IOCP_MESSAGES)
