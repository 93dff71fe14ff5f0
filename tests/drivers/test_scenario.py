"""Scenario files: what they hold, the one-line errors (with the line) for bad ones, the
shorthands building the same objects, determinism, and the fault events in the capture."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from ustack.drivers import FaultConfig, Scenario, ScenarioError, load_scenario, make_model, parse_scenario
from ustack.drivers.pcap import read_fault_comments, read_pcap

FULL = textwrap.dedent("""\
    # everything at once
    seed = 9

    rules = [
        "drop tcp data dir=out nth=50",
        "delay 20ms tcp syn dir=in",
    ]

    [link]
    delay = "5ms"
    jitter = "1ms"
    rate = "50mbit"

    [loss]
    model = "gilbert-elliott"
    p = "1%"
    r = "30%"
    1-h = "90%"
    1-k = 0.001

    [[at]]
    time = "1s"
    for = "500ms"
    down = true

    [[at]]
    bytes = 200000
    mtu = 1200
    icmp = true

    [[at]]
    time = 2
    for = 1
    rate = "1mbit"
    loss = "2%"
    blackhole = "in"
""")


def test_a_full_scenario(tmp_path):
    p = tmp_path / "full.toml"
    p.write_text(FULL)
    sc = load_scenario(p)
    assert sc.seed == 9 and sc.source == str(p)
    assert (sc.link.delay_s, sc.link.jitter_s, sc.link.rate_bps) == (0.005, 0.001, 50e6)
    assert sc.link.loss_model == make_model("gilbert-elliott", 0.01, 0.3, 0.9, 0.001)
    assert [r.text for r in sc.rules] == ["drop tcp data dir=out nth=50", "delay 20ms tcp syn dir=in"]
    down, mtu, change = sc.schedule
    assert (down.at_s, down.for_s, down.down) == (1.0, 0.5, True)
    assert (mtu.after_bytes, mtu.mtu, mtu.icmp, mtu.for_s) == (200000, 1200, True, None)
    assert dict(change.settings) == {"rate_bps": 1e6, "loss": 0.02} and change.blackhole.direction == "in"
    assert down.text == "t=1s: down for 0.5s"


def test_shorthands_build_the_same_objects():
    want = FaultConfig(seed=3, loss=0.02, delay_s=0.01)
    assert Scenario.from_spec("loss=2%,delay=10ms,seed=3").link == want
    assert parse_scenario('seed = 3\n[link]\nloss = "2%"\ndelay = "10ms"\n').link == \
        Scenario.from_spec("loss=2%,delay=10ms,seed=3").link


@pytest.mark.parametrize(("text", "error"), [
    ("sede = 3\n", "s.toml:1: unknown key 'sede' (keys: seed, link, loss, rules, at)"),
    ("[link]\ndelay = '5ms'\nlos = '1%'\n", "s.toml:3: [link] unknown key 'los' (keys: loss, duplicate, "
     "reorder, corrupt, delay, jitter, rate, burst, queue, mtu, depth, hold, dir)"),
    ("[link]\ndelay = [1]\n", "s.toml:2: [link] delay = [1]: want a number or a string"),
    ("[link]\nloss = '150%'\n", "s.toml:2: [link] loss=1.5 is not a probability in [0, 1]"),
    ("seed = 1\n\n[loss]\nmodel = 'gilbert'\np = 0.1\nr = 0.2\n", "s.toml:3: [loss] model gilbert needs 1-h"),
    ("[loss]\nmodel = 'simple-gilbert'\np = 0.1\nr = 0.2\n1-h = 0.5\n",
     "s.toml:5: [loss] model simple-gilbert takes p, r, not 1-h"),
    ("[loss]\np = 0.1\nr = 7\n", "s.toml:3: [loss] model bernoulli takes p, not r"),
    ("[loss]\nmodel = 'gilbert-elliott'\np = '1%'\nr = '2x'\n", "s.toml:4: [loss] r: unknown unit 'x'"),
    ("rules = [\n  'drop tcp',\n  'drop udp syn',\n]\n",
     "s.toml:3: rule 2 'drop udp syn': can never match: TCP flags on a protocol that is not TCP"),
    ("rules = ['drop tcp seq=9-3']\n",
     "s.toml:1: rule 1 'drop tcp seq=9-3': can never match: seq range 9-3 is empty"),
    ("rules = 'drop tcp'\n", "s.toml:1: rules must be a list of strings"),
    ("[[at]]\ntime = 1\ndown = true\n\n[[at]]\ntime = 2\ndwon = true\n",
     "s.toml:7: [[at]] #2: unknown key 'dwon'"),
    ("[[at]]\ntime = 1\nbytes = 5\ndown = true\n", "s.toml:1: [[at]] #1: give exactly one of time"),
    ("[[at]]\ntime = '-1s'\ndown = true\n", "s.toml:2: [[at]] #1: time must be >= 0"),
    ("[[at]]\ntime = 1\nfor = 0\ndown = true\n", "s.toml:3: [[at]] #1: for must be > 0"),
    ("[[at]]\ntime = 1\nmtu = 40\n", "s.toml:3: [[at]] #1: mtu must be an integer in 68..65535"),
    ("[[at]]\ntime = 1\nicmp = true\n", "s.toml:3: [[at]] #1: icmp goes with mtu = M"),
    ("[[at]]\ntime = 1\n", "s.toml:1: [[at]] #1: changes nothing"),
    ("[[at]]\ntime = 1\nblackhole = 'udp syn'\n",
     "s.toml:3: [[at]] #1: blackhole 'udp syn': can never match"),
    ("[[at]]\ntime = 1\nrate = 'fast'\n", "s.toml:3: [[at]] #1: bad value in fault spec item 'rate=fast'"),
    ("seed = [\n", "s.toml:1: not valid TOML"),
    ("[link]\nseed = 4\n", "s.toml:2: seed goes at the top of the file"),
])
def test_bad_scenarios_fail_with_the_line(tmp_path, text, error):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "\n" not in msg
    where, what = error.split(": ", 1)
    assert msg.startswith(f"{tmp_path}/{where}: {what}"), msg


def test_dir_in_is_refused_on_a_simulator_link(tmp_path):
    from ustack import Simulator

    p = tmp_path / "s.toml"
    p.write_text("rules = ['drop tcp dir=in']\n")
    with pytest.raises(ScenarioError, match="s.toml:1: rule 1 .*never matches on a link"), Simulator() as sim:
        sim.link("x", faults=str(p))
    with Simulator() as sim:
        assert sim.add_host("198.18.0.2/24", faults=str(p)).faults.scenario.rules


def test_missing_file():
    with pytest.raises(ScenarioError, match="nope.toml: No such file"):
        load_scenario("nope.toml")


SCRIPT = """
import hashlib, sys
from ustack import Simulator
from ustack import socket as us
sim = Simulator(seed=5, latency_s=0.01)
sim.link("default", faults=sys.argv[1], pcap="wire.pcap")
a = sim.add_host("198.18.0.2/24", pcap="a.pcap")
b = sim.add_host("198.18.0.1/24")
srv = us.socket(b); srv.bind(("0.0.0.0", 9)); srv.listen()
def rx():
    c, _ = srv.accept()
    n = 0
    while chunk := c.recv(65536):
        n += len(chunk)
    return n
