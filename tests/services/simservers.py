"""Tiny DHCP and DNS servers for the Simulator: services attached to a server host's stack
(polled by it like the DHCP client), answering through its UDP (and for DNS, TCP) sockets."""

from __future__ import annotations

from typing import Any

from ustack.wire import dhcp as D
from ustack.wire import dns as N
from ustack.wire.ipv4 import ip_int


class DhcpTestServer:
    """RFC 2131 server behaviour enough for the client's tests, with knobs to misbehave:
    `drop_discovers` (ignore the first n DISCOVERs), `silent` (answer nothing), `ignore_renewals`
    (leave the first n renewals unanswered, so the client must rebind), `nak_all`."""

    def __init__(self, stack: Any, pool: list[str], *, lease_s: int = 100, t1_s: int | None = None,
                 t2_s: int | None = None, router: str | None = "198.18.0.1",
                 dns: tuple[str, ...] = ("198.18.0.1",), mask: str = "255.255.255.0") -> None:
        self.stack = stack
        self.pool = [ip_int(a) for a in pool]
        self.lease_s, self.t1_s, self.t2_s = lease_s, t1_s, t2_s
        self.router = router
        self.dns = dns
        self.mask = mask
        self.bindings: dict[bytes, int] = {}
        self.declined: set[int] = set()
        self.released: list[int] = []
        self.log: list[tuple[float, int, D.DhcpMessage, int]] = []  # (time, type, message, dst IP)
        self.drop_discovers = 0
        self.silent = False
        self.ignore_renewals = 0  # requests with ciaddr left unanswered (forces REBINDING)
        self.nak_all = False
        self.sock = stack.udp.open()
        self.sock.broadcast = True
        self.sock.bind(0, D.SERVER_PORT)
        stack.attach(self)

    def received(self, kind: int) -> list[tuple[float, D.DhcpMessage, int]]:
        return [(t, m, dst) for t, k, m, dst in self.log if k == kind]

    def poll_at(self) -> float | None:
        return 0.0 if self.sock.readable else None

    def poll(self, now: float) -> None:
        while (item := self.sock.recvfrom()) is not None:
            data, src, _ = item
            m = D.DhcpMessage.parse(data)
            self.log.append((now, m.message_type, m, src))
            self._handle(m, now)

    def _free(self, mac: bytes, wanted: int | None) -> int | None:
        if mac in self.bindings:
            return self.bindings[mac]
        taken = set(self.bindings.values()) | self.declined
        if wanted in self.pool and wanted not in taken:
            return wanted
        return next((a for a in self.pool if a not in taken), None)

    def _reply(self, kind: int, m: D.DhcpMessage, yiaddr: int, now: float, dst: int | None = None) -> None:
        opts = {D.OPT_MESSAGE_TYPE: bytes((kind,)), D.OPT_SERVER_ID: self.stack.addr.to_bytes(4, "big")}
        if kind != D.NAK:
            opts[D.OPT_LEASE_TIME] = self.lease_s.to_bytes(4, "big")
            if self.t1_s is not None:
                opts[D.OPT_RENEWAL_T1] = self.t1_s.to_bytes(4, "big")
            if self.t2_s is not None:
                opts[D.OPT_REBINDING_T2] = self.t2_s.to_bytes(4, "big")
            opts[D.OPT_SUBNET_MASK] = ip_int(self.mask).to_bytes(4, "big")
            if self.router:
                opts[D.OPT_ROUTER] = ip_int(self.router).to_bytes(4, "big")
            if self.dns:
                opts[D.OPT_DNS] = b"".join(ip_int(a).to_bytes(4, "big") for a in self.dns)
        reply = D.DhcpMessage(D.BOOTREPLY, m.xid, m.chaddr, opts, yiaddr=yiaddr, flags=m.flags,
                              ciaddr=m.ciaddr)
        self.sock.sendto(reply.emit(), dst if dst is not None else 0xFFFFFFFF, D.CLIENT_PORT, now)

    def _handle(self, m: D.DhcpMessage, now: float) -> None:
        kind = m.message_type
        if self.silent:
            return
        if kind == D.DISCOVER:
            if self.drop_discovers > 0:
                self.drop_discovers -= 1
                return
            addr = self._free(m.chaddr, m.address(D.OPT_REQUESTED_ADDR))
            if addr is not None:
                self._reply(D.OFFER, m, addr, now)
        elif kind == D.REQUEST:
            if m.ciaddr:  # RENEWING (unicast) or REBINDING (broadcast)
                if self.ignore_renewals > 0:
                    self.ignore_renewals -= 1
                    return
                ok = self.bindings.get(m.chaddr) == m.ciaddr and not self.nak_all
                self._reply(D.ACK if ok else D.NAK, m, m.ciaddr if ok else 0, now,
                            dst=m.ciaddr if ok else None)
                return
            server = m.address(D.OPT_SERVER_ID)
            if server is not None and server != self.stack.addr:
                self.bindings.pop(m.chaddr, None)  # the client chose another server
                return
            wanted = m.address(D.OPT_REQUESTED_ADDR)
            addr = self._free(m.chaddr, wanted)
            if self.nak_all or addr is None or addr != wanted:
                self._reply(D.NAK, m, 0, now)
                return
            self.bindings[m.chaddr] = addr
            self._reply(D.ACK, m, addr, now)
        elif kind == D.DECLINE:
            addr = m.address(D.OPT_REQUESTED_ADDR)
            self.declined.add(addr)
            self.bindings.pop(m.chaddr, None)
        elif kind == D.RELEASE:
            self.released.append(m.ciaddr)
            self.bindings.pop(m.chaddr, None)


