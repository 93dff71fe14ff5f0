"""The DHCP client and the DNS resolver against dnsmasq (Debian dnsmasq-base), run by the test
in a private netns on the kernel side of a TAP (198.18.0.0/24 only; killed at teardown).

dnsmasq's shortest lease is 2 minutes, so renew/rebind/expiry are tested in virtual time
(test_dhcp_client.py); here: acquisition, INIT-REBOOT (ACK and NAK), DECLINE after an ARP
conflict with a kernel address, RELEASE, and A lookups over UDP and (truncated) over TCP."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.netns import require_tool
from ustack.runtime.host import Host
from ustack.services.dhcp import BOUND, DhcpConfig, DhcpService
from ustack.services.resolver import NOT_FOUND, ResolveError, Resolver
from ustack.wire.ipv4 import ip_int, ip_str

IF = "dhcptap0"
KERNEL = "198.18.0.1"
FAST = DhcpConfig(probe_wait_s=0.2, probe_num=2, probe_min_s=0.2, probe_max_s=0.3, announce_wait_s=0.3,
                  decline_wait_s=1.0, nak_wait_s=0.5)
BIG = [f"198.18.1.{i}" for i in range(1, 41)]  # 40 A records: over 512 bytes, truncated on UDP
MAC = bytes.fromhex("020000d4c001")


class Dnsmasq:
    def __init__(self, tmp: Path, *extra: str, ifname: str = IF, bind: str = "--bind-interfaces") -> None:
        exe = "/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else require_tool("dnsmasq")
        self.leases = tmp / "leases"
        self.logfile = tmp / "dnsmasq.log"
        args = [exe, "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                f"--interface={ifname}", bind, "--port=53", "--user=root", "--pid-file=",
                f"--dhcp-leasefile={self.leases}", f"--log-facility={self.logfile}", "--log-dhcp",
                "--log-queries", "--no-ping", "--dhcp-authoritative", "--local=/test/",
                "--dhcp-range=198.18.0.50,198.18.0.60,255.255.255.0,2m",
                "--host-record=web.test,198.18.0.80", "--address=/wild.test/198.18.0.81",
                *(f"--host-record=big.test,{a}" for a in BIG), *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.wait_log("DHCP, IP range", 10)

    def log(self) -> str:
        try:
            return self.logfile.read_text()
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            if self.proc.poll() is not None:
                raise AssertionError(f"dnsmasq exited: {self.proc.stderr.read().decode()} {log}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in dnsmasq's log after {timeout_s} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc.stderr.close()


@pytest.fixture
def lan(netns, tmp_path):
    """(host, start_dnsmasq): a ustack Host on a TAP without an address; dnsmasq started on
    the kernel side by start_dnsmasq(*extra_args)."""
    host = Host.open(tap=IF, addr="0.0.0.0/32", peer=f"{KERNEL}/24", seed=11, mac=MAC)
    servers: list[Dnsmasq] = []

    def start(*extra: str) -> Dnsmasq:
        d = Dnsmasq(tmp_path, *extra)
        servers.append(d)
        return d

    try:
        yield host, start
    finally:
        host.close()
        for d in servers:
            d.stop()
        assert host.stack.counters.get("stack.internal_error") == 0


def acquire(host: Host, timeout_s: float = 20.0, **kw) -> DhcpService:
    svc = DhcpService(host.stack, config=FAST, **kw)
    host.call(svc.start, host.now())
    assert host.wait(lambda: svc.client.state == BOUND, timeout_s), (svc.client.state, svc.client.log)
    return svc


def ping(addr: str) -> int:
    return subprocess.run(["ping", "-c", "1", "-W", "2", addr], capture_output=True, timeout=10).returncode


def test_acquire_then_resolve_names(lan):
    host, start = lan
    d = start()
    svc = acquire(host)
    addr = ip_str(host.stack.addr)
    assert ip_int("198.18.0.50") <= host.stack.addr <= ip_int("198.18.0.60")
    assert host.stack.routes.prefix == 24 and host.stack.routes.gateway == ip_int(KERNEL)
    assert host.stack.dns_servers == [ip_int(KERNEL)]  # option 6: dnsmasq itself
    lease = svc.client.lease
    assert lease.lease_s == 120 and lease.t1_s == 60 and lease.t2_s == 105  # dnsmasq's 2 min lease
    log = d.wait_log(f"DHCPACK({IF}) {addr}", 5)
    assert "DHCPDISCOVER" in log and "DHCPREQUEST" in log
    assert "02:00:00:d4:c0:01" in d.leases.read_text()
    assert ping(addr) == 0  # the kernel reaches the address we installed
    r = Resolver(host)
    assert r.resolve("web.test") == ["198.18.0.80"]
    assert r.resolve("x.wild.test") == ["198.18.0.81"]
    with pytest.raises(ResolveError) as e:
        r.resolve("nope.test")
    assert e.value.kind == NOT_FOUND
    assert sorted(r.resolve("big.test"), key=ip_int) == BIG  # truncated on UDP, whole over TCP
    assert [t for _, t, _, _ in r.log][-2:] == ["udp", "tcp"]


def test_init_reboot_ack_and_nak(lan):
    host, start = lan
    d = start()
    svc = acquire(host)
    addr = ip_str(host.stack.addr)
    host.call(svc.close)
    host.call(host.stack.set_address, "0.0.0.0/32")
    again = acquire(host, remembered=addr)
    assert ip_str(host.stack.addr) == addr and again.client.log[0][1] == "REBOOTING"
    assert d.log().count("DHCPDISCOVER") == 1  # only the first acquisition discovered
    host.call(again.close)
    host.call(host.stack.set_address, "0.0.0.0/32")
    third = acquire(host, remembered="198.18.0.99")  # outside dnsmasq's range: authoritative NAK
    d.wait_log("DHCPNAK", 5)
    assert host.stack.counters.get("dhcp.nak_in") == 1
    assert [s for _, s in third.client.log][:3] == ["REBOOTING", "INIT", "SELECTING"]
    assert ip_str(host.stack.addr) == addr  # dnsmasq gives this MAC its address again


def test_decline_when_the_kernel_answers_arp_for_the_offer(lan, netns):
    host, start = lan
    d = start(f"--dhcp-host={':'.join(f'{b:02x}' for b in MAC)},198.18.0.55")
    netns.ip("addr", "add", "198.18.0.55/32", "dev", IF)  # a conflicting neighbour: the kernel
    svc = acquire(host, timeout_s=30)
    log = d.wait_log("DHCPDECLINE", 5)
    assert "198.18.0.55" in log
    assert host.stack.counters.get("dhcp.conflict") >= 1
    assert host.stack.addr != ip_int("198.18.0.55") and svc.client.state == BOUND


def test_release(lan):
    host, start = lan
    d = start()
    svc = acquire(host)
    addr = ip_str(host.stack.addr)
    assert addr in d.leases.read_text()
    host.call(svc.release, host.now())
    d.wait_log(f"DHCPRELEASE({IF}) {addr}", 5)
    assert host.stack.addr == 0
    deadline = time.monotonic() + 5
    while addr in d.leases.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert addr not in d.leases.read_text()


def test_cli_connect_by_name_with_dhcp(netns, tmp_path):
    """`ustack connect --tap T --dhcp NAME PORT`: address by DHCP, the name by gethostbyname
    over the DNS server DHCP gave (dnsmasq, TCP port 53 is the connect target); a name that
    does not resolve is a one-line WSAHOST_NOT_FOUND (11001) and exit status 1."""
    import sys

    d = Dnsmasq(tmp_path, "--host-record=dns.test,198.18.0.1", ifname="dhcpcli0", bind="--bind-dynamic")
    try:
        base = [sys.executable, "-m", "ustack", "connect", "--tap", "dhcpcli0", "--peer", f"{KERNEL}/24",
                "--dhcp"]
        ok = subprocess.run([*base, "dns.test", "53"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert 'gethostbyname("dns.test") = 198.18.0.1' in ok.stdout
        assert "connect(s1, 198.18.0.1:53) = 0" in ok.stdout
        bad = subprocess.run([*base, "nope.test", "53"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert 'gethostbyname("nope.test") = NULL  WSAHOST_NOT_FOUND (11001)' in bad.stdout
        assert "socket(" not in bad.stdout
        deadline = time.monotonic() + 5
        while d.log().count("DHCPRELEASE(dhcpcli0)") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        log = d.log()  # both runs released their lease on exit
        assert log.count("DHCPACK(dhcpcli0)") == 2 and log.count("DHCPRELEASE(dhcpcli0)") == 2, log
    finally:
        d.stop()


def test_cli_run_fetches_a_page_by_name_with_dhcp(netns, tmp_path):
    """The appliance case: `ustack run --tap T --dhcp -- python fetch.py`: address and DNS
    server by DHCP (dnsmasq), then an unmodified urllib program fetches http://web.test:8080/
    from the kernel's HTTP server, the name looked up over ustack's own UDP."""
    import sys

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("hello from the kernel side\n")
    # all addresses of the private netns: 198.18.0.1 appears only once `ustack run` made the TAP
    server = subprocess.Popen([sys.executable, "-m", "http.server", "8080", "--bind", "0.0.0.0",
                               "--directory", str(tmp_path / "www")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    d = Dnsmasq(tmp_path, "--host-record=web.test,198.18.0.1", ifname="dhcprun0", bind="--bind-dynamic")
    fetch = tmp_path / "fetch.py"
    fetch.write_text("import urllib.request\n"
                     "page = urllib.request.urlopen('http://web.test:8080/', timeout=10).read()\n"
                     "print(page.decode(), end='')\n")
    try:
        r = subprocess.run([sys.executable, "-m", "ustack", "run", "--tap", "dhcprun0",
                            "--peer", f"{KERNEL}/24", "--dhcp", "--", sys.executable, str(fetch)],
                           capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout == "hello from the kernel side\n"
        assert "query[A] web.test" in d.log()  # asked of dnsmasq, the server DHCP named
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(5)
        d.stop()


@pytest.mark.parametrize(("dns", "why"), [("198.18.0.1", "the kernel: ICMP port unreachable"),
                                          ("198.18.0.77", "nobody: no answer at all")])
def test_cli_connect_name_with_no_working_dns_server(netns, dns, why):
    """A DNS server that refuses the port or never answers: `ustack connect NAME` ends with one
    line carrying WSATRY_AGAIN (11002) and exit status 1 (after 2 rounds of 2 s for the silent one)."""
    import sys

    r = subprocess.run([sys.executable, "-m", "ustack", "connect", "web.test", "80", "--tun", "dnstun0",
                        "--addr", "198.18.0.2/24", "--peer", f"{KERNEL}/24", "--dns", dns],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (why, r.stdout, r.stderr)
    assert 'gethostbyname("web.test") = NULL  WSATRY_AGAIN (11002)' in r.stdout, why
