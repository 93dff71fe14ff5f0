"""Link devices and middleware (installed as `ustack.drivers`).

Devices: TunDevice, TapDevice (Linux), MemLink/MemSegment ports (in memory).
Middleware (wrap a Device, are a Device): PcapWriter, FaultInjector, Tracer.
Fault scenarios (TOML files, see docs/faults.md): Scenario, load_scenario, LossModel, parse_rule.
"""

from .base import Device, DeviceCounters, Middleware, earliest, max_frame_len
from .engine import FaultEngine, FaultEvent
from .faults import SPEC_HELP, FaultConfig, FaultInjector
from .filters import FilterError, Rule, parse_rule
from .lossmodel import LossModel, make_model
from .memlink import MemLink, MemPort, MemSegment
from .pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapError, PcapTruncated, PcapWriter, read_pcap
from .scenario import Scenario, ScenarioError, load_scenario, parse_scenario, scenario_from
from .trace import Tracer, format_frame
from .tun import TapDevice, TunDevice, interface_exists, kernel_side_down, kernel_side_up, set_sysctl

__all__ = [
    "Device", "DeviceCounters", "FaultConfig", "FaultEngine", "FaultEvent", "FaultInjector", "FilterError",
    "LINKTYPE_ETHERNET", "LINKTYPE_RAW", "LossModel", "MemLink", "MemPort", "MemSegment", "Middleware",
    "PcapError", "PcapTruncated", "PcapWriter", "Rule", "SPEC_HELP", "Scenario", "ScenarioError",
    "TapDevice", "Tracer", "TunDevice",
    "earliest", "format_frame", "interface_exists", "kernel_side_down", "kernel_side_up", "load_scenario",
    "make_model", "max_frame_len", "parse_rule", "parse_scenario", "read_pcap", "scenario_from",
    "set_sysctl",
]
