"""Crash-safe files: checkpoints (torch, weights_only) and strict JSON, written via temp file + os.replace."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from space.errors import ConfigError, one_line
from space.files import check_file
from trainers.outputs import atomic_temp_pattern, new_folders, remove_stale


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write via a temp file in the same folder and os.replace, so a crash never leaves half a file.

    The temp file is removed on every failure (a full disk included), folders made for it are not
    left empty, and temp files of this pattern that a killed process left are removed first
    (trainers.outputs)."""
    path = Path(path)
    with new_folders(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path.parent, atomic_temp_pattern(path.name))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def save_torch(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def jsonable(obj: Any) -> Any:
    """NaN/inf -> None, so the file is strict JSON (a joint never annotated has no score)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def save_json(obj: Any, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(jsonable(obj), f, indent=2, allow_nan=False)

    atomic_write(path, write)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint or bare state_dict, read with weights_only=True; ConfigError when unreadable."""
    path = check_file(path, field="weights", what="a checkpoint")  # missing, a folder, a FIFO
    if path.stat().st_size == 0:
        raise ConfigError("is empty (0 bytes), not a checkpoint", source=str(path), field="weights")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, not a torch file, forbidden pickle content
        raise ConfigError(
            f"cannot load checkpoint ({one_line(err)})", source=str(path), field="weights"
        ) from None
