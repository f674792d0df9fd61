"""Errors a user can cause. The CLI prints them as one line and exits with status 2."""
from __future__ import annotations


class CogsimError(Exception):
    """A mistake in user input (file, option, size) reported without a traceback."""

    exit_code = 2


class SpecError(CogsimError):
    """A mistake in an architecture file, located by file and line."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None, where: str = ""):
        self.file, self.line, self.where, self.message = file, line, where, message
        loc = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(f"{loc}{where + ': ' if where else ''}{message}")
