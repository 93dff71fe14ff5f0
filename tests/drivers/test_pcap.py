"""PcapWriter: records what passes, readable by dpkt and tshark, byte-identical for a virtual clock."""

import io
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest

from tests.drivers.frames import MAC_A, echo, eth, syn, udp
from tests.netns import skip_or_fail
from ustack.drivers import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    FaultInjector,
    MemLink,
    PcapWriter,
    read_pcap,
)
from ustack.wire import EthernetFrame


def tshark(path: Path, *args: str) -> str:
    exe = shutil.which("tshark")
    if exe is None:
        skip_or_fail("tshark is not installed (apt-get install tshark)")
    res = subprocess.run([exe, "-n", "-r", str(path), *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_records_both_directions_and_reads_back(tmp_path: Path) -> None:
    a, b = MemLink.pair()
    path = tmp_path / "ip.pcap"
    pa = PcapWriter(a, path)
    frames = [udp(), syn(), echo()]
    pa.send(frames[0], 1.25)
    pa.send(frames[1], 1.5)
    b.send(frames[2], 2.0)
    assert pa.recv(2.0) == frames[2]
    assert pa.recv_batch(2.0) == []
    pa.close()
    records = list(read_pcap(path))
    assert [(ts, f, lt) for ts, f, lt in records] == [
        (1.25, frames[0], LINKTYPE_RAW), (1.5, frames[1], LINKTYPE_RAW), (2.0, frames[2], LINKTYPE_RAW)]
    # dpkt on its own agrees, and decodes the IP layer
    with open(path, "rb") as f:
        r = dpkt.pcap.Reader(f)
        assert r.datalink() == LINKTYPE_RAW and r.snaplen == 65535
        pkts = [dpkt.ip.IP(buf) for _, buf in r]
    assert isinstance(pkts[0].data, dpkt.udp.UDP) and pkts[0].data.data == b"hello"
    assert isinstance(pkts[1].data, dpkt.tcp.TCP) and pkts[1].data.flags == dpkt.tcp.TH_SYN
    assert isinstance(pkts[2].data, dpkt.icmp.ICMP)


def test_tshark_decodes_ip_capture_cleanly(tmp_path: Path) -> None:
    a, _ = MemLink.pair()
    path = tmp_path / "ip.pcap"
    with PcapWriter(a, path) as pw:
        for i, f in enumerate([udp(), syn(), echo()]):
            pw.send(f, i * 0.001)
    out = tshark(path, "-V")
    assert "Malformed" not in out and "Expert Info (Error" not in out
    proto = tshark(path, "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "_ws.col.Protocol",
                   "-e", "tcp.options.mss_val")
    rows = [line.split("\t") for line in proto.strip().splitlines()]
    assert [r[:2] for r in rows] == [["198.18.0.2", "198.18.0.1"]] * 3
    assert [r[2] for r in rows] == ["ECHO", "TCP", "ICMP"]
    assert rows[1][3] == "1460"


def test_tshark_decodes_ethernet_capture_cleanly(tmp_path: Path) -> None:
    a, b = MemLink.pair("ethernet")
    path = tmp_path / "eth.pcap"
    arp = EthernetFrame(b"\xff" * 6, MAC_A, 0x0806, bytes.fromhex(
        "0001080006040001" + MAC_A.hex() + "c6120002" + "000000000000" + "c6120001")).emit()
    with PcapWriter(a, path) as pw:
        pw.send(arp, 0.0)
        pw.send(eth(udp()), 0.001)
        b.send(eth(syn()), 0.002)
        assert pw.recv_batch(0.002) == [eth(syn())]
    assert [lt for _, _, lt in read_pcap(path)] == [LINKTYPE_ETHERNET] * 3
    out = tshark(path, "-V")
    assert "Malformed" not in out
    cols = tshark(path, "-T", "fields", "-e", "_ws.col.Protocol", "-e", "eth.src").split()
    assert cols == ["ARP", "02:00:00:00:00:02", "ECHO", "02:00:00:00:00:02", "TCP", "02:00:00:00:00:02"]


@pytest.mark.parametrize("direction, expect", [("rx", ["in"]), ("tx", ["out"]), ("both", ["out", "in"])])
def test_direction_filter(direction: str, expect: list[str]) -> None:
    a, b = MemLink.pair()
    buf = io.BytesIO()
    pw = PcapWriter(a, buf, direction=direction)
    pw.send(udp(b"out"), 0.0)
    b.send(udp(b"in"), 0.0)
    pw.recv(0.0)
    pw.flush()
    buf.seek(0)
    got = [bytes(dpkt.ip.IP(f).data.data).decode() for _, f, _ in read_pcap(buf)]
    assert got == expect
    assert not buf.closed  # a caller's file object is left open


def test_snaplen_truncates_but_keeps_original_length() -> None:
    a, _ = MemLink.pair()
    buf = io.BytesIO()
    pw = PcapWriter(a, buf, snaplen=40)
    big = udp(b"z" * 200)
    pw.send(big, 0.0)
    pw.flush()
    buf.seek(0)
    r = dpkt.pcap.Reader(buf)
    assert r.snaplen == 40
    ((_, data),) = list(r)
    assert data == big[:40]
    # the record header holds caplen 40 and the original length
    raw = buf.getvalue()[24:40]
    assert int.from_bytes(raw[8:12], sys.byteorder) == 40
    assert int.from_bytes(raw[12:16], sys.byteorder) == len(big)


def test_timestamps_round_to_the_microsecond() -> None:
    a, _ = MemLink.pair()
    buf = io.BytesIO()
    pw = PcapWriter(a, buf, ts_offset=1000.0)
    pw.send(udp(), 0.9999999)  # must not produce usec == 1000000
    pw.send(udp(), 0.0000004)
    pw.flush()
    buf.seek(0)
    assert [ts for ts, _, _ in read_pcap(buf)] == [1001.0, 1000.0]


def _sim_run(path: Path, seed: int) -> int:
    """A lossy, jittery link captured on the wire side (below the injector)."""
    a, b = MemLink.pair(latency_s=0.003)
    fi = FaultInjector(PcapWriter(a, path), seed=seed, loss=0.2, delay_s=0.01, jitter_s=0.004)
    for i in range(200):
        fi.send(udp(i.to_bytes(2, "big") * 10), i * 0.0007)
        b.recv_batch(i * 0.0007)
    for _ in range(1000):
        t = fi.poll_at()
        if t is None:
            break
        fi.advance(t)
    fi.close()
    return 200 - fi.stats["dropped"]


def test_virtual_clock_gives_byte_identical_files(tmp_path: Path) -> None:
    p1, p2, p3 = tmp_path / "1.pcap", tmp_path / "2.pcap", tmp_path / "3.pcap"
    passed = _sim_run(p1, 42)
    _sim_run(p2, 42)
    assert p1.read_bytes() == p2.read_bytes()
    _sim_run(p3, 43)
    assert p1.read_bytes() != p3.read_bytes()
    stamps = [ts for ts, _, _ in read_pcap(p1)]
    assert len(stamps) == passed and stamps == sorted(stamps)


def test_pcap_under_the_injector_records_the_wire(tmp_path: Path) -> None:
    a, b = MemLink.pair()
    path = tmp_path / "wire.pcap"
    fi = FaultInjector(PcapWriter(a, path), seed=1, loss=0.5, delay_s=0.05)
    for i in range(100):
        fi.send(udp(bytes([i]) * 4), 0.0)
    fi.advance(0.05)
    fi.close()
    recs = list(read_pcap(path))
    assert len(recs) == 100 - fi.stats["dropped"] and all(ts == 0.05 for ts, _, _ in recs)


def test_bad_direction() -> None:
    with pytest.raises(ValueError):
        PcapWriter(MemLink.pair()[0], io.BytesIO(), direction="sideways")
