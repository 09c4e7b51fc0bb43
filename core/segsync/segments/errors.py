"""Exceptions of the segment engine.

``RuleError`` is what a user sees for a bad rule: it carries the rule text and a 1-based line
and column so ``str(err)`` can show the offending line with a caret under it. Config and CLI
code should print ``str(err)`` unchanged.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


_SHOWN = 100  # characters of a long rule line shown around the caret


class SegmentError(ValueError):
    """Base class of segment-engine errors (a ``ValueError`` so pydantic validators wrap it)."""


class RuleError(SegmentError):
    """A rule that cannot be tokenized, parsed or compiled.

    Attributes callers rely on: ``message`` (one line, no position), ``text`` (the rule),
    ``line`` and ``column`` (1-based; 0 when unknown) and ``segment`` (name, when known).
    """

    def __init__(
        self,
        message: str,
        text: str = "",
        line: int = 0,
        column: int = 0,
        segment: str | None = None,
    ) -> None:
        self.message = message
        self.text = text
        self.line = line
        self.column = column
        self.segment = segment
        super().__init__(self._render())

    def with_segment(self, segment: str) -> RuleError:
        """The same error naming the segment whose rule it is."""
        return RuleError(self.message, self.text, self.line, self.column, segment)

    def _render(self) -> str:
        where = f"segment {self.segment!r}: " if self.segment else ""
        if not self.line:
            return f"{where}{self.message}"
        head = f"{where}line {self.line}, column {self.column}: {self.message}"
        lines = self.text.splitlines() or [""]
        src = lines[self.line - 1] if self.line <= len(lines) else ""
        # Tabs would misplace the caret; render them as single spaces on both lines.
        src = src.replace("\t", " ")
        caret = self.column - 1
        if len(src) > _SHOWN:  # a long line: show the part around the caret
            start = max(0, min(caret - _SHOWN // 2, len(src) - _SHOWN))
            src = ("…" if start else "") + src[start : start + _SHOWN] + (
                "…" if start + _SHOWN < len(src) else "")
            caret = caret - start + (1 if start else 0)
        return f"{head}\n    {src}\n    {' ' * caret}^"

    def __str__(self) -> str:
        return self._render()


class SegmentConfigError(SegmentError):
    """Segments that are individually valid but do not fit together (cycles, unknown names)."""


class FunctionRegistryError(SegmentError):
    """A segment function that cannot be registered (name clash, bad declaration)."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    match = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""
