"""PcapWriter middleware (records frames to a classic pcap file, or to pcapng with fault
comments) and readers for tools.

Timestamps are the `now` values passed in, never the wall clock, so a simulator run with a
virtual clock and a fixed seed produces a byte-identical file.

With `comments=True` the file is pcapng: interface 0 carries the frames, interface 1
("ustack-faults", no payload) carries one record per fault event, whose comment is the event's
text (`fault drop tx (drop tcp data dir=out nth=50): IP ...`). tshark shows them as
`frame.comment`; `read_fault_comments` reads them back.

With `offload=True` (Host.open's offload "tso") the writer lets the device's offloads through
and records what the device was given and delivered, like tcpdump on an interface with TSO/GRO:
TCP super-segments of up to 64 KB whose checksums are partial (NEEDS_CSUM). The file is then
pcapng; its section header says so in a comment (`OFFLOAD_NOTE`), and each super-segment's
record has a comment naming its segments (`TSO super-segment: 45 x 1448 bytes, ...`).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import dpkt

from ustack.wire.vnet import GsoPacket

from .base import Device, Middleware

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6 by version nibble; decoded by tshark and tcpdump alike
DIRECTIONS = ("both", "rx", "tx")

# Record header in the writer's (native) byte order, as dpkt.pcap.Writer writes the file header.
_REC = struct.Struct("=IIII")
# pcapng Enhanced Packet Block without options (little-endian, as the section header says):
# type, total length, interface, timestamp high/low (microseconds), captured and original length.
_EPB = struct.Struct("<IIIIIII")
_U32 = struct.Struct("<I")
LINKTYPE_USER0 = 147  # the fault-event interface: records without payload, only comments
FAULT_INTERFACE = "ustack-faults"
FAULT_PREFIX = "fault "
OFFLOAD_NOTE = ("ustack offload tso: TCP super-segments (up to 64 KB) appear as the device was given "
                "them (TSO) or delivered them (GRO), as tcpdump shows them on an offloading interface; "
                "their TCP checksums are partial (NEEDS_CSUM) and completed per segment by the kernel")


def linktype_for(medium: str) -> int:
    return LINKTYPE_ETHERNET if medium == "ethernet" else LINKTYPE_RAW


class PcapWriter(Middleware):
    """Records frames passing through to a pcap file; rx, tx or both directions.

    `path_or_file` is a path (opened and owned: closed by `close()`) or a binary file object
    (left open). `ts_offset` is added to every `now` (e.g. a wall-clock origin for a sim run).
    """

    def __init__(self, inner: Device, path_or_file: str | Path | BinaryIO, direction: str = "both",
                 snaplen: int = 65535, *, ts_offset: float = 0.0, comments: bool = False,
                 offload: bool = False) -> None:
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
        self.offload_through = offload  # pass the device's offloads through (module docstring)
        self.comments = comments = comments or offload
        if comments:
            self._f.write(_pcapng_header(self.linktype, snaplen, OFFLOAD_NOTE if offload else None))
        else:
            dpkt.pcap.Writer(self._f, snaplen=snaplen, linktype=self.linktype)  # writes the file header
        self.events_written = 0
        self._rx = direction in ("both", "rx")
        self._tx = direction in ("both", "tx")
        self.frames_written = 0
        self._closed = False

    @property
    def offload(self) -> bool:
        """Whether the Host may read trusted batches through this writer: only when asked to
        pass offloads through (the frames are then recorded as the device moved them)."""
        return self.offload_through and bool(getattr(self.inner, "offload", False))

    def _write(self, frame: bytes | memoryview, now: float, comment: str | None = None) -> None:
        if self._closed:
            return
        # Integer microseconds via round() so 0.9999999 s never yields usec == 1000000.
        us = round((now + self.ts_offset) * 1_000_000)
        data = frame[: self.snaplen]
        if comment is not None:
            epb = dpkt.pcapng.EnhancedPacketBlockLE(
                iface_id=0, ts_high=(us >> 32) & 0xFFFFFFFF, ts_low=us & 0xFFFFFFFF, pkt_data=bytes(data),
                opts=[_comment(comment), dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_ENDOFOPT)])
            epb.pkt_len = len(frame)
            self._f.write(bytes(epb))
        elif self.comments:
            n = len(data)
            pad = -n % 4
            total = _EPB.size + n + pad + 4
            self._f.write(_EPB.pack(6, total, 0, (us >> 32) & 0xFFFFFFFF, us & 0xFFFFFFFF, n, len(frame)))
            self._f.write(bytes(data) + b"\0" * pad + _U32.pack(total))
        else:
            sec, usec = divmod(us, 1_000_000)
            self._f.write(_REC.pack(sec & 0xFFFFFFFF, usec, len(data), len(frame)))
            self._f.write(data)
        self.frames_written += 1

    def note_fault(self, event: Any) -> None:
        """A fault event (drivers.FaultEvent) as a comment record on the fault interface."""
        if self._closed or not self.comments:
            return
        us = round((event.t + self.ts_offset) * 1_000_000)
        epb = dpkt.pcapng.EnhancedPacketBlockLE(
            iface_id=1, ts_high=(us >> 32) & 0xFFFFFFFF, ts_low=us & 0xFFFFFFFF, pkt_data=b"",
            opts=[_comment(event.text()), dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_ENDOFOPT)])
        self._f.write(bytes(epb))
        self.events_written += 1

    def send(self, frame: bytes | GsoPacket, now: float) -> None:
        if self._tx:
            if type(frame) is GsoPacket:
                self._write(frame.packet(), now, f"TSO super-segment: {frame.segments} x {frame.gso_size} "
                                                 "bytes, TCP checksum partial (the kernel segments it)")
            else:
                self._write(frame, now)
        self.inner.send(frame, now)

    def recv_batch_trusted(self, now: float, limit: int = 64) -> list[tuple[Any, int]]:
        """The inner device's (frame, rx) pairs (only with offload pass-through: `offload`),
        each recorded as delivered: a GRO super-segment (rx = its gso_size) with a comment."""
        pairs = self.inner.recv_batch_trusted(now, limit)
        if self._rx:
            for frame, rx in pairs:
                if rx > 1:
                    self._write(frame, now, f"GRO super-segment: segments of {rx} bytes, TCP checksum "
                                            "partial (the kernel's own, not verified)")
                else:
                    self._write(frame, now)
        return pairs

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


def _comment(text: str) -> Any:
    return dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_COMMENT, text=text)


def _pcapng_header(linktype: int, snaplen: int, note: str | None = None) -> bytes:
    """Section header (with `note` as its comment) and the two interfaces: the frames (0) and
    the fault events (1)."""
    ng = dpkt.pcapng
    end = ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT)
    app = ng.PcapngOptionLE(code=ng.PCAPNG_OPT_SHB_USERAPPL, data=b"ustack")
    shb = ng.SectionHeaderBlockLE(opts=([_comment(note)] if note else []) + [app, end])
    frames = ng.InterfaceDescriptionBlockLE(
        linktype=linktype, snaplen=snaplen,
        opts=[ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_NAME, data=b"ustack"), end])
    faults = ng.InterfaceDescriptionBlockLE(
        linktype=LINKTYPE_USER0, snaplen=snaplen,
        opts=[ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_NAME, data=FAULT_INTERFACE.encode()),
              ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_DESCRIPTION,
                                data=b"ustack fault events: one comment per record, no payload"), end])
    return bytes(shb) + bytes(frames) + bytes(faults)


def read_fault_comments(path_or_file: str | Path | BinaryIO) -> list[tuple[float, str]]:
    """(timestamp, comment) of every fault-event record of a pcapng file ([] for a classic pcap)."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "rb") as f:
            data = f.read()
    else:
        data = path_or_file.read()
    if data[:4] != b"\x0a\x0d\x0d\x0a" or data[8:12] != b"\x4d\x3c\x2b\x1a":
        return []  # classic pcap, or a big-endian section (never written here)
    ng = dpkt.pcapng
    out = []
    iface = -1
    fault_iface = None
    pos = 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        if blen < 12 or pos + blen > len(data):
            break
        block = data[pos:pos + blen]
        if btype == ng.PCAPNG_BT_IDB:
            iface += 1
            idb = ng.InterfaceDescriptionBlockLE(block)
            for opt in idb.opts:
                if opt.code == ng.PCAPNG_OPT_IF_NAME and opt.data.rstrip(b"\0") == FAULT_INTERFACE.encode():
                    fault_iface = iface
        elif btype == ng.PCAPNG_BT_EPB:
            epb = ng.EnhancedPacketBlockLE(block)
            if epb.iface_id == fault_iface:
                ts = ((epb.ts_high << 32) | epb.ts_low) / 1e6
                for opt in epb.opts:
                    if opt.code == ng.PCAPNG_OPT_COMMENT:
                        out.append((ts, opt.text))
        pos += blen
    return out


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
        if not frame:  # a fault-event record (comment only, see read_fault_comments)
            continue
        yield float(ts), bytes(frame), linktype
        n += 1
