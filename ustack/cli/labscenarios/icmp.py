"""ICMP scenarios: the kernel pings ustack."""

from __future__ import annotations

import time

from .. import labkernel as K
from ..wscalls import Call
from .context import LabContext, Outcome


def sc_ping(ctx: LabContext) -> Outcome:
    t0 = time.monotonic()
    res = K.ping(K.USTACK, count=3, interval_s=0.2, wait_s=2.0)
    dt = time.monotonic() - t0
    rtt = res.rtt_text()
    call = Call("ping", f"{K.USTACK}, {res.sent} echo requests from the kernel", res.received,
                f"{res.received}/{res.sent} replies", seconds=dt,
                detail=f"rtt min/avg/max {rtt}" if rtt else "")
    # Under injected loss a lost echo is expected; one reply still proves the path.
    need = 3 if ctx.user_faults is None else 1
    return Outcome(res.received >= need, f"{res.received}/3 echo replies", [call], [call],
                   {"received": res.received, "rtt": rtt})


def sc_ping6(ctx: LabContext) -> Outcome:
    """IPv6 both ways: the kernel pings ustack's 2001:2::2, then ustack pings the kernel's
    2001:2::1 (on a TAP after duplicate address detection let ustack use its address, and
    with neighbour discovery resolving each side)."""
    from ustack.wire.ipv6 import ip6_int

    host = ctx.host
    me, kernel = ip6_int(K.USTACK6), ip6_int(K.KERNEL6)
    t0 = time.monotonic()
    usable = host.wait(lambda: host.stack.ipv6.addrs.accepts(me), 5.0)
    res = K.ping6(K.USTACK6, count=3, interval_s=0.2, wait_s=2.0)
    rtt = res.rtt_text()
    inbound = Call("ping6", f"{K.USTACK6}, {res.sent} echo requests from the kernel", res.received,
                   f"{res.received}/{res.sent} replies", seconds=time.monotonic() - t0,
                   detail=f"rtt min/avg/max {rtt}" if rtt else "")
    t1 = time.monotonic()
    seqs = (1, 2, 3)
    for seq in seqs:
        host.call(lambda seq=seq: host.stack.icmp6.ping(kernel, 0x6C6, seq, b"ustack ping6", host.now()))

    def replies() -> int:
        return sum(1 for r in host.stack.icmp6.replies
                   if r.src == kernel and r.ident == 0x6C6 and r.seq in seqs)
    host.wait(lambda: replies() >= len(seqs), 3.0)
    got = host.call(replies)
    outbound = Call("icmp6.ping", f"{K.KERNEL6}, 3 echo requests from ustack", got, f"{got}/3 replies",
                    seconds=time.monotonic() - t1)
    need = 3 if ctx.user_faults is None else 1
    ok = usable and res.received >= need and got >= need
    return Outcome(ok, f"{res.received}/3 and {got}/3 echo replies", [inbound, outbound], [inbound, outbound],
                   {"received": res.received, "sent_replies": got, "rtt": rtt, "address_usable": usable})
