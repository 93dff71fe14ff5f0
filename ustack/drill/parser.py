"""A parser for google/packetdrill's script language (written from its documentation and
grammar, not its code): tokens, then events.

    [--option[=value] ...]            command-line options at the top
    `init command`                    shell lines (../common/defaults.sh and the like)
    TIME ACTION                       events; TIME is 0.1, +0.1, *, 0.1~0.2, +0.1~+0.2,
                                      or for a blocking call START...END
    ACTION = < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
           | > P. 1:1001(1000) ack 1 <...>
           | < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]
           | name(args) = result [ERRNO (note)]
           | %{ python }%
           | `shell command`

Whitespace and newlines are insignificant (events may span lines); // and /* */ are
comments. A construct this parser does not know raises `Unsupported` naming it (a SKIP);
input that is wrong for packetdrill too raises `ScriptError` (a FAIL).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .model import (
    ABSOLUTE,
    ABSOLUTE_RANGE,
    ANY,
    RELATIVE,
    RELATIVE_RANGE,
    Event,
    EventTime,
    Expr,
    PacketSpec,
    Script,
    ScriptError,
    SyscallSpec,
    TcpOption,
    Unsupported,
)

MAX_SCRIPT_BYTES = 1 << 20
T = TypeVar("T")


@dataclass
class Token:
    kind: str  # int, float, word, str, cmd, code, ellipsis, ip, option, punct, eof
    text: str
    line: int
    value: object = None


_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<cpp>//[^\n]*)
  | (?P<c>/\*.*?\*/)
  | (?P<code>%\{.*?\}%)
  | (?P<option>--[A-Za-z0-9_]+(?:=[^\s]*)?)
  | (?P<ellipsis>\.\.\.)
  | (?P<ip>[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)
  | (?P<hex>0x[0-9a-fA-F]+)
  | (?P<float>[0-9]*\.[0-9]+)
  | (?P<int>[0-9]+(?![A-Za-z_]))
  | (?P<word>[A-Za-z0-9_]+)
  | (?P<str>"(?:\\.|[^"\\])*")
  | (?P<cmd>`(?:\\.|[^`\\])*`)
  | (?P<punct>[^ \t\r\n])
""", re.S | re.X)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    line = 1
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # an unterminated comment, string or code block
            raise ScriptError(f"unterminated {text[pos:pos + 2]!r}", line)
        kind = m.lastgroup or "punct"
        s = m.group()
        if kind == "c" and not s.endswith("*/"):
            raise ScriptError("unterminated comment", line)
        if kind == "hex":
            tokens.append(Token("int", s, line, int(s, 16)))
        elif kind == "int":
            tokens.append(Token("int", s, line, int(s)))
        elif kind == "float":
            tokens.append(Token("float", s, line, float(s)))
        elif kind == "str":
            try:
                value = s[1:-1].encode("utf-8").decode("unicode_escape")
            except UnicodeDecodeError:
                raise ScriptError(f"bad escape in string {s[:40]!r}", line) from None
            tokens.append(Token("str", s, line, value))
        elif kind == "cmd":
            tokens.append(Token("cmd", s, line, s[1:-1].strip()))
        elif kind == "code":
            tokens.append(Token("code", s, line, s[2:-2]))
        elif kind not in ("ws", "cpp", "c"):
            tokens.append(Token(kind, s, line))
        line += s.count("\n")
        pos = m.end()
    tokens.append(Token("eof", "", line))
    return tokens


_FLAG_LETTERS = set("SFRP.EWUA")
_ECN = {"ect0", "ect1", "ce", "noecn", "ect01"}


