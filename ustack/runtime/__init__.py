"""ustack.runtime: drive a Stack in real time (Host: a network thread on a TUN/TAP) or in
virtual time (Simulator: several hosts on in-memory links, deterministic for a seed).

Both give application code the same interface (`ustack.runtime.base.Runtime`): `stack`,
`call`, `locked`, `wait`, `now`, `sleep`, `spawn`, `close`.
"""

from .base import Runtime, RuntimeClosed, TaskHandle
from .clock import VirtualClock
from .host import Host, ThreadTask
from .simulator import (
    SimHost,
    SimulationClosed,
    SimulationDeadlock,
    SimulationError,
    SimulationTimeout,
    Simulator,
    Task,
)

__all__ = [
    "Host", "Runtime", "RuntimeClosed", "SimHost", "SimulationClosed", "SimulationDeadlock",
    "SimulationError", "SimulationTimeout", "Simulator", "Task", "TaskHandle", "ThreadTask",
    "VirtualClock",
]
