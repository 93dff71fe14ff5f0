"""DNS stub resolver over the stack's own UDP and TCP (RFC 1035, RFC 1123 6.1.3, RFC 7766).

A `Resolver` answers a name from its static table (/etc/hosts style) first, then asks the DNS
servers (`stack.dns_servers`: from the configuration, `--dns`, or DHCP option 6) with a
recursive query over UDP: each round tries every server in order, `timeout_s` each, for
`attempts` rounds (glibc's resolv.conf model); a server that answers with the TC bit is asked
again over TCP (RFC 7766 5). An ICMP port unreachable, SERVFAIL, REFUSED or a reply that does not
match the question moves on to the next server; NXDOMAIN and an empty NOERROR answer are final.

It blocks the calling application thread through `host.call` / `host.wait` only (never the
network thread), so it runs in virtual time in the Simulator and in real time on a Host.
Failures raise `ResolveError(kind)`, kind one of NOT_FOUND, NO_DATA, TRY_AGAIN, NO_RECOVERY; the
Winsock and compat layers map these to WSAHOST_NOT_FOUND / EAI_NONAME and friends.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from ..core.errors import UsageError
from ..wire import dns as N
from ..wire.errors import Malformed
from ..wire.ipv4 import ip_int, ip_str

NOT_FOUND = "NOT_FOUND"  # NXDOMAIN, or no server to ask (WSAHOST_NOT_FOUND, EAI_NONAME)
NO_DATA = "NO_DATA"  # the name exists, without records of the type asked (WSANO_DATA)
TRY_AGAIN = "TRY_AGAIN"  # no server answered in time, or SERVFAIL (WSATRY_AGAIN, EAI_AGAIN)
NO_RECOVERY = "NO_RECOVERY"  # FORMERR, NOTIMP, REFUSED from every server (WSANO_RECOVERY, EAI_FAIL)
_MAX_TCP_ANSWER = 65535


class ResolveError(Exception):
    def __init__(self, kind: str, name: str, detail: str = "") -> None:
        super().__init__(f"{name}: {kind}" + (f" ({detail})" if detail else ""))
        self.kind = kind
        self.name = name
        self.detail = detail


@dataclass
class ResolverConfig:
    timeout_s: float = 2.0  # per query and server (glibc: 5 s; Windows starts at 1 s)
    attempts: int = 2  # rounds over the server list
    tcp_timeout_s: float = 5.0  # a whole TCP exchange after truncation
    cache: bool = True  # keep answers for their TTL


class HostsTable:
    """Static names (an /etc/hosts file's lines), looked up before DNS; case-insensitive."""

    def __init__(self, entries: dict[str, list[str]] | None = None) -> None:
        self.by_name: dict[str, list[str]] = {}
        for name, addrs in (entries or {}).items():
            for a in addrs:
                self.add(name, a)

    def add(self, name: str, addr: str) -> None:
        ipaddress.ip_address(addr)  # ValueError for a bad address
        self.by_name.setdefault(name.lower().rstrip("."), []).append(addr)

    @classmethod
    def parse(cls, text: str) -> HostsTable:
        table = cls()
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            try:
                ipaddress.ip_address(fields[0])
            except ValueError:
                continue
            for name in fields[1:]:
                table.add(name, fields[0])
        return table

    def lookup(self, name: str, qtype: int = N.TYPE_A) -> list[str]:
        want_v6 = qtype == N.TYPE_AAAA
        return [a for a in self.by_name.get(name.lower().rstrip("."), []) if (":" in a) == want_v6]


def numeric(name: str) -> str | None:
    """A dotted-quad IPv4 literal as text, or None (no DNS for those)."""
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        return None


class Resolver:
    def __init__(self, host: Any, *, servers: list[str] | None = None, hosts: HostsTable | None = None,
                 config: ResolverConfig | None = None) -> None:
        self.host = host
        self.stack = host.stack
        self.servers = [ip_int(s) for s in servers] if servers is not None else None
        self.hosts = hosts if hosts is not None else HostsTable()
        self.config = config or ResolverConfig()
        self.rng = random.Random(self.stack.rng.getrandbits(64))  # query ids (RFC 5452 4.3)
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self.log: list[tuple[float, str, str, int]] = []  # (time, transport, server, qtype) per query

    # ---- the API ------------------------------------------------------------------------------
    def server_list(self) -> list[int]:
        return list(self.servers if self.servers is not None else self.stack.dns_servers)

    def resolve(self, name: str, qtype: int = N.TYPE_A) -> list[str]:
        """Addresses (text) for `name`: a literal, the static table, the cache, then DNS."""
        if qtype == N.TYPE_A and (lit := numeric(name)) is not None:
            return [lit]
        found = self.hosts.lookup(name, qtype)
        if found:
            return found
        if qtype == N.TYPE_A and name.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
            return ["127.0.0.1"]
        if not name.strip("."):
            raise ResolveError(NOT_FOUND, name, "empty name")  # never a query for the root
        try:
            N.encode_name(name)
        except ValueError as e:  # UnicodeError too
            raise ResolveError(NOT_FOUND, name, str(e)) from None
        key = (name.lower().rstrip("."), qtype)
        now = self.host.now()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return list(hit[1])
        servers = self.server_list()
        if not servers:
            raise ResolveError(NOT_FOUND, name, "no DNS server configured")
        answer = self._ask(name, qtype, servers)
        addrs = answer.addresses(qtype)
        if answer.rcode == N.NXDOMAIN:
            raise ResolveError(NOT_FOUND, name, "NXDOMAIN")
        if not addrs:
            raise ResolveError(NO_DATA, name, f"no type {qtype} records")
        if self.config.cache:
            ttl = min(r.ttl for r in answer.answers if r.rtype == qtype)
            if len(self._cache) >= 256:
                self._cache.clear()
            self._cache[key] = (now + ttl, addrs)
        return addrs

    # ---- the exchange -------------------------------------------------------------------------
    def _ask(self, name: str, qtype: int, servers: list[int]) -> N.DnsMessage:
        cfg = self.config
        last = TRY_AGAIN
        for _ in range(max(cfg.attempts, 1)):
            for server in servers:
                ident = self.rng.getrandbits(16)
                query = N.DnsMessage.query(ident, name, qtype).emit()
                reply = self._udp(server, query, ident, name, qtype)
                if reply is not None and reply.truncated:
                    reply = self._tcp(server, query, ident, name, qtype)
                if reply is None:
                    continue
                rc = reply.rcode
                if rc in (N.NOERROR, N.NXDOMAIN):
                    return reply
                last = TRY_AGAIN if rc == N.SERVFAIL else NO_RECOVERY
        raise ResolveError(last, name, "no usable answer from " + ", ".join(ip_str(s) for s in servers))

    def _matches(self, data: bytes, ident: int, name: str, qtype: int) -> N.DnsMessage | None:
        try:
            m = N.DnsMessage.parse(data)
        except Malformed as e:
            self.stack.counters.inc(e.reason)
            return None
        q = m.questions[0] if len(m.questions) == 1 else None
        if (not m.is_response or m.id != ident or q is None or q.qtype != qtype
                or q.name.lower().rstrip(".") != name.lower().rstrip(".")):
            self.stack.counters.inc("dns.mismatched_reply")  # RFC 5452 9.1: id and question must match
            return None
        return m

    def _udp(self, server: int, query: bytes, ident: int, name: str, qtype: int) -> N.DnsMessage | None:
        host = self.host
        self.log.append((host.now(), "udp", ip_str(server), qtype))
        try:
            sock = host.call(self.stack.udp.open)
        except UsageError:
            return None
        try:
            try:
                host.call(sock.connect, server, N.PORT)  # connected: other sources are filtered
                host.call(lambda: sock.send(query, host.now()))
            except UsageError:
                return None  # no route to this server
            self.stack.counters.inc("dns.udp_query")
            deadline = host.now() + self.config.timeout_s
            while (left := deadline - host.now()) > 0:
                if not host.wait(lambda: sock.readable or sock.error is not None, left):
                    break
                got, err = host.call(lambda: (sock.recvfrom(), sock.clear_error()))
                if got is None:
                    if err is not None:
                        self.stack.counters.inc("dns.server_unreachable")
                        return None  # ICMP port unreachable: next server now, not at timeout
                    continue
                m = self._matches(got[0], ident, name, qtype)
                if m is not None:
                    return m
            self.stack.counters.inc("dns.timeout")
            return None
        finally:
            host.call(sock.close)

    def _tcp(self, server: int, query: bytes, ident: int, name: str, qtype: int) -> N.DnsMessage | None:
        host = self.host
        self.log.append((host.now(), "tcp", ip_str(server), qtype))
        self.stack.counters.inc("dns.tcp_query")
        tcp = self.stack.tcp
        if tcp is None:
            return None
        sock = host.call(tcp.open)
        deadline = host.now() + self.config.tcp_timeout_s
        try:
            try:
                host.call(lambda: sock.connect(server, N.PORT, host.now()))
            except UsageError:
                return None
            if not host.wait(lambda: sock.writable_bytes > 0 or sock.error is not None,
                             max(0.0, deadline - host.now())) or host.call(lambda: sock.error) is not None:
                return None
            host.call(lambda: sock.send(N.tcp_frame(query), host.now(), True))
            buf = bytearray()
            while (left := deadline - host.now()) > 0:
                if not host.wait(lambda: sock.readable, left):
                    break
                data = host.call(lambda: sock.recv(_MAX_TCP_ANSWER + 2) if sock.error is None else None)
                if not data:
                    break  # error or EOF
                buf += data
                if len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                    return self._matches(bytes(buf[2:2 + int.from_bytes(buf[:2], "big")]), ident, name, qtype)
            self.stack.counters.inc("dns.timeout")
            return None
        finally:
            host.call(lambda: sock.close(host.now()))
