"""PcapWriter middleware (records frames to a classic pcap file) and a reader for tools.

Timestamps are the `now` values passed in, never the wall clock, so a simulator run with a
virtual clock and a fixed seed produces a byte-identical file.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import dpkt

from .base import Device, Middleware

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6 by version nibble; decoded by tshark and tcpdump alike
DIRECTIONS = ("both", "rx", "tx")

# Record header in the writer's (native) byte order, as dpkt.pcap.Writer writes the file header.
_REC = struct.Struct("=IIII")


def linktype_for(medium: str) -> int:
    return LINKTYPE_ETHERNET if medium == "ethernet" else LINKTYPE_RAW


class PcapWriter(Middleware):
    """Records frames passing through to a pcap file; rx, tx or both directions.

    `path_or_file` is a path (opened and owned: closed by `close()`) or a binary file object
    (left open). `ts_offset` is added to every `now` (e.g. a wall-clock origin for a sim run).
    """

    def __init__(self, inner: Device, path_or_file: str | Path | BinaryIO, direction: str = "both",
                 snaplen: int = 65535, *, ts_offset: float = 0.0) -> None:
        super().__init__(inner)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        self.direction = direction
        self.snaplen = snaplen
        self.ts_offset = ts_offset
        self.linktype = linktype_for(inner.medium)
        if isinstance(path_or_file, (str, Path)):
            self._f: BinaryIO = open(path_or_file, "wb")  # owned: closed by close()
            self._owned = True
        else:
            self._f = path_or_file
            self._owned = False
        dpkt.pcap.Writer(self._f, snaplen=snaplen, linktype=self.linktype)  # writes the file header
        self._rx = direction in ("both", "rx")
        self._tx = direction in ("both", "tx")
        self.frames_written = 0
        self._closed = False

    def _write(self, frame: bytes, now: float) -> None:
        if self._closed:
            return
        # Integer microseconds via round() so 0.9999999 s never yields usec == 1000000.
        sec, usec = divmod(round((now + self.ts_offset) * 1_000_000), 1_000_000)
        data = frame[: self.snaplen]
        self._f.write(_REC.pack(sec & 0xFFFFFFFF, usec, len(data), len(frame)))
        self._f.write(data)
        self.frames_written += 1

    def send(self, frame: bytes, now: float) -> None:
        if self._tx:
            self._write(frame, now)
        self.inner.send(frame, now)

    def recv(self, now: float) -> bytes | None:
        frame = self.inner.recv(now)
        if frame is not None and self._rx:
            self._write(frame, now)
        return frame

    def recv_batch(self, now: float, limit: int = 64) -> list[bytes]:
        frames = self.inner.recv_batch(now, limit)
        if self._rx:
            for frame in frames:
                self._write(frame, now)
        return frames

    def flush(self) -> None:
        if not self._closed:
            self._f.flush()

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True
            if self._owned:
                self._f.close()
        self.inner.close()


def read_pcap(path_or_file: str | Path | BinaryIO) -> Iterator[tuple[float, bytes, int]]:
    """Yield (timestamp, frame bytes, linktype) for each record of a pcap or pcapng file."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "rb") as f:
            yield from _read(f)
    else:
        yield from _read(path_or_file)


def _read(f: BinaryIO) -> Iterator[tuple[float, bytes, int]]:
    head = f.read(4)
    rest = f.read()
    buf = io.BytesIO(head + rest)
    if head == b"\x0a\x0d\x0d\x0a":  # pcapng section header block
        reader = dpkt.pcapng.Reader(buf)
    else:
        reader = dpkt.pcap.Reader(buf)
    linktype = reader.datalink()
    for ts, data in reader:
        yield float(ts), bytes(data), linktype
