"""Reading the files a user names (study files, arch YAMLs, exported YAMLs): one place that turns
every way a file can be unreadable into a one-line ConfigError naming it.

    read_yaml_file(path, field="--study")   # -> the parsed document

Checked in this order, each before any work is done: the path exists, is not a folder, is a
regular file (not a FIFO or device, which could block forever), is at most `max_bytes` long
(a 60 MB "study file" is refused at once instead of parsed for a minute), is UTF-8 text (a binary
file is not a UnicodeDecodeError traceback), and is valid YAML (the line of the first problem).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from space.errors import ConfigError

MAX_YAML_BYTES = 1_000_000  # a study file or arch spec is a few hundred bytes; exports a few KB


def check_file(path: str | Path, *, field: str | None = None, what: str = "a file") -> Path:
    """`path` as a Path, or a ConfigError: "no such file", "is a folder, not WHAT", "is not a
    regular file" (`what` with its article: "a study file")."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError("no such file", source=str(path), field=field) from None
    except OSError as err:
        raise ConfigError(
            f"cannot read ({err.strerror or type(err).__name__})", source=str(path), field=field
        ) from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"is a folder, not {what}", source=str(path), field=field)
    if not stat.S_ISREG(mode):
        raise ConfigError(f"is not a regular file (expected {what})", source=str(path), field=field)
    return path


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB" if n >= 1e3 else f"{n} bytes"


def read_text_file(
    path: str | Path,
    *,
    field: str | None = None,
    what: str = "a text file",
    max_bytes: int = MAX_YAML_BYTES,
) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes`; a ConfigError naming the file
    otherwise (see `check_file`; "is 60.0 MB, too large for WHAT (at most 1.0 MB)"; "is
    binary, not UTF-8 text"). A leading byte-order mark is dropped."""
    path = check_file(path, field=field, what=what)
    source = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)  # not the stat size: a file may grow while read
    except OSError as err:
        raise ConfigError(
            f"cannot read ({err.strerror or type(err).__name__})", source=source, field=field
        ) from None
    if len(data) > max_bytes:
        total = max(path.stat().st_size, len(data))
        raise ConfigError(
            f"is {_size(total)}, too large for {what} (at most {_size(max_bytes)})",
            source=source,
            field=field,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"is binary, not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
            f"{err.start}); expected {what}",
            source=source,
            field=field,
        ) from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """'line N: not valid YAML (problem)' for any PyYAML error."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    problem = getattr(err, "problem", None) or getattr(err, "reason", None) or str(err)
    problem = " ".join(str(problem).split())  # one line, whatever PyYAML wrapped
    return f"{where}not valid YAML ({problem})"


def read_yaml_file(
    path: str | Path,
    *,
    field: str | None = None,
    what: str = "a YAML file",
    max_bytes: int = MAX_YAML_BYTES,
) -> Any:
    """The parsed YAML document in `path` (yaml.safe_load), after `read_text_file`'s checks; a bad
    document is one ConfigError naming the file and the line of the problem."""
    text = read_text_file(path, field=field, what=what, max_bytes=max_bytes)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_problem(err), source=str(path), field=field) from None
    except RecursionError:
        raise ConfigError(
            "not valid YAML (nested too deeply)", source=str(path), field=field
        ) from None
