"""Name resolution without the kernel's network: numeric addresses, /etc/hosts, ustack's DNS.

CPython's resolver functions would ask DNS through the kernel's own sockets, which a program
on ustack must not use, so the patched module gets these instead. They answer like glibc for
what they cover: numeric IPv4 addresses (every form inet_aton takes), names in /etc/hosts
(re-read when the file changes) and "localhost", then — when the host's stack has DNS servers
(`StackConfig.dns_servers`, or DHCP) — ustack's own stub resolver over ustack's UDP/TCP
(`dns`, given by the caller: see HostState.dns_lookup); anything else is
`gaierror(EAI_NONAME)`. AF_INET6 (issue 12): IPv6 literals ("addr%n" with a numeric scope),
IPv6 lines of /etc/hosts, localhost as ::1 and AAAA records; AF_UNSPEC gives AF_INET6 for an
IPv6 literal and IPv4 for names (ustack's Winsock asks AAAA for AF_UNSPEC only on a host with a
global IPv6 address; here AF_INET6 must be asked for).
"""

from __future__ import annotations

import _socket
import ipaddress
import os
import socket as _pysocket
from collections.abc import Callable
from typing import Any

Dns = Callable[..., list[str]]  # (name[, qtype]) -> addresses (A by default, 28: AAAA), or gaierror
_AAAA = 28

HOSTS_FILE = "/etc/hosts"
_real_getaddrinfo = _socket.getaddrinfo
_cache: dict[str, Any] = {"key": None, "by_name": {}, "by_addr": {}}


