"""Bad input at the command line, tried as a new user would: each mistake gets one clear line
(exit 2 for what the user gave, 1 for what the machine lacks), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import dpkt
import pytest

from ustack.cli import plot
from ustack.drivers import PcapError, PcapTruncated, read_pcap

from .test_plot import write_lossy_capture


def _plot(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ustack", "plot", *argv], capture_output=True, text=True,
                          timeout=60)


def _one_line_error(r: subprocess.CompletedProcess[str], words: str, code: int = 2) -> None:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert words in r.stderr, r.stderr


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "good.pcap"
    write_lossy_capture(path)
    return path


@pytest.mark.parametrize(("cut", "words"), [
    (0, "empty file (0 bytes)"),
    (10, "cut off inside the pcap file header (10 of 24 bytes)"),
    (24, "no packets in the capture, only its file header"),
    (24 + 16 + 20, "cut off inside record 1 (20 of 52 bytes) after 0 complete records: no complete packet"),
])
def test_plot_of_an_empty_header_only_or_cut_pcap_is_one_line(tmp_path, capture, cut, words):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(capture.read_bytes()[:cut])
    for argv in ([str(bad), "-o", str(tmp_path / "x.png")], [str(bad), "--list"]):
        r = _plot(*argv)
        _one_line_error(r, f"ustack plot: error: {bad}: {words}")
    assert not (tmp_path / "x.png").exists()


def test_plot_of_text_or_a_trace_file_says_what_it_is(tmp_path):
    junk = tmp_path / "notes.pcap"
    junk.write_text("hello\n")
    _one_line_error(_plot(str(junk), "-o", str(tmp_path / "x.png")), "not a pcap or pcapng file")
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"t": 0, "conn": "a", "ev": "cwnd", "cwnd": 1}\n')
    _one_line_error(_plot(str(trace), "-o", str(tmp_path / "x.png")), "draw it with --kind cwnd")


def test_plot_of_a_capture_cut_mid_packet_draws_what_is_complete(tmp_path, capture):
    """A capture killed while writing: the complete packets are drawn, one warning line says so."""
    data = capture.read_bytes()
    records = list(read_pcap(str(capture)))
    cut = tmp_path / "cut.pcap"
    last = len(records[-1][1])
    cut.write_bytes(data[:-30])  # inside the last record
    with pytest.raises(PcapTruncated) as info:
        assert len(list(read_pcap(str(cut)))) == len(records) - 1
    assert info.value.records == len(records) - 1
    r = _plot(str(cut), "-o", str(tmp_path / "x.png"))
    assert r.returncode == 0, r.stderr
    n = len(records) - 1
    assert r.stderr.strip() == (f"ustack plot: warning: {cut}: cut off inside record {n + 1} "
                                f"({last - 30} of {last} bytes) after {n} complete records (a capture "
                                f"killed while writing?); using the {n} complete records")
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
    full = plot.seq_series(plot.pick_conn(plot.analyze_pcap(str(capture)), None))
    part = plot.seq_series(plot.pick_conn(plot.analyze_pcap(str(cut), on_cut=lambda e: None), None))
    assert part.retransmissions == full.retransmissions == 1 and len(part.acks) == len(full.acks) - 1
    cut_header = tmp_path / "cut2.pcap"
    cut_header.write_bytes(data[:len(data) - last - 8])  # inside the last record's 16-byte header
    r = _plot(str(cut_header), "--list")
    assert r.returncode == 0 and "cut off inside a record header" in r.stderr, r.stderr


def test_read_pcap_reads_pcapng_and_reports_a_cut_one(tmp_path, capture):
    ng = tmp_path / "x.pcapng"
    with open(ng, "wb") as f:
        w = dpkt.pcapng.Writer(f, linktype=101)
        for ts, frame, _ in read_pcap(str(capture)):
            w.writepkt(frame, ts=ts)
    got = list(read_pcap(str(ng)))
    assert [f for _, f, _ in got] == [f for _, f, _ in read_pcap(str(capture))]
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(ng.read_bytes()[:-10])
    with pytest.raises(PcapTruncated):
        list(read_pcap(str(cut)))
    with pytest.raises(PcapError, match="not a pcap"):
        list(read_pcap(__file__))


def test_plot_as_a_normal_user_on_root_owned_output_says_permission_denied(capture):
    """What `sudo ustack lab` left in a private directory: 'permission denied' and what to do,
    not 'no such file' (checked in a child process that drops to user nobody)."""
    import tempfile

    assert os.geteuid() == 0, "this test needs root (CI runs as root)"
    with tempfile.TemporaryDirectory(prefix="ustack-perm-") as top:  # under /tmp: nobody may enter
        os.chmod(top, 0o755)
        private = os.path.join(top, "private")
        os.mkdir(private, 0o700)
        inside = os.path.join(private, "lab.pcap")
        unreadable = os.path.join(top, "mine.pcap")
        for p in (inside, unreadable):
            with open(p, "wb") as f:
                f.write(capture.read_bytes())
            os.chmod(p, 0o600)
        readable = os.path.join(top, "shared.pcap")
        with open(readable, "wb") as f:
            f.write(capture.read_bytes())
        os.chmod(readable, 0o644)
        lines = _as_nobody(lambda: [_check(p) for p in (inside, unreadable, readable)])
    assert lines[0].startswith(f"{inside}: permission denied (a directory on the way is not readable")
    assert "use sudo, or chown it" in lines[0]
    assert lines[1] == f"{unreadable}: permission denied (owned by root: use sudo, or chown it)"
    assert lines[2] == "ok"
    _one_line_error(_plot(os.path.join(top, "nope.pcap"), "--list"), "nope.pcap: no such file")


def _check(path: str) -> str:
    try:
        plot.check_input_file(path)
    except Exception as e:  # noqa: BLE001 - the message is what is compared
        return str(e)
    return "ok"


def _as_nobody(fn):
    """fn() in a forked child running as user nobody; its list of strings comes back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, "\n".join(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read().splitlines()
    os.waitpid(pid, 0)
    return out


def test_plot_cwnd_skips_lines_a_killed_run_left_half_written(tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"t": 0, "conn": "a>b", "ev": "cwnd", "cwnd": 10, "ssthresh": 20}\n'
                     '{"t": "soon", "conn": "a>b", "ev": "cwnd", "cwnd": 11}\n'
                     '{"t": 1, "ev": "cwnd", "cwnd": 12}\n'
                     '{"t": 2, "conn": "a>b", "ev": "cwnd", "cwnd": 13}\n'
                     '{"t": 3, "conn": "a>b", "ev": "cw')
    r = _plot(str(trace), "--kind", "cwnd", "-o", str(tmp_path / "c.png"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{tmp_path / 'c.png'}: cwnd of a>b, 2 samples, 0 loss events"


# -- device errors: what is wrong and what to do, one line --------------------------------------
DEVICE = ["198.18.0.1", "80", "--addr", "198.18.0.2/24"]


def _connect_errors_body() -> list[tuple[int, str]]:
    from ustack.drivers import TunDevice
    from ustack.drivers.tun import _ip

    from .helpers import ustack

    out = []
    for dev in (["--tun", "lo"], ["--tap", "lo"]):
        r = ustack("connect", *DEVICE, *dev, timeout=60)
        out.append((r.returncode, r.stderr))
    _ip("tuntap", "add", "dev", "ust7", "mode", "tun")  # a TUN device: --tap of that name is wrong
    r = ustack("connect", *DEVICE, "--tap", "ust7", timeout=60)
    out.append((r.returncode, r.stderr))
    with TunDevice("ust0"):  # held open here: busy for the command
        r = ustack("connect", *DEVICE, "--tun", "ust0", timeout=60)
        out.append((r.returncode, r.stderr))
    out.append(_as_nobody_open_host())
    return out


def _as_nobody_open_host() -> tuple[int, str]:
    """open_host as user nobody (no CAP_NET_ADMIN): the real kernel error, mapped."""
    import pytun  # noqa: F401 - loaded before dropping root (the child may not read the venv)

    from ustack.cli import hosting
    from ustack.cli.main import build_parser
    from ustack.cli.options import CommandError

    args = build_parser().parse_args(["connect", *DEVICE, "--tun", "ust5"])
    lines = _as_nobody(lambda: [_open_error(hosting, args, CommandError)])
    return 1, lines[0]


def _open_error(hosting, args, error_cls) -> str:
    try:
        hosting.open_host(args).close()
    except error_cls as e:
        return str(e)
    return "opened"


@pytest.mark.netns
def test_device_errors_say_what_is_wrong_and_what_to_do():
    from tests.netns import run_in_netns

    lo_tun, lo_tap, tap_on_tun, busy, nobody = run_in_netns(_connect_errors_body, timeout=120)
    cases = ((lo_tun, "TUN", "lo"), (lo_tap, "TAP", "lo"), (tap_on_tun, "TAP", "ust7"))
    for (code, err), kind, name in cases:
        assert code == 1 and len(err.strip().splitlines()) == 1 and "Errno" not in err, err
        assert err.strip() == (f"ustack connect: cannot open {kind} device {name}: an interface named {name} "
                               f"already exists and is not a {kind} device (see `ip -d link show {name}`); "
                               f"pick another name with --{kind.lower()}")
    code, err = busy
    assert code == 1 and err.strip() == ("ustack connect: cannot open TUN device ust0: another process has "
                                         "it open (another `ustack serve`?); stop that one or pick another "
                                         "name with --tun")
    # /dev/net/tun is 0600 on some machines (EACCES) and 0666 on others (then EPERM at creation)
    assert nobody[1] in ("cannot open TUN device ust5: /dev/net/tun is not open to you (run as root, or "
                         "with sudo)",
                         "cannot open TUN device ust5: creating network devices needs root or "
                         "CAP_NET_ADMIN (run with sudo)"), nobody


def test_device_error_for_a_missing_dev_net_tun():
    import errno

    from ustack.cli.hosting import device_error

    e = FileNotFoundError(errno.ENOENT, "No such file or directory", "/dev/net/tun")
    assert device_error(e, "tun", "ust0") == (
        "cannot open TUN device ust0: /dev/net/tun is missing (load the driver: modprobe tun; in a "
        "container, pass the device in, e.g. docker run --device /dev/net/tun --cap-add NET_ADMIN)")


# -- addresses: rejected up front, in the words typed ---------------------------------------------
def _address_error(*dev: str) -> str:
    from ustack.cli.main import build_parser
    from ustack.cli.options import UsageError, check_addresses

    args = build_parser().parse_args(["connect", "198.18.0.1", "80", "--tun", "ust0", *dev])
    try:
        check_addresses(args)
    except UsageError as e:
        return str(e)
    return "ok"


@pytest.mark.parametrize(("dev", "message"), [
    (["--addr", "198.18.0.2/24", "--peer", "198.18.0.2/24"],
     "--peer 198.18.0.2/24 is ustack's own address (--addr): give the kernel's side another address of "
     "198.18.0.0/24, e.g. --peer 198.18.0.1/24"),
    (["--addr", "198.18.0.1/24", "--peer", "198.18.0.1"],
     "--peer 198.18.0.1/24 is ustack's own address (--addr): give the kernel's side another address of "
     "198.18.0.0/24, e.g. --peer 198.18.0.2/24"),
    (["--addr", "198.18.0.2/24", "--peer", "198.19.5.1/24"],
     "--peer 198.19.5.1/24 is outside --addr's subnet 198.18.0.0/24: both sides of the link need "
     "addresses in it, e.g. --peer 198.18.0.1/24"),
    (["--addr", "198.18.0.2/24", "--peer", "198.18.0.255/24"],
     "--peer 198.18.0.255/24 is the broadcast address of 198.18.0.0/24: use a host address, e.g. "
     "--peer 198.18.0.1/24"),
    (["--addr", "198.18.0.0/24"],
     "--addr 198.18.0.0/24 is the network address of 198.18.0.0/24: use a host address such as "
     "198.18.0.1/24"),
    (["--addr", "198.18.0.2/32", "--peer", "198.18.0.1/24"],
     "--addr 198.18.0.2/32 leaves no other address on the link for --peer: use a prefix such as /24"),
    (["--addr", "198.18.0.2/24", "--gateway", "10.0.0.1"],
     "--gateway 10.0.0.1 is outside 198.18.0.0/15 (the benchmarking range); pass --any-net to allow it"),
    (["--addr", "198.18.0.2/24", "--gateway", "198.19.0.1"],
     "--gateway 198.19.0.1 is not a host of --addr's subnet 198.18.0.0/24: the gateway must be reachable "
     "directly on the link"),
    (["--addr", "198.18.0.2/24", "--gateway", "198.18.0.2"],
     "--gateway 198.18.0.2 is ustack's own address (--addr)"),
    (["--addr", "10.1.0.2/24"],
     "--addr 10.1.0.2/24 is outside 198.18.0.0/15 (the benchmarking range); pass --any-net to allow it"),
    (["--addr", "198.18.0.2/24", "--peer", "10.1.0.1/24"],
     "--peer 10.1.0.1/24 is outside 198.18.0.0/15 (the benchmarking range); pass --any-net to allow it"),
    (["--addr", "10.1.0.2/24", "--peer", "10.1.0.1/24", "--gateway", "10.1.0.254", "--any-net"], "ok"),
    (["--addr", "198.18.0.2/24", "--peer", "198.18.0.1/24", "--gateway", "198.18.0.1"], "ok"),
    (["--addr", "198.18.0.2/31", "--peer", "198.18.0.3/31"], "ok"),  # RFC 3021: both are hosts
])
def test_peer_and_gateway_are_checked_before_anything_opens(dev, message):
    assert _address_error(*dev) == message


def _cli_address_and_fault_errors() -> list[tuple[int, str, float]]:

    from .helpers import ustack

    out = []
    for extra in (["--peer", "198.18.0.2/24"], ["--gateway", "198.19.0.1"], ["--delay", "fast"],
                  ["--jitter=-1ms"], ["--loss", "3"], ["--rate", "10zz"], ["--mtu-cap", "0"],
                  ["--reorder", "x%"], ["--faults", "delay=-1ms"], ["--faults", "los=1%"]):
        r = ustack("connect", *DEVICE, "--tun", "ust0", *extra, timeout=60)
        out.append((r.returncode, r.stderr))
    return out


@pytest.mark.netns
def test_cli_rejects_bad_addresses_and_faults_at_once_in_the_words_typed():
    """(In a private namespace, so a check that let one through could not touch the host.)"""
    from tests.netns import run_in_netns

    got = run_in_netns(_cli_address_and_fault_errors, timeout=120)
    expected = [
        "--peer 198.18.0.2/24 is ustack's own address (--addr)",
        "--gateway 198.19.0.1 is not a host of --addr's subnet 198.18.0.0/24",
        "--delay fast: not a number: 'fast'",
        "--jitter -1ms: must be >= 0",
        "--loss 3: not a probability in [0, 1]",
        "--rate 10zz: unknown rate unit 'zz' (use bit, kbit, mbit, gbit: bits per second)",
        "--mtu-cap 0: must be >= 1",
        "--reorder x%: not a number: 'x%'",
        "--faults delay=-1ms: delay must be >= 0",
        "--faults los=1%: bad fault spec item 'los=1%'; keys: burst, corrupt, delay, depth, dir,",
    ]
    for (code, err), words in zip(got, expected, strict=True):
        assert code == 2 and err.startswith(f"ustack connect: error: {words}"), err
        assert len(err.strip().splitlines()) == 1, err
        for internal in ("delay_s", "jitter_s", "rate_bps", "mtu_cap", "/32"):
            assert internal not in err, err
        assert "spec item" not in err or words.startswith("--faults"), err  # the option's own words


def _silent_connect_body() -> tuple[list[str], float, int, str]:
    """connect to an address nobody answers; read stderr until the first progress line, then
    Ctrl-C (the whole 21 s is not needed to see the progress)."""
    import select
    import signal
    import time

    from .helpers import USTACK

    argv = [*USTACK, "connect", "198.18.0.9", "80", "--tun", "ust0", "--addr", "198.18.0.2/24", "--peer",
            "198.18.0.1/24"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    lines: list[str] = []
    try:
        while time.monotonic() - t0 < 20 and not lines:
            ready, _, _ = select.select([p.stderr], [], [], 0.5)
            if ready:
                lines.append(p.stderr.readline().rstrip("\n"))
        seen_at = time.monotonic() - t0
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        return lines, seen_at, p.returncode, out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)


@pytest.mark.netns
def test_a_long_connect_shows_its_syn_retries_and_when_it_gives_up():
    from tests.netns import run_in_netns

    lines, seen_at, code, out = run_in_netns(_silent_connect_body, timeout=60)
    assert lines == ["ustack connect: no answer after 3 s: SYN sent again (retry 1 of 2); connect gives up "
                     "21 s after the first SYN"], lines
    assert seen_at > 2.5, seen_at  # not before the first retry is due (3 s); later under load
    assert code == 130 and "connect(s1, 198.18.0.9:80)" not in out  # interrupted while waiting


def test_syn_progress_counts_retries_in_the_stack():
    """The watcher reports each retransmission the stack counts, in order, and nothing else."""
    import time

    from ustack.cli.connect import SynProgress

    class FakeCounters:
        n = 0

        def get(self, name: str) -> int:
            assert name == "tcp.syn_retransmit"
            return self.n

    class FakeHost:
        class stack:  # noqa: N801 - stands in for host.stack
            counters = FakeCounters()

            class tcp:  # noqa: N801
                class config:  # noqa: N801
                    syn_rto_s, syn_retries = 1.0, 5

        def call(self, fn):
            return fn()

    host = FakeHost()
    got: list[str] = []
    with SynProgress(host, got.append, " (hint)"):
        time.sleep(0.3)
        host.stack.counters.n = 2  # two retransmissions between two looks
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [ln.split(": ", 1)[1] for ln in got] == [
        "SYN sent again (retry 1 of 5); connect gives up 63 s after the first SYN (hint)",
        "SYN sent again (retry 2 of 5); connect gives up 63 s after the first SYN"]  # the hint once


# -- any text in the address and fault options: a one-line error or a device open, nothing else --
class _WouldOpen(Exception):
    """Raised instead of opening a device: every check passed."""


def _option_values():
    from hypothesis import strategies as st

    octet = st.integers(0, 300).map(str)
    addr = st.one_of(st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", octet, octet, octet, octet),
                     st.sampled_from(["198.18.0.1", "198.18.0.2", "198.19.255.255", "10.0.0.1", "::1", ""]),
                     st.text(max_size=12))
    prefix = st.one_of(st.just(""), st.integers(-1, 40).map(lambda p: f"/{p}"), st.text(max_size=4))
    cidr = st.builds(lambda a, p: a + p, addr, prefix)
    fault = st.one_of(st.text(max_size=8), st.sampled_from(["1%", "0.5", "-1", "20ms", "1e400", "nan", "x%",
                                                             "1\nx", "los\r\n=1"]))
    return st.fixed_dictionaries({}, optional={
        "--addr": cidr, "--peer": cidr, "--gateway": addr, "--mtu": st.one_of(st.integers(-5, 70000).map(str),
                                                                                st.text(max_size=5)),
        "--loss": fault, "--delay": fault, "--rate": fault, "--mtu-cap": fault,
        "--faults": st.one_of(fault, st.text(max_size=16))})


def test_any_option_text_gives_one_line_or_reaches_the_device(monkeypatch, capsys):
    from hypothesis import HealthCheck, given, settings

    import ustack
    from ustack.cli.main import main

    def refuse_open(**kw):
        raise _WouldOpen
    monkeypatch.setattr(ustack.Host, "open", staticmethod(refuse_open))

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_option_values())
    def check(opts):
        argv = ["connect", "198.18.0.1", "80", "--tun", "ust0"]
        if "--addr" not in opts:
            argv += ["--addr", "198.18.0.2/24"]
        for k, v in opts.items():
            argv.append(f"{k}={v}")
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: one line, status 2
            code = e.code
        except _WouldOpen:
            return
        err = capsys.readouterr().err
        assert code == 2, (argv, code, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    check()


def test_any_damaged_capture_gives_one_line_or_a_listing(tmp_path, capsys):
    """Bytes of a real capture flipped, cut or extended at random: `plot --list` and `plot -o`
    list/draw or say in one line what is wrong; never a traceback."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from ustack.cli.main import main

    good = tmp_path / "good.pcap"
    write_lossy_capture(good)
    data = good.read_bytes()
    edits = st.lists(st.tuples(st.sampled_from(["flip", "cut", "extend"]), st.integers(0, len(data) + 64),
                               st.integers(0, 255)), min_size=1, max_size=4)

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(edits, st.booleans())
    def check(ops, draw):
        b = bytearray(data)
        for kind, pos, value in ops:
            if kind == "flip" and b:
                b[pos % len(b)] ^= value or 1
            elif kind == "cut":
                del b[pos % (len(b) + 1):]
            else:
                b += bytes([value]) * (pos % 64)
        bad = tmp_path / "bad.pcap"
        bad.write_bytes(bytes(b))
        argv = ["plot", str(bad), "-o", str(tmp_path / "x.png")] if draw else ["plot", str(bad), "--list"]
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (0, 2), (ops, code, err)
        lines = err.strip().splitlines()
        assert len(lines) <= 1 and "Traceback" not in err, (ops, err)
        assert code == 0 or lines[0].startswith("ustack plot: error: "), (ops, err)
    check()


def test_lab_transfer_loss_errors_in_the_words_typed():
    from .helpers import ustack

    for value, words in (("200%", "not a probability in [0, 1]"), ("abc", "not a number: 'abc'")):
        r = ustack("lab", "--transfer-loss", value, "--only", "ping", timeout=60)
        _one_line_error(r, f"ustack lab: error: --transfer-loss {value}: {words}")
