"""Enough of a POSIX shell reader to find the simple commands of a script, without running it.

It tokenizes words and operators (quotes kept inside words, heredoc bodies dropped), yields each
simple command's words with case patterns, function headers and redirections removed, and
resolves plain `$VAR`/`${VAR}` references to earlier `VAR=value` assignments.  Anything it cannot
read raises ShellSyntaxError; it never guesses.
"""

from __future__ import annotations

import re
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple


WORD = "word"


OP = "op"


NEWLINE = "\n"


# Longest first, so "&&" wins over "&".
OPERATORS = ("<<-", "&&", "||", ";;", ";&", "<<", ">>", ">&", "<&", "&>", ">|", ";", "&", "|", "(", ")", "<", ">")


OPERATOR_CHARS = set(";&|()<>")


SEPARATORS = {NEWLINE, "&&", "||", ";;", ";&", ";", "&", "|", "(", ")"}


REDIRECTIONS = {"<<-", "<<", ">>", ">&", "<&", "&>", ">|", "<", ">"}


RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac", "time"}


LOOP_HEADERS = {"for", "select"}


ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)


VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


class ShellSyntaxError(ValueError):
    pass


def tokenize(text: str) -> List[Tuple[str, str]]:
    """Words (quotes removed) and operators of a shell script; heredoc bodies are dropped."""
    return list(Tokenizer(text).tokens())


class Tokenizer:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.pending_heredocs: List[Tuple[str, bool]] = []  # (delimiter, strip leading tabs)

    def tokens(self) -> Iterator[Tuple[str, str]]:
        heredoc_op = ""
        while True:
            token = self.next_token()
            if token is None:
                return
            kind, value = token
            if heredoc_op and kind == WORD:
                self.pending_heredocs.append((value, heredoc_op == "<<-"))
            heredoc_op = value if kind == OP and value in ("<<", "<<-") else ""
            if kind == OP and value == NEWLINE:
                self.skip_heredoc_bodies()
            yield token

    def next_token(self) -> Optional[Tuple[str, str]]:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r":
                self.pos += 1
            elif text.startswith("\\\n", self.pos):
                self.pos += 2
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif char == "\n":
                self.pos += 1
                return OP, NEWLINE
            elif char in OPERATOR_CHARS:
                op = next(o for o in OPERATORS if text.startswith(o, self.pos))
                self.pos += len(op)
                return OP, op
            else:
                return WORD, self.read_word()
        return None

    def read_word(self) -> str:
        text = self.text
        parts = []
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n" or char in OPERATOR_CHARS:
                break
            if text.startswith("\\\n", self.pos):
                self.pos += 2
            elif char == "\\":
                parts.append(text[self.pos + 1: self.pos + 2])
                self.pos += 2
            elif char == "'":
                end = self.find_closing("'", self.pos + 1)
                parts.append(text[self.pos + 1: end])
                self.pos = end + 1
            elif char == '"':
                parts.append(self.read_double_quoted())
            elif text.startswith("$(", self.pos) or text.startswith("${", self.pos):
                parts.append(self.read_balanced())
            elif char == "`":
                end = self.find_closing("`", self.pos + 1)
                parts.append(text[self.pos: end + 1])
                self.pos = end + 1
            else:
                parts.append(char)
                self.pos += 1
        return "".join(parts)

    def find_closing(self, quote: str, start: int) -> int:
        end = self.text.find(quote, start)
        if end < 0:
            raise ShellSyntaxError(f"unterminated {quote} starting at offset {start - 1}")
        return end

    def read_double_quoted(self) -> str:
        text = self.text
        parts = []
        self.pos += 1
        while self.pos < len(text):
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(parts)
            if char == "\\" and text[self.pos + 1: self.pos + 2] in ('"', "\\", "$", "`", "\n"):
                escaped = text[self.pos + 1]
                parts.append("" if escaped == "\n" else escaped)
                self.pos += 2
            elif text.startswith("$(", self.pos) or text.startswith("${", self.pos):
                parts.append(self.read_balanced())
            else:
                parts.append(char)
                self.pos += 1
        raise ShellSyntaxError("unterminated double quote")

    def read_balanced(self) -> str:
        """`$(...)` or `${...}` kept verbatim, with what nests inside: quotes, more `$(...)`."""
        text = self.text
        start = self.pos
        opener = text[self.pos + 1]
        closer = ")" if opener == "(" else "}"
        self.pos += 2
        depth, in_double = 1, False
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\":
                self.pos += 2
                continue
            if text.startswith("$(", self.pos) or text.startswith("${", self.pos):
                self.read_balanced()
                continue
            if char == '"':
                in_double = not in_double
            elif in_double:
                pass  # quotes and parentheses inside "..." do not count
            elif char == "'":
                self.pos = self.find_closing("'", self.pos + 1)
            elif char == opener:
                depth += 1
            elif char == closer:
                depth -= 1
                if depth == 0:
                    self.pos += 1
                    return text[start: self.pos]
            self.pos += 1
        raise ShellSyntaxError(f"unterminated {text[start: start + 2]}")

    def skip_heredoc_bodies(self) -> None:
        for delimiter, strip_tabs in self.pending_heredocs:
            while self.pos < len(self.text):
                end = self.text.find("\n", self.pos)
                end = len(self.text) if end < 0 else end
                line = self.text[self.pos: end]
                self.pos = end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
        self.pending_heredocs = []


