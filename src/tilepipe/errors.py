"""Source locations and the error hierarchy every layer raises.

A user mistake is always a :class:`TilepipeError` subclass whose message names what is
wrong and, where there is one, the source file, line and column it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A position in a source file: 1-based line and column, with the line's text."""

    source_name: str
    line: int
    column: int = 0
    text: str = ""

    def __str__(self) -> str:
        return f"{self.source_name}:{self.line}:{self.column}"


class TilepipeError(Exception):
    """Base of every error tilepipe reports to a user."""

    def __init__(self, message: str, span: Span | None = None):
        self.message = message
        self.span = span
        super().__init__(self._format())

    def _format(self) -> str:
        if self.span is None:
            return self.message
        location = f"{self.span}: {self.message}"
        if self.span.text:
            caret = " " * max(self.span.column - 1, 0) + "^"
            return f"{location}\n    {self.span.text}\n    {caret}"
        return location


class ParseError(TilepipeError):
    """The source is not a tile program tilepipe can read."""


class PipelineError(TilepipeError):
    """A pipeline annotation is invalid or cannot be honoured."""


class LoweringError(TilepipeError):
    """A program cannot be lowered to the requested target."""


class RaceError(TilepipeError):
    """A program has a data race or a deadlock under the synchronization model."""
