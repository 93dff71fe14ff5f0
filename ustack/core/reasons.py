"""Why something failed, in the stack's own words. winsock/errors.py maps these to WSA codes."""

from __future__ import annotations

from enum import Enum


class Reason(Enum):
    REFUSED = "connection refused"  # RST answered our SYN
    RESET = "connection reset"  # RST on a synchronized connection
    ABORTED = "connection aborted"  # local abort, or data to a peer that had fully closed
    TIMED_OUT = "timed out"  # SYN or data retransmissions (or zero-window probes) exhausted
    NET_UNREACH = "network unreachable"  # no route, or ICMP net unreachable
    HOST_UNREACH = "host unreachable"  # ARP failed, or ICMP host unreachable
    PORT_UNREACH = "port unreachable"  # ICMP port unreachable (UDP)
    PROTO_UNREACH = "protocol unreachable"
    FRAG_NEEDED = "fragmentation needed"  # DF set and the path MTU is smaller
    ADDR_IN_USE = "address in use"
    ADDR_NOT_AVAIL = "address not available"
    MSG_SIZE = "message too long"
    NO_BUFS = "no buffer space"
    ACCESS = "permission denied"  # broadcast without the broadcast option
    SHUTDOWN = "socket shut down"
    NOT_CONNECTED = "not connected"
    IS_CONNECTED = "already connected"
    ALREADY = "operation already in progress"
    INVALID = "invalid argument"
    WOULD_BLOCK = "would block"
    OP_NOT_SUPP = "operation not supported"
    KEEPALIVE_FAILED = "keepalive failed"  # an idle connection's keepalive probes went unanswered
    # Received ICMP errors that are not "unreachable" (transports may ignore them: Windows UDP
    # reports TTL expiry only with SIO_UDP_NETRESET, which is off by default)
    TTL_EXPIRED = "time to live exceeded in transit"  # ICMP time exceeded
    PARAM_PROBLEM = "parameter problem"  # ICMP parameter problem
