"""Fault scenarios over TUN against the Linux kernel (private netns): bursty loss with the
same sequence of decisions as the model and seed predict, targeted rules the kernel feels,
scheduled changes (a link flap; an MTU drop with ICMP that the kernel's PMTU discovery obeys),
and the CLI's `--faults FILE` with `--trace` on connect, serve and run."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.interop.peer import (
    KERNEL_IP,
    USTACK_IP,
    KernelServer,
    UstackStream,
    start_ustack_serve,
    stop_process,
)
from ustack.cli.netns import snmp_counter
from ustack.drivers import FaultInjector, make_model, parse_scenario
from ustack.drivers.lossmodel import LossState
from ustack.drivers.pcap import read_fault_comments, read_pcap

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]


USTACK = shutil.which("ustack") or os.path.join(os.path.dirname(sys.executable), "ustack")


def injector_of(host) -> FaultInjector:
    dev = host.device
    while not isinstance(dev, FaultInjector):
        dev = dev.inner
    return dev


def record(host) -> list:
    events: list = []
    injector_of(host).add_listener(events.append)
    return events


def test_bursty_loss_decisions_over_tun_are_the_models(hosts):
    """3000 datagrams from the kernel through a Gilbert-Elliott rx loss: the datagrams lost are
    exactly those the model's decision sequence for this seed names (two draws per frame), so
    a real-time run makes the same decisions as a virtual-time one."""
    n, seed = 3000, 21
    model = make_model("gilbert-elliott", 0.02, 0.25, 0.9, 0.005)
    sc = parse_scenario(f'seed = {seed}\n[link]\ndirection = "rx"\n[loss]\nmodel = "gilbert-elliott"\n'
                        'p = "2%"\nr = "25%"\n1-h = "90%"\n1-k = "0.5%"\n')
    assert sc.link.loss_model == model
    host = hosts.open("tun", faults=sc)
    events = record(host)
    from ustack import socket as us

    rx = us.socket(host, us.AF_INET, us.SOCK_DGRAM)
    rx.bind(("0.0.0.0", 9))
    got: list[int] = []

    def reader():
        rx.settimeout(5.0)
        while len(got) < n:
            try:
                data, _ = rx.recvfrom(64)
            except OSError:
                return
            got.append(int.from_bytes(data[:4], "big"))
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(n):
            k.sendto(i.to_bytes(4, "big") + bytes(60), (USTACK_IP, 9))
            if i % 20 == 19:
                time.sleep(0.004)  # paced: ustack's socket buffer never overflows
    finally:
        k.close()
    t.join(30)
    rx.close()
    state = LossState(model, random.Random(f"ustack.faults:{seed}:rx:loss"))
    predicted = [i for i in range(n) if state.lost()]
    lost_by_injector = [int.from_bytes(e.frame[28:32], "big") for e in events if e.kind == "loss"]
    assert lost_by_injector == predicted
    assert sorted(set(range(n)) - set(got)) == predicted  # and nothing else went missing
    assert len(predicted) > 50


def test_targeted_rules_against_the_kernel(hosts, tmp_path):
    """drop the 50th data segment, corrupt the 100th one's checksum, delay the SYN by 300 ms:
    the kernel counts exactly one checksum error, receives every byte, and the connection takes
    the 300 ms."""
    sc = parse_scenario('rules = ["drop tcp data dir=out nth=50", '
                        '"corrupt tcp.checksum tcp data dir=out nth=100", "delay 300ms tcp syn dir=out"]\n')
    host = hosts.open("tun", faults=sc, pcap=str(tmp_path / "t.pcap"))
    events = record(host)
    payload = random.Random(3).randbytes(2_000_000)
    got = {}

    def sink(c):
        h = hashlib.sha256()
        n = 0
        while chunk := c.recv(1 << 20):
            h.update(chunk)
            n += len(chunk)
        got["n"], got["sha"] = n, h.hexdigest()
    csum0 = snmp_counter("Tcp", "InCsumErrors") or 0
    srv = KernelServer(5200, sink)
    try:
        t0 = time.monotonic()
        s = UstackStream.connect(host, KERNEL_IP, 5200, timeout=10)
        connect_s = time.monotonic() - t0
        s.sendall(payload, timeout=60)
        s.shutdown_write()
        end = time.monotonic() + 30
        while "sha" not in got and time.monotonic() < end:
            time.sleep(0.05)
        s.close()
    finally:
        srv.close()
    assert got.get("n") == len(payload) and got["sha"] == hashlib.sha256(payload).hexdigest()
    assert sorted(e.kind for e in events) == ["corrupt", "delay", "drop"]
    assert (snmp_counter("Tcp", "InCsumErrors") or 0) - csum0 == 1
    assert connect_s >= 0.3
    host.close()
    comments = [c for _, c in read_fault_comments(tmp_path / "t.pcap")]
    assert [c.split()[1] for c in comments] == [e.kind for e in events]


def test_link_flap_then_mtu_drop_with_icmp(hosts, tmp_path):
    """A 4 MB download from the kernel: the link goes down at 0.2 s for 0.5 s (nothing reaches
    ustack, the kernel retransmits); from 1 s the MTU is 1000 with ICMP frag-needed, and the
    kernel's path MTU discovery sends smaller segments from then on."""
    sc = parse_scenario('[[at]]\ntime = "0.2s"\nfor = "0.5s"\ndown = true\n\n'
                        '[[at]]\ntime = "1s"\nmtu = 1000\nicmp = true\n')
    pcap = tmp_path / "flap.pcap"
    host = hosts.open("tun", faults=sc, pcap=str(pcap))
    events = record(host)
    payload = random.Random(4).randbytes(4_000_000)

    def source(c):
        time.sleep(0.05)
        for i in range(0, len(payload), 65536):
            c.sendall(payload[i:i + 65536])
            time.sleep(0.02)  # ~3 MB/s: the transfer spans both changes
    rt0 = snmp_counter("Tcp", "RetransSegs") or 0
    srv = KernelServer(5300, source)
    try:
        s = UstackStream.connect(host, KERNEL_IP, 5300, timeout=10)
        h = hashlib.sha256()
        n = s.recv_to_eof(timeout=60, hasher=h)
        s.close()
    finally:
        srv.close()
    assert n == len(payload) and h.hexdigest() == hashlib.sha256(payload).hexdigest()
    kinds = [e.kind for e in events]
    assert kinds[0] == "change" and "restore" in kinds and "icmp-frag-needed" in kinds
    down_at = events[0].t
    up_at = next(e.t for e in events if e.kind == "restore")
    assert up_at - down_at == pytest.approx(0.5, abs=1e-6)
    assert (snmp_counter("Tcp", "RetransSegs") or 0) - rt0 > 0
    host.close()
    t_icmp = next(e.t for e in events if e.kind == "icmp-frag-needed")
    rx = [(t, f) for t, f, _ in read_pcap(pcap) if f[12:16] == socket.inet_aton(KERNEL_IP)]
    # Nothing from the kernel reached the stack while the link was down (pcap and comment
    # timestamps share the wall-clock offset).
    comments = read_fault_comments(pcap)
    c_down = next(t for t, c in comments if c.startswith("fault change") and "down" in c)
    c_up = next(t for t, c in comments if c.startswith("fault restore"))
    assert not [t for t, _ in rx if c_down + 0.001 < t < c_up - 0.001]
    c_icmp = next(t for t, c in comments if c.startswith("fault icmp-frag-needed"))
    late = [f for t, f in rx if t > c_icmp + 0.1]
    assert late and max(len(f) for f in late) <= 1000
    assert t_icmp > down_at