class Parser:
    def __init__(self, text: str, path: str = "<script>") -> None:
        self.path = path
        self.toks = tokenize(text)
        self.i = 0

    # -- token helpers -----------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Token:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def at(self, text: str) -> bool:
        t = self.tok
        return t.kind in ("punct", "word", "ellipsis") and t.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text: str, what: str = "") -> Token:
        if not self.at(text):
            t = self.tok
            found = t.text or "end of file"
            raise ScriptError(f"expected {text!r}{' ' + what if what else ''}, found {found!r}", t.line)
        return self.next()

    def items(self, item: Callable[[], T], close: str, between: str, empty_ok: bool = True) -> list[T]:
        """`item (, item)* close`, the opening token already taken (`close` right away: empty)."""
        out: list[T] = []
        if empty_ok and self.accept(close):
            return out
        while True:
            out.append(item())
            if self.accept(close):
                return out
            self.expect(",", between)

    def uint(self, what: str, bits: int) -> int:
        """An integer field of a packet line, checked against its width as packetdrill does."""
        line = self.tok.line
        v = self.int_(what)
        if not 0 <= v < 1 << bits:
            raise ScriptError(f"{what} value {v} out of range ({bits} bits)", line)
        return v

    def int_(self, what: str) -> int:
        t = self.tok
        neg = False
        if self.at("-") and self.peek().kind == "int":
            self.next()
            neg = True
            t = self.tok
        if t.kind != "int":
            raise ScriptError(f"expected an integer for {what}, found {t.text or 'end of file'!r}", t.line)
        self.next()
        v = int(t.value)  # type: ignore[call-overload]
        return -v if neg else v

    def number(self, what: str) -> float:
        t = self.tok
        if t.kind not in ("int", "float"):
            raise ScriptError(f"expected a number for {what}, found {t.text or 'end of file'!r}", t.line)
        self.next()
        return float(t.value)  # type: ignore[arg-type]

    # -- script ------------------------------------------------------------------------------
    def script(self) -> Script:
        sc = Script(self.path)
        while self.tok.kind == "option":
            name, _, value = self.next().text[2:].partition("=")
            sc.options[name] = value
        while self.tok.kind == "cmd":
            sc.init_commands.append(str(self.next().value))
        prev_line = 0
        while self.tok.kind != "eof":
            t = self.tok
            if t.kind == "option":
                raise ScriptError(f"option {t.text} after the first event", t.line)
            if t.kind == "cmd":
                # before the first event: init; after the last one: cleanup (restoring sysctls)
                (sc.init_commands if not sc.events else sc.cleanup_commands).append(str(self.next().value))
                continue
            ev = self.event()
            if ev.line < prev_line:
                raise ScriptError("events out of order", ev.line)
            prev_line = ev.line
            sc.events.append(ev)
        return sc

    def event(self) -> Event:
        line = self.tok.line
        time = self.event_time()
        t = self.tok
        if t.kind == "code":
            self.next()
            return Event(line, time, "code", text=str(t.value))
        if t.kind == "cmd":
            self.next()
            return Event(line, time, "command", text=str(t.value))
        if t.kind == "ellipsis":  # START...END name(args): a blocking call
            self.next()
            end = self.number("the end time of a blocking call")
            return self.syscall_event(line, time, end)
        if self.at("<") or self.at(">"):
            pkt = self.packet()
            if time.kind in (ANY, ABSOLUTE_RANGE, RELATIVE_RANGE) and pkt.direction != ">":
                raise ScriptError("a time of '*' or a range can only be used with outbound packets", line)
            return Event(line, time, "packet", packet=pkt)
        if t.kind == "word" and self.peek().text == "(":
            return self.syscall_event(line, time, None)
        raise Unsupported(f"unknown event syntax {t.text!r}", t.line)

    def event_time(self) -> EventTime:
        if self.accept("*"):
            return EventTime(ANY)
        if self.accept("+"):
            start = self.number("a relative time")
            if self.accept("~"):
                self.expect("+", "(a relative range is +A~+B)")
                return EventTime(RELATIVE_RANGE, start, self.number("a time range end"))
            return EventTime(RELATIVE, start)
        if self.tok.kind in ("int", "float"):
            start = self.number("a time")
            if self.accept("~"):
                return EventTime(ABSOLUTE_RANGE, start, self.number("a time range end"))
            return EventTime(ABSOLUTE, start)
        t = self.tok
        raise ScriptError(f"expected an event time, found {t.text or 'end of file'!r}", t.line)

    # -- packets -----------------------------------------------------------------------------
    def packet(self) -> PacketSpec:
        direction = self.next().text
        pkt = PacketSpec(direction)
        if self.at("[") or self.at("("):
            close = "]" if self.next().text == "[" else ")"
            w = self.tok
            if w.kind == "word" and w.text in _ECN:
                pkt.tos = w.text
                self.next()
            else:
                raise Unsupported(f"IP header spec {close == ']' and '[' or '('}{w.text}...", w.line)
            if not self.accept(close):
                raise Unsupported(f"IP header spec with {self.tok.text!r}", self.tok.line)
        t = self.tok
        if t.kind == "word" and t.text in ("icmp", "udp", "ipv4", "ipv6", "gre", "mpls", "encap"):
            if t.text == "icmp":
                return self.icmp(pkt)
            raise Unsupported(f"{t.text} packets", t.line)
        if t.kind == "int" and self.peek().text == ">":
            raise Unsupported("packet port numbers (A>B)", t.line)
        pkt.flags = self.flags()
        pkt.seq, pkt.end_seq, pkt.length = self.seq()
        if self.accept("ack"):
            pkt.ack = self.uint("TCP ack", 32)
        if self.accept("win"):
            pkt.win = self.uint("TCP window", 16)
        if self.accept("urg"):
            pkt.urg = self.uint("TCP urgent pointer", 16)
        if self.at("<"):
            pkt.options = self.options()
            if pkt.options is None and direction == "<":
                raise ScriptError("<...> for TCP options can only be used with outbound packets", t.line)
        if "." in pkt.flags and pkt.ack is None:
            pkt.ack = 0
        return pkt

    def flags(self) -> str:
        t = self.tok
        if self.accept("-"):
            return ""
        if self.accept("."):
            return "."
        if t.kind == "word":
            self.next()
            text = t.text
            if self.at(".") and self.tok.line == t.line:
                self.next()
                text += "."
            bad = set(text) - _FLAG_LETTERS
            if bad:
                raise ScriptError(f"bad TCP flags {text!r}", t.line)
            return text
        if t.kind == "float":  # "S.4"-like AccECN forms
            raise Unsupported(f"TCP flags {t.text!r} (AccECN)", t.line)
        raise ScriptError(f"expected TCP flags, found {t.text or 'end of file'!r}", t.line)

    def seq(self) -> tuple[int, int, int]:
        line = self.tok.line
        start = self.int_("the start sequence number")
        self.expect(":", "in START:END(LEN)")
        end = self.int_("the end sequence number")
        self.expect("(", "in START:END(LEN)")
        n = self.int_("the payload length")
        self.expect(")", "in START:END(LEN)")
        if not (0 <= start < 1 << 32 and 0 <= end < 1 << 32 and 0 <= n < 1 << 16):
            raise ScriptError("TCP sequence number or payload size out of range", line)
        if (start + n) & 0xFFFFFFFF != end:
            raise ScriptError("inconsistent TCP sequence numbers and payload size", line)
        return start, end, n

    def options(self) -> list[TcpOption] | None:
        self.expect("<")
        if self.accept("..."):
            self.expect(">")
            return None
        return self.items(self.option, ">", "between TCP options", empty_ok=False)

    def option(self) -> TcpOption:
        t = self.next()
        name = t.text
        if name in ("nop", "eol", "sackOK"):
            return TcpOption(name)
        if name in ("mss", "wscale"):
            return TcpOption(name, (self.uint(name, 16 if name == "mss" else 8),))
        if name == "sack":
            blocks = []
            while self.tok.kind == "int":
                left = self.uint("a SACK block", 32)
                self.expect(":", "in a SACK block")
                blocks.append((left, self.uint("a SACK block", 32)))
            if not 1 <= len(blocks) <= 4:
                raise ScriptError(f"a SACK option holds 1 to 4 blocks, not {len(blocks)}", t.line)
            return TcpOption(name, tuple(blocks))
        if name == "TS":
            self.expect("val", "in a TS option")
            val = self.uint("TS val", 32)
            self.expect("ecr", "in a TS option")
            return TcpOption(name, (val, self.uint("TS ecr", 32)))
        if name in ("FO", "FOEXP", "md5", "ECN"):
            raise Unsupported(f"TCP option {name}", t.line)
        raise Unsupported(f"TCP option {name!r}", t.line)

    def icmp(self, pkt: PacketSpec) -> PacketSpec:
        line = self.next().line
        pkt.protocol = "icmp"
        t = self.next()
        if t.kind != "word":
            raise ScriptError("expected an ICMP type", line)
        pkt.icmp_type = t.text
        if self.tok.kind == "word" and self.tok.text not in ("mtu",):
            pkt.icmp_code = self.next().text
        if self.accept("mtu"):
            pkt.icmp_mtu = self.uint("mtu", 16)
        if self.accept("["):
            if self.tok.kind == "word":
                raise Unsupported(f"ICMP quoting a {self.tok.text} packet", line)
            pkt.seq, pkt.end_seq, pkt.length = self.seq()
            self.expect("]")
        return pkt

    # -- system calls ------------------------------------------------------------------------
    def syscall_event(self, line: int, time: EventTime, end: float | None) -> Event:
        t = self.next()
        if t.kind != "word":
            raise ScriptError(f"expected a system call name, found {t.text!r}", t.line)
        self.expect("(")
        args = self.items(self.expr, ")", "between arguments")
        self.expect("=", f"after {t.text}(...)")
        result = self.expr()
        errno = None
        if self.tok.kind == "word" and self.tok.text.startswith("E") and self.tok.text.isupper():
            errno = self.next().text
        if self.at("("):  # a note: "(Operation now in progress)"; may hold any tokens
            self.skip_balanced()
        return Event(line, time, "syscall", syscall=SyscallSpec(t.text, args, result, errno, end))

    def skip_balanced(self) -> None:
        depth = 0
        while True:
            t = self.next()
            if t.kind == "eof":
                raise ScriptError("unterminated note in parentheses", t.line)
            if t.kind == "punct" and t.text == "(":
                depth += 1
            elif t.kind == "punct" and t.text == ")":
                depth -= 1
                if depth == 0:
                    return

    def expr(self) -> Expr:
        first = self.primary()
        if not self.at("|"):
            return first
        items = [first]
        while self.accept("|"):
            items.append(self.primary())
        return Expr("or", items=items)

    def primary(self) -> Expr:
        t = self.tok
        if t.kind == "ellipsis":
            self.next()
            return Expr("ellipsis")
        if t.kind == "int" or (self.at("-") and self.peek().kind == "int"):
            return Expr("int", self.int_("a value"))
        if t.kind == "str":
            self.next()
            if self.accept("..."):
                return Expr("str", t.value, name="...")
            return Expr("str", t.value)
        if self.accept("["):
            return Expr("list", items=self.items(self.expr, "]", "in a list"))
        if self.accept("{"):
            return Expr("struct", items=self.items(self.struct_field, "}", "in a struct"))
        if t.kind == "word":
            self.next()
            if self.accept("("):
                return Expr("call", name=t.text, items=self.items(self.expr, ")", "between arguments"))
            return Expr("word", t.text)
        if t.kind == "ip":
            self.next()
            return Expr("str", t.text)
        raise Unsupported(f"expression syntax {t.text or 'end of file'!r}", t.line)

    def struct_field(self) -> Expr:
        t = self.tok
        if t.kind == "word" and self.peek().text in ("=", "("):
            name = self.next().text
            if self.at("("):  # msg_iov(4)=[...]: a counted field
                self.skip_balanced()
            if self.accept("="):
                e = self.expr()
                e.name = name
                return e
            raise ScriptError(f"expected '=' after struct field {name}", t.line)
        return self.expr()


def parse(text: str, path: str = "<script>") -> Script:
    """Parse a whole script; ScriptError / Unsupported carry the line."""
    if len(text) > MAX_SCRIPT_BYTES:
        raise Unsupported(f"script larger than {MAX_SCRIPT_BYTES} bytes")
    return Parser(text, path).script()


__all__ = ["ABSOLUTE", "RELATIVE", "parse", "tokenize"]
