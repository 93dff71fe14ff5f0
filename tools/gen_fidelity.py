"""Generate docs/winsock-fidelity.md from a real run of the Winsock tests.

Every numbered item of the Winsock behaviour reference has tests named `test_item_<N>_...`
in tests/winsock/; the first docstring paragraph of each test says which behaviour it shows
(read statically with `ast`). Each test's status comes from the JUnit report of a pytest run
(`--junitxml`): passed, failed, skipped (with pytest's reason, e.g. a TUN test without root),
known gap (an xfail), or not run (missing from the report). The winsock part of the report is
kept in docs/data/winsock-fidelity-junit.xml, so the table can be checked against it.

    python tools/gen_fidelity.py --run            # run tests/winsock now, keep its report, write the doc
    python tools/gen_fidelity.py --junit FILE     # the same from an existing report (e.g. CI's)
    python tools/gen_fidelity.py --check          # exit 1 if the doc differs from the kept report's
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "winsock"
OUT = ROOT / "docs" / "winsock-fidelity.md"
REPORT = ROOT / "docs" / "data" / "winsock-fidelity-junit.xml"
CLASS_PREFIX = "tests.winsock."

# The reference's items in short form (our words). "≠L" marks where Windows differs from Linux.
SECTIONS: list[tuple[str, list[tuple[int, str]]]] = [
    ("0. connect (the founding document)", [
        (0, "connect: implicit bind, TCP handshake, UDP default peer, nonblocking completion, "
            "reconnect after failure, and the page's error list code by code"),
    ]),
    ("A. Constants", [
        (1, "error codes have Winsock's numbers"),
        (2, "SOCKET_ERROR = -1, INVALID_SOCKET = ~0 at pointer width"),
        (3, "FD_* bits and FD_MAX_EVENTS"),
        (4, "WSAWaitForMultipleEvents constants"),
        (5, "WSAAsyncSelect lParam: event low word, error high word"),
        (6, "ioctl codes and option numbers"),
    ]),
    ("B. Startup, last error, handles", [
        (7, "WSANOTINITIALISED before startup and for an unmatched cleanup; stale handles after cleanup"),
        (8, "successful calls clear the last error; the last error is per thread"),
        (9, "closed or unknown handles are WSAENOTSOCK"),
    ]),
    ("C. socket()", [
        (10, "family/type/protocol checks; (AF_INET, 0, 0) is TCP"),
    ]),
    ("D. bind and address reuse", [
        (11, "name/namelen checks, foreign or broadcast address, binding twice, port 0"),
        (12, "same addr:port twice is WSAEADDRINUSE"),
        (13, "≠L: a specific address and the wildcard may share a port; the specific wins"),
        (14, "≠L: SO_REUSEADDR only on the second socket is WSAEACCES; on both, both bind"),
        (15, "SO_REUSEADDR and SO_EXCLUSIVEADDRUSE exclude each other (WSAEINVAL)"),
    ]),
    ("E. listen and accept", [
        (17, "listen on UDP, unbound (≠L), twice, connected"),
        (18, "≠L: a full accept queue refuses (RST) instead of dropping the SYN"),
        (20, "accept argument and state checks"),
        (21, "accepted sockets inherit options and the event registration"),
    ]),
    ("F. TCP connect", [
        (23, "blocking success; getsockname/getpeername"),
        (24, "refused; then listed in exceptfds"),
        (25, "≠L: SYN repeated after RST before WSAECONNREFUSED"),
        (26, "nonblocking connect is WSAEWOULDBLOCK even locally"),
        (27, "second connect while pending: WSAEALREADY (1.1: WSAEINVAL)"),
        (28, "while pending: getsockname works, send/recv WSAENOTCONN"),
        (29, "≠L: nonblocking outcome via select; SO_ERROR persists after reading"),
        (30, "connect again after a failed nonblocking attempt"),
        (31, "connect on a connected/accepted socket, even after shutdown: WSAEISCONN"),
        (32, "connect on a listening socket: WSAEINVAL"),
        (33, "destination 0.0.0.0 or port 0: WSAEADDRNOTAVAIL"),
        (34, "WSAEFAULT, WSAEAFNOSUPPORT, WSAETIMEDOUT (21 s, configurable), WSAENETUNREACH, "
             "WSAEHOSTUNREACH (ARP or ICMP), WSAEADDRINUSE"),
        (35, "WSAConnect; non-NULL QoS is WSAEINVAL"),
    ]),
    ("G. getsockname / getpeername", [
        (36, "≠L: getsockname unbound is WSAEINVAL; short namelen WSAEFAULT"),
        (37, "getpeername not connected WSAENOTCONN; namelen 0 WSAEFAULT"),
    ]),
    ("H. WSAAsyncSelect / WSAEventSelect / WSAEnumNetworkEvents", [
        (38, "registration makes the socket nonblocking; FIONBIO=0 refused until cleared"),
        (39, "a new registration replaces the old; one event per message"),
        (40, "FD_CONNECT then FD_WRITE; failure code in the high word"),
        (42, "re-registering: WSAAsyncSelect re-posts, WSAEventSelect does not re-signal"),
        (43, "re-enabling rules; FD_READ/FD_ACCEPT level-triggered; FD_WRITE only after WSAEWOULDBLOCK"),
        (45, "FD_CLOSE codes (graceful 0, reset WSAECONNABORTED); local close posts nothing"),
        (47, "WSAEnumNetworkEvents copies, clears, resets; writes only set bits' codes"),
        (48, "WSAEventSelect never resets the event object"),
        (49, "WSAWaitForMultipleEvents: lowest index, parameter and handle errors"),
    ]),
    ("I. UDP", [
        (50, "≠L: send unconnected is WSAENOTCONN"),
        (51, "≠L: recv unbound is WSAEINVAL; bound empty nonblocking WSAEWOULDBLOCK"),
        (52, "UDP connect is immediate and binds"),
        (53, "all-zero connect dis-connects"),
        (54, "connected sockets drop other peers; reconnecting discards the queue"),
        (55, "sendto a broadcast address needs SO_BROADCAST (WSAEACCES); connect to one: Windows "
             "vs the document"),
        (56, "ICMP port unreachable makes the next recv WSAECONNRESET; SIO_UDP_CONNRESET"),
        (57, "sendto binds implicitly to 0.0.0.0:ephemeral"),
        (58, "short recvfrom buffer: WSAEMSGSIZE, truncated, rest discarded"),
        (59, "shutdown on unconnected UDP, then WSAESHUTDOWN"),
    ]),
    ("J. Closing and broken TCP connections", [
        (60, "recv returns 0 repeatedly after a graceful close"),
        (61, "≠L: after RST, recv/send WSAECONNRESET; SO_ERROR stays 0"),
        (62, "send to a fully closed peer succeeds, then recv WSAECONNABORTED"),
        (63, "shutdown checks; WSAESHUTDOWN after SD_SEND/SD_RECEIVE (≠L)"),
        (64, "send on unconnected TCP: WSAENOTCONN"),
    ]),
    ("K. select and options", [
        (65, "≠L: select argument rules; counts (socket, set) pairs"),
        (66, "a listener with a pending connection is readable"),
        (67, "option errors: level, SO_LINGER on UDP, short optlen"),
        (69, "≠L: SO_RCVTIMEO expiry is WSAETIMEDOUT"),
        (70, "nonblocking TCP send: all or WSAEWOULDBLOCK"),
    ]),
    ("L. Winsock 1.1 blocking semantics", [
        (72, "one blocking call per thread; others WSAEINPROGRESS"),
        (73, "WSACancelBlockingCall: WSAEINTR / WSAEINVAL; 1.1 only"),
    ]),
    ("M. WSAPoll (issue 14, beyond the reference)", [
        (74, "WSAPoll: argument errors, the events it refuses (WSAEINVAL), revents per socket state, "
             "POLLHUP/POLLERR for a reset or failed connect, POLLNVAL for invalid or closed handles"),
        (75, "WSAIoctl: NULL lpcbBytesReturned and short buffers (WSAEFAULT), unknown codes "
             "(WSAEOPNOTSUPP), FIONREAD / SIOCATMARK / FIONBIO / SIO_KEEPALIVE_VALS"),
    ]),
    ("N. Overlapped I/O, completion ports, extension functions (issue 14, beyond the reference)", [
        (100, "WSASocket (WSA_FLAG_OVERLAPPED), WSARecv / WSASend / WSARecvFrom / WSASendTo with an "
              "overlapped and an event: WSA_IO_PENDING or 0 at once (the event still signalled), "
              "WSAGetOverlappedResult (fWait, WSA_IO_INCOMPLETE), GetOverlappedResult's Win32 codes"),
        (101, "completion routines run only in the issuing thread's alertable wait (SleepEx, "
              "WSAWaitForMultipleEvents fAlertable: WAIT_IO_COMPLETION), also after an immediate "
              "completion"),
        (102, "CancelIo (the calling thread's operations), CancelIoEx (ERROR_NOT_FOUND), "
              "closesocket: pending operations end with WSA_OPERATION_ABORTED"),
        (103, "CreateIoCompletionPort, GetQueuedCompletionStatus(Ex), PostQueuedCompletionStatus, "
              "SetFileCompletionNotificationModes, CloseHandle on a port; WSAIoctl with an overlapped"),
        (104, "WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER) with the AcceptEx, ConnectEx, "
              "DisconnectEx, GetAcceptExSockaddrs GUIDs"),
        (105, "AcceptEx (argument checks, receive length, address space rules), "
              "GetAcceptExSockaddrs, SO_UPDATE_ACCEPT_CONTEXT"),
        (106, "ConnectEx (argument checks, send buffer, refusal, completion port), "
              "SO_UPDATE_CONNECT_CONTEXT"),
        (107, "DisconnectEx"),
        (108, "out-of-band data: send/recv MSG_OOB as TCP urgent data (RFC 6093 pointer), "
              "SO_OOBINLINE, SIOCATMARK, FD_OOB, exceptfds, POLLRDBAND"),
    ]),
    ("O. IPv6 (issue 12, beyond the reference)", [
        (120, "AF_INET6 sockets: SOCKADDR_IN6 names (namelen 28; WSAEFAULT below, WSAEAFNOSUPPORT for "
              "another family), getsockname/recvfrom write 28 bytes; UDP and TCP over IPv6 end to end"),
        (121, "IPPROTO_IPV6 options: IPV6_V6ONLY TRUE by default, changeable only before bind "
              "(WSAEINVAL after); WSAEINVAL on an AF_INET socket; IPV6_UNICAST_HOPS"),
        (122, "v6-only sockets beside IPv4 ones on one port (sock.c test_ipv6only); v4-mapped "
              "destinations refused"),
        (123, "dual-mode sockets (IPV6_V6ONLY 0): one port in both families, IPv4 peers as "
              "::ffff:a.b.c.d in recvfrom, getpeername, getsockname, accept"),
        (124, "inet_pton / InetPtonW: Windows' IPv6 and strict IPv4 forms; 0 for other text, "
              "WSAEFAULT for NULL, WSAEAFNOSUPPORT for other families"),
        (125, "inet_ntop / InetNtopW: Windows' IPv6 text (\"::\" for the first longest zero run, "
              "dotted tail for compatible / mapped / translated / ISATAP); short buffer WSAEINVAL"),
        (126, "WSAStringToAddressA/W: IPv4 classic forms with a port, IPv6 with brackets, port and "
              "scope id; WSAEINVAL, WSAEFAULT with the size needed"),
        (127, "WSAAddressToStringA/W: \"[addr%scope]:port\"; WSAEFAULT with the length needed"),
        (128, "getaddrinfo / GetAddrInfoW: AF_INET6 (AAAA, SOCKADDR_IN6 entries), AI_V4MAPPED, AI_ALL, "
              "IPv6 literals with scope ids, AF_UNSPEC; gethostbyname stays IPv4-only"),
        (129, "ustack.socket with AF_INET6: (addr, port[, flowinfo[, scope_id]]) in, 4-tuples out"),
    ]),
    ("P. Multicast (issue 12, beyond the reference)", [
        (140, "IP_MULTICAST_TTL / IP_MULTICAST_LOOP: defaults 1 and TRUE; Windows' option sizes"),
        (141, "IP_MULTICAST_IF: an IN_ADDR of this host"),
        (142, "IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP: ip_mreq size, group, interface, twice, not joined"),
        (143, "group datagrams reach the sockets that joined; IP_MULTICAST_LOOP; TTL on the wire"),
    ]),
]

# Where the reference's item comes from: "win" = seen on real Windows (Wine's checks), "doc" =
# Microsoft's documentation (or headers) only, "ref" = stated by the reference without a source,
# "uncertain" = neither settles it (ustack's choice is in NOTES).
SOURCES: dict[int, str] = {
    0: "doc", 1: "doc", 2: "doc", 3: "doc", 4: "doc", 5: "doc", 6: "doc", 18: "doc", 23: "ref",
    28: "win", 33: "uncertain", 34: "doc", 35: "doc", 39: "doc", 49: "doc", 51: "ref", 58: "doc",
    72: "doc", 73: "doc", 74: "win+doc", 75: "win+doc", 55: "doc+win", 56: "doc+win",
    100: "win+doc", 101: "doc", 102: "win+doc", 103: "win+doc", 104: "win", 105: "win+doc", 106: "win",
    107: "win", 108: "win+doc",
    120: "win+doc", 121: "win+doc", 122: "win", 123: "win+doc", 124: "win", 125: "win", 126: "win",
    127: "win", 128: "doc", 129: "doc",
    140: "win", 141: "doc", 142: "doc", 143: "uncertain",
    27: "win+doc", 32: "win+doc",
    40: "win+doc", 43: "win+doc", 47: "win+doc", 53: "win+doc",
}

# Per item: what ustack chose where the reference leaves room, and any deviation from it.
NOTES: dict[int, str] = {
    141: "Only INADDR_ANY and the host's own address are taken (one interface); Windows' "
         "interface-index form (an address in 0.0.0.0/8) is not modelled.",
    142: "The errors of a second join and of a drop are Microsoft's table; a TCP socket refusing "
         "the multicast options (WSAENOPROTOOPT) and getsockopt of the membership options "
         "(WSAENOPROTOOPT) are ustack's choice, not checked on Windows. Joining needs no bind.",
    143: "**Uncertain, chosen:** a socket receives a group's datagrams only when it joined the group "
         "itself (Linux's default IP_MULTICAST_ALL=1 gives them to every socket on the port); a "
         "socket bound to the host's unicast address receives them too (the Windows idiom: bind "
         "the interface address, then join). Memberships are announced with IGMPv3 "
         "(docs/multicast.md).",
    100: "A socket made by WSASocket without WSA_FLAG_OVERLAPPED takes an overlapped call and waits "
         "for its outcome (Microsoft: such a socket does no overlapped I/O; the exact behaviour is "
         "undocumented). An overlapped TCP send completes once its data is queued on the connection; "
         "with SO_SNDBUF 0 once the peer acknowledged it.",
    101: "Completion routines are queued per issuing thread (a Simulator task or a real thread); "
         "Winsock's blocking calls run them while they wait (sock.c), the waits of the overlapped "
         "calls themselves (WSAGetOverlappedResult, GetQueuedCompletionStatus) do not.",
    105: "Before SO_UPDATE_ACCEPT_CONTEXT getsockname is WSAEINVAL and getpeername / shutdown "
         "WSAENOTCONN: sock.c shows getsockname needs the option but not the code, Microsoft's "
         "remarks say the socket is in a default state; the codes are ustack's choice. A local "
         "address space between 1 and 31 bytes fails at connection time (sock.c shows 3 and 20).",
    106: "ConnectEx always returns ERROR_IO_PENDING, also to a local peer (as sock.c sees it), and "
         "completes asynchronously right after. Before SO_UPDATE_CONNECT_CONTEXT connect() is "
         "WSAEINVAL (sock.c) and getpeername / getsockname / shutdown fail as for item 105.",
    120: "AcceptEx on an AF_INET6 listener needs 28 + 16 bytes per address (a smaller nonzero local "
         "space fails when the connection comes, as in item 105). Flow info and scope ids given to "
         "bind/connect/sendto are not used (one interface); names written back carry 0 for both. "
         "Tested in the Simulator and against the Linux kernel over TUN.",
    121: "Setting IPV6_V6ONLY on an unbound AF_INET socket succeeds and changes nothing (Wine's AFD "
         "does this because Windows does). **Uncertain, chosen:** the IPPROTO_IPV6 options on an "
         "AF_INET socket otherwise fail with WSAEINVAL (sock.c shows the failure, not the code). "
         "IPV6_UNICAST_HOPS reads the stack's default hop limit "
         "until set; -1 restores it.",
    123: "A dual-mode [::] bind holds the port in both families: an IPv4 bind of it afterwards, and a "
         "dual-mode bind of a port an IPv4 socket holds, are WSAEADDRINUSE (sock.c test_ipv6only). "
         "`ustack run` (compat) makes AF_INET6 sockets dual-mode by default, as Linux does.",
    122: "**Uncertain, chosen:** a v4-mapped destination on a v6-only socket is WSAEADDRNOTAVAIL "
         "(the transport's ADDR_NOT_AVAIL).",
    125: "A buffer too short for the text is WSAEINVAL, what Windows 7 reports; protocol.c shows later "
         "versions reporting STATUS_INVALID_PARAMETER as the last error instead.",
    126: "On a text that does not parse the structure is zeroed and the address part is kept when "
         "it was itself valid (\"127.127.127.127:0\"); Windows also keeps some partial parses "
         "(\"1.1.1.008\") that ustack leaves zero. \"0x123456789\" (Windows: 0x23456789) is refused. "
         "An IPv6 port is decimal only.",
    128: "AF_UNSPEC includes IPv6 entries (first, RFC 6724's default order) only when the host has "
         "a global IPv6 address, as Windows' resolver sends AAAA queries only then; IPv6 literals "
         "are AF_INET6 always. **Uncertain, chosen:** an IPv4 literal with AF_INET6 and no "
         "AI_V4MAPPED, and an IPv6 literal with AF_INET, are WSAHOST_NOT_FOUND; gethostbyname of "
         "an IPv6 literal is WSAHOST_NOT_FOUND without a query.",
    107: "DisconnectEx sends a FIN and completes at once; TF_REUSE_SOCKET is WSAEOPNOTSUPP.",
    108: "One byte of urgent data, the one before the urgent pointer; a newer urgent byte leaves an "
         "older unread one in the normal stream (BSD drops it); recv(MSG_OOB) with none waiting "
         "is WSAEWOULDBLOCK / waits (ours); an overlapped WSARecv with MSG_OOB is WSAEOPNOTSUPP.",
    0: "WSAEINTR in 2.2: a blocking connect fails with it when another thread closes the socket; "
       "WSAENETDOWN: the host (runtime) is closed; WSAENOBUFS: no ephemeral port left for an "
       "unbound socket (a bound one whose 4-tuple is taken gets WSAEADDRINUSE). UDP connect to a "
       "broadcast address: the document's WSAEACCES only with broadcast_connect=\"document\"; by "
       "default it succeeds, as sock.c shows Windows doing (see 55).",
    7: "The last WSACleanup resets open connections (RST), as Microsoft documents.",
    8: "Calls that do not succeed leave their code. sock.c shows socket, recv, recvfrom and WSAIoctl "
       "success setting it to 0 as well (the reference listed neither; ustack did not clear it on recv).",
    10: "sock.c test_WSASocket: the type is checked before the family (0xdead/0xdead/TCP -> "
        "WSAESOCKTNOSUPPORT), AF_UNSPEC without a protocol -> WSAEINVAL, with one -> IPv4.",
    17: "sock.c test_select: a socket whose connect failed may listen on its bound name (ustack gives "
        "it a fresh stack socket on that name); SO_ERROR and exceptfds keep the failure.",
    20: "sock.c test_accept: a buffer with a NULL addrlen is accepted and left untouched; *addrlen 0 "
        "-> WSAEFAULT.",
    11: "A namelen shorter than 16 is checked before the family (WSAEFAULT first).",
    12: "A TCP port a connection uses (the local address and port an unbound socket's connect "
        "chose) counts as bound on that address: another bind of it, through 0.0.0.0 or that "
        "address, is WSAEADDRINUSE, as Windows refuses it; item 13's coexistence is between "
        "explicit binds only. The port stays taken until the connection is gone (after "
        "closesocket, through TIME-WAIT).",
    14: "SO_EXCLUSIVEADDRUSE (sock.c test_reuseaddr's table): an exclusive 0.0.0.0 holder refuses a "
        "specific newcomer with WSAEACCES; an exclusive specific holder lets 0.0.0.0 in; an exclusive "
        "0.0.0.0 newcomer over a specific holder and any clash on the same address are "
        "WSAEADDRINUSE (the reuse newcomer against an exclusive holder of that address: WSAEACCES). "
        "Against a connected socket's port (12), SO_REUSEADDR on the newcomer alone is WSAEACCES "
        "as well, for 0.0.0.0:p and the specific address: the connected socket is taken not to "
        "have allowed sharing (the rule of this item; ustack does not carry a SO_REUSEADDR set "
        "before connect into connect's implicit bind).",
    18: "listen clamps the backlog to 1..TcpConfig.max_backlog (SOMAXCONN = the maximum). The RST "
        "that refuses a client is answered with Windows' SYN-after-RST retries (25), so the "
        "refusal is seen after about 2 s.",
    25: "2 repeated SYNs, 1 s apart, so a refusal takes about 2 s, as the reference measures on "
        "Windows' loopback. Configurable per Winsock: `Winsock(host, syn_rst_retry_s=0.5)` (set on "
        "every socket it connects); `syn_rst_retries=0` turns the quirk off (Linux-like).",
    28: "sock.c test_connecting_socket: getpeername already names the target while the connect is "
        "pending.",
    29: "sock.c test_select: SO_ERROR keeps a failed nonblocking attempt's code until a connection "
        "succeeds (a new connect does not clear it); a refused blocking connect returns the code but "
        "leaves SO_ERROR 0; either failure puts the socket in exceptfds (and WSAPoll: POLLWRNORM | "
        "POLLHUP | POLLERR) until the next connect starts, even across a listen.",
    33: "**Uncertain, chosen:** a TCP connect to port 0 is WSAEADDRNOTAVAIL, like the all-zero "
        "address. **sock.c corrects the reference for UDP:** sendto and connect to port 0 succeed "
        "(test_UDP, test_connect_events); the address 0.0.0.0 stays WSAEADDRNOTAVAIL.",
    36: "sock.c test_getsockname: an unbound socket -> WSAEINVAL with the buffer untouched; a 15-byte "
        "*namelen stays 15.",
    34: "Windows' schedule by default: SYN + 2 retries, RTO 3 s doubling (21 s); per socket "
        "`syn_rto_s` / `syn_retries` on the stack socket. ARP failure is reported after the "
        "stack's `arp_tries` x `arp_retry_s` (before 21 s).",
    37: "The connection state is checked before the arguments: an unconnected socket is "
        "WSAENOTCONN even with a NULL name or namelen 0 (Wine's order); connected, those are "
        "WSAEFAULT and *namelen is left alone (sock.c test_getpeername).",
    40: "**sock.c test_connect_events replaces ustack's earlier reading of Microsoft's list:** "
        "FD_CONNECT is an occurrence, not a condition. WSAAsyncSelect posts it only for a TCP "
        "connect that completes while registered for it (never for a UDP connect, never on "
        "re-registration); WSAEventSelect records a connect that completed earlier (TCP or UDP) "
        "at its first registration for FD_CONNECT. An accepted socket never gets one. A UDP "
        "connect reports FD_WRITE again.",
    42: "sock.c test_events: WSAAsyncSelect registration re-enables every event; WSAEventSelect "
        "registration re-enables none (also after a registration with 0), while a new arrival "
        "(data, a connection) re-enables FD_READ / FD_ACCEPT under WSAEventSelect only. Recorded "
        "events not yet enumerated signal the event again when selected again; "
        "WSAEnumNetworkEvents reports and clears only the events currently selected.",
    43: "FD_WRITE re-enabled by a WSAEWOULDBLOCK send is posted when buffer space frees up, not at "
        "the failing send. A recv that fails (WSAEFAULT) re-enables FD_READ under WSAAsyncSelect "
        "only (sock.c test_read_events). Under WSAEventSelect a UDP socket reports FD_WRITE once "
        "bound; under WSAAsyncSelect at once. FD_OOB: urgent data read out of line (item 108).",
    45: "Follows real Windows where the documentation differs: a reset gives FD_CLOSE with "
        "WSAECONNABORTED (documented: WSAECONNRESET). **sock.c test_close_events:** FD_CLOSE is "
        "posted as soon as the FIN arrives, with data still unread (after that data's FD_READ). "
        "A data or keepalive time-out gives WSAECONNABORTED "
       "(FD_CLOSE's documented codes); after a keepalive failure recv/send report WSAENETRESET.",
    49: "fWaitAll=TRUE returns WSA_WAIT_EVENT_0 when all are signalled; fAlertable is accepted but "
        "there is no I/O completion (WSA_WAIT_IO_COMPLETION is never returned).",
    52: "The implicit bind of a UDP connect is 0.0.0.0:ephemeral, as for sendto (57); while "
        "connected, getsockname reports the local address of the route to the peer (Microsoft's "
        "getsockname page), and 0.0.0.0 again after an all-zero dis-connect.",
    54: "The very first connect keeps datagrams queued before it (the document read literally: only "
        "a name different from the previous connect's discards them).",
    55: "**sock.c corrects the reference:** real Windows (test_broadcast) lets a UDP socket connect "
        "to a broadcast address without SO_BROADCAST and send() to it; only sendto a broadcast "
        "address needs the option. That is ustack's default; `Winsock(host, "
        "broadcast_connect=\"document\")` keeps the founding document's WSAEACCES on connect. (The "
        "reference's \"the later send fails\" is not what sock.c shows.)",
    56: "Other ICMP errors on UDP: protocol unreachable and parameter problem -> WSAECONNRESET, "
        "host/net unreachable -> WSAEHOSTUNREACH/WSAENETUNREACH, time exceeded -> WSAENETRESET, "
        "fragmentation needed -> WSAEMSGSIZE. SIO_UDP_CONNRESET off ignores them entirely.",
    61: "Bytes received before the RST stay readable; the error comes once they are read.",
    62: "Relies on the peer answering data after its close with RST (RFC 1122 4.2.2.13), which "
        "ustack's TCP and Linux do.",
    65: "A closed socket in any set fails at once, before any wait; a negative timeval is WSAEINVAL. "
        "sock.c test_select refines \"counts (socket, set) pairs\": a socket listed twice in a set "
        "is written and counted once, and one FD_SET passed as two sets holds (and counts) each "
        "ready socket once. A socket closed by another thread during the wait wakes select: "
        "reported in readfds if it was listed there, else select fails with WSAENOTSOCK.",
    67: "**sock.c corrects the reference's \"short optlen -> WSAEFAULT\":** BOOL options (SO_REUSEADDR, "
        "SO_EXCLUSIVEADDRUSE, SO_BROADCAST, SO_OOBINLINE, SO_DONTLINGER, SO_DEBUG) take optlen 0 to "
        "3 and report a size of 1 for a short get; SO_KEEPALIVE, SO_DONTROUTE and TCP_NODELAY are "
        "1-byte options (only the first byte counts: 0x100 is FALSE; get always reports 1); the int "
        "options need 4 bytes (a failing short get zeroes SO_RCVBUF/SO_SNDBUF/SO_LINGER). A negative "
        "optlen works for the 4-byte SOL_SOCKET options and is WSAENOBUFS for the others; *optlen "
        "<= 0 on get is WSAEFAULT; SO_ERROR can be set; SO_TYPE/SO_ACCEPTCONN cannot "
        "(WSAENOPROTOOPT). SO_SNDBUF 0 turns Winsock's buffering off but the TCP send buffer still "
        "takes nonblocking sends. SO_CONNECT_TIME counts from the handshake for a connecting socket "
        "and from accept() for an accepted one (the stack does not keep the handshake's time).",
    69: "SO_SNDTIMEO expiry on a blocking send is WSAETIMEDOUT too (a blocking send waits only "
        "while the send buffer is full: see 70); 0 waits forever.",
    70: "As Windows' AFD does, a nonblocking send is taken whole whenever the send buffer is not "
        "full, even beyond SO_SNDBUF (the buffer is overcommitted until it drains); "
        "WSAEWOULDBLOCK only when it is full. So a send larger than SO_SNDBUF never blocks forever. "
        "A blocking send works the same way and waits only while the buffer is full.",
    74: "The rule for invalid handles is inferred from sock.c's four cases: revents are cleared; if "
        "no entry is a socket -> WSAENOTSOCK with POLLNVAL everywhere; an entry other than "
        "INVALID_SOCKET asking for events outside POLLRDNORM/POLLRDBAND/POLLWRNORM -> WSAEINVAL; "
        "other invalid handles get POLLNVAL and are not counted. A graceful EOF is POLLHUP, not "
        "POLLRDNORM; POLLWRNORM stays after the socket's own SD_SEND. Unconnected TCP sockets report "
        "nothing (not covered by sock.c).",
    75: "SIO_KEEPALIVE_VALS sets SO_KEEPALIVE from onoff and the idle time and probe interval "
        "(ms) of this socket; a time or interval of 0 keeps the current value (uncertain: sock.c "
        "only shows that the call succeeds). Overlapped WSAIoctl is left to the overlapped I/O work "
        "(WSAEOPNOTSUPP for now).",
    72: "The 1.1 blocking hook (WSASetBlockingHook) runs in the blocked thread every 50 ms of "
        "(virtual) time; WSACancelBlockingCall, WSAIsBlocking and the last-error calls are "
        "allowed from it.",
    73: "Winsock 2.2 applications: WSACancelBlockingCall and WSASetBlockingHook fail with "
        "WSAEOPNOTSUPP (they were removed in 2.0).",
}

CONNECT_ERRORS = [
    "WSANOTINITIALISED", "WSAENETDOWN", "WSAEADDRINUSE", "WSAEINTR", "WSAEINPROGRESS", "WSAEALREADY",
    "WSAEADDRNOTAVAIL", "WSAEAFNOSUPPORT", "WSAECONNREFUSED", "WSAEFAULT", "WSAEINVAL", "WSAEISCONN",
    "WSAENETUNREACH", "WSAENOBUFS", "WSAENOTSOCK", "WSAETIMEDOUT", "WSAEWOULDBLOCK", "WSAEACCES",
]

API = """\
## The API in brief

