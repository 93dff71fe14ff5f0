"""The lab's name-lookup scenario: dnsmasq on the kernel side answers ustack's DNS queries.

dnsmasq (Debian dnsmasq-base, installed by `make setup`) runs for the scenario only, bound to
the lab's device in the lab's private namespace, with one host record; ustack's Winsock
`gethostbyname` asks it over ustack's own UDP (ustack.services.resolver)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .wscalls import Call

LAB_NAME = "lab.test"
MISSING = "nope.test"
_READY_S = 5.0


def _dnsmasq(ifname: str, log: Path, address: str) -> subprocess.Popen[bytes]:
    exe = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
    if exe is None:
        raise FileNotFoundError("dnsmasq is not installed (Debian package dnsmasq-base; make setup)")
    return subprocess.Popen(
        [exe, "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", f"--interface={ifname}",
         "--bind-interfaces", "--port=53", "--user=root", "--pid-file=", "--local=/test/",
         f"--host-record={LAB_NAME},{address}", f"--log-facility={log}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _lookup(ws: Any, name: str) -> Call:
    from ustack.winsock.names import NAME_ERRORS

    t0 = time.monotonic()
    h = ws.gethostbyname(name)
    dt = time.monotonic() - t0
    if h is None:
        code = ws.WSAGetLastError()
        return Call("gethostbyname", f'"{name}"', None, "NULL", code, NAME_ERRORS.get(code, "WSA error"),
                    seconds=dt)
    addrs = ", ".join(".".join(str(b) for b in a) for a in h.h_addr_list)
    return Call("gethostbyname", f'"{name}"', h, addrs, seconds=dt)


def run_dns_lookup(host: Any, ws: Any, ifname: str, server: str) -> tuple[bool, str, list[Call]]:
    """(passed, what happened, calls): a name dnsmasq knows resolves to `server`; one it does not
    know is WSAHOST_NOT_FOUND (11001)."""
    from ustack.wire.ipv4 import ip_int

    with tempfile.TemporaryDirectory(prefix="ustack-lab-dns-") as tmp:
        log = Path(tmp) / "dnsmasq.log"
        try:
            proc = _dnsmasq(ifname, log, server)
        except FileNotFoundError as e:
            return False, str(e), []
        saved = host.call(lambda: list(host.stack.dns_servers))
        try:
            deadline = time.monotonic() + _READY_S
            while time.monotonic() < deadline and "started" not in (log.read_text() if log.exists() else ""):
                if proc.poll() is not None:
                    return False, f"dnsmasq exited ({proc.returncode})", []
                time.sleep(0.05)
            time.sleep(0.1)  # its sockets are bound once it has logged its start
            host.call(lambda: setattr(host.stack, "dns_servers", [ip_int(server)]))
            found = _lookup(ws, LAB_NAME)
            missing = _lookup(ws, MISSING)
        finally:
            host.call(lambda: setattr(host.stack, "dns_servers", saved))
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    ok = found.error is None and found.ret_text == server and missing.error == 11001
    got = f"{LAB_NAME} -> {found.ret_text}" + (f" {found.error_name}" if found.error else "")
    got += f"; {MISSING} -> {missing.error_name or missing.ret_text}"
    return ok, got, [found, missing]
