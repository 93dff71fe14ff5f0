"""Protocols above UDP that run inside a stack or over it (docs/dhcp-dns.md).

`dhcp`: the DHCPv4 client (a sans-I/O state machine, and `DhcpService` polled by a Stack through
`Stack.attach`). `resolver`: the DNS stub resolver over the stack's own UDP and TCP, blocking
only through `host.call` / `host.wait`. Both import `ustack.core` and `ustack.wire` only.
"""
