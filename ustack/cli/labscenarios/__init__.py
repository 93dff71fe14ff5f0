"""The scenarios of `ustack lab`, each a short Winsock program with the result it must give.

Every scenario is a function `sc_NAME(ctx: LabContext) -> Outcome`. It gets a `LabContext`
(context.py: the host, its Winsock, the kernel side, and helpers such as `ctx.rec()`) and returns
an `Outcome`: passed or not, what it got in a few words, the Winsock calls it made (recorded by
`WsRecorder`, so the view shows them with return values, error names and durations) and the
calls worth showing on its one line.

Modules, by concern:
  context.py      LabContext, Outcome, Scenario, the lab's SYN schedule and shared constants
  icmp.py         ping, ping6
  udp.py          UDP echo, closed port, connected filter, broadcast; DNS lookup
  tcp.py          blocking TCP connect and its failures; urgent data
  nonblocking.py  nonblocking connect with select / WSAAsyncSelect / WSAEventSelect
  overlapped.py   ConnectEx + overlapped WSARecv; IOCP echo server
  transfer.py     bulk transfer both ways under loss

Adding a scenario (e.g. ping6, tcp6, multicast):
  1. write `sc_NAME(ctx) -> Outcome` in the module of its concern (an IPv6 twin beside its IPv4
     scenario: ping6 in icmp.py, tcp6 in tcp.py; multicast in udp.py), or in a new module here
     for a new concern;
  2. add one `Scenario(id, title, expected, sc_NAME)` row to `SCENARIOS` below, in tour order;
  3. add its `| `id` |` row to the scenario table in docs/cli.md (tests/cli/test_docs.py checks it).
`ustack lab` runs `SCENARIOS` in order; `--only` picks by id.
"""

from __future__ import annotations

from .context import (
    LAB_SYN_RETRIES,
    LAB_SYN_RTO_S,
    LabContext,
    Outcome,
    Scenario,
    syn_schedule,
    syn_schedule_text,
)
from .icmp import sc_ping, sc_ping6
from .nonblocking import sc_nb_async, sc_nb_event, sc_nb_select
from .overlapped import IOCP_MESSAGES, sc_iocp_echo, sc_overlapped
from .tcp import (
    sc_tcp_connect,
    sc_tcp_host_unreach,
    sc_tcp_net_unreach,
    sc_tcp_oob,
    sc_tcp_refused,
    sc_tcp_timeout,
)
from .transfer import sc_transfer
from .udp import sc_dns_lookup, sc_udp_broadcast, sc_udp_closed, sc_udp_connected, sc_udp_echo

__all__ = ["IOCP_MESSAGES", "LAB_SYN_RETRIES", "LAB_SYN_RTO_S", "SCENARIOS", "LabContext", "Outcome",
           "Scenario", "syn_schedule", "syn_schedule_text"]

# The registry: one row per scenario, in the order the tour runs them.
SCENARIOS: list[Scenario] = [
    Scenario("ping", "kernel ping -> ustack", "3/3 echo replies", sc_ping),
    Scenario("udp-echo", "UDP echo", "the datagram comes back", sc_udp_echo),
    Scenario("udp-closed-port", "UDP to a closed port", "WSAECONNRESET on the next recv", sc_udp_closed),
    Scenario("udp-connected-filter", "connected UDP filters other sources", "only the peer's datagram",
             sc_udp_connected),
    Scenario("udp-broadcast", "UDP broadcast without / with SO_BROADCAST", "WSAEACCES, then sent",
             sc_udp_broadcast),
    Scenario("tcp-connect", "TCP connect", "0, ephemeral port 49152-65535", sc_tcp_connect),
    Scenario("tcp-refused", "TCP connect to a closed port", "WSAECONNREFUSED", sc_tcp_refused),
    Scenario("tcp-timeout", "TCP connect into a blackhole", "WSAETIMEDOUT", sc_tcp_timeout),
    Scenario("tcp-host-unreachable", "TCP connect, ICMP host unreachable", "WSAEHOSTUNREACH",
             sc_tcp_host_unreach),
    Scenario("tcp-net-unreachable", "TCP connect with no route", "WSAENETUNREACH, nothing sent",
             sc_tcp_net_unreach),
    Scenario("nonblocking-select", "nonblocking connect + select", "WSAEWOULDBLOCK, then writable",
             sc_nb_select),
    Scenario("nonblocking-async", "nonblocking connect + WSAAsyncSelect", "FD_CONNECT message, error 0",
             sc_nb_async),
    Scenario("nonblocking-event", "nonblocking connect + WSAEventSelect", "event signalled, FD_CONNECT",
             sc_nb_event),
    Scenario("tcp-oob", "urgent data both ways with Linux", "the byte before the urgent pointer, out of line",
             sc_tcp_oob),
    Scenario("overlapped", "ConnectEx + overlapped WSARecv", "pending, then the echo via events",
             sc_overlapped),
    Scenario("iocp-echo", "echo server on a completion port (AcceptEx)", "every byte echoed",
             sc_iocp_echo),
    Scenario("dns-lookup", "gethostbyname over ustack's UDP (dnsmasq on the kernel side)",
             "the address; WSAHOST_NOT_FOUND for an unknown name", sc_dns_lookup),
    Scenario("transfer", "bulk transfer both ways under loss", "every byte, in order (SHA-256)", sc_transfer),
    # last: IPv6 turns on for the whole tour when it runs, and its neighbour probes come after
    Scenario("ping6", "ping6 kernel -> ustack and ustack -> kernel (2001:2::/64)",
             "3/3 echo replies each way", sc_ping6, ipv6=True),
]
