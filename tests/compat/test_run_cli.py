"""`ustack run` itself, as a subprocess in a private network namespace: the program's traffic is
ustack's, stdin/stdout/stderr and the exit status pass through, Ctrl-C (SIGINT) reaches the
program, the device goes away with it, and anything but Python is refused in one line."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import dpkt
import pytest

from tests.compat.test_kernel import KERNEL_IP, USTACK_IP, kernel_peer, pattern
from ustack.drivers.pcap import read_pcap

pytestmark = pytest.mark.netns
IFNAME = "cpr0"
USTACK = shutil.which("ustack") or os.path.join(os.path.dirname(sys.executable), "ustack")
DEVICE = ["--tun", IFNAME, "--addr", f"{USTACK_IP}/24", "--peer", f"{KERNEL_IP}/24"]


def ustack_run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([USTACK, "run", *args], capture_output=True, text=True, timeout=90, **kw)


def device_exists(name: str = IFNAME) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def write(tmp_path, name: str, code: str) -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(code))
    return str(p)


@pytest.mark.parametrize("link", ["tun", "tap"])
def test_program_traffic_stdio_and_exit_status(netns, tmp_path, link):
    prog = write(tmp_path, "fetch.py", """
        import sys, urllib.request, hashlib
        print("args", sys.argv[1:], "stdin", sys.stdin.read().strip())
        with urllib.request.urlopen(f"http://198.18.0.1:8080/bytes/{sys.argv[1]}", timeout=60) as r:
            body = r.read()
            print(r.headers["X-Peer"].split(":")[0], len(body), hashlib.sha256(body).hexdigest()[:16])
        print("to stderr", file=sys.stderr)
        sys.exit(7)
    """)
    pcap = tmp_path / "run.pcap"
    with kernel_peer("http", "8080"):
        device = [f"--{link}", *DEVICE[1:]]
        out = ustack_run(*device, "--loss", "3%", "--seed", "4", "--pcap", str(pcap), "--",
                         "python", prog, "300000", "x", input="from stdin\n")


    digest = hashlib.sha256(pattern(300_000)).hexdigest()[:16]
    assert out.returncode == 7, out.stderr
    assert out.stdout == f"args ['300000', 'x'] stdin from stdin\n{USTACK_IP} 300000 {digest}\n"
    assert out.stderr == "to stderr\n"
    assert not device_exists()  # the device went away with the program
    sources = set()
    for _ts, buf, linktype in read_pcap(pcap):
        ip = dpkt.ethernet.Ethernet(buf).data if linktype == dpkt.pcap.DLT_EN10MB else dpkt.ip.IP(buf)
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP):
            sources.add(dpkt.utils.inet_to_str(ip.src))
    assert sources == {USTACK_IP, KERNEL_IP}  # the connection in the pcap is ustack's


def test_module_and_code_forms_and_uncaught_exception(netns, tmp_path):
    out = ustack_run(*DEVICE, "--", "python3", "-c",
                     "import socket, sys; s = socket.socket(); print(type(s).__module__, sys.argv)", "a")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ustack.compat ['-c', 'a']\n"
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import sys\nprint('main of', __name__, sys.argv[1:])\n")
    out = ustack_run(*DEVICE, "--", "python", "-m", "pkg", "--flag", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "main of __main__ ['--flag']\n"
    out = ustack_run(*DEVICE, "--", "python", "-m", "no_such_module_here", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr.endswith(": No module named no_such_module_here\n") and out.stderr.count("\n") == 1
    prog = write(tmp_path, "boom.py", """
        import socket
        def connect():
            socket.create_connection(("198.18.0.1", 1), timeout=10)
        connect()
    """)
    out = ustack_run(*DEVICE, "--", prog)
    assert out.returncode == 1
    assert out.stderr.startswith("Traceback (most recent call last):\n")
    assert f'File "{prog}", line 5, in <module>' in out.stderr
    assert out.stderr.rstrip().endswith("ConnectionRefusedError: [Errno 111] Connection refused")
    assert "runner.py" not in out.stderr and "runpy" not in out.stderr


@pytest.mark.parametrize("handled", [True, False], ids=["handled", "unhandled"])
def test_ctrl_c_reaches_the_program(netns, tmp_path, handled):
    prog = write(tmp_path, "wait.py", """
        import socket, sys
        srv = socket.create_server(("0.0.0.0", 9000))
        try:
            print("waiting", flush=True)
            srv.accept()  # blocks in ustack until SIGINT
        except KeyboardInterrupt:
            if sys.argv[1] == "handled":
                print("interrupted", flush=True)
                sys.exit(3)
            raise
    """)
    p = subprocess.Popen([USTACK, "run", *DEVICE, "--", "python", prog, "handled" if handled else "no"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "waiting\n"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if handled:
        assert (p.returncode, out) == (3, "interrupted\n"), err
    else:
        assert p.returncode == -signal.SIGINT, err  # as python itself: killed by SIGINT
        assert err.rstrip().endswith("KeyboardInterrupt")
    assert not device_exists()


def test_non_python_commands_are_refused_in_one_line(netns, tmp_path):
    for cmd in (["curl", "http://198.18.0.1/"], ["/bin/sh", "-c", "true"], []):
        out = ustack_run(*DEVICE, "--", *cmd)
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("ustack run: error: "), out.stderr
        assert not device_exists()  # refused before any device was opened
    out = ustack_run(*DEVICE, "--", "curl", "x")
    assert "'curl' is not a Python program" in out.stderr
    out = ustack_run(*DEVICE, "--", "python", str(tmp_path / "missing.py"))
    assert out.returncode == 2 and "missing.py" in out.stderr
