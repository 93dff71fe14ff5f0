"""A packetimpact-style test bench: craft and sniff raw IPv4 against a device under test (DUT).

Two arrangements, each inside the private network namespace of the calling test (the
``netns`` fixture of tests/netns.py), on one TUN named ``IFNAME``:

* DUT = **ustack**: a ustack ``Host`` owns the TUN fd as 198.18.0.2; the kernel side of the TUN
  is 198.18.0.1 and stays out of the way. The bench injects frames onto the kernel side with
  ``socket(AF_PACKET, SOCK_DGRAM)`` (they go out of the interface into ustack exactly as
  written) and sniffs what ustack writes with an AF_PACKET socket bound to the interface.
* DUT = **linux**: the kernel itself is 198.18.0.2 on the TUN's interface; the bench owns the
  TUN fd, so what it writes arrives at the kernel's IP stack as if from the wire and what the
  kernel sends comes out of the fd. DUT sockets are plain kernel sockets bound to 198.18.0.2.

Either way the bench speaks as ``BENCH_IP`` (198.18.0.9), an address nobody in the namespace
owns, so no third party answers the DUT's replies (the kernel drops them: not local, no
forwarding). Frames are built and parsed with scapy (tests only).

    bench.send(IP(...)/TCP(...))          any scapy packet or raw bytes (bad checksums survive)
    bench.expect(match, within=1.0)       first matching packet from the DUT, or None
    bench.expect_nothing(match, within)   True when nothing matching came
    flow = bench.tcp(dport)               one TCP conversation with seq/ack bookkeeping:
    flow.handshake(); flow.send("PA", b"x"); flow.expect("A", ack=flow.snd_nxt)

Every wait is bounded (callers pass ``within`` ≤ 2 s).
"""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: F401 - re-exported for the cases
from scapy.packet import Raw  # noqa: F401

IFNAME = "cnf0"
DUT_IP = "198.18.0.2"
KERNEL_IP = "198.18.0.1"  # the kernel side when ustack is the DUT
BENCH_IP = "198.18.0.9"
MTU = 1500
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4

FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


def flag_value(flags: str | int) -> int:
    if isinstance(flags, int):
        return flags
    v = 0
    for ch in flags:
        v |= FLAG_BITS[ch]
    return v


def flag_str(value: int) -> str:
    return "".join(ch for ch, bit in FLAG_BITS.items() if value & bit) or "-"


# --------------------------------------------------------------------------- links

class AfPacketLink:
    """Bench side of a TUN whose fd belongs to the DUT: inject and sniff on the interface."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.rx.bind((ifname, ETH_P_IP))
        self.rx.setblocking(False)

    def send(self, pkt: bytes) -> None:
        self.tx.sendto(pkt, (self.ifname, ETH_P_IP))

    def recv(self, timeout: float) -> bytes | None:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.rx], [], [], left)
            if not r:
                return None
            data, addr = self.rx.recvfrom(65536)
            if addr[2] == PACKET_OUTGOING:  # our own injected frames
                continue
            return data

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


class TunFdLink:
    """Bench owns the TUN fd: writes arrive at the kernel as received frames."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.refused = 0  # frames the TUN driver itself rejected (e.g. IP version not 4 or 6)

    def send(self, pkt: bytes) -> None:
        try:
            os.write(self.fd, pkt)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            self.refused += 1

    def recv(self, timeout: float) -> bytes | None:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return None
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            if data and data[0] >> 4 == 4:
                return data

    def close(self) -> None:
        pass  # the fd belongs to the TunDevice


# --------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, link: Any, ip: str = BENCH_IP, dut_ip: str = DUT_IP) -> None:
        self.link, self.ip, self.dut_ip = link, ip, dut_ip
        self.seen: list[IP] = []  # everything received, for failure messages
        self.rng = random.Random(1)

    def send(self, pkt: Any) -> None:
        self.link.send(bytes(pkt))

    def expect(self, match: Callable[[IP], bool] | None = None, within: float = 1.0) -> IP | None:
        """The first packet from the DUT satisfying `match` within `within` seconds, else None."""
        end = time.monotonic() + within
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            raw = self.link.recv(left)
            if raw is None:
                return None
            pkt = IP(raw)
            self.seen.append(pkt)
            if pkt.src != self.dut_ip or pkt.dst != self.ip:
                continue
            if match is None or match(pkt):
                return pkt

    def expect_nothing(self, match: Callable[[IP], bool] | None = None, within: float = 1.0) -> bool:
        return self.expect(match, within) is None

    def drain(self, within: float = 0.05) -> None:
        while self.expect(None, within) is not None:
            pass

    def tcp(self, dport: int, sport: int | None = None) -> TcpFlow:
        return TcpFlow(self, dport, sport or self.rng.randrange(20000, 60000))

    def describe_seen(self, last: int = 12) -> str:
        return "\n".join(p.summary() for p in self.seen[-last:]) or "(nothing received)"

    def close(self) -> None:
        self.link.close()