`ustack.winsock.Winsock(host)` (one per host: a `ustack.Host` on a TUN/TAP, or a simulated
host) exposes the Winsock calls as methods with Winsock's arguments and results: integer
handles, `SOCKET_ERROR` / `INVALID_SOCKET`, the code in `WSAGetLastError()` (per thread),
`SOCKADDR_IN` ctypes structures (or their 16 bytes) with an explicit length, option values as
ctypes objects or bytes with `optlen`, `FD_SET` and `TIMEVAL` for `select`. Every constant and
structure is importable from `ustack.winsock` with its Windows value.

Calls: WSAStartup, WSACleanup, WSAGetLastError, WSASetLastError, socket, closesocket, bind,
listen, accept, connect, WSAConnect, send, recv, sendto, recvfrom, shutdown, select, WSAPoll
(`WSAPOLLFD` entries), ioctlsocket (FIONBIO, FIONREAD, SIOCATMARK, SIO_UDP_CONNRESET), WSAIoctl
(the same codes, SIO_KEEPALIVE_VALS and SIO_BASE_HANDLE; others are WSAEOPNOTSUPP),
setsockopt/getsockopt (SO_REUSEADDR, SO_EXCLUSIVEADDRUSE, SO_BROADCAST, SO_LINGER,
SO_DONTLINGER, SO_RCVBUF, SO_SNDBUF, SO_RCVTIMEO, SO_SNDTIMEO, SO_KEEPALIVE, SO_DONTROUTE,
SO_OOBINLINE, SO_DEBUG, SO_ERROR, SO_TYPE, SO_ACCEPTCONN, SO_MAX_MSG_SIZE, SO_CONNECT_TIME,
TCP_NODELAY), getsockname, getpeername, WSAAsyncSelect (with
`Winsock.create_window()` message queues), WSAEventSelect, WSACreateEvent, WSACloseEvent,
WSASetEvent, WSAResetEvent, WSAEnumNetworkEvents, WSAWaitForMultipleEvents, WSAIsBlocking,
WSACancelBlockingCall, WSASetBlockingHook, WSAUnhookBlockingHook (Winsock 1.1), inet_addr,
inet_ntoa, htons, ntohs, htonl, ntohl, inet_pton, InetPtonW, inet_ntop, InetNtopW,
WSAStringToAddressA/W, WSAAddressToStringA/W (`SOCKADDR_IN6`, 28 bytes, for IPv6; section O).

