"""ustack.drill: packetdrill scripts run against ustack in the Simulator (docs/drill.md)."""

from .model import DrillError, Mismatch, Script, ScriptError, Unsupported
from .parser import parse
from .runner import Outcome, run_script

__all__ = ["DrillError", "Mismatch", "Outcome", "Script", "ScriptError", "Unsupported", "parse",
           "run_script"]
