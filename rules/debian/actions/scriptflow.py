"""Which simple commands of a maintainer script run on a fresh install, and which branch guards them.

shell.simple_commands drops conditions, but maintainer scripts branch on `$1` (configure,
upgrade, abort-upgrade, ...), on `$2` (the version being upgraded from: empty on a fresh install)
and on `dpkg --compare-versions "$2" lt X`.  An image is a fresh install: dpkg runs
`preinst install` and `postinst configure`, both without an old version.  This module walks
if/elif/else and case arms, evaluates the conditions it can under those arguments and tags each
command with its guard:

- `runs`: no enclosing condition is false on a fresh install.  Conditions it cannot evaluate
  (`[ -e /etc/x ]`, debconf answers) are taken as the fresh install would take them: the effect
  rules then decide by what the image holds;
- `skipped`: an enclosing condition is false on a fresh install (an upgrade-only branch); the
  guard text says which, so a reviewer sees why the command is not applied.

`$1`/`$2` inside function bodies are the function's own arguments: unknown there.
`dpkg --compare-versions` with an empty version follows dpkg: empty is earlier than any
version, except for the `-nl` operators, where it is later.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple

from .debian_version import InvalidVersion, compare_versions
from .shell import NEWLINE, OP, REDIRECTIONS, WORD, is_dynamic

# dpkg's arguments on a fresh install, per script.
FRESH_INSTALL_ARGS = {"preinst": ("install", ""), "postinst": ("configure", "")}
CONTROL_WORDS = {"if", "then", "elif", "else", "fi", "do", "done", "while", "until", "{", "}", "!", "time",
                 "esac"}


@dataclass(frozen=True)
class Segment:
    """A simple command (`command`), or a case marker (`case` subject, `arm` patterns, `esac`), or a
    function header (`function`), with the operator that ended it."""

    kind: str
    words: Tuple[str, ...]
    separator: str = ""


@dataclass(frozen=True)
class GuardedCommand:
    words: Tuple[str, ...]
    skipped_by: str  # "" when the command runs on a fresh install; else the false guard
    piped_from: Tuple[str, ...] = ()  # the command whose output this one reads (`find ... | xargs ...`)


def segments(tokens: Sequence[Tuple[str, str]]) -> Iterator[Segment]:
    """shell.simple_commands, keeping case subjects and arm patterns and function headers."""
    words: List[str] = []
    patterns: Optional[List[str]] = None  # collecting case arm patterns
    index = 0
    while index < len(tokens):
        kind, value = tokens[index]
        index += 1
        if patterns is not None and not words:
            if kind == WORD and value == "esac" and not patterns:
                patterns = None
                yield Segment("esac", ())
            elif kind == OP and value == ")":
                yield Segment("arm", tuple(patterns))
                patterns = None
            elif kind == WORD:
                patterns.append(value)
            continue
        if kind == WORD:
            if value == "case" and all(w in CONTROL_WORDS for w in words):
                if words:
                    yield Segment("command", tuple(words))
                words = []
            words.append(value)
            if len(words) == 3 and words[0] == "case" and words[2] == "in":
                yield Segment("case", (words[1],))
                words, patterns = [], []
            continue
        if value == "(" and len(words) == 1 and index < len(tokens) and tokens[index] == (OP, ")"):
            yield Segment("function", (words[0],))
            words, index = [], index + 1
            continue
        if value in REDIRECTIONS:
            if words and words[-1].isdigit():
                words.pop()
            index += 1 if index < len(tokens) and tokens[index][0] == WORD else 0
            continue
        if words:
            yield Segment("command", tuple(words), value)
            words = []
        if value in (";;", ";&"):
            patterns = []
    if words:
        yield Segment("command", tuple(words))


@dataclass
class Frame:
    kind: str  # "if", "case", "function", "brace"
    earlier: List[Tuple[str, Optional[bool]]] = field(default_factory=list)  # branches before this one
    current: Optional[Tuple[str, Optional[bool]]] = None  # this branch's condition (None: else/no arm yet)
    collecting: Optional[List[Tuple[Tuple[str, ...], str]]] = None  # an if/elif condition being read
    subject: str = ""  # case


class Flow:
    """Walks the segments of one script, keeping the stack of enclosing branches."""

    def __init__(self, script: str):
        self.args = FRESH_INSTALL_ARGS.get(script)
        self.stack: List[Frame] = []
        self.awaiting_function = False

    def in_function(self) -> bool:
        return any(f.kind == "function" for f in self.stack)

    def skipped_by(self) -> str:
        """The first enclosing branch that cannot run on a fresh install, as text; "" if none."""
        for frame in self.stack:
            if frame.current is not None and frame.current[1] is False:
                return frame.current[0]
            for text, truth in frame.earlier:
                if truth is True:
                    return f"an earlier branch ({text}) is taken instead"
        return ""

    def walk(self, items: Sequence[Segment]) -> Iterator[GuardedCommand]:
        previous: Tuple[str, ...] = ()
        for segment in items:
            if segment.kind == "command":
                for found in self.command(list(segment.words), segment.separator):
                    yield GuardedCommand(found.words, found.skipped_by, previous)
                    previous = found.words if segment.separator == "|" else ()
            else:
                self.marker(segment)
                previous = ()

    def marker(self, segment: Segment) -> None:
        if segment.kind == "function":
            self.awaiting_function = True
        elif segment.kind == "case":
            self.stack.append(Frame("case", subject=segment.words[0]))
        elif segment.kind == "arm" and self.top("case"):
            frame = self.stack[-1]
            if frame.current is not None:
                frame.earlier.append(frame.current)
            frame.current = (f"case {frame.subject} in {'|'.join(segment.words)})",
                             self.arm_matches(frame.subject, segment.words))
        elif segment.kind == "esac" and self.top("case"):
            self.stack.pop()

    def top(self, kind: str) -> bool:
        return bool(self.stack) and self.stack[-1].kind == kind

    def command(self, words: List[str], separator: str) -> Iterator[GuardedCommand]:
        while words and words[0] in CONTROL_WORDS:
            self.control(words.pop(0))
        if not words:
            return
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.collecting is not None:
            frame.collecting.append((tuple(words), separator))
            frame_guard = self.stack.pop()  # the condition runs outside its own branch
            yield GuardedCommand(tuple(words), self.skipped_by())
            self.stack.append(frame_guard)
            return
        yield GuardedCommand(tuple(words), self.skipped_by())

    def control(self, word: str) -> None:
        if word == "if":
            self.stack.append(Frame("if", collecting=[]))
        elif word == "elif" and self.top("if"):
            frame = self.stack[-1]
            frame.earlier.append(frame.current or ("", None))
            frame.current, frame.collecting = None, []
        elif word == "then" and self.top("if") and self.stack[-1].collecting is not None:
            frame = self.stack[-1]
            frame.current = self.condition(frame.collecting)
            frame.collecting = None
        elif word == "else" and self.top("if"):
            frame = self.stack[-1]
            frame.earlier.append(frame.current or ("", None))
            frame.current = None
        elif word == "fi" and self.top("if"):
            self.stack.pop()
        elif word == "esac" and self.top("case"):
            self.stack.pop()
        elif word == "{":
            self.stack.append(Frame("function" if self.awaiting_function else "brace"))
            self.awaiting_function = False
        elif word == "}" and self.stack and self.stack[-1].kind in ("function", "brace"):
            self.stack.pop()

    def condition(self, parts: List[Tuple[Tuple[str, ...], str]]) -> Tuple[str, Optional[bool]]:
        text = " ".join(" ".join(words) + (f" {sep}" if sep in ("&&", "||", "|") else "")
                        for words, sep in parts)
        return f"if {text.strip()}", self.evaluate(parts)

    def evaluate(self, parts: List[Tuple[Tuple[str, ...], str]]) -> Optional[bool]:
        """&& and || left to right (equal precedence, as in sh); a pipe's status is unknown."""
        result: Optional[bool] = None
        operator = ""
        for words, separator in parts:
            value = None if operator == "|" else self.test(list(words))
            if operator == "&&":
                result = False if result is False or value is False else (True if result and value else None)
            elif operator == "||":
                result = True if result is True or value is True else (False if result is False and value is False
                                                                         else None)
            else:
                result = value
            operator = separator
        return result

    def positional(self, word: str) -> str:
        if self.args is None or self.in_function():
            return word
        for number, value in ((1, self.args[0]), (2, self.args[1])):
            word = word.replace(f"${{{number}}}", value).replace(f"${number}", value)
        return word

    def test(self, words: List[str]) -> Optional[bool]:
        words = [self.positional(w) for w in words]
        if words[:1] == ["!"]:
            value = self.test(words[1:])
            return None if value is None else not value
        if words[:1] == ["["] and words[-1:] == ["]"]:
            return evaluate_test(words[1:-1])
        if words[:1] == ["test"]:
            return evaluate_test(words[1:])
        if words[:2] == ["dpkg", "--compare-versions"] and len(words) == 5:
            return compare(*words[2:])
        return None

    def arm_matches(self, subject: str, patterns: Sequence[str]) -> Optional[bool]:
        subject = self.positional(subject)
        if is_dynamic(subject) or any(is_dynamic(p) for p in patterns):
            return None
        return any(fnmatch.fnmatchcase(subject, p) for p in patterns)


