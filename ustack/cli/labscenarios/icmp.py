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
