"""The one error type a user sees: bad input, reported on one line and exit code 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input (arch spec, study file, data, arguments).

    `source` is the file (or "<arg>"), `field` the key or record at fault; str() gives
    the one-line message launch.py prints before exiting with code 2.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        self.message = message
        parts = [p for p in (source, field) if p]
        super().__init__(": ".join(parts + [message]))


def one_line(err: BaseException) -> str:
    """`Type: first line of the message` (just `Type` when the message is empty): an exception from
    a library, quoted inside a ConfigError's one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