Blocking calls block only the calling thread, through the runtime's `wait` (virtual time in
the Simulator), and honour SO_RCVTIMEO / SO_SNDTIMEO; nonblocking calls never block.
Overlapped I/O, completion ports and the extension functions (section N; WSASocket, WSARecv,
WSARecvFrom, WSASend, WSASendTo, WSAGetOverlappedResult, GetOverlappedResult, CancelIo,
CancelIoEx, SleepEx, CreateIoCompletionPort, GetQueuedCompletionStatus(Ex),
PostQueuedCompletionStatus, SetFileCompletionNotificationModes, CloseHandle, AcceptEx,
GetAcceptExSockaddrs, ConnectEx, DisconnectEx) are described in
[winsock-overlapped.md](winsock-overlapped.md). One
table, `ustack/winsock/errors.py`, turns the stack's reasons into WSA codes.

`ustack.socket.socket(host, family, type)` is the same model with Python's socket API
(addresses as `("198.18.0.1", 80)`, `settimeout`, context manager); failures raise
`WinsockError`, an OSError with `.winerror`, `.wsa_name` and the closest POSIX `.errno`.
"""

DECISIONS = """\
## Decisions where the reference leaves room

- **Destination port 0** (item 33, uncertain): WSAEADDRNOTAVAIL, like the all-zero address.
- **UDP connect to a broadcast address** (item 55): succeeds without SO_BROADCAST and send()
  to it works, as sock.c shows real Windows doing; `Winsock(host, broadcast_connect="document")`
  gives the founding document's WSAEACCES on connect.
