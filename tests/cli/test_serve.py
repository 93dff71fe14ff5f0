"""`ustack serve` over a real TUN/TAP link in a private namespace: the `ready` line, each service
answering kernel sockets (and curl), and a clean exit 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import time

import pytest

from tests.netns import require_tool, run_in_netns

from .helpers import RFC864_LINE0, Proc, chargen_lines, http_body, ustack

pytestmark = pytest.mark.netns

DEV = ["--addr", "198.18.0.2/24", "--peer", "198.18.0.1/24"]
USTACK = "198.18.0.2"


def _http_get_keepalive(paths: list[str]) -> list[tuple[int, bytes]]:
    """GET each path on one kernel TCP connection; (status, body) each."""
    s = socket.create_connection((USTACK, 80), timeout=10)
    f = s.makefile("rb")
    out = []
    for p in paths:
        s.sendall(f"GET {p} HTTP/1.1\r\nHost: ustack\r\n\r\n".encode())
        status = int(f.readline().split()[1])
        length = None
        while (line := f.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        out.append((status, f.read(length)))
    s.close()
    return out


def _serve_body(kind: str, sig: int, curl: str) -> dict:
    p = Proc("serve", f"--{kind}", "ust0", *DEV, "--udp-echo", "7", "--echo", "7", "--discard", "9",
             "--chargen", "19", "--http", "80")
    try:
        res: dict = {"ready": p.wait_line("ready", timeout=30)}
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        u.sendto(b"ping over udp", (USTACK, 7))
        res["udp"] = u.recvfrom(100)
        t = socket.create_connection((USTACK, 7), timeout=10)
        blob = bytes(range(256)) * 4000  # 1 MB
        t.sendall(blob)
        t.shutdown(socket.SHUT_WR)
        got = bytearray()
        while d := t.recv(65536):
            got += d
        res["echo_ok"] = bytes(got) == blob
        t.close()
        d = socket.create_connection((USTACK, 9), timeout=10)
        d.sendall(b"z" * 200_000)
        d.shutdown(socket.SHUT_WR)
        res["discard_eof"] = d.recv(10) == b""
        d.close()
        c = socket.create_connection((USTACK, 19), timeout=10)
        first = b""
        while len(first) < 3 * 74:
            first += c.recv(4096)
        c.close()
        res["chargen_ok"] = first[:3 * 74] == chargen_lines(3) and first[:74] == RFC864_LINE0
        res["http"] = [(st, len(b), hashlib.sha256(b).hexdigest()) for st, b in
                       _http_get_keepalive(["/bytes/10", "/bytes/300000", "/nope"])]
        r = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                            f"http://{USTACK}/bytes/123456"], capture_output=True, text=True, timeout=30)
        res["curl"] = r.stdout
        res["exit"], res["out"], res["err"] = p.terminate(sig)
        return res
    finally:
        p.kill()


@pytest.mark.parametrize("kind,sig", [("tun", signal.SIGTERM), ("tap", signal.SIGINT)])
def test_serve_services_and_clean_exit(kind, sig):
    curl = require_tool("curl")  # in the Makefile's DEB_TOOLS: fails under CI if missing
    res = run_in_netns(_serve_body, kind, sig, curl, timeout=120)
    assert res["ready"].startswith(f"ready {kind}=ust0 addr=198.18.0.2/24")
    assert res["udp"] == (b"ping over udp", (USTACK, 7))
    assert res["echo_ok"] and res["discard_eof"] and res["chargen_ok"]
    body300k = http_body(300000)
    assert res["http"] == [(200, 10, hashlib.sha256(http_body(10)).hexdigest()),
                           (200, 300000, hashlib.sha256(body300k).hexdigest()),
                           (404, len(b"not found; try /bytes/1000\n"),
                            hashlib.sha256(b"not found; try /bytes/1000\n").hexdigest())]
    assert res["curl"] == "200 123456"
    assert res["exit"] == 0, res["err"]
    assert res["out"].strip().endswith("stopped")


def _bad_port_body() -> tuple[int, str]:
    # Port 7 twice for TCP is caught before anything is opened: a usage error.
    r = ustack("serve", "--tun", "ust0", *DEV, "--echo", "7", "--discard", "7", timeout=30)
    return r.returncode, r.stderr


def test_serve_port_clash_is_a_usage_error():
    code, err = run_in_netns(_bad_port_body, timeout=60)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "port 7" in err


def test_trace_prints_frames_and_tcp_states(tmp_path):
    require_tool("ip")
    pcap = tmp_path / "serve.pcap"
    res = run_in_netns(_trace_body, str(pcap), timeout=60)
    assert res["exit"] == 0
    err = res["err"]
    assert "> IP 198.18.0.2.7 > 198.18.0.1." in err and "Flags [S.]" in err  # our SYN-ACK, decoded
    assert "SYN-RECEIVED -> ESTABLISHED" in err  # a TCP state change with its connection
    # --pcap: the same conversation, readable by tshark, nothing malformed
    tshark = require_tool("tshark")
    r = subprocess.run([tshark, "-r", str(pcap), "-n", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.len",
                        "-e", "_ws.malformed"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert ["7", "2", ""] in rows and ["7", "0", ""] in rows  # the echo of b"hi", the SYN-ACK
    assert not any(row[2] for row in rows)


def _trace_body(pcap: str) -> dict:
    p = Proc("serve", "--tun", "ust0", *DEV, "--echo", "7", "--trace", "--pcap", pcap)
    try:
        p.wait_line("ready", timeout=30)
        t = socket.create_connection((USTACK, 7), timeout=10)
        t.sendall(b"hi")
        t.recv(10)
        t.close()
        time.sleep(0.3)
        code, out, err = p.terminate(signal.SIGTERM)
        return {"exit": code, "err": err}
    finally:
        p.kill()


def _device_busy_body() -> tuple[int, str]:
    r = ustack("serve", "--tun", "lo", "--addr", "198.18.0.2/24", "--udp-echo", "7", timeout=30)
    return r.returncode, r.stderr


def test_serve_device_that_cannot_be_opened_exits_1_with_one_line():
    code, err = run_in_netns(_device_busy_body, timeout=60)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "cannot open TUN device lo: an interface named lo" in err
