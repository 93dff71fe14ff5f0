"""Foundation "done when": the pcap ustack writes opens in tshark with no malformed packets and no
bad checksums, over TUN (raw IPv4 link type) and TAP (Ethernet), after ping, UDP and fragments."""

import socket
import subprocess

import pytest

from tests.interop.peer import KERNEL_IP, USTACK_IP, pattern
from tests.netns import require_tool

pytestmark = pytest.mark.netns

CHECKSUMS = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
             "-o", "tcp.check_checksum:TRUE"]
BAD = ('_ws.malformed || _ws.expert.severity == "Error" || ip.checksum.status == "Bad" || '
       'udp.checksum.status == "Bad" || tcp.checksum.status == "Bad" || icmp.checksum.status == "Bad"')


def tshark(*args):
    exe = require_tool("tshark")
    out = subprocess.run([exe, "-n", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_pcap_opens_in_tshark_without_malformed_packets(hosts, link, tmp_path):
    from ustack.cli.services import ServiceSet

    ping = require_tool("ping")
    pcap = tmp_path / f"{link}.pcap"
    host = hosts.open(link, pcap=str(pcap))
    services = ServiceSet(host)
    services.udp_echo(7)
    try:
        subprocess.run([ping, "-n", "-c", "2", "-i", "0.2", "-W", "2", "-s", "2000", "-M", "dont", USTACK_IP],
                       capture_output=True, timeout=15, check=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((KERNEL_IP, 0))
            s.settimeout(2)
            for n in (10, 1472, 4000):
                msg = pattern(n, seed=n)
                s.sendto(msg, (USTACK_IP, 7))
                assert s.recvfrom(65536)[0] == msg
            s.connect((USTACK_IP, 9999))
            s.send(b"closed")
            with pytest.raises(ConnectionRefusedError):
                s.recv(10)
    finally:
        services.stop()
    host.close()

    everything = tshark("-r", str(pcap))
    assert len(everything) >= 10, everything
    bad = tshark("-r", str(pcap), *CHECKSUMS, "-Y", BAD)
    assert bad == [], "\n".join(bad)
    protocols = "\n".join(tshark("-r", str(pcap), "-T", "fields", "-e", "frame.protocols"))
    for proto in ("icmp", "udp"):
        assert proto in protocols
    if link == "tap":
        assert "arp" in protocols
