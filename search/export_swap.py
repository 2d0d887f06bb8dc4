"""Putting a new export in place of the old one atomically (search/export.py writes it first into a
temporary folder beside the target): a crash leaves either the old export or the new one
(docs/reliability.md), and what a killed export left beside the target is removed by the next one.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from search.faults import fault_point
from space.errors import ConfigError
from trainers.outputs import remove_stale


def export_temp_pattern(name: str) -> str:
    """The names of the folders an export to a folder called `name` makes beside it: its
    temporary (mkdtemp) and the old export moved aside (`swap_into_place`)."""
    return re.escape(f".{name}.") + r"(tmp-[A-Za-z0-9_]{8}|old-[0-9]+)"


def replace_folder(
    out_dir: Path, old_files: set[str], write: Callable[[Path], list[str]], last: str
) -> list[str]:
    """`write(tmp)` into a fresh temporary folder beside `out_dir`, then `swap_into_place`; return
    what `write` returned. On any error the temporary is removed and `out_dir` is as it was."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir.parent, export_temp_pattern(out_dir.name))  # a killed export's
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        files = write(tmp)
        swap_into_place(tmp, out_dir, old_files, last)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


def swap_into_place(tmp: Path, out_dir: Path, old_files: set[str], last: str) -> None:
    """`tmp`'s files become the export in `out_dir`; of `out_dir`'s own files only `old_files` go.
    Where other files sit beside the export, file by file with `last` (the index) renamed last."""
    others = {p.name for p in out_dir.iterdir()} - old_files if out_dir.is_dir() else set()
    if others:  # a user's files beside the export stay: file by file, index.csv last
        _replace_files(tmp, out_dir, old_files, others, last)
        return
    if out_dir.exists() and _exchange(tmp, out_dir):
        fault_point("export_swap")
        shutil.rmtree(tmp)  # now the old export
        return
    # os.replace cannot replace a non-empty folder: move the old one aside first, then drop it
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    fault_point("export_swap")
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _replace_files(
    tmp: Path, out_dir: Path, old_files: set[str], others: set[str], last: str
) -> None:
    new = {p.name for p in tmp.iterdir()}
    clash = sorted(new & others)
    if clash:
        raise ConfigError(
            f"{clash[0]} is not the export's own file; move it away first",
            source=str(out_dir),
            field="export.dir",
        )
    # each rename is atomic; until the new index.csv is in, the old index names the old export
    for name in sorted(new - {last}):
        os.replace(tmp / name, out_dir / name)
    os.replace(tmp / last, out_dir / last)
    for name in old_files - new:
        (out_dir / name).unlink(missing_ok=True)
    tmp.rmdir()