def _hosts() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """name -> addresses (IPv4 and IPv6) and address -> names (first name canonical), from
    HOSTS_FILE."""
    try:
        st = os.stat(HOSTS_FILE)
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        key = None
    if key != _cache["key"]:
        by_name: dict[str, list[str]] = {}
        by_addr: dict[str, list[str]] = {}
        try:
            with open(HOSTS_FILE, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            lines = []
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and _is_ipv6_literal(fields[0]) and "%" not in fields[0]:
                fields[0] = str(ipaddress.IPv6Address(fields[0]))
            elif len(fields) < 2 or _numeric(fields[0]) != fields[0]:
                continue  # junk
            for name in fields[1:]:
                by_name.setdefault(name.lower(), []).append(fields[0])
            by_addr.setdefault(fields[0], []).extend(fields[1:])
        _cache.update(key=key, by_name=by_name, by_addr=by_addr)
    return _cache["by_name"], _cache["by_addr"]


def _numeric(host: str) -> str | None:
    """The dotted quad of a numeric IPv4 host (inet_aton forms too), or None. Never DNS."""
    try:
        infos = _real_getaddrinfo(host, None, _socket.AF_INET, _socket.SOCK_STREAM, 0, _socket.AI_NUMERICHOST)
    except (_socket.gaierror, UnicodeError, ValueError):
        return None
    return infos[0][4][0] if infos else None


def _is_ipv6_literal(host: str) -> bool:
    try:
        _socket.inet_pton(_socket.AF_INET6, host.split("%", 1)[0])
    except OSError:
        return False
    return True


def resolve6(host: str, flags: int = 0, dns: Dns | None = None) -> list[tuple[str, int]]:
    """(IPv6 address, scope id) for host: an IPv6 literal ("addr%n" keeps n), /etc/hosts,
    localhost (::1), then `dns` asked for AAAA; gaierror as glibc (an IPv4 literal:
    EAI_ADDRFAMILY)."""
    text, _, scope = host.partition("%")
    if _is_ipv6_literal(host) and (not scope or scope.isdigit()):
        return [(str(ipaddress.IPv6Address(text)), int(scope or 0))]
    if _numeric(host) is not None:
        raise _socket.gaierror(_socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    if flags & _socket.AI_NUMERICHOST:
        raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
    by_name, _ = _hosts()
    found = [a for a in by_name.get(host.lower().rstrip("."), []) if ":" in a]
    if found:
        return [(a, 0) for a in dict.fromkeys(found)]
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return [("::1", 0)]
    if dns is not None:
        return [(a, 0) for a in dns(host, _AAAA)]
    raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")


def resolve(host: str, flags: int = 0, dns: Dns | None = None) -> list[str]:
    """IPv4 addresses for host (numeric, /etc/hosts, localhost, then `dns`), or gaierror."""
    num = _numeric(host)
    if num is not None:
        return [num]
    if _is_ipv6_literal(host):
        raise _socket.gaierror(_socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    if flags & _socket.AI_NUMERICHOST:
        raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
    by_name, _ = _hosts()
    found = [a for a in by_name.get(host.lower().rstrip("."), []) if ":" not in a]
    if found:
        return list(dict.fromkeys(found))
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return ["127.0.0.1"]
    if dns is not None:
        return dns(host)
    raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")


def _port(port: Any, socktype: int) -> int:
    if port is None:
        return 0
    if isinstance(port, int):
        if not 0 <= port <= 0xFFFF:
            raise OverflowError("getaddrinfo(): port must be 0-65535.")
        return port
    if isinstance(port, bytes):
        port = port.decode("ascii")
    if not isinstance(port, str):
        raise OSError("Int or String expected")
    if port.isdigit():
        return int(port)
    proto = "udp" if socktype == _socket.SOCK_DGRAM else "tcp"
    try:
        return _pysocket.getservbyname(port, proto)  # /etc/services: a local file
    except OSError:
        raise _socket.gaierror(_socket.EAI_SERVICE, "Servname not supported for ai_socktype") from None


def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,  # noqa: A002
                flags: int = 0, *, dns: Dns | None = None
                ) -> list[tuple[Any, Any, int, str, tuple[str, int]]]:
    """socket.getaddrinfo over numeric hosts, /etc/hosts and `dns`: AF_INET, AF_INET6 (AAAA,
    4-tuple addresses), AF_UNSPEC (an IPv6 literal gives AF_INET6, names IPv4)."""
    if family not in (_socket.AF_UNSPEC, _socket.AF_INET, _socket.AF_INET6):
        raise _socket.gaierror(_socket.EAI_FAMILY, "ai_family not supported")
    if isinstance(host, bytes):
        host = host.decode("idna")
    found: list[tuple[int, tuple[Any, ...]]]  # (family, address without the port)
    if host is None:
        if family == _socket.AF_INET6:
            found = [(family, ("::" if flags & _socket.AI_PASSIVE else "::1", 0, 0))]
        else:
            found = [(_socket.AF_INET, ("0.0.0.0" if flags & _socket.AI_PASSIVE else "127.0.0.1",))]
    elif family == _socket.AF_INET6 or (family == _socket.AF_UNSPEC and _is_ipv6_literal(host)):
        found = [(_socket.AF_INET6, (a, 0, scope)) for a, scope in resolve6(host, flags, dns)]
    else:
        found = [(_socket.AF_INET, (a,)) for a in resolve(host, flags, dns)]
    if type == 0:
        kinds = [(_socket.SOCK_STREAM, _socket.IPPROTO_TCP), (_socket.SOCK_DGRAM, _socket.IPPROTO_UDP),
                 (_socket.SOCK_RAW, 0)]
    elif type == _socket.SOCK_STREAM:
        kinds = [(type, _socket.IPPROTO_TCP)]
    elif type == _socket.SOCK_DGRAM:
        kinds = [(type, _socket.IPPROTO_UDP)]
    else:
        kinds = [(type, proto)]
    if proto:
        kinds = [(t, p) for t, p in kinds if p == proto] or [(type or _socket.SOCK_RAW, proto)]
    canon = host if (flags & _socket.AI_CANONNAME and host is not None) else ""
    out = []
    for fam, addr in found:
        for t, p in kinds:
            sa = (addr[0], _port(port, t), *addr[1:])
            out.append((_pysocket.AddressFamily(fam), _pysocket.SocketKind(t), p, canon, sa))
            canon = ""
    return out


def gethostbyname(name: str, *, dns: Dns | None = None) -> str:
    return resolve(name, 0, dns)[0]


def gethostbyname_ex(name: str, *, dns: Dns | None = None) -> tuple[str, list[str], list[str]]:
    addrs = resolve(name, 0, dns)
    _, by_addr = _hosts()
    names = by_addr.get(addrs[0], [])
    canonical = names[0] if names and _numeric(name) is None else name
    return canonical, [n for n in names if n != canonical], addrs


def gethostbyaddr(ip: str) -> tuple[str, list[str], list[str]]:
    addr = _numeric(ip) or (resolve(ip)[0] if ip else None)
    _, by_addr = _hosts()
    names = by_addr.get(addr or "", [])
    if not names:
        raise _socket.herror(1, "Unknown host")
    return names[0], names[1:], [addr]  # type: ignore[list-item]


def getnameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
    host, port = sockaddr[0], sockaddr[1]
    if _is_ipv6_literal(host):
        addr = str(ipaddress.IPv6Address(host.partition("%")[0]))
    else:
        addr = resolve(host)[0]
    name = addr
    if not flags & _socket.NI_NUMERICHOST:
        _, by_addr = _hosts()
        found = by_addr.get(addr)
        if found:
            name = found[0]
        elif flags & _socket.NI_NAMEREQD:
            raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
    service = str(port)
    if not flags & _socket.NI_NUMERICSERV:
        try:
            service = _pysocket.getservbyport(port, "udp" if flags & _socket.NI_DGRAM else "tcp")
        except OSError:
            pass
    return name, service


def sockaddr(address: Any, what: str, dns: Dns | None = None,
             family: int = _socket.AF_INET) -> tuple[Any, ...]:
    """An AF_INET (host, port) or AF_INET6 (host, port[, flowinfo[, scope_id]]) as CPython
    accepts it, the host resolved here (names through `dns`)."""
    if family == _socket.AF_INET6:
        return _sockaddr6(address, what, dns)
    if not isinstance(address, tuple):
        raise TypeError(f"{what}(): AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = address
    if not isinstance(port, int):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("idna")
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host == "":
        return ("0.0.0.0", port)
    if host == "<broadcast>":
        return ("255.255.255.255", port)
    return (resolve(host, 0, dns)[0], port)


def _sockaddr6(address: Any, what: str, dns: Dns | None) -> tuple[str, int, int, int]:
    if not isinstance(address, tuple):
        raise TypeError(f"{what}(): AF_INET6 address must be tuple, not {type(address).__name__}")
    if not 2 <= len(address) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    host, port, flowinfo, scope_id = (*address, 0, 0)[:4]
    for v in (port, flowinfo, scope_id):
        if not isinstance(v, int):
            raise TypeError(f"'{type(v).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    if not 0 <= flowinfo <= 0xFFFFF:
        raise OverflowError(f"{what}(): flowinfo must be 0-1048575.")
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("idna")
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host == "":
        return ("::", port, flowinfo, scope_id)
    addr, scope = resolve6(host, 0, dns)[0]
    return (addr, port, flowinfo, scope_id or scope)
