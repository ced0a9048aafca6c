"""Typed errors with messages for people.

Every error says what went wrong, where (file, record), and what to do next.
The CLI prints ``str(error)`` on one line and exits with ``exit_code``.
"""

from __future__ import annotations


class CimError(Exception):
    """Base of all errors the project raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message} ({hint})")


class ConfigError(CimError):
    """Settings or environment are not usable."""


class DatabaseError(CimError):
    """The database cannot be reached, started or used."""

    exit_code = 3


class InputError(CimError):
    """A source file cannot be read or holds unusable data."""

    exit_code = 2

    def __init__(self, source: str, problem: str, *, record: str | None = None, hint: str | None = None) -> None:
        self.source = source
        self.problem = problem
        self.record = record
        where = f"{source}" + (f", {record}" if record else "")
        super().__init__(f"{where}: {problem}", hint=hint)


class CrsError(InputError):
    """A coordinate reference system is missing, unknown or cannot be applied."""


class NotFoundError(CimError):
    """A named layer, tileset or record does not exist."""

    exit_code = 4


class Unauthenticated(CimError):
    """No identity, or a wrong one, where one is needed (HTTP 401)."""

    exit_code = 5


class Forbidden(CimError):
    """An identity whose roles do not allow what it asks (HTTP 403)."""

    exit_code = 5