def test_cli_faults_file_with_trace(netns, tmp_path):
    """`ustack connect --faults FILE --trace --pcap`: the SYN is delayed by the file's rule, the
    trace shows the fault, the pcapng carries it as a comment; a bad file is one line, exit 2,
    before any device exists."""
    good = tmp_path / "syn.toml"
    good.write_text('rules = ["delay 200ms tcp syn dir=out"]\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('rules = [\n  "delay 200ms tcp syn dir=out",\n  "drop udp fin",\n]\n')
    lsock = socket.socket()
    lsock.bind(("0.0.0.0", 5400))
    lsock.listen(4)
    try:
        r = subprocess.run([USTACK, "connect", KERNEL_IP, "5400", "--tun", "fcli0", "--addr",
                            f"{USTACK_IP}/24", "--peer", f"{KERNEL_IP}/24", "--faults", str(bad)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1 and f"{bad}:3: rule 2 'drop udp fin': can never match" in r.stderr
        assert not (subprocess.run(["ip", "link", "show", "fcli0"], capture_output=True).returncode == 0)
        pcap = tmp_path / "c.pcap"
        r = subprocess.run([USTACK, "connect", KERNEL_IP, "5400", "--tun", "fcli0", "--addr",
                            f"{USTACK_IP}/24", "--peer", f"{KERNEL_IP}/24", "--faults", str(good), "--trace",
                            "--pcap", str(pcap), "--stats"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert "! fault delay tx (delay 200ms tcp syn dir=out): IP 198.18.0.2." in r.stderr
        assert "faults rule 'delay 200ms tcp syn dir=out': matched 1, fired 1" in r.stderr
        assert "faults tx: seen" in r.stderr and "rule_delayed 1" in r.stderr
        assert [c.split()[1] for _, c in read_fault_comments(pcap)] == ["delay"]
    finally:
        lsock.close()


def test_serve_accepts_a_scenario(netns, tmp_path):
    sc = tmp_path / "s.toml"
    sc.write_text('[link]\ndelay = "20ms"\n[[at]]\ntime = "30s"\ndown = true\n')
    p = start_ustack_serve("tun", "--echo", "7", "--faults", str(sc))
    try:
        c = socket.create_connection((USTACK_IP, 7), timeout=5)
        t0 = time.monotonic()
        c.sendall(b"ping")
        assert c.recv(4) == b"ping"
        assert time.monotonic() - t0 >= 0.04  # 20 ms each way through the scenario's [link]
        c.close()
    finally:
        stop_process(p)


def test_run_takes_a_scenario(netns, tmp_path):
    """`ustack run --faults FILE -- python prog.py`: the program's SYN is delayed by the rule."""
    sc = tmp_path / "syn.toml"
    sc.write_text('rules = ["delay 200ms tcp syn dir=out"]\n')
    prog = tmp_path / "prog.py"
    prog.write_text("import socket, time\nt = time.monotonic()\n"
                    "s = socket.create_connection(('198.18.0.1', 5500), timeout=5)\n"
                    "print(f'connected in {time.monotonic() - t:.3f}')\ns.sendall(b'hi')\ns.close()\n")
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", 5500))
    lsock.listen(1)
    got = []

    def accept():
        lsock.settimeout(20)
        try:
            c, _ = lsock.accept()
            c.settimeout(5)
            got.append(c.recv(10))
            c.close()
        except OSError as e:
            got.append(e)
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        argv = [USTACK, "run", "--tun", "frun0", "--addr", f"{USTACK_IP}/24", "--peer", f"{KERNEL_IP}/24",
                "--faults", str(sc), "--stats", "--", sys.executable, str(prog)]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        t.join(20)
    finally:
        lsock.close()
    assert r.returncode == 0, r.stderr
    assert got == [b"hi"]
    assert float(r.stdout.split()[-1]) >= 0.2
    assert "faults rule 'delay 200ms tcp syn dir=out': matched 1, fired 1" in r.stderr