def evaluate_test(words: List[str]) -> Optional[bool]:
    """`[ ... ]` with static operands: = == != -n -z, `!`, and a lone word; anything else is unknown."""
    if any(is_dynamic(w) for w in words) or "-a" in words or "-o" in words:
        return None
    if words[:1] == ["!"]:
        value = evaluate_test(words[1:])
        return None if value is None else not value
    if len(words) == 3 and words[1] in ("=", "=="):
        return words[0] == words[2]
    if len(words) == 3 and words[1] == "!=":
        return words[0] != words[2]
    if len(words) == 2 and words[0] in ("-n", "-z"):
        return bool(words[1]) == (words[0] == "-n")
    if len(words) == 1:
        return bool(words[0])
    return None


COMPARISONS = {"lt": lambda c: c < 0, "le": lambda c: c <= 0, "eq": lambda c: c == 0, "ne": lambda c: c != 0,
               "ge": lambda c: c >= 0, "gt": lambda c: c > 0, "<<": lambda c: c < 0, "<=": lambda c: c <= 0,
               "=": lambda c: c == 0, ">=": lambda c: c >= 0, ">>": lambda c: c > 0}


def compare(left: str, operator: str, right: str) -> Optional[bool]:
    if is_dynamic(left) or is_dynamic(right):
        return None
    empty_is_latest = operator.endswith("-nl")
    check = COMPARISONS.get(operator[:-3] if empty_is_latest else operator)
    if check is None:
        return None
    if not left or not right:
        if not left and not right:
            return check(0)
        order = 1 if empty_is_latest else -1
        return check(order if not left else -order)
    try:
        return check(compare_versions(left, right))
    except InvalidVersion:
        return None


def guarded_commands(script: str, tokens: Sequence[Tuple[str, str]]) -> List[GuardedCommand]:
    """Every simple command of the script, in order, with the guard that keeps it from a fresh install."""
    return list(Flow(script).walk(list(segments(tokens))))


__all__ = ["GuardedCommand", "guarded_commands", "NEWLINE"]
