"""Where output goes: every command checks its output path here once, before any work, and writes
through `writing` (docs/reliability.md, "Where output goes").

- `check_output_file` / `check_output_dir`: refuse (ConfigError, one line) a path inside the
  project's source (never, not even with --force), an existing file that is not the command's own
  kind of output (without --force), a folder where a file goes and a file where a folder goes, a
  folder that cannot be written (read-only file system, no permission) and a disk with less than
  `min_free_bytes()` free.
- `writing(path)`: around the writes; folders it finds missing and that are still empty on a
  failure are removed, and a full disk or a read-only file system met while writing becomes one
  ConfigError line.
- `remove_stale(folder, pattern)`: the temporaries a killed run of the same kind left behind (names
  matching its own pattern, older than this process).

Imports only the standard library and space.errors: trainers.io and search.export use it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from space.errors import ConfigError

# The checkout (or site-packages) the packages are imported from; its source is never written.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Top-level entries of the project that are source: never an output, nor inside one.
SOURCE_NAMES = frozenset(
    {
        "space",
        "trainers",
        "search",
        "cli",
        "tests",
        "benchmarks",
        "studies",
        "docs",
        "launch.py",
        "pyproject.toml",
        "README.md",
        "LICENSE",
    }
)
# Top-level files with these suffixes are source too (setup.cfg, requirements.txt, uv.lock ...).
SOURCE_SUFFIXES = frozenset({".py", ".toml", ".md", ".cfg", ".txt", ".lock", ".ini"})
MIN_FREE_MB = 32  # default; SOFTGATE_MIN_FREE_MB overrides
ATOMIC_TMP = r"[A-Za-z0-9_]{8}\.tmp"  # tempfile.mkstemp's 8 random characters, then .tmp

_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}  # none of them comes from a read
_DB_MESSAGES = {
    "database or disk is full": "no space left on device",
    "attempt to write a readonly database": "read-only file system",
}


def min_free_bytes() -> int:
    """The free space a command needs on the disk it writes to before it starts."""
    try:
        mb = float(os.environ.get("SOFTGATE_MIN_FREE_MB", MIN_FREE_MB))
    except ValueError:
        mb = MIN_FREE_MB
    return int(mb * 2**20)


def in_source(path: str | Path, *, folder: bool = False) -> bool:
    """Whether `path` (symlinks resolved) is part of the project's source: inside one of its source
    folders or top-level source files, a hidden top-level entry (.git, .venv), or, for a folder
    that outputs go into directly, the project root itself."""
    resolved, root = Path(path).resolve(), PROJECT_ROOT
    if resolved == root:
        return folder
    try:
        parts = resolved.relative_to(root).parts
    except ValueError:
        return False
    top = parts[0]
    return (
        top in SOURCE_NAMES
        or top.startswith(".")
        or (len(parts) == 1 and Path(top).suffix in SOURCE_SUFFIXES)
    )


def check_not_source(
    path: str | Path, *, source: str = "<arg>", field: str = "--out", folder: bool = False
) -> None:
    """ConfigError when `path` is part of the project's source (`in_source`), whatever --force."""
    if in_source(path, folder=folder):
        resolved = Path(path).resolve()
        shown = repr(str(path)) + (
            "" if resolved == Path(os.path.abspath(path)) else f" (a link to {str(resolved)!r})"
        )
        raise ConfigError(
            f"{shown} is part of the project's source ({PROJECT_ROOT}); "
            "outputs go elsewhere (e.g. runs/)",
            source=source,
            field=field,
        )


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def _may_write(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def check_writable(folder: str | Path, *, source: str = "<arg>", field: str = "--out") -> None:
    """The folder `folder` is (or will be made in) can be written and has room: its nearest
    existing ancestor is a folder, writable, on a disk with `min_free_bytes()` free."""
    where = _nearest_existing(Path(folder))
    if not where.is_dir():
        raise ConfigError(f"{str(where)!r} is a file, not a folder", source=source, field=field)
    if _read_only(where):
        raise ConfigError(
            f"cannot write in {str(where)!r}: read-only file system", source=source, field=field
        )
    if not _may_write(where):
        raise ConfigError(
            f"cannot write in {str(where)!r}: permission denied", source=source, field=field
        )
    free, need = shutil.disk_usage(where).free, min_free_bytes()
    if free < need:
        raise ConfigError(
            f"only {free / 2**20:.1f} MiB free on the disk of {str(where)!r}, "
            f"{need / 2**20:.0f} MiB needed (SOFTGATE_MIN_FREE_MB)",
            source=source,
            field=field,
        )


def check_output_dir(path: str | Path, source: str = "<arg>", field: str = "--out") -> Path:
    """`path` may become (or already is) a folder of outputs: not the project's source, not an
    existing file, writable with room. What may be replaced inside is the command's own rule."""
    path = Path(path)
    check_not_source(path, source=source, field=field, folder=True)
    if os.path.lexists(path) and not path.is_dir():
        raise ConfigError(f"{str(path)!r} is a file, not a folder", source=source, field=field)
    check_writable(path, source=source, field=field)
    return path


def check_output_file(
    path: str | Path,
    *,
    source: str = "<arg>",
    field: str = "--out",
    force: bool = False,
    own: Callable[[Path], bool] | None = None,
    kind: str = "output",
    parent_must_exist: bool = False,
) -> Path:
    """`path` may be written as one file: not the project's source (never, whatever `force`), not
    a folder, and when it exists either the command's own kind of output (`own(path)`) or `force`
    given; its folder writable with room (and existing, with `parent_must_exist`)."""
    path = Path(path)
    check_not_source(path, source=source, field=field)
    if path.is_dir():
        raise ConfigError(
            f"{str(path)!r} is a folder, give a file name", source=source, field=field
        )
    if os.path.lexists(path) and not force and not (own is not None and own(path)):
        raise ConfigError(
            f"{str(path)!r} exists and is not {kind}; pass --force to replace it",
            source=source,
            field=field,
        )
    check_writable(path.parent, source=source, field=field)
    if parent_must_exist and not path.parent.is_dir():
        raise ConfigError(f"folder {str(path.parent)!r} does not exist", source=source, field=field)
    return path


def disk_error(err: BaseException) -> str | None:
    """'no space left on device' (or another reason) when `err`, or an error it was raised from,
    is the file system refusing a write; None for any other error."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in _DISK_ERRNOS:
            return _DISK_ERRNOS[cause.errno]
        for text, reason in _DB_MESSAGES.items():
            if text in str(cause):
                return reason
        cause = cause.__cause__ or cause.__context__
    return None


def _missing_folders(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first."""
    missing, path = [], Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first: a parent empties once its child is gone
        try:
            folder.rmdir()
        except OSError:  # not empty, not a folder, or never made
            pass


@contextmanager
def new_folders(path: str | Path) -> Iterator[None]:
    """On a failure inside the block, the folders among `path` and its ancestors that were
    missing when it began and are empty now are removed."""
    missing = _missing_folders(Path(path))
    try:
        yield
    except BaseException:
        _remove_if_empty(missing)
        raise


@contextmanager
def writing(
    path: str | Path, *, source: str | None = None, field: str = "--out", hint: str = ""
) -> Iterator[None]:
    """Around a command's writes to `path` (a file or a folder): no folder it made is left empty
    on a failure, and a write the file system refuses (full disk, quota, read-only)
    becomes `ConfigError(reason + hint)`; other errors propagate unchanged."""
    try:
        with new_folders(path):
            yield
    except ConfigError:
        raise
    except Exception as err:
        reason = disk_error(err)
        if reason is None:
            raise
        raise ConfigError(
            f"{reason} while writing{hint}", source=source or str(path), field=field
        ) from None


def _process_start() -> float:
    """When this process started (Linux /proc), else now."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


PROCESS_START = _process_start()


def remove_stale(folder: str | Path, pattern: str) -> list[Path]:
    """Remove the entries of `folder` whose name fully matches the regex `pattern` (a command's own
    temporaries) and that are older than this process: another run, killed, left them. Entries a
    run started before this one still writes are newer than it started, and stay."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        try:
            if not re.fullmatch(pattern, entry.name) or entry.lstat().st_mtime >= PROCESS_START:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def atomic_temp_pattern(name: str) -> str:
    """The names trainers.io.atomic_write gives its temporaries for a file called `name`."""
    return re.escape(f".{name}.") + ATOMIC_TMP
