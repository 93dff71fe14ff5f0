"""`ustack connect` against the Linux kernel in a private namespace: the printed Winsock calls
and the exit status (0 success, 1 Winsock error, 2 usage error)."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.netns import run_in_netns

from .helpers import ustack

pytestmark = pytest.mark.netns

DEV = ["--tun", "ust0", "--addr", "198.18.0.2/24", "--peer", "198.18.0.1/24"]


def _with_kernel_listener(cases: list[list[str]]) -> list[tuple[int, str, str]]:
    """Run each `ustack connect` with a kernel TCP listener on port 7 (bound before the link
    exists, to 0.0.0.0, so it serves whichever TUN the command creates)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", 7))
    ls.listen(16)
    ls.settimeout(0.2)
    stop = threading.Event()

    held = []  # accepted connections stay open: a close would race with FD_CONNECT (FD_CLOSE)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                held.append(ls.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    out = []
    try:
        for args in cases:
            r = ustack("connect", *args, *DEV, timeout=60)
            out.append((r.returncode, r.stdout, r.stderr))
    finally:
        stop.set()
        t.join(2)
        ls.close()
        for c in held:
            c.close()
    return out


CASES = {
    "blocking-ok": (["198.18.0.1", "7"], 0,
                    ["connect(s1, 198.18.0.1:7) = 0", "getsockname(s1) = 0  198.18.0.2:",
                     "getpeername(s1) = 0  198.18.0.1:7"]),
    "refused": (["198.18.0.1", "81"], 1,
                ["connect(s1, 198.18.0.1:81) = SOCKET_ERROR  WSAECONNREFUSED (10061)"]),
    "net-unreachable": (["198.19.0.1", "7"], 1,
                        ["connect(s1, 198.19.0.1:7) = SOCKET_ERROR  WSAENETUNREACH (10051)"]),
    "select-ok": (["198.18.0.1", "7", "--nonblocking", "select"], 0,
                  ["ioctlsocket(s1, FIONBIO, 1) = 0",
                   "connect(s1, 198.18.0.1:7) = SOCKET_ERROR  WSAEWOULDBLOCK (10035)",
                   "= 1  ready in writefds", "getsockopt(s1, SOL_SOCKET, SO_ERROR) = 0  value 0"]),
    "async-refused": (["198.18.0.1", "81", "--nonblocking", "async"], 1,
                      ["lParam=0x274d0010 (FD_CONNECT, error 10061 WSAECONNREFUSED)"]),
    "event-ok": (["198.18.0.1", "7", "--nonblocking", "event"], 0,
                 ["WSAWaitForMultipleEvents(1, events, FALSE, 30000, FALSE) = WSA_WAIT_EVENT_0+0",
                  "lNetworkEvents=FD_CONNECT iErrorCode[FD_CONNECT_BIT]=0"]),
    "select-refused": (["198.18.0.1", "81", "--nonblocking", "select"], 1,
                       ["= 1  ready in exceptfds",
                        "getsockopt(s1, SOL_SOCKET, SO_ERROR) = 0  value 10061 (WSAECONNREFUSED)"]),
    "event-refused": (["198.18.0.1", "81", "--nonblocking", "event"], 1,
                      ["lNetworkEvents=FD_CONNECT iErrorCode[FD_CONNECT_BIT]=10061 (WSAECONNREFUSED)",
                       "WSACloseEvent(hEvent) = TRUE"]),  # closed on the failure path too
    "bind": (["198.18.0.1", "7", "--bind", "198.18.0.2:40000"], 0,
             ["bind(s1, 198.18.0.2:40000) = 0", "getsockname(s1) = 0  198.18.0.2:40000"]),
    # Windows (Wine's sock.c test_broadcast): connecting a UDP socket to a broadcast address
    # needs no SO_BROADCAST; only sendto a broadcast address does
    "udp-broadcast-connect": (["198.18.0.255", "7", "--udp"], 0,
                              ["connect(s1, 198.18.0.255:7) = 0"]),
    "udp-broadcast-allowed": (["198.18.0.255", "7", "--udp", "--broadcast"], 0,
                              ["setsockopt(s1, SOL_SOCKET, SO_BROADCAST, 1) = 0",
                               "connect(s1, 198.18.0.255:7) = 0"]),
}


@pytest.fixture(scope="module")
def results():
    names = list(CASES)
    got = run_in_netns(_with_kernel_listener, [CASES[n][0] for n in names], timeout=180)
    return dict(zip(names, got, strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_connect_prints_calls_and_exit_status(results, name):
    _, code, lines = CASES[name]
    rc, out, err = results[name]
    assert rc == code, (out, err)
    for line in lines:
        assert line in out, out
    assert out.splitlines()[0] == "WSAStartup(2.2) = 0  wVersion 2.2"
    assert out.splitlines()[-1] == "WSACleanup() = 0"


def _stats_body() -> tuple[int, str]:
    r = ustack("connect", "198.18.0.1", "81", *DEV, "--stats", "--delay", "5ms", timeout=60)
    return r.returncode, r.stderr


def test_stats_print_the_counters_and_the_faults():
    code, err = run_in_netns(_stats_body, timeout=90)
    assert code == 1  # refused
    lines = err.splitlines()
    assert "tcp:" in lines and "ipv4:" in lines
    assert any(ln.split()[-1] == "active_open" and ln.split()[0] == "1" for ln in lines)
    assert any(ln.startswith("faults tx: seen 3, delayed 3") for ln in lines), lines  # SYN + 2 retries
    assert any(ln.split()[-1] == "refused" for ln in lines)


def _pcap_trace_body(pcap: str) -> tuple[int, str, str]:
    r = ustack("connect", "198.18.0.1", "81", *DEV, "--pcap", pcap, "--trace", timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_connect_pcap_and_trace(tmp_path):
    """--pcap writes what the stack sent and received (tshark reads it, nothing malformed);
    --trace prints each frame in and out and each TCP state change, timestamped, on stderr,
    while the Winsock calls stay on stdout."""
    import re
    import subprocess

    from tests.netns import require_tool

    pcap = tmp_path / "connect.pcap"
    code, out, err = run_in_netns(_pcap_trace_body, str(pcap), timeout=90)
    assert code == 1 and "WSAECONNREFUSED (10061)" in out, (out, err)
    frames = [ln for ln in err.splitlines() if re.match(r"^\d+\.\d{6} [<>] IP ", ln)]
    assert sum(" > IP 198.18.0.2." in f and "Flags [S]" in f for f in frames) == 3  # SYN + 2 retries
    assert sum(" < IP 198.18.0.1.81 > " in f and "Flags [R.]" in f for f in frames) == 3
    states = [ln for ln in err.splitlines() if re.match(r"^\d+\.\d{6} TCP ", ln)]
    assert states and states[0].endswith("CLOSED -> SYN-SENT") and states[-1].endswith("SYN-SENT -> CLOSED")
    assert "Flags" not in out  # the trace does not mix into the calls
    tshark = require_tool("tshark")
    r = subprocess.run([tshark, "-r", str(pcap), "-n", "-T", "fields", "-e", "tcp.flags.str",
                        "-e", "_ws.malformed", "-e", "_ws.expert.severity"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert len(rows) == 6 and not any(row[1] for row in rows)