- **SYN after RST** (item 25): 2 retries, 1 s apart by default, so a refusal takes about 2 s as
  on Windows' loopback; `Winsock(syn_rst_retries=..., syn_rst_retry_s=...)` sets both on every
  socket it connects.
- **Nonblocking send** (items 43, 70): taken whole while the send buffer is not full, even
  beyond SO_SNDBUF, as Windows' AFD does; FD_WRITE after a WSAEWOULDBLOCK is posted once
  space frees up.
- **Retransmissions exhausted on an established connection** (not in the reference): data
  unacknowledged after the retries ends the connection; recv/send and FD_CLOSE report
  WSAECONNABORTED, Microsoft's code for "a data transmission time-out" (a connect attempt
  that times out is WSAETIMEDOUT).
- **Keepalive failure** (not in the reference): SO_KEEPALIVE probes unanswered end the
  connection with a reason of its own; recv/send report WSAENETRESET ("the connection has
  been broken due to keep-alive activity detecting a failure", Microsoft's recv/send pages),
  FD_CLOSE WSAECONNABORTED (its documented codes are WSAENETDOWN, WSAECONNRESET and
  WSAECONNABORTED, "terminated due to a time-out or other failure"). Probes are sent only
  while no data is outstanding.
- **ICMP errors on UDP** (item 56 and beyond): port/protocol unreachable and parameter problem
  surface as WSAECONNRESET, host/net unreachable as WSAEHOSTUNREACH/WSAENETUNREACH, time
  exceeded as WSAENETRESET (Microsoft's recv page: "the time to live has expired"),
  fragmentation needed as WSAEMSGSIZE.
- **Port exhaustion in connect**: an unbound socket that finds no ephemeral port gets
  WSAENOBUFS (what Windows reports); a bound socket whose 4-tuple is taken gets WSAEADDRINUSE.
- **FD_CLOSE timing**: posted when the peer's FIN arrives, even with data unread (FD_READ for
  that data first), as sock.c test_close_events shows real Windows doing.
- **Buffered data and RST**: bytes received before a peer RST stay readable; the error is
  reported once they are read.
- **WSAENETDOWN**: reported when the host (runtime) is closed; a call blocked at that moment
  fails with WSAENETDOWN.
- **WSAEINTR in Winsock 2.2**: a blocking call fails with WSAEINTR when another thread closes
  its socket (there is no WSACancelBlockingCall in 2.2).
- **Winsock 1.1 blocking hook**: WSASetBlockingHook's function runs in the blocked thread
  every 50 ms of (virtual) time; calls it makes fail with WSAEINPROGRESS except
  WSACancelBlockingCall, WSAIsBlocking and the last-error calls.
- **MSG_PEEK** leaves the bytes (TCP) or the datagram (UDP) queued; a short UDP buffer still
  gives WSAEMSGSIZE. **MSG_OOB**: WSAEOPNOTSUPP (urgent data is not supported).
- **SO_LINGER** (Microsoft's closesocket page): {1, 0} is an abortive close (RST); {1, t} on a
  blocking socket waits up to t s for the queued data to be acknowledged and resets the
  connection if it was not; on a nonblocking socket with data still queued, closesocket
  fails with WSAEWOULDBLOCK and the socket stays open. Otherwise the close is graceful and
  happens in the background.
- **FD_CONNECT without a pending connect**: as sock.c test_connect_events shows, WSAEventSelect
  reports a connect that completed before the registration (TCP or UDP), WSAAsyncSelect does
  not; a socket created by accept never gets one.
- **Last error on success**: socket, bind, connect, send, sendto, recv, recvfrom, shutdown,
  getsockname, setsockopt, getsockopt, WSAIoctl and WSAPoll set it to 0 (sock.c).
- **IPv6** (section O): AF_INET6 sockets start with IPV6_V6ONLY TRUE (Windows' default; the
  option changes only before bind); a dual-mode socket names IPv4 peers ::ffff:a.b.c.d.
  getaddrinfo with AF_UNSPEC returns IPv6 entries (first) only on a host with a global IPv6
  address, as Windows' resolver asks AAAA only then; gethostbyname stays IPv4-only.
- **Windows for WSAAsyncSelect** are message queues (`Winsock.create_window()`), read with
  `GetMessage(timeout_s)` / `PeekMessage()`; posting never blocks.
"""


SOCKC = """\
## Where Wine's sock.c corrects the reference

Wine's dlls/ws2_32/tests/sock.c runs against real Windows; where it and the behaviour reference
(the project's shared winsock-behaviour.md) disagree, sock.c wins and ustack follows it. The
`..._sockc_...` tests re-state those checks (our code, citing the sock.c function).

- **Item 8** (last error): the reference lists which successful calls clear it; sock.c also
  shows socket, recv, recvfrom and WSAIoctl success setting it to 0 (ustack left it on recv).
- **Item 29** (SO_ERROR): not cleared by a new connect, only by a successful connection; a
  refused *blocking* connect leaves SO_ERROR 0 though the socket is in exceptfds
  (test_select). A socket whose connect failed may listen (item 17).
- **Items 40 and 42** (FD_CONNECT, re-registration): FD_CONNECT is never re-posted by a
  WSAAsyncSelect re-registration nor posted for a UDP connect there; WSAEventSelect reports a
  connect that completed before it registered; re-registering with WSAEventSelect re-enables
  nothing, even after a registration with 0 (test_connect_events, test_events).
- **Item 45** (FD_CLOSE): posted when the FIN arrives, with data unread (test_close_events).
- **Item 55** (broadcast): a UDP connect to a broadcast address succeeds without SO_BROADCAST and
  send() on it works (test_broadcast); the reference's default (the founding document's
  WSAEACCES) is now `broadcast_connect="document"`.
- **Item 65** (select count): not (socket, set) pairs when the same FD_SET is passed twice or a
  socket is listed twice: each ready socket is written and counted once per FD_SET object.
- **Item 67** (short optlen): BOOL and 1-byte options accept short lengths (test_set_getsockopt).
- **Item 33** (port 0): UDP sendto and connect to port 0 succeed (test_UDP, test_connect_events).
"""


@dataclass
class TestInfo:
    file: str
    name: str
    item: int
    doc: str
    kernel: bool  # runs against the Linux kernel over TUN (netns)


@dataclass
class Outcome:
    status: str  # passed / failed / skipped / known gap / not run
    detail: str = ""

    def cell(self, kernel: bool) -> str:
        where = " (Linux kernel over TUN, netns)" if kernel else ""
        text = {"passed": "passed", "failed": "**failed**", "skipped": "skipped",
                "known gap": "known gap", "not run": "**not run**"}[self.status] + where
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class Run:
    """What the report says about the run as a whole."""

    timestamp: str
    outcomes: dict[tuple[str, str], Outcome]  # (test file, test function) -> outcome


def _uses_netns(fn: ast.FunctionDef, module_netns: bool) -> bool:
    if module_netns or "netns" in [a.arg for a in fn.args.args]:
        return True
    return any("netns" in ast.unparse(dec) for dec in fn.decorator_list)


def collect(tests_dir: Path = TESTS) -> list[TestInfo]:
    out: list[TestInfo] = []
    for path in sorted(tests_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        module_netns = any(
            isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                 for t in node.targets)
            and "netns" in ast.unparse(node.value)
            for node in tree.body
        )
        kernel_fixtures = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                           and any("fixture" in ast.unparse(d) for d in node.decorator_list)
                           and _uses_netns(node, False)}
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            m = re.match(r"test_item_(\d+)_", node.name)
            if not m:
                continue
            doc = ast.get_docstring(node) or ""
            first = " ".join(doc.split("\n\n")[0].split())
            kernel = _uses_netns(node, module_netns) or bool(
                kernel_fixtures & {a.arg for a in node.args.args})
            out.append(TestInfo(path.name, node.name, int(m.group(1)), first, kernel))
    return out


_RANK = {"failed": 4, "not run": 3, "skipped": 2, "known gap": 1, "passed": 0}


def _first_line(text: str | None) -> str:
    line = (text or "").strip().splitlines()
    return line[0].strip()[:160] if line else ""


def _case_outcome(case: ET.Element) -> Outcome:
    for tag in ("failure", "error"):
        el = case.find(tag)
        if el is not None:
            return Outcome("failed", _first_line(el.get("message") or el.text))
    el = case.find("skipped")
    if el is not None:
        msg = el.get("message") or ""
        if el.get("type") == "pytest.xfail" or msg.startswith("xfail"):
            return Outcome("known gap", _first_line(msg.removeprefix("xfail").strip(" :-")))
        return Outcome("skipped", _first_line(msg.removeprefix("Skipped:").strip()))
    return Outcome("passed")


def read_junit(path: Path) -> Run:
    """The outcome of every tests/winsock test in a pytest JUnit report. Parametrized cases
    of one function are folded into its worst outcome."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    stamp = next((su.get("timestamp", "") for su in suites if su.get("timestamp")), "")
    outcomes: dict[tuple[str, str], Outcome] = {}
    for case in root.iter("testcase"):
        cls = case.get("classname", "")
        if not cls.startswith(CLASS_PREFIX):
            continue
        key = (cls.removeprefix(CLASS_PREFIX).split(".")[0] + ".py", case.get("name", "").split("[")[0])
        got = _case_outcome(case)
        old = outcomes.get(key)
        if old is None or _RANK[got.status] > _RANK[old.status]:
            outcomes[key] = got
    return Run(stamp, outcomes)


def keep_report(src: Path, dest: Path = REPORT) -> None:
    """Copy the tests/winsock test cases of a report (without captured output) to `dest`."""
    root = ET.parse(src).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    out_suite = ET.Element("testsuite", {k: v for k, v in suites[0].attrib.items()
                                         if k in ("name", "timestamp", "hostname")})
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for case in root.iter("testcase"):
        if not case.get("classname", "").startswith(CLASS_PREFIX):
            continue
        attrs = {k: case.get(k, "") for k in ("classname", "name", "time")}
        new = ET.SubElement(out_suite, "testcase", attrs)
        counts["tests"] += 1
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[child.tag]] += 1
                kept = ET.SubElement(new, child.tag, {k: v for k, v in child.attrib.items()
                                                      if k in ("type", "message")})
                if child.tag != "skipped":
                    kept.text = _first_line(child.text)
    out_suite.attrib.update({k: str(v) for k, v in counts.items()})
    ET.indent(out_suite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(ET.tostring(out_suite, encoding="unicode") + "\n")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(tests: list[TestInfo] | None = None, run: Run | None = None) -> str:
    tests = collect() if tests is None else tests
    run = read_junit(REPORT) if run is None else run
    by_item: dict[int, list[TestInfo]] = {}
    for t in tests:
        by_item.setdefault(t.item, []).append(t)

    def outcome(t: TestInfo) -> Outcome:
        return run.outcomes.get((t.file, t.name), Outcome("not run"))

    known = {n for _, items in SECTIONS for n, _ in items}
    counts: dict[str, int] = {}
    for t in tests:
        st = outcome(t).status
        counts[st] = counts.get(st, 0) + 1
    item_state: dict[int, str] = {}
    for n in known:
        sts = {outcome(t).status for t in by_item.get(n, [])}
        item_state[n] = ("no test" if not sts else "failed" if "failed" in sts
                         else "not run" if "not run" in sts else "passed" if "passed" in sts
                         else "skipped")
    lines = [
        "# Winsock fidelity",
        "",
        "<!-- Generated by tools/gen_fidelity.py from the JUnit report of a test run",
        "     (docs/data/winsock-fidelity-junit.xml); do not edit by hand. -->",
        "",
        "Each numbered item of the Winsock behaviour reference, the tests that show ustack doing",
        "it, and what a real run of those tests reported: *passed*, *failed*, *skipped* (with",
        "pytest's reason, e.g. a TUN test run without root), *known gap* (an `xfail(strict=True)`",
        "test waiting for a lower layer, docs/requests-winsock.md), *not run* (missing from the",
        "report). Tests run in the Simulator (virtual time) unless marked as a kernel test. ≠L",
        "marks Windows behaviour that differs from Linux: ustack follows Windows. The source of",
        "each item: *win* seen on real Windows (Wine's conformance checks, dlls/ws2_32/tests/",
        "sock.c), *doc* Microsoft's documentation, *ref* the reference without a source,",
        "*uncertain* neither (the last column says what ustack chose). Tests named `..._sockc_...`",
        "re-state the checks of the sock.c function their docstring names. The last column",
        "records every place where ustack knowingly differs from the reference, and where sock.c",
        "showed the reference wrong.",
        "",
        "To regenerate after changing tests or code: `.venv/bin/python tools/gen_fidelity.py --run`",
        "(runs tests/winsock with `--junitxml`, keeps the report, rewrites this page); from an",
        "existing report, e.g. CI's: `tools/gen_fidelity.py --junit report.xml`.",
        "",
        f"Run of {run.timestamp or 'unknown time'}: {len(tests)} item tests; "
        + ", ".join(f"{k} {counts[k]}" for k in ("passed", "failed", "skipped", "known gap", "not run")
                    if counts.get(k)) + ".",
        f"Items whose tests passed: **{sum(1 for n in known if item_state[n] == 'passed')} of {len(known)}**"
        + "".join(f"; {st}: {', '.join(str(n) for n in sorted(known) if item_state[n] == st)}"
                  for st in ("failed", "not run", "skipped", "no test")
                  if any(item_state[n] == st for n in known)) + ".",
        "",
    ]
    for title, items in SECTIONS:
        lines += [f"## {title}", "", "| item | behaviour (source) | test | status | decision / deviation |",
                  "|---|---|---|---|---|"]
        for n, what in items:
            rows = by_item.get(n, [])
            what_text = f"{what} ({SOURCES.get(n, 'win')})"
            note = _cell(NOTES.get(n, "—"))
            if not rows:
                lines.append(f"| {n} | {_cell(what_text)} | — | **missing** | {note} |")
                continue
            for i, t in enumerate(rows):
                first = i == 0
                item_cell = str(n) if first else ""
                what_cell = _cell(what_text) if first else ""
                test_cell = f"`{t.name}`: {_cell(t.doc)}"
                status = _cell(outcome(t).cell(t.kernel))
                lines.append(f"| {item_cell} | {what_cell} | {test_cell} | {status} | "
                             f"{note if first else ''} |")
        lines.append("")
        if title.startswith("0."):
            lines += ["### The connect page's error list", "", "| code | test | status |", "|---|---|---|"]
            for code in CONNECT_ERRORS:
                pattern = re.compile(rf"test_item_0_connect_error_{code}(_|$)")
                rows = [t for t in by_item.get(0, []) if pattern.match(t.name)]
                if not rows:
                    lines.append(f"| {code} | — | **missing** |")
                for t in rows:
                    lines.append(f"| {code} | `{t.name}` ({t.file}) | {_cell(outcome(t).cell(t.kernel))} |")
            lines.append("")
    stray = sorted({t.item for t in tests} - known)
    if stray:
        lines += ["## Tests naming items outside the reference", ""]
        lines += [f"- item {n}: " + ", ".join(f"`{t.name}`" for t in by_item[n]) for n in stray]
        lines.append("")
    lines.append(API)
    lines.append(DECISIONS)
    lines.append(SOCKC)
    return "\n".join(lines)


def run_tests(report: Path) -> int:
    """pytest on tests/winsock with a JUnit report; its exit status."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS),
           f"--ignore={TESTS / 'test_ws_fidelity_doc.py'}",  # it checks the page being rewritten
           f"--junitxml={report}", "-o", "junit_family=xunit2"]
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", action="store_true", help="run tests/winsock now and use its report")
    src.add_argument("--junit", type=Path, help="a pytest --junitxml report to take the statuses from")
    src.add_argument("--check", action="store_true", help="exit 1 if the doc differs from the kept report's")
    ap.add_argument("--output", type=Path, default=OUT)
    ap.add_argument("--report", type=Path, default=REPORT,
                    help="where the winsock part of the report is kept")
    args = ap.parse_args(argv)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != render(run=read_junit(args.report)):
            print(f"{args.output} is out of date: run python tools/gen_fidelity.py --run", file=sys.stderr)
            return 1
        return 0
    status = 0
    if args.run:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "junit.xml"
            status = run_tests(raw)
            if not raw.exists():
                print("pytest wrote no report", file=sys.stderr)
                return status or 1
            keep_report(raw, args.report)
    else:
        keep_report(args.junit, args.report)
    run = read_junit(args.report)
    args.output.write_text(render(run=run))
    failed = sum(1 for o in run.outcomes.values() if o.status == "failed")
    print(f"wrote {args.output} ({len(run.outcomes)} tests in the report, {failed} failed)")
    return status


if __name__ == "__main__":
    sys.exit(main())
