"""Running a Python program in this process, the way the interpreter would run it.

`ustack run` does not start a second interpreter: the program runs here, in the main thread,
after the socket module has been patched, so its sockets are ustack's with no IPC between it
and the stack (docs/run.md explains the choice). This module turns the command line the user
gave (`python app.py ...`, `python -m pkg ...`, `python -c CODE ...`, `app.py ...`) into a
`Program` and runs it with CPython's conventions: sys.argv and sys.path[0] as the interpreter
sets them, `__main__` as the module name, SystemExit's code as the exit status, an uncaught
exception printed as a traceback of the program's own frames with status 1, and the
program's non-daemon threads joined before it counts as finished.
"""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import shutil
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from types import TracebackType

_PYTHON_NAME = re.compile(r"python(3(\.\d+)?)?")
_IGNORED_FLAGS = set("BEsIqbdOvx")  # accepted, no effect on a program run in this process
_WARNING_ACTIONS = ("default", "error", "ignore", "always", "module", "once")


class NotPython(ValueError):
    """The command is not a Python program (one line, for the CLI)."""


@dataclass
class Program:
    kind: str  # "path" (a script file), "module" (-m) or "code" (-c)
    target: str
    args: list[str] = field(default_factory=list)
    unbuffered: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def argv(self) -> list[str]:
        first = {"path": self.target, "module": self.target, "code": "-c"}[self.kind]
        return [first, *self.args]


def _is_interpreter(word: str) -> bool:
    if _PYTHON_NAME.fullmatch(os.path.basename(word)):
        return True
    found = shutil.which(word)
    return found is not None and os.path.realpath(found) == os.path.realpath(sys.executable)


def _is_python_file(word: str) -> bool:
    if word.endswith((".py", ".pyw")):
        return True
    try:
        with open(word, "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def parse_command(argv: list[str]) -> Program:
    """A Program from `python [options] (SCRIPT | -m MODULE | -c CODE) [ARGS]` or `SCRIPT.py
    [ARGS]`; NotPython (with the reason) for anything else."""
    if not argv:
        raise NotPython("no program given: put it after --, e.g. `-- python app.py`")
    first, rest = argv[0], list(argv[1:])
    if not _is_interpreter(first):
        if _is_python_file(first):
            return Program("path", first, rest)
        raise NotPython(f"{first!r} is not a Python program: ustack run runs Python code in its own "
                        "process (python SCRIPT, python -m MODULE, python -c CODE or a .py file)")
    prog = Program("code", "")
    while rest:
        word = rest.pop(0)
        if word in ("-m", "-c"):
            if not rest:
                raise NotPython(f"python {word} needs an argument")
            prog.kind, prog.target = ("module" if word == "-m" else "code"), rest.pop(0)
            break
        if word.startswith(("-m", "-c")) and len(word) > 2:
            prog.kind, prog.target = ("module" if word[1] == "m" else "code"), word[2:]
            break
        if word == "-W" or (word.startswith("-W") and len(word) > 2):
            spec = rest.pop(0) if word == "-W" and rest else word[2:]
            if spec.split(":", 1)[0] not in _WARNING_ACTIONS:
                raise NotPython(f"python -W {spec!r}: only a plain action "
                                f"({', '.join(_WARNING_ACTIONS)}) is supported")
            prog.warnings.append(spec.split(":", 1)[0])
            continue
        if word == "-X" and rest:
            rest.pop(0)
            continue
        if word.startswith("-") and word != "-" and len(word) > 1 and word[1] != "-":
            flags = word[1:]
            unknown = [c for c in flags if c != "u" and c not in _IGNORED_FLAGS]
            if unknown:
                raise NotPython(f"python option -{unknown[0]} is not supported by ustack run")
            prog.unbuffered = prog.unbuffered or "u" in flags
            continue
        if word == "-" or word.startswith("--"):
            raise NotPython(f"python {word}: give a script, -m MODULE or -c CODE")
        prog.kind, prog.target = "path", word
        break
    if not prog.target and prog.kind == "code":
        raise NotPython("an interactive interpreter is not supported: give a script, -m MODULE or -c CODE")
    prog.args = rest
    if prog.kind == "path" and not os.path.exists(prog.target):
        raise NotPython(f"can't open file {os.path.abspath(prog.target)!r}: no such file")
    return prog


def _program_frames(tb: TracebackType | None) -> TracebackType | None:
    """Skip the frames of this runner and runpy, as the interpreter shows only the program's."""
    here = os.path.dirname(os.path.abspath(__file__))
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not (name == "<frozen runpy>" or name == runpy.__file__ or name.startswith(here)):
            break
        tb = tb.tb_next
    return tb


def exit_status(e: SystemExit) -> int:
    """The process status CPython gives for SystemExit(code) (printing a non-int code)."""
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def execute(prog: Program) -> int:
    """Run the program in this thread; returns its exit status. KeyboardInterrupt that the
    program did not handle propagates (after its traceback is printed), so the caller can
    end the process by SIGINT as the interpreter does."""
    sys.argv = prog.argv
    if prog.unbuffered:
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(write_through=True)
    for action in prog.warnings:
        warnings.simplefilter(action)  # type: ignore[arg-type]
    sys.path[0] = os.path.dirname(os.path.abspath(prog.target)) if prog.kind == "path" else os.getcwd()
    try:
        try:
            if prog.kind == "path":
                runpy.run_path(prog.target, run_name="__main__")
            elif prog.kind == "module":
                if not _module_exists(prog.target):
                    print(f"{sys.executable}: No module named {prog.target}", file=sys.stderr)
                    return 1  # as `python -m missing`: one line, status 1
                runpy.run_module(prog.target, run_name="__main__", alter_sys=True)
            else:
                import __main__

                exec(compile(prog.target, "<string>", "exec"), vars(__main__))  # noqa: S102 - python -c
        finally:
            _join_program_threads()
    except SystemExit as e:
        return exit_status(e)
    except KeyboardInterrupt as e:
        traceback.print_exception(e.with_traceback(_program_frames(e.__traceback__)))
        raise
    except BaseException as e:  # noqa: BLE001 - the program's uncaught exception, as Python reports it
        e = e.with_traceback(_program_frames(e.__traceback__))
        sys.excepthook(type(e), e, e.__traceback__)
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    return 0


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _join_program_threads() -> None:
    """Wait for the non-daemon threads the program started, as the interpreter does at exit."""
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and not t.daemon and t.is_alive():
            t.join()