class DnsTestServer:
    """Answers A/AAAA from `records` (name -> list of addresses), NXDOMAIN otherwise. Knobs:
    `silent`, `servfail`, `truncate_udp` (UDP answers carry TC and no records: TCP has them)."""

    def __init__(self, stack: Any, records: dict[str, list[str]], *, tcp: bool = True) -> None:
        self.stack = stack
        self.records = {k.lower(): v for k, v in records.items()}
        self.silent = False
        self.servfail = False
        self.truncate_udp = False
        self.udp_queries: list[tuple[float, N.DnsMessage]] = []
        self.tcp_queries: list[tuple[float, N.DnsMessage]] = []
        self.sock = stack.udp.open()
        self.sock.bind(0, N.PORT)
        self.listener = None
        self.conns: list[Any] = []
        self.buffers: dict[int, bytearray] = {}
        if tcp:
            self.listener = stack.tcp.open()
            self.listener.bind(0, N.PORT)
            self.listener.listen(8)
        stack.attach(self)

    def answer(self, q: N.DnsMessage, *, udp: bool) -> bytes:
        question = q.questions[0]
        flags = N.FLAG_QR | N.FLAG_RD | N.FLAG_RA | N.FLAG_AA
        if self.servfail:
            return N.DnsMessage(q.id, flags | N.SERVFAIL, q.questions).emit()
        found = self.records.get(question.name.lower())
        if found is None:
            return N.DnsMessage(q.id, flags | N.NXDOMAIN, q.questions).emit()
        want_v6 = question.qtype == N.TYPE_AAAA
        answers = tuple(N.DnsRecord(question.name, question.qtype, 60, a) for a in found
                        if (":" in a) == want_v6)
        if udp and self.truncate_udp:
            return N.DnsMessage(q.id, flags | N.FLAG_TC, q.questions).emit()
        return N.DnsMessage(q.id, flags, q.questions, answers).emit()

    def poll_at(self) -> float | None:
        if self.sock.readable:
            return 0.0
        return None

    def poll(self, now: float) -> None:
        if self.silent:
            while self.sock.recvfrom() is not None:
                pass
        while (item := self.sock.recvfrom()) is not None:
            data, src, sport = item
            q = N.DnsMessage.parse(data)
            self.udp_queries.append((now, q))
            self.sock.sendto(self.answer(q, udp=True), src, sport, now)
        if self.listener is None:
            return
        while (conn := self.listener.accept()) is not None:  # None: nothing pending
            self.conns.append(conn)
            self.buffers[id(conn)] = bytearray()
        for conn in list(self.conns):
            buf = self.buffers[id(conn)]
            data = conn.recv(65536)
            if data:
                buf += data
            while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                n = int.from_bytes(buf[:2], "big")
                q = N.DnsMessage.parse(bytes(buf[2:2 + n]))
                del buf[:2 + n]
                self.tcp_queries.append((now, q))
                conn.send(N.tcp_frame(self.answer(q, udp=False)), now)

