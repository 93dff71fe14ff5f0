"""Bulk transfer both ways under loss: ustack uploads to the kernel's sink and downloads from
its source, SHA-256 checked, retransmissions counted on each side."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any

from .. import labkernel as K
from .. import netns
from ..wscalls import Call
from .context import LabContext, Outcome

CHUNK = 64 * 1024  # bytes per send call of the upload


def _with_transfer_faults(ctx: LabContext) -> tuple[Any, Any]:
    """Turn on the transfer's loss (unless the whole tour runs under the user's faults)."""
    inj = ctx.injector()
    if inj is None or ctx.user_faults is not None:
        return inj, None
    old = inj.config
    new = replace(old, loss=ctx.transfer_faults.loss)
    ctx.host.call(inj.set_config, new)
    return inj, old


def _restore_faults(ctx: LabContext, inj: Any, old: Any) -> None:
    if inj is not None and old is not None:
        ctx.host.call(inj.set_config, old)


def _tcp_retransmits(ctx: LabContext) -> int:
    """Segments ustack's TCP has retransmitted so far (`tcp.retransmitted_segments`, counted
    like the kernel's RetransSegs, so the upload and download figures compare)."""
    snap = ctx.host.call(ctx.host.stack.counters.snapshot)
    return int(snap.get("tcp.retransmitted_segments", 0))


def sc_transfer(ctx: LabContext) -> Outcome:
    ctx.need_tcp()
    assert ctx.kernel is not None
    n = ctx.transfer_bytes
    expected_sha = K.pattern_sha256(n)
    from ..services import http_body_bytes

    inj, old = _with_transfer_faults(ctx)
    drops0 = ctx.frames_dropped()
    r = ctx.rec()
    info: dict[str, Any] = {"bytes": n}
    try:
        # upload: ustack -> kernel sink
        rt0 = _tcp_retransmits(ctx)
        s, _ = r.socket()
        c = r.connect(s, K.KERNEL, K.SINK_PORT)
        if c.failed:
            return Outcome(False, f"upload connect failed: {c.error_name}", r.calls, [c])
        t0 = time.monotonic()
        sent = 0
        block = http_body_bytes(0, CHUNK)
        while sent < n:
            if sent % (16 * CHUNK) == 0:
                ctx.step("upload", sent, n)
            k = min(CHUNK, n - sent)
            chunk = block[:k] if sent % 256 == 0 else http_body_bytes(sent, k)
            rv = ctx.ws.send(s, chunk, k, 0)
            if rv == -1:
                break
            sent += rv
        up_call = Call("send", f"{r.sname(s)}, <{n} bytes in {CHUNK // 1024} KB calls>", sent, str(sent),
                       seconds=time.monotonic() - t0)
        if sent < n:
            err = ctx.ws.WSAGetLastError()
            from ustack.winsock import wsa_name

            up_call.error, up_call.error_name = err, wsa_name(err)
        r.calls.append(up_call)
        r.shutdown(s, "SD_SEND")
        try:
            res = ctx.kernel.sink_results.get(timeout=60)
        except Exception:  # noqa: BLE001
            res = None
        up_s = time.monotonic() - t0
        r.closesocket(s)
        up_rt = _tcp_retransmits(ctx) - rt0
        up_ok = res is not None and res.nbytes == n and res.sha256 == expected_sha
        info["upload"] = {"seconds": round(up_s, 3), "mbps": round(n * 8 / up_s / 1e6, 1),
                          "ustack_retransmits": up_rt, "kernel_got": res.nbytes if res else None,
                          "sha256_ok": bool(res and res.sha256 == expected_sha)}
        # download: kernel source -> ustack
        k_rt0 = netns.snmp_counter("Tcp", "RetransSegs") or 0
        s2, _ = r.socket()
        c2 = r.connect(s2, K.KERNEL, K.SOURCE_PORT)
        if c2.failed:
            return Outcome(False, f"download connect failed: {c2.error_name}", r.calls, [c, c2], info)
        t1 = time.monotonic()
        h = hashlib.sha256()
        got = 0
        deadline = t1 + 120
        while time.monotonic() < deadline:
            data, _ = r.recv(s2, 1 << 18, quiet=True)
            if not data:
                break
            h.update(data)
            got += len(data)
            ctx.step("download", got, n)
        down_s = time.monotonic() - t1
        down_call = Call("recv", f"{r.sname(s2)}, <until 0>", got, f"{got} bytes total", seconds=down_s)
        r.calls.append(down_call)
        r.closesocket(s2)
        k_rt = (netns.snmp_counter("Tcp", "RetransSegs") or 0) - k_rt0
        down_ok = got == n and h.hexdigest() == expected_sha
        info["download"] = {"seconds": round(down_s, 3), "mbps": round(n * 8 / down_s / 1e6, 1),
                            "kernel_retransmits": k_rt, "sha256_ok": h.hexdigest() == expected_sha}
    finally:
        _restore_faults(ctx, inj, old)
    info["frames_dropped_by_faults"] = ctx.frames_dropped() - drops0
    link = ctx.user_faults.link if ctx.user_faults else ctx.transfer_faults
    info["loss"] = link.loss_process().loss_rate()
    u, d = info["upload"], info["download"]
    got_text = (f"{n / 1e6:g} MB up {u['mbps']} Mbit/s ({u['ustack_retransmits']} retransmitted "
                f"segs), down {d['mbps']} Mbit/s ({d['kernel_retransmits']} kernel retransmitted segs), "
                f"{info['frames_dropped_by_faults']} frames dropped at {info['loss']:.0%} loss, sha256 "
                f"{'ok' if up_ok and down_ok else 'MISMATCH'}")
    return Outcome(up_ok and down_ok, got_text, r.calls, [c, up_call, c2, down_call], info)