class TcpFlow:
    """One TCP conversation seen from the bench: builds segments, tracks SND.NXT / RCV.NXT."""

    def __init__(self, bench: Bench, dport: int, sport: int) -> None:
        self.bench, self.dport, self.sport = bench, dport, sport
        self.iss = bench.rng.randrange(1 << 32)
        self.snd_nxt = self.iss
        self.rcv_nxt: int | None = None  # DUT's next sequence number we expect
        self.peer_window = 0
        self.peer_mss: int | None = None
        self.window = 65535

    def segment(self, flags: str | int = "A", payload: bytes = b"", seq: int | None = None,
                ack: int | None = None, window: int | None = None, options: list | None = None,
                **ip_fields: Any) -> IP:
        fv = flag_value(flags)
        if ack is None:
            ack = self.rcv_nxt if (fv & FLAG_BITS["A"]) and self.rcv_nxt is not None else 0
        tcp = TCP(sport=self.sport, dport=self.dport, flags=fv,
                  seq=(self.snd_nxt if seq is None else seq) & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                  window=self.window if window is None else window, options=options or [])
        pkt = IP(src=self.bench.ip, dst=self.bench.dut_ip, **ip_fields) / tcp
        if payload:
            pkt = pkt / Raw(payload)
        return pkt

    def send(self, flags: str | int = "A", payload: bytes = b"", seq: int | None = None,
             **kw: Any) -> IP:
        """Send a segment; advances SND.NXT when sent at SND.NXT (payload, SYN and FIN count)."""
        pkt = self.segment(flags, payload, seq=seq, **kw)
        self.bench.send(pkt)
        if seq is None:
            fv = flag_value(flags)
            self.snd_nxt = (self.snd_nxt + len(payload) + bool(fv & 0x02) + bool(fv & 0x01)) & 0xFFFFFFFF
        return pkt

    def matches(self, pkt: IP) -> bool:
        return TCP in pkt and pkt[TCP].sport == self.dport and pkt[TCP].dport == self.sport

    def expect(self, flags: str | int | None = None, within: float = 1.0, *, seq: int | None = None,
               ack: int | None = None, track: bool = True) -> TCP | None:
        """The next segment of this flow (PSH ignored unless asked for) matching the fields."""
        def want(pkt: IP) -> bool:
            if not self.matches(pkt):
                return False
            t = pkt[TCP]
            if flags is not None:
                fv = flag_value(flags)
                got = int(t.flags) if fv & FLAG_BITS["P"] else int(t.flags) & ~FLAG_BITS["P"]
                if got != fv:
                    return False
            if seq is not None and t.seq != seq & 0xFFFFFFFF:
                return False
            return ack is None or t.ack == ack & 0xFFFFFFFF
        pkt = self.bench.expect(want, within)
        if pkt is None:
            return None
        t = pkt[TCP]
        if track:
            self._track(t, pkt)
        return t

    def next_segment(self, within: float = 1.0) -> TCP | None:
        """Whatever the DUT sends next on this flow."""
        pkt = self.bench.expect(self.matches, within)
        if pkt is None:
            return None
        self._track(pkt[TCP], pkt)
        return pkt[TCP]

    def _track(self, t: TCP, pkt: IP) -> None:
        self.peer_window = t.window
        if t.flags & 0x02:
            self.rcv_nxt = (t.seq + 1) & 0xFFFFFFFF
            self.peer_mss = option(t, "MSS")
        end = (t.seq + len(bytes(t.payload)) + bool(t.flags & 0x01)) & 0xFFFFFFFF
        if self.rcv_nxt is not None and _seq_gt(end, self.rcv_nxt):
            self.rcv_nxt = end

    def handshake(self, mss: int = 1460, within: float = 2.0, window: int = 65535) -> TCP:
        """Active open against a DUT listener; returns the DUT's SYN-ACK (asserted)."""
        self.window = window
        self.send("S", options=[("MSS", mss)])
        synack = self.expect("SA", within, ack=self.snd_nxt)
        assert synack is not None, f"no SYN-ACK from the DUT:\n{self.bench.describe_seen()}"
        self.send("A")
        return synack


