"""TCP interop, HTTP both ways over TUN and TAP: kernel curl against `ustack serve --http`, and a
ustack client against the kernel's `python3 -m http.server`."""

import hashlib
import socket
import subprocess
import sys
import time

import pytest

from tests.cli.helpers import http_body
from tests.interop.peer import (
    KERNEL_IP,
    USTACK_IP,
    UstackStream,
    pattern,
    start_ustack_serve,
    stop_process,
)
from tests.netns import require_tool

pytestmark = pytest.mark.netns


def expected_body_sha(n):
    return hashlib.sha256(http_body(n)).hexdigest()


def curl(url, out_path, timeout=30):
    exe = require_tool("curl")
    return subprocess.run([exe, "-sS", "--fail", "--max-time", str(timeout), "-o", str(out_path),
                           "-w", "%{http_code} %{size_download}", url],
                          capture_output=True, text=True, timeout=timeout + 5)


def test_kernel_curl_against_ustack_serve_cli(hosts, link, tmp_path):
    """The real CLI in a subprocess of this namespace: `ustack serve --http 80` prints ready."""
    proc = start_ustack_serve(link, "--http", "80")
    try:
        for n in (0, 1, 1460, 100_000, 2_000_000):
            out = tmp_path / f"body{n}"
            res = curl(f"http://{USTACK_IP}:80/bytes/{n}", out)
            assert res.returncode == 0, res.stderr
            assert res.stdout == f"200 {n}"
            assert hashlib.sha256(out.read_bytes()).hexdigest() == expected_body_sha(n)
    finally:
        rc = stop_process(proc)
    assert rc == 0, f"ustack serve exited {rc} after SIGTERM: {proc.stderr.read()}"


def test_kernel_curl_keepalive_several_requests_in_process(hosts, link, tmp_path):
    from ustack.cli.services import ServiceSet

    host = hosts.open(link)
    services = ServiceSet(host)
    services.tcp("http", 8080)
    try:
        urls = [f"http://{USTACK_IP}:8080/bytes/{n}" for n in (10, 20_000, 300_000)]
        exe = require_tool("curl")
        cmd = [exe, "-sS", "--fail", "--max-time", "30"]
        for i, u in enumerate(urls):
            cmd += ["-o", str(tmp_path / f"r{i}"), u]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
        assert res.returncode == 0, res.stderr
        for i, n in enumerate((10, 20_000, 300_000)):
            assert hashlib.sha256((tmp_path / f"r{i}").read_bytes()).hexdigest() == expected_body_sha(n)
        assert services.stats["tcp_accepted"] == 1, services.stats  # one keep-alive connection
        assert services.stats["http_requests"] == 3
    finally:
        services.stop()


def http_get(host, addr, port, path, timeout=30):
    """A tiny HTTP/1.0 client on ustack's TCP: (status, headers, body)."""
    s = UstackStream.connect(host, addr, port)
    try:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n".encode())
        raw = s.recv_to_eof(timeout=timeout)
    finally:
        s.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_ustack_client_against_kernel_http_server(hosts, link, tmp_path):
    docroot = tmp_path / "www"
    docroot.mkdir()
    content = pattern(3_000_000, seed=11)
    (docroot / "blob.bin").write_bytes(content)
    host = hosts.open(link)
    srv = subprocess.Popen([sys.executable, "-m", "http.server", "8000", "--bind", KERNEL_IP,
                            "--directory", str(docroot)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_listening(KERNEL_IP, 8000)
        status, headers, body = http_get(host, KERNEL_IP, 8000, "/blob.bin")
        assert status == 200
        assert int(headers["content-length"]) == len(content)
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(content).hexdigest()
        status, _, _ = http_get(host, KERNEL_IP, 8000, "/missing")
        assert status == 404
    finally:
        stop_process(srv)


def _wait_listening(addr, port, within=10.0):
    end = time.monotonic() + within
    while time.monotonic() < end:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((addr, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {addr}:{port} after {within} s")

