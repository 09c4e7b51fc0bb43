"""Tokenizer of the rule language.

Produces a list of :class:`Token` ending with an ``EOF`` token. Every token knows its 1-based
line and column so parser errors can point at it. Common habits from other languages (``&&``,
``=``, ``AND``) are rejected with a hint rather than a bare "unexpected character".
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .errors import RuleError


class Kind(enum.Enum):
    NUMBER = "number"
    DURATION = "duration"
    STRING = "string"
    NAME = "name"
    KEYWORD = "keyword"
    OP = "operator"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    EOF = "end of rule"


KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
DURATION_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
COMPARISON_OPS = ("==", "!=", "<=", ">=", "<", ">")
# Bounds that keep every literal representable in Python, in SQL and in the store's date range.
MAX_INTEGER = 2**63 - 1  # a BIGINT in every engine
MAX_DURATION_DAYS = 999_999_999  # what a timedelta holds; a window must also start after year 1

# Operators people bring from SQL, Python or C, and what to write instead.
_HINTS = {
    "&&": "write 'and'",
    "||": "write 'or'",
    "!": "write 'not'",
    "=": "write '==' to compare",
    "<>": "write '!='",
}
_UPPER_KEYWORDS = {kw.upper(): kw for kw in KEYWORDS}


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str  # the source text of the token
    value: object  # int/float for NUMBER, (amount, unit) for DURATION, str for STRING/NAME
    line: int
    column: int

    def describe(self) -> str:
        """How error messages name this token."""
        if self.kind is Kind.EOF:
            return "the end of the rule"
        return repr(self.text)


def _is_digit(ch: str) -> bool:
    # str.isdigit() accepts '²' and other digits int() rejects.
    return "0" <= ch <= "9"


def _is_name_start(ch: str) -> bool:
    return ch.isascii() and (ch.isalpha() or ch == "_")


def _is_name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def _short(text: str, limit: int = 24) -> str:
    """``text`` cut for an error message (the caret shows where it is)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raises :class:`RuleError` at the first bad character."""
    tokens: list[Token] = []
    i, line, line_start, n = 0, 1, 0, len(text)

    def err(msg: str, at: int) -> RuleError:
        return RuleError(msg, text, line, at - line_start + 1)

    # A lone surrogate is not text: it cannot be encoded, so it must never reach SQL.
    bad = next((k for k, c in enumerate(text) if "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        line = text.count("\n", 0, bad) + 1
        line_start = text.rfind("\n", 0, bad) + 1
        raise err(f"invalid character U+{ord(text[bad]):04X} (a lone surrogate)", bad)

    while i < n:
        ch = text[i]
        col = i - line_start + 1
        if ch == "\n":
            i += 1
            line, line_start = line + 1, i
            continue
        if ch.isspace():
            i += 1
            continue
        if ch == "#":  # comment to end of line, useful in multi-line TOML rules
            while i < n and text[i] != "\n":
                i += 1
            continue
        if _is_digit(ch):
            j = i
            while j < n and _is_digit(text[j]):
                j += 1
            is_float = False
            if j + 1 < n and text[j] == "." and _is_digit(text[j + 1]):
                is_float = True
                j += 1
                while j < n and _is_digit(text[j]):
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and _is_digit(text[k]):
                    is_float = True
                    j = k
                    while j < n and _is_digit(text[j]):
                        j += 1
            number_text = text[i:j]
            whole = number_text.split(".")[0].split("e")[0].split("E")[0]
            if j < n and _is_name_start(text[j]):
                k = j
                while k < n and _is_name_char(text[k]):
                    k += 1
                unit = text[j:k]
                if unit not in DURATION_UNITS:
                    raise err(
                        f"unknown duration unit {unit!r} in {text[i:k]!r}; "
                        "expected h (hours), d (days) or w (weeks), e.g. 30d",
                        j,
                    )
                if is_float:
                    raise err(
                        f"a duration takes a whole number, not {number_text!r}; "
                        "use a smaller unit, e.g. 36h",
                        i,
                    )
                # Compare digits before int(): Python refuses to parse very long numbers.
                limit = MAX_DURATION_DAYS * 86400 // DURATION_UNITS[unit]
                if len(whole.lstrip("0")) > len(str(limit)) or int(whole) > limit:
                    raise err(
                        f"duration {_short(text[i:k])!r} is too long (at most {limit}{unit}); "
                        "leave the window out to mean all history",
                        i,
                    )
                tokens.append(Token(Kind.DURATION, text[i:k], (int(number_text), unit), line, col))
                i = k
                continue
            value: object
            if is_float:
                value = float(number_text)
                if not math.isfinite(value):
                    raise err(f"number {_short(number_text)!r} is out of range", i)
            else:
                if len(whole.lstrip("0")) > len(str(MAX_INTEGER)) or int(whole) > MAX_INTEGER:
                    raise err(f"number {_short(number_text)!r} is too large (at most {MAX_INTEGER}; "
                              "write larger numbers as decimals, e.g. 1e20)", i)
                value = int(number_text)
            tokens.append(Token(Kind.NUMBER, number_text, value, line, col))
            i = j
            continue
        if _is_name_start(ch):
            j = i
            while True:
                while j < n and _is_name_char(text[j]):
                    j += 1
                if j < n and text[j] == ".":
                    if j + 1 < n and _is_name_start(text[j + 1]):
                        j += 1
                        continue
                    raise err("expected a name after '.'", j + 1)
                break
            word = text[i:j]
            if word in KEYWORDS:
                tokens.append(Token(Kind.KEYWORD, word, word, line, col))
            elif word in _UPPER_KEYWORDS or word.lower() in KEYWORDS and word != word.lower():
                raise err(f"keywords are lowercase: write {word.lower()!r}", i)
            else:
                tokens.append(Token(Kind.NAME, word, word, line, col))
            i = j
            continue
        if ch in "\"'":
            j, chars = i + 1, []
            while True:
                if j >= n or text[j] == "\n":
                    raise err(f"unterminated string: expected a closing {ch}", i)
                c = text[j]
                if c == ch:
                    break
                if c == "\\":
                    if j + 1 >= n:
                        raise err(f"unterminated string: expected a closing {ch}", i)
                    esc = text[j + 1]
                    mapped = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}.get(esc)
                    if mapped is None:
                        raise err(
                            f"unknown escape '\\{esc}'; strings know \\\\, \\\", \\', \\n and \\t",
                            j,
                        )
                    chars.append(mapped)
                    j += 2
                    continue
                chars.append(c)
                j += 1
            tokens.append(Token(Kind.STRING, text[i : j + 1], "".join(chars), line, col))
            i = j + 1
            continue
        two = text[i : i + 2]
        if two in _HINTS:
            raise err(f"unexpected {two!r}: {_HINTS[two]}", i)
        if two in COMPARISON_OPS:
            tokens.append(Token(Kind.OP, two, two, line, col))
            i += 2
            continue
        if ch in "<>-":
            tokens.append(Token(Kind.OP, ch, ch, line, col))
            i += 1
            continue
        if ch in _HINTS:
            raise err(f"unexpected {ch!r}: {_HINTS[ch]}", i)
        simple = {"(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA}.get(ch)
        if simple is not None:
            tokens.append(Token(simple, ch, ch, line, col))
            i += 1
            continue
        raise err(f"unexpected character {ch!r}", i)
    tokens.append(Token(Kind.EOF, "", None, line, n - line_start + 1))
    return tokens
