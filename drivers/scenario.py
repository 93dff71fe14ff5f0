"""Fault scenarios: random link faults, bursty loss, targeted rules and scheduled link changes in
one object, loaded from a TOML file (or built from the `--loss`-style shorthands).

    seed = 7
    [link]                       # independent faults on every frame (the --faults spec keys)
    delay = "10ms"
    [loss]                       # bursty loss (netem's gemodel parameters)
    model = "gilbert-elliott"
    p = "1%"
    r = "30%"
    1-h = "90%"
    1-k = "0.1%"
    rules = ["drop tcp data dir=out nth=50"]   # targeted faults, see drivers/filters.py
    [[at]]                       # a scheduled change, restored after `for`
    time = "2s"
    for = "500ms"
    down = true

Every mistake is found here, before anything starts, and reported as one line with the file's
line number: `ScenarioError("flap.toml:9: [[at]] #1: unknown key 'dwon' (keys: ...)")`.
See docs/faults.md.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, replace
from typing import Any

from .faultconfig import SPEC_ALIASES, FaultConfig, parse_duration, parse_probability, spec_keys
from .filters import Filter, FilterError, Rule, parse_rule
from .lossmodel import MODEL_PARAMS, LossModel, make_model

# [[at]] keys that set a FaultConfig field for the duration of the change
CHANGE_SETTINGS = {"loss": "loss", "delay": "delay_s", "jitter": "jitter_s", "rate": "rate_bps",
                   "duplicate": "duplicate", "reorder": "reorder", "corrupt": "corrupt"}
CHANGE_KEYS = ("time", "bytes", "on", "for", "down", "mtu", "icmp", "blackhole", *CHANGE_SETTINGS)
TOP_KEYS = ("seed", "link", "loss", "rules", "at")
LINK_KEYS = ("loss", "duplicate", "reorder", "corrupt", "delay", "jitter", "rate", "burst", "queue", "mtu",
             "depth", "hold", "dir")  # and the long names: delay_s, rate_bps, mtu_cap, ...


class ScenarioError(ValueError):
    """A scenario that cannot run: one line, with the file and line when there is a file."""


@dataclass(frozen=True)
class Change:
    """A scheduled change of the link: from a time (seconds after the start) or once a TCP
    connection has carried `after_bytes` bytes (in a segment matching `on`), for `for_s`
    seconds (None: for good)."""

    at_s: float | None = None
    after_bytes: int | None = None
    on: Filter | None = None
    for_s: float | None = None
    down: bool = False
    mtu: int | None = None
    icmp: bool = False  # with mtu: send ICMP fragmentation-needed for DF frames that do not fit
    blackhole: Filter | None = None
    settings: tuple[tuple[str, Any], ...] = ()  # FaultConfig fields set while the change lasts
    text: str = ""

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class Scenario:
    """Everything a FaultInjector does: `link` (independent faults, loss model, seed), `rules`
    (targeted, in order) and `schedule` (changes over time)."""

    link: FaultConfig = FaultConfig()
    rules: tuple[Rule, ...] = ()
    schedule: tuple[Change, ...] = ()
    source: str = ""

    @property
    def seed(self) -> int:
        return self.link.seed

    @property
    def is_noop(self) -> bool:
        return self.link.is_noop and not self.rules and not self.schedule

    @property
    def needs_decode(self) -> bool:
        return bool(self.rules or any(c.after_bytes is not None or c.blackhole is not None
                                      or c.mtu is not None for c in self.schedule))

    def with_seed(self, seed: int) -> Scenario:
        return replace(self, link=replace(self.link, seed=seed))

    def with_link(self, **changes: Any) -> Scenario:
        return replace(self, link=replace(self.link, **changes))

    @classmethod
    def from_spec(cls, spec: str, **overrides: Any) -> Scenario:
        """The shorthand form: a --faults spec string ("loss=2%,delay=10ms")."""
        return cls(FaultConfig.from_spec(spec, **overrides), source="spec")

    def describe(self) -> str:
        parts = []
        spec = self.link.to_spec()
        if spec:
            parts.append(spec)
        if self.link.loss_model is not None:
            parts.append(self.link.loss_model.describe())
        parts += [f"rule: {r.text}" for r in self.rules]
        parts += [f"at: {c.text}" for c in self.schedule]
        return "; ".join(parts)


def is_scenario_path(text: str) -> bool:
    """Does a --faults value name a scenario file (rather than a spec string)?"""
    return text.lower().endswith(".toml") or ("=" not in text and os.path.isfile(text))


# -- loading -------------------------------------------------------------------------------------
class _Lines:
    """Find the line a key or value sits on (tomllib does not say)."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source
        self.headers: list[tuple[int, str]] = []  # (line number, header text)
        for i, line in enumerate(self.lines, 1):
            s = line.strip()
            if s.startswith("["):
                self.headers.append((i, s.split("#")[0].strip()))

    def table(self, header: str, index: int = 0) -> int:
        found = [n for n, h in self.headers if h == header]
        return found[index] if index < len(found) else 0

    def key(self, key: str, start: int = 0) -> int:
        """The line of `key = ...` in the table whose header is on line `start` (0: the top
        level); `start` itself when not found."""
        pat = re.compile(rf"^\s*(\"{re.escape(key)}\"|{re.escape(key)})\s*=")
        for i in range(start, len(self.lines)):
            if self.lines[i].strip().startswith("["):  # the next table: not in this one
                break
            if pat.match(self.lines[i]):
                return i + 1
        return start

    def value(self, text: str) -> int:
        for i, line in enumerate(self.lines, 1):
            if text in line:
                return i
        return 0

    def error(self, line: int, message: str) -> ScenarioError:
        where = f"{self.source}:{line}" if line else self.source
        return ScenarioError(f"{where}: {message}")


