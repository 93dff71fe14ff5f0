"""Invariants every robustness and property test checks on the stacks it drove (house rule: a
swallowed exception fails the test). tests/conftest.py also watches every test in this process;
these explicit checks let hypothesis shrink to the input that broke something, and say which stack."""

from __future__ import annotations

from typing import Any

SWALLOWED = ("stack.internal_error", "tcp.internal_error", "runtime.errors")


def assert_no_internal_error(*stacks: Any) -> None:
    """No bug was swallowed by any of `stacks` (Stack or anything with `counters`)."""
    for st in stacks:
        bad = {name: st.counters.get(name) for name in SWALLOWED if st.counters.get(name)}
        assert not bad, (bad, list(getattr(st, "internal_errors", []))[:1])