t = sim.spawn(rx)
with us.create_connection(a, ("198.18.0.1", 9)) as c:
    c.sendall(bytes(1_500_000))
print(t.result(), f"{sim.now:.6f}")
"""

LINK = textwrap.dedent("""\
    seed = 4
    rules = ["drop tcp data src=198.18.0.2 nth=30-33", "corrupt tcp.payload tcp src=198.18.0.1 nth=9"]
    [loss]
    model = "gilbert"
    p = "0.5%"
    r = "40%"
    1-h = "70%"
    [[at]]
    time = "0.4s"
    for = "0.3s"
    down = true
""")


def test_same_seed_and_scenario_same_run_byte_for_byte(tmp_path):
    """Two processes (different hash seeds), one scenario on a simulator link: identical
    captures, fault comments included; another seed gives another run."""
    (tmp_path / "s.toml").write_text(LINK)
    digests = []
    for i, seed in enumerate((4, 4, 5)):
        d = tmp_path / f"run{i}"
        d.mkdir()
        text = LINK.replace("seed = 4", f"seed = {seed}")
        (d / "s.toml").write_text(text)
        r = subprocess.run([sys.executable, "-c", SCRIPT, "s.toml"], cwd=d, capture_output=True, text=True,
                           timeout=120, env={"PYTHONHASHSEED": str(i), "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0] == "1500000"
        digests.append((r.stdout, hashlib.sha256((d / "wire.pcap").read_bytes()).hexdigest(),
                        hashlib.sha256((d / "a.pcap").read_bytes()).hexdigest()))
        comments = read_fault_comments(d / "wire.pcap")
        kinds = {c.split()[1] for _, c in comments}
        assert {"drop", "corrupt", "change", "restore"} <= kinds, kinds
        assert read_fault_comments(d / "a.pcap") == comments  # the host's capture has them too
    assert digests[0] == digests[1]
    assert digests[0][1] != digests[2][1]


def test_tshark_reads_the_comments(tmp_path):
    tshark = shutil.which("tshark")
    if tshark is None:
        from tests.netns import skip_or_fail

        skip_or_fail("tshark is not installed")
    (tmp_path / "s.toml").write_text(LINK)
    r = subprocess.run([sys.executable, "-c", SCRIPT, "s.toml"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    pcap = tmp_path / "a.pcap"
    out = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "frame.interface_id",
                          "-e", "frame.comment"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [ln.split("\t") for ln in out.stdout.splitlines()]
    from_tshark = [c for iface, c in rows if iface == "1"]
    assert from_tshark == [c for _, c in read_fault_comments(pcap)]
    assert len([1 for iface, _ in rows if iface == "0"]) == sum(1 for _ in read_pcap(pcap))
    assert any(c.startswith("fault drop ") for c in from_tshark)
    malformed = subprocess.run([tshark, "-r", str(pcap), "-Y", "_ws.malformed"], capture_output=True,
                               text=True, timeout=60)
    assert malformed.stdout.strip() == ""