def load_scenario(path: str | os.PathLike[str], *, link: bool = False) -> Scenario:
    """Read and check a TOML scenario. `link`: it is for a simulator link (no dir=in there)."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ScenarioError(f"{source}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{source}: not a UTF-8 text file") from None
    return parse_scenario(text, source, link=link)


def parse_scenario(text: str, source: str = "<scenario>", *, link: bool = False) -> Scenario:
    lines = _Lines(text, source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else (len(lines.lines) if "end of document" in msg else 0)
        what = re.sub(r" \(at (line|end of document).*", "", msg)
        raise lines.error(line, f"not valid TOML: {what}") from None
    for key in doc:
        if key not in TOP_KEYS:
            raise lines.error(lines.key(key) or lines.table(f"[{key}]") or lines.table(f"[[{key}]]"),
                              f"unknown key {key!r} (keys: {', '.join(TOP_KEYS)})")
    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise lines.error(lines.key("seed"), f"seed must be an integer >= 0, not {seed!r}")
    cfg = _link(doc.get("link", {}), lines, seed)
    if "loss" in doc:
        cfg = _loss(doc["loss"], cfg, lines)
    rules = _rules(doc.get("rules", []), lines, link)
    schedule = _schedule(doc.get("at", []), lines, link)
    return Scenario(cfg, rules, schedule, source)


def _link(table: Any, lines: _Lines, seed: int) -> FaultConfig:
    start = lines.table("[link]")
    if not isinstance(table, dict):
        raise lines.error(lines.key("link"), "link must be a table ([link])")
    items = []
    for key, value in table.items():
        k = key.lower().replace("-", "_")
        if k == "seed":
            raise lines.error(lines.key(key, start), "seed goes at the top of the file, not in [link]")
        if k not in spec_keys():
            raise lines.error(lines.key(key, start),
                              f"[link] unknown key {key!r} (keys: {', '.join(LINK_KEYS)})")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise lines.error(lines.key(key, start), f"[link] {key} = {value!r}: want a number or a string")
        items.append((key, f"{key}={value}"))
    kw: dict[str, Any] = {"seed": seed}
    for key, item in items:
        try:
            one = FaultConfig.from_spec(item)
        except ValueError as e:
            raise lines.error(lines.key(key, start), f"[link] {e}") from None
        name = SPEC_ALIASES.get(key.lower().replace("-", "_"), key.lower().replace("-", "_"))
        kw[name] = getattr(one, name)
    try:
        return FaultConfig(**kw)
    except ValueError as e:
        raise lines.error(start, f"[link] {e}") from None


def _loss(table: Any, cfg: FaultConfig, lines: _Lines) -> FaultConfig:
    start = lines.table("[loss]")
    if not isinstance(table, dict):
        raise lines.error(lines.key("loss"), "loss must be a table ([loss] with model = ...)")
    if cfg.loss:
        raise lines.error(start, "[loss] and [link] loss both set the loss: keep one")
    allowed = ("model", "p", "r", "1-h", "1-k")
    for key in table:
        if key not in allowed:
            raise lines.error(lines.key(key, start),
                              f"[loss] unknown key {key!r} (keys: {', '.join(allowed)})")
    model = table.get("model", "gilbert-elliott" if "1-k" in table else "bernoulli")
    if model not in MODEL_PARAMS:
        raise lines.error(lines.key("model", start) or start,
                          f"[loss] model {model!r} is not one of {', '.join(MODEL_PARAMS)}")
    values: dict[str, float | None] = {}
    for key in ("p", "r", "1-h", "1-k"):
        if key in table:
            try:
                values[key] = parse_probability(str(table[key]))
            except ValueError as e:
                raise lines.error(lines.key(key, start), f"[loss] {key}: {e}") from None
    if "p" not in values:
        raise lines.error(start, f"[loss] model {model} needs p")
    try:
        lm: LossModel = make_model(model, values["p"], values.get("r"), values.get("1-h"),  # type: ignore[arg-type]
                                   values.get("1-k"))
    except ValueError as e:
        m = re.search(r", not (\S+)$", str(e))  # "takes p, r, not 1-h": point at that key
        bad = m.group(1) if m and m.group(1) in table else None
        raise lines.error(lines.key(bad, start) if bad else start, f"[loss] {e}") from None
    return replace(cfg, loss_model=lm)


def _rules(value: Any, lines: _Lines, link: bool) -> tuple[Rule, ...]:
    if isinstance(value, str) or not isinstance(value, list):
        raise lines.error(lines.key("rules"), 'rules must be a list of strings: rules = ["drop tcp syn"]')
    out = []
    for i, text in enumerate(value, 1):
        if not isinstance(text, str):
            raise lines.error(lines.key("rules"), f"rule {i} is not a string: {text!r}")
        try:
            out.append(parse_rule(text, link=link))
        except FilterError as e:
            raise lines.error(lines.value(text) or lines.key("rules"), f"rule {i} {text!r}: {e}") from None
    return tuple(out)


def _schedule(value: Any, lines: _Lines, link: bool) -> tuple[Change, ...]:
    if not isinstance(value, list):
        raise lines.error(lines.key("at") or lines.table("[at]"), "at must be an array of tables ([[at]])")
    out = []
    for i, entry in enumerate(value):
        start = lines.table("[[at]]", i)
        where = f"[[at]] #{i + 1}"
        if not isinstance(entry, dict):
            raise lines.error(start, f"{where} is not a table")

        def fail(key: str | None, message: str, start: int = start, where: str = where) -> ScenarioError:
            return lines.error(lines.key(key, start) if key else start, f"{where}: {message}")

        for key in entry:
            if key not in CHANGE_KEYS:
                raise fail(key, f"unknown key {key!r} (keys: {', '.join(CHANGE_KEYS)})")
        kw: dict[str, Any] = {}
        if ("time" in entry) == ("bytes" in entry):
            raise fail(None, "give exactly one of time = T (seconds after the start) or bytes = N")
        if "time" in entry:
            kw["at_s"] = _seconds(entry["time"], "time", fail, zero_ok=True)
        else:
            n = entry["bytes"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise fail("bytes", f"bytes must be an integer >= 1, not {n!r}")
            kw["after_bytes"] = n
            if "on" in entry:
                kw["on"] = _filter(entry["on"], "on", fail, link)
        if "on" in entry and "bytes" not in entry:
            raise fail("on", "on = FILTER goes with bytes = N")
        if "for" in entry:
            kw["for_s"] = _seconds(entry["for"], "for", fail)
        did = []
        if entry.get("down") is True:
            kw["down"] = True
            did.append("down")
        elif "down" in entry and entry["down"] is not False:
            raise fail("down", f"down must be true or false, not {entry['down']!r}")
        if "mtu" in entry:
            m = entry["mtu"]
            if not isinstance(m, int) or isinstance(m, bool) or not 68 <= m <= 65535:
                raise fail("mtu", f"mtu must be an integer in 68..65535, not {m!r}")
            kw["mtu"] = m
            kw["icmp"] = bool(entry.get("icmp", False))
            did.append(f"mtu {m}" + (" with ICMP" if kw["icmp"] else " without ICMP"))
        if "icmp" in entry and "mtu" not in entry:
            raise fail("icmp", "icmp goes with mtu = M")
        if "icmp" in entry and not isinstance(entry["icmp"], bool):
            raise fail("icmp", f"icmp must be true or false, not {entry['icmp']!r}")
        if "blackhole" in entry:
            text = entry["blackhole"]
            if text in ("in", "out"):
                text = f"dir={text}"
            kw["blackhole"] = _filter(text, "blackhole", fail, link)
            did.append(f"blackhole {entry['blackhole']}")
        settings = []
        for key, name in CHANGE_SETTINGS.items():
            if key in entry:
                try:
                    one = FaultConfig.from_spec(f"{key}={entry[key]}")
                except ValueError as e:
                    raise fail(key, str(e)) from None
                settings.append((name, getattr(one, name)))
                did.append(f"{key} {entry[key]}")
        if not did:
            raise fail(None, "changes nothing (give down, mtu, blackhole or one of "
                             f"{', '.join(CHANGE_SETTINGS)})")
        kw["settings"] = tuple(settings)
        when = f"t={kw['at_s']:g}s" if "at_s" in kw else f"after {kw['after_bytes']} bytes"
        span = f" for {kw['for_s']:g}s" if "for_s" in kw else ""
        kw["text"] = f"{when}: {', '.join(did)}{span}"
        out.append(Change(**kw))
    return tuple(out)


def _seconds(value: Any, key: str, fail: Any, zero_ok: bool = False) -> float:
    if isinstance(value, bool):
        raise fail(key, f"{key} must be a duration, not {value!r}")
    try:
        s = float(value) if isinstance(value, int | float) else parse_duration(str(value))
    except ValueError as e:
        raise fail(key, f"{key}: {e}") from None
    if s < 0 or (s == 0 and not zero_ok):
        raise fail(key, f"{key} must be {'>= 0' if zero_ok else '> 0'}, not {value!r}")
    return s


def _filter(text: Any, key: str, fail: Any, link: bool) -> Filter:
    if not isinstance(text, str):
        raise fail(key, f"{key} must be a filter string, not {text!r}")
    try:
        return parse_rule(f"drop {text}", link=link).filter
    except FilterError as e:
        raise fail(key, f"{key} {text!r}: {e}") from None


def scenario_from(value: Any, *, link: bool = False) -> Scenario | None:
    """A Scenario from None / Scenario / FaultConfig / dict of FaultConfig fields / a spec string
    / a path to a TOML file (str ending in .toml, or os.PathLike). None when there are no faults."""
    if value is None or value is False:
        return None
    if isinstance(value, Scenario):
        return value
    if isinstance(value, FaultConfig):
        return Scenario(value, source="config")
    if isinstance(value, dict):
        return Scenario(FaultConfig(**value), source="dict")
    if isinstance(value, os.PathLike) or (isinstance(value, str) and is_scenario_path(value)):
        return load_scenario(value, link=link)
    if isinstance(value, str):
        return Scenario.from_spec(value)
    raise TypeError("faults must be a Scenario, FaultConfig, dict, spec string or .toml path, "
                    f"not {type(value).__name__}")


__all__ = ["CHANGE_KEYS", "Change", "Scenario", "ScenarioError", "is_scenario_path", "load_scenario",
           "parse_scenario", "scenario_from"]
