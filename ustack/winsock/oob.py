"""Out-of-band data as Windows reads it, on top of TCP's urgent pointer (RFC 6093).

The stack keeps every byte in the stream and records where the peer's urgent pointer points
(`TcpSocket.urgent_mark`). Windows takes one byte of urgent data: the byte just before the
urgent pointer (RFC 6093's reading, the one BSD, Linux and Windows share). Without
SO_OOBINLINE that byte leaves the normal stream: a normal receive stops in front of it and
skips it, `recv(MSG_OOB)` returns it (once), select reports it in exceptfds, WSAPoll as
POLLRDBAND, the event model as FD_OOB, and SIOCATMARK is FALSE until it has been read. With
SO_OOBINLINE it is ordinary data (sock.c test_WSAPoll: POLLRDNORM, a normal recv gets it).
A newer urgent byte replaces an older one not yet read, as in BSD.

Per socket, `WSocket.oob_done` is the stream index of the urgent byte already consumed (read
with MSG_OOB or skipped by a normal read) and `WSocket.oob_byte` a skipped byte that
MSG_OOB may still return. Everything runs under the host lock.
"""

from __future__ import annotations

from .wsocket import WSocket


def _mark(ws: WSocket) -> tuple[int, int, int] | None:
    """(urgent, unread, received) stream indexes when the peer sent urgent data and the socket
    reads it out of line."""
    if not ws.is_tcp or ws.opts.oobinline:
        return None
    return getattr(ws.sock, "urgent_mark", None)


def in_stream_offset(ws: WSocket) -> int | None:
    """Offset from the read position of the out-of-line urgent byte while it is still in the
    stream (arrived, not yet passed by a normal read); None otherwise."""
    mark = _mark(ws)
    if mark is None:
        return None
    urgent, unread, received = mark
    return urgent - unread if unread <= urgent < received else None


def pending(ws: WSocket) -> bool:
    """Urgent data waits for recv(MSG_OOB) (select's exceptfds, POLLRDBAND, FD_OOB, SIOCATMARK)."""
    if ws.oob_byte is not None:
        return True
    mark = _mark(ws)
    return mark is not None and in_stream_offset(ws) is not None and mark[0] != ws.oob_done


def normal_bytes(ws: WSocket) -> int:
    """Queued bytes a normal receive can return (the out-of-line urgent byte excluded)."""
    n = ws.sock.readable_bytes
    return n - 1 if in_stream_offset(ws) is not None else n


def read_normal(ws: WSocket, n: int, peek: bool) -> bytes:
    """Up to n bytes of normal data, stopping in front of the urgent byte (the data before the
    mark comes in one read, as in BSD); a read at the mark takes the urgent byte out of the
    stream first, keeping it for recv(MSG_OOB) if that has not returned it yet."""
    s = ws.sock
    off = in_stream_offset(ws)
    if off == 0:
        if peek:
            return s.peek(n + 1)[1:]
        urgent = _mark(ws)[0]  # type: ignore[index] - off is not None, so the mark exists
        byte = s.recv(1)
        if urgent != ws.oob_done:
            ws.oob_byte, ws.oob_done = byte, urgent
        off = in_stream_offset(ws)
    if off is not None:
        n = min(n, off)
    return s.peek(n) if peek else s.recv(n)


def read_oob(ws: WSocket, peek: bool) -> bytes | None:
    """recv(MSG_OOB): the urgent byte, once; None when none is waiting."""
    if ws.oob_byte is not None:
        data = ws.oob_byte
        if not peek:
            ws.oob_byte = None
        return data
    if not pending(ws):
        return None
    off = in_stream_offset(ws)
    data = ws.sock.peek(off + 1)[off:]  # type: ignore[operator]
    if not peek:
        ws.oob_done = _mark(ws)[0]  # type: ignore[index]
    return data


def at_mark(ws: WSocket) -> bool:
    """SIOCATMARK: TRUE when no urgent data waits to be read (Microsoft, ioctlsocket); with
    SO_OOBINLINE, FALSE while the urgent byte is still ahead in the stream."""
    if not ws.is_tcp:
        return True
    if not ws.opts.oobinline:
        return not pending(ws)
    mark = getattr(ws.sock, "urgent_mark", None)
    return mark is None or not (mark[1] <= mark[0] < mark[2])
