"""Link devices and middleware (installed as `ustack.drivers`).

Devices: TunDevice, TapDevice (Linux), MemLink/MemSegment ports (in memory).
Middleware (wrap a Device, are a Device): PcapWriter, FaultInjector, Tracer.
"""

from .base import Device, DeviceCounters, Middleware, earliest, max_frame_len
from .faults import SPEC_HELP, FaultConfig, FaultInjector
from .memlink import MemLink, MemPort, MemSegment
from .pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapError, PcapTruncated, PcapWriter, read_pcap
from .trace import Tracer, format_frame
from .tun import TapDevice, TunDevice, interface_exists, kernel_side_down, kernel_side_up, set_sysctl

__all__ = [
    "Device", "DeviceCounters", "FaultConfig", "FaultInjector", "LINKTYPE_ETHERNET", "LINKTYPE_RAW",
    "MemLink", "MemPort", "MemSegment", "Middleware", "PcapWriter", "SPEC_HELP", "TapDevice",
    "Tracer", "TunDevice", "earliest", "format_frame", "interface_exists", "kernel_side_down",
    "kernel_side_up", "max_frame_len", "PcapError", "PcapTruncated", "read_pcap", "set_sysctl",
]
