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


class PcapError(ValueError):
    """The file is not a capture that can be read (empty, not pcap/pcapng, cut in its header)."""


class PcapTruncated(PcapError):
    """The capture ends inside a record (a capture killed while writing); raised after every
    complete record has been yielded. `records` is how many were."""

    def __init__(self, message: str, records: int) -> None:
        super().__init__(message)
        self.records = records


# Classic pcap magics (as read little-endian) -> (record header byte order, timestamp divisor)
_PCAP_MAGIC = {0xA1B2C3D4: ("<", 1e6), 0xA1B23C4D: ("<", 1e9), 0xD4C3B2A1: (">", 1e6), 0x4D3CB2A1: (">", 1e9)}
_FILE_HDR_LEN = 24
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def read_pcap(path_or_file: str | Path | BinaryIO) -> Iterator[tuple[float, bytes, int]]:
    """Yield (timestamp, frame bytes, linktype) for each record of a pcap or pcapng file.

    PcapError (a ValueError) for a file that is not a capture; PcapTruncated after the last
    complete record when the file ends inside one."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "rb") as f:
            yield from _read(f)
    else:
        yield from _read(path_or_file)


def _read(f: BinaryIO) -> Iterator[tuple[float, bytes, int]]:
    data = f.read()
    if not data:
        raise PcapError("empty file (0 bytes): the capture wrote nothing")
    if data[:4] == _PCAPNG_MAGIC:
        yield from _read_pcapng(data)
        return
    if len(data) < 4 or int.from_bytes(data[:4], "little") not in _PCAP_MAGIC:
        raise PcapError("not a pcap or pcapng file (unknown magic number)")
    order, divisor = _PCAP_MAGIC[int.from_bytes(data[:4], "little")]
    if len(data) < _FILE_HDR_LEN:
        raise PcapError(f"cut off inside the pcap file header ({len(data)} of {_FILE_HDR_LEN} bytes)")
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0xFFFF  # high bits: FCS information
    rec = struct.Struct(order + "IIII")
    off, n = _FILE_HDR_LEN, 0
    while off < len(data):
        if off + rec.size > len(data):
            raise PcapTruncated(f"cut off inside a record header after {n} complete records", n)
        sec, frac, caplen, _origlen = rec.unpack_from(data, off)
        off += rec.size
        if off + caplen > len(data):
            raise PcapTruncated(f"cut off inside record {n + 1} ({len(data) - off} of {caplen} bytes) "
                                f"after {n} complete records", n)
        yield sec + frac / divisor, data[off:off + caplen], linktype
        off += caplen
        n += 1


def _read_pcapng(data: bytes) -> Iterator[tuple[float, bytes, int]]:
    try:
        reader = dpkt.pcapng.Reader(io.BytesIO(data))
    except (ValueError, dpkt.UnpackError) as e:
        raise PcapError(f"not a readable pcapng file ({e})") from None
    linktype = reader.datalink()
    n = 0
    records = iter(reader)
    while True:
        try:
            ts, frame = next(records)
        except StopIteration:
            return
        except (ValueError, dpkt.UnpackError) as e:
            raise PcapTruncated(f"pcapng cut off or damaged after {n} complete records ({e})", n) from None
        yield float(ts), bytes(frame), linktype
        n += 1