def option(t: TCP, name: str) -> Any:
    for opt in t.options:
        if opt[0] == name:
            return opt[1]
    return None


def _seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & 0xFFFFFFFF) < (1 << 31)


# --------------------------------------------------------------------------- DUTs

class DutError(RuntimeError):
    pass


class LinuxDut:
    """The kernel's own sockets at DUT_IP. Handles are kernel sockets (nonblocking)."""

    name = "linux"

    def __init__(self) -> None:
        from ustack.drivers import TunDevice, kernel_side_up, set_sysctl

        self.dev = TunDevice(IFNAME, mtu=MTU)
        kernel_side_up(self.dev.name, f"{DUT_IP}/24", mtu=MTU)
        # with its directed broadcast, as a host on a /24 would have it (ustack always does)
        subprocess.run(["ip", "addr", "replace", f"{DUT_IP}/24", "brd", "+", "dev", self.dev.name],
                       check=True, capture_output=True, timeout=10)
        set_sysctl("net.ipv4.icmp_ratelimit", "0")  # one ICMP error per case is enough, but be sure
        self.socks: list[socket.socket] = []
        self._errors: dict[int, str] = {}
        self.link = TunFdLink(self.dev.fileno())
        self.ip = DUT_IP

    def retransmit_causes(self) -> dict[str, int]:
        """Retransmission events so far by cause: "fast" (TcpExt TCPFastRetrans) and "timeout"
        (RTO firings: TcpExt TCPTimeouts), from this thread's namespace."""
        with open("/proc/thread-self/net/netstat") as f:
            lines = f.read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2], strict=False):
            if head.startswith("TcpExt:"):
                row = dict(zip(head.split()[1:], map(int, vals.split()[1:]), strict=True))
                return {"fast": row["TCPFastRetrans"], "timeout": row["TCPTimeouts"]}
        raise DutError("no TcpExt line in /proc/net/netstat")

    # TCP
    def listen(self, port: int, backlog: int = 8, rcvbuf: int | None = None) -> socket.socket:
        s = self._sock(socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((DUT_IP, port))
        s.listen(backlog)
        return s

    def accept(self, lsock: socket.socket, within: float = 2.0) -> socket.socket | None:
        r, _, _ = select.select([lsock], [], [], within)
        if not r:
            return None
        c, _ = lsock.accept()
        c.setblocking(False)
        self.socks.append(c)
        return c

    def connect(self, addr: str, port: int) -> socket.socket:
        s = self._sock(socket.SOCK_STREAM)
        err = s.connect_ex((addr, port))
        if err not in (0, 115):  # EINPROGRESS
            raise DutError(f"connect_ex -> {err}")
        return s

    def send(self, s: socket.socket, data: bytes) -> int:
        try:
            return s.send(data)
        except BlockingIOError:
            return 0

    def recv(self, s: socket.socket, n: int = 65536, within: float = 1.0) -> bytes | None:
        """Bytes, b"" at EOF, None when nothing arrived within the wait."""
        r, _, _ = select.select([s], [], [], within)
        if not r:
            return None
        try:
            return s.recv(n)
        except BlockingIOError:
            return None

    def error(self, s: socket.socket) -> str | None:
        """The socket's pending error, sticky (reading SO_ERROR clears it in the kernel)."""
        if s.fileno() in self._errors:
            return self._errors[s.fileno()]
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if e == 0:
            return None
        name = {111: "refused", 104: "reset", 110: "timed_out", 113: "host_unreach",
                101: "net_unreach"}.get(e, f"errno {e}")
        self._errors[s.fileno()] = name
        return name

    def shutdown(self, s: socket.socket, how: int) -> None:
        s.shutdown(how)

    def close(self, s: socket.socket) -> None:
        s.close()

    # UDP
    def udp_bind(self, port: int) -> socket.socket:
        s = self._sock(socket.SOCK_DGRAM)
        s.bind((DUT_IP, port))
        return s

    def udp_recvfrom(self, s: socket.socket, within: float = 1.0) -> tuple[bytes, str, int] | None:
        r, _, _ = select.select([s], [], [], within)
        if not r:
            return None
        data, (addr, port) = s.recvfrom(65536)
        return data, addr, port

    def _sock(self, kind: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, kind)
        s.setblocking(False)
        self.socks.append(s)
        return s

    def close_all(self) -> None:
        for s in self.socks:
            s.close()
        self.dev.close()


class UstackDut:
    """ustack's Host at DUT_IP on the TUN; handles are ustack stack sockets."""

    name = "ustack"

    def __init__(self) -> None:
        import ustack
        from ustack.drivers import kernel_side_up
        from ustack.wire.ipv4 import ip_int, ip_str

        self._ip_int, self._ip_str = ip_int, ip_str
        # "csum": per segment on the wire, as the kernel DUT behind a TUN without TSO (with
        # "auto" the AF_PACKET sniffer would see TSO super-segments, as tcpdump on a TSO NIC)
        self.host = ustack.Host.open(tun=IFNAME, addr=f"{DUT_IP}/24", peer=f"{KERNEL_IP}/24", mtu=MTU,
                                     offload="csum")
        kernel_side_up(IFNAME, None)  # idempotent: make sure it is up with IPv6 off
        _wait_iface_up(IFNAME)
        self.link = AfPacketLink(IFNAME)
        self.ip = DUT_IP
        self.socks: list[Any] = []

    @property
    def stack(self) -> Any:
        return self.host.stack

    def counters(self) -> dict[str, int]:
        return self.host.call(self.stack.counters.snapshot)

    def retransmit_causes(self) -> dict[str, int]:
        """Retransmissions so far by cause, as `LinuxDut.retransmit_causes`."""
        c = self.counters()
        return {"fast": c.get("tcp.fast_retransmit", 0), "timeout": c.get("tcp.rto", 0)}

    # TCP
    def listen(self, port: int, backlog: int = 8, rcvbuf: int | None = None) -> Any:
        def do() -> Any:
            s = self.stack.tcp.open()
            if rcvbuf:
                s.rcvbuf = rcvbuf
            s.bind(self._ip_int(DUT_IP), port)
            s.listen(backlog)
            return s
        s = self.host.call(do)
        self.socks.append(s)
        return s

    def accept(self, lsock: Any, within: float = 2.0) -> Any:
        if not self.host.wait(lambda: lsock.accept_pending, within):
            return None
        c = self.host.call(lsock.accept)
        if c is not None:
            self.socks.append(c)
        return c

    def connect(self, addr: str, port: int) -> Any:
        def do() -> Any:
            s = self.stack.tcp.open()
            s.connect(self._ip_int(addr), port, self.host.now())
            return s
        s = self.host.call(do)
        self.socks.append(s)
        return s

    def send(self, s: Any, data: bytes) -> int:
        return self.host.call(lambda: s.send(data, self.host.now()))

    def recv(self, s: Any, n: int = 65536, within: float = 1.0) -> bytes | None:
        ready = self.host.wait(lambda: s.readable_bytes > 0 or s.at_eof or s.error is not None, within)
        if not ready:
            return None
        def do() -> bytes | None:
            if s.readable_bytes:
                return s.recv(n)
            return b"" if s.at_eof else None
        return self.host.call(do)

    def error(self, s: Any) -> str | None:
        e = self.host.call(lambda: s.error)
        return None if e is None else e.name.lower()

    def shutdown(self, s: Any, how: int) -> None:
        self.host.call(lambda: s.shutdown(how, self.host.now()))

    def close(self, s: Any) -> None:
        self.host.call(lambda: s.close(self.host.now()))

    # UDP
    def udp_bind(self, port: int) -> Any:
        def do() -> Any:
            s = self.stack.udp.open()
            s.bind(self._ip_int(DUT_IP), port)
            return s
        s = self.host.call(do)
        self.socks.append(s)
        return s

    def udp_recvfrom(self, s: Any, within: float = 1.0) -> tuple[bytes, str, int] | None:
        if not self.host.wait(lambda: s.readable, within):
            return None
        got = self.host.call(s.recvfrom)
        if got is None:
            return None
        data, addr, port = got
        return bytes(data), self._ip_str(addr), port

    def close_all(self) -> None:
        try:
            for s in self.socks:
                try:
                    self.host.call(lambda s=s: s.abort(self.host.now()) if hasattr(s, "abort")
                                   else s.close(self.host.now()))
                except Exception:  # noqa: BLE001 - teardown is best effort; the host goes anyway
                    pass
        finally:
            self.link.close()
            self.host.close()


def _wait_iface_up(name: str, within: float = 2.0) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end:
        out = subprocess.run(["ip", "-o", "link", "show", name], capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and ",UP" in out.stdout:
            return
        time.sleep(0.02)
    raise DutError(f"interface {name} did not come up")


def make_dut(kind: str) -> tuple[Any, Bench]:
    dut = LinuxDut() if kind == "linux" else UstackDut()
    return dut, Bench(dut.link)