def simple_commands(tokens: Sequence[Tuple[str, str]]) -> Iterator[List[str]]:
    """The words of each simple command, with case patterns, function headers and redirections removed."""
    words: List[str] = []
    in_case_patterns = False
    index = 0
    while index < len(tokens):
        kind, value = tokens[index]
        index += 1
        if in_case_patterns and not words:
            if kind == WORD and value == "esac":
                in_case_patterns = False
            elif kind == OP and value == ")":
                in_case_patterns = False
            continue  # pattern words, "|" between them, newlines before them
        if kind == WORD:
            words.append(value)
            if len(words) == 3 and words[0] == "case" and words[2] == "in":
                words, in_case_patterns = [], True
            continue
        if value == "(" and len(words) == 1 and index < len(tokens) and tokens[index] == (OP, ")"):
            words, index = [], index + 1  # `name() {`: a function definition
            continue
        if value in REDIRECTIONS:
            if words and words[-1].isdigit():
                words.pop()  # the fd of `2>&1`
            index += 1 if index < len(tokens) and tokens[index][0] == WORD else 0
            continue
        if words:
            yield words
            words = []
        if value in (";;", ";&"):
            in_case_patterns = True
    if words:
        yield words


def command_words(words: List[str]) -> List[str]:
    """Drop leading reserved words; a `for x in ...` header is no command at all."""
    while words and words[0] in RESERVED:
        words = words[1:]
    if words and words[0] in LOOP_HEADERS:
        return []
    return words


def split_assignments(words: List[str]) -> Tuple[Dict[str, str], List[str]]:
    assignments: Dict[str, str] = {}
    while words and ASSIGNMENT.match(words[0]):
        name, value = ASSIGNMENT.match(words[0]).groups()
        assignments[name] = value
        words = words[1:]
    return assignments, words


def substitute(word: str, variables: Mapping[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))
    return VARIABLE.sub(value, word)


def is_dynamic(word: str) -> bool:
    return "$" in word or "`" in word


def shell_join(words: Sequence[str]) -> str:
    return " ".join(w if w and not re.search(r"[^\w@%+=:,./-]", w) else "'" + w.replace("'", "'\\''") + "'"
                    for w in words)


def function_names(tokens: Sequence[Tuple[str, str]]) -> set:
    return {tokens[i][1] for i in range(len(tokens) - 2)
            if tokens[i][0] == WORD and tokens[i + 1] == (OP, "(") and tokens[i + 2] == (OP, ")")}


class OptionError(ValueError):
    """A command's options that cannot be read without guessing."""


def split_options(args: Sequence[str], valued: Mapping[str, str], flags: Mapping[str, str],
                  other_flags: bool = False) -> Tuple[Dict[str, str], List[str]]:
    """getopt-style options, by canonical name, and the positionals.

    `valued` and `flags` map each spelling (`-m`, `--mode`) to a canonical name. Long options take
    `--name=value` or `--name value`; short ones may be bundled (`-pv`) and end in a value (`-m0755`);
    `--` ends the options. An option not listed raises OptionError, unless `other_flags`: then a
    lone option is kept under its own spelling, with its `=value` if it has one.
    """
    options: Dict[str, str] = {}
    positionals: List[str] = []
    rest = list(args)
    while rest:
        word = rest.pop(0)
        if word == "--":
            positionals += rest
            break
        if not word.startswith("-") or word == "-":
            positionals.append(word)
        elif word.startswith("--") or (other_flags and len(word) == 2 and word not in valued and word not in flags):
            options.update(long_option(word, rest, valued, flags, other_flags))
        else:
            options.update(short_options(word[1:], rest, valued, flags))
    return options, positionals


def long_option(word: str, rest: List[str], valued: Mapping[str, str], flags: Mapping[str, str],
                other_flags: bool) -> Dict[str, str]:
    name, has_value, value = word.partition("=")
    if name in valued:
        return {valued[name]: value if has_value else option_value(rest, name)}
    if name in flags and not has_value:
        return {flags[name]: ""}
    if other_flags:
        return {name: value}
    raise OptionError(f"option {word} is not understood")


def short_options(letters: str, rest: List[str], valued: Mapping[str, str], flags: Mapping[str, str]
                  ) -> Dict[str, str]:
    options: Dict[str, str] = {}
    while letters:
        letter, letters = "-" + letters[0], letters[1:]
        if letter in valued:
            options[valued[letter]] = letters or option_value(rest, letter)
            break
        if letter not in flags:
            raise OptionError(f"option {letter} is not understood")
        options[flags[letter]] = ""
    return options


def option_value(rest: List[str], name: str) -> str:
    if not rest:
        raise OptionError(f"option {name} has no value")
    return rest.pop(0)
