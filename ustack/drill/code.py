"""`%{ python }%` blocks: run at their event time over a tcp_info snapshot of the connection
under test (ustack.tcp.info), as packetdrill runs them over getsockopt(TCP_INFO).

A block naming a tcpi_* field ustack does not provide is a SKIP naming the field. A block is
bounded: it may execute at most MAX_LINES lines (a loop in it cannot hang the run).
"""

from __future__ import annotations

import sys
from typing import Any

from ustack.tcp.info import (
    CA_STATES,
    TCP_INFO_FIELDS,
    TCPI_OPT_SACK,
    TCPI_OPT_TIMESTAMPS,
    TCPI_OPT_WSCALE,
    tcp_info,
)

from .model import Mismatch, ScriptError, Unsupported

MAX_LINES = 100_000
_SAFE_BUILTINS = {name: getattr(__builtins__, name, None) if not isinstance(__builtins__, dict)
                  else __builtins__.get(name)
                  for name in ("abs", "all", "any", "bool", "int", "float", "len", "max", "min", "range",
                               "round", "str", "sum", "print", "AssertionError", "list", "tuple", "dict",
                               "set", "sorted", "hex", "isinstance")}


class _Budget(Exception):
    pass


def _names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def compile_block(text: str, line: int) -> tuple[Any, str]:
    """The block compiled, and its source; ScriptError for a syntax error, Unsupported naming a tcpi_* field
    ustack does not provide."""
    code = None
    error = ""
    source = ""
    for source in _sources(text):
        try:
            code = compile(source, f"<%{{ }}% at line {line}>", "exec")
            break
        except SyntaxError as e:
            error = e.msg or "syntax error"
    if code is None:
        raise ScriptError(f"python block: {error}", line)
    missing = sorted(n for n in _names(code) if n.startswith("tcpi_") and n not in TCP_INFO_FIELDS)
    if missing:
        raise Unsupported(f"tcp_info field {missing[0]} (not provided by ustack)", line)
    return code, source


def run_code(text: str, run: Any, line: int) -> None:
    code, source = compile_block(text, line)
    wanted = sorted(n for n in _names(code) if n.startswith("tcpi_"))
    conn = run.sut_connection()
    if wanted and conn is None:
        raise Mismatch("python block reads tcp_info but there is no connection under test", line)
    info: dict[str, Any] = tcp_info(conn, run.now) if conn is not None else {}
    env: dict[str, Any] = {"__builtins__": _SAFE_BUILTINS, **CA_STATES, **info,
                           "TCPI_OPT_TIMESTAMPS": TCPI_OPT_TIMESTAMPS, "TCPI_OPT_SACK": TCPI_OPT_SACK,
                           "TCPI_OPT_WSCALE": TCPI_OPT_WSCALE}
    budget = [MAX_LINES]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            budget[0] -= 1
            if budget[0] < 0:
                raise _Budget
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        exec(code, env)  # noqa: S102 - the script's own assertion code, as packetdrill runs it
    except AssertionError as e:
        detail = f": {e}" if str(e) else ""
        raise Mismatch(f"python assertion failed{detail}{_failed_line(e, code, source)}", line) from None
    except _Budget:
        raise Mismatch(f"python block ran more than {MAX_LINES} lines", line) from None
    except NameError as e:
        raise Unsupported(f"python block name {getattr(e, 'name', '') or e}", line) from None
    except Exception as e:  # noqa: BLE001 - any error in the script's code is the script's failure
        raise Mismatch(f"python block raised {type(e).__name__}: {e}", line) from None
    finally:
        sys.settrace(old)


def _failed_line(e: BaseException, code: Any, source: str) -> str:
    """` (in: <the assert statement>)` for the block's line that raised, when it is found."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next
    if tb is None:
        return ""
    lines = source.splitlines()
    n = tb.tb_lineno - 1
    return f" (in: {lines[n].strip()})" if 0 <= n < len(lines) else ""


def _sources(text: str) -> list[str]:
    """The block as written (dedented), then with its first line (the one right after "%{",
    whose indentation is not the block's) stripped on its own."""
    import textwrap

    lines = text.strip("\n").splitlines()
    return [textwrap.dedent("\n".join(lines)) + "\n",
            lines[0].strip() + "\n" + textwrap.dedent("\n".join(lines[1:])) + "\n"]
