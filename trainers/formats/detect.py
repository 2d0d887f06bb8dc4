"""Which registered format a path holds, and the `Source` a parsed data string names."""

from __future__ import annotations

from pathlib import Path

from space.errors import ConfigError
from trainers.formats.base import FORMATS, DatasetFormat, Source


def detection_order() -> list[DatasetFormat]:
    """The formats `resolve` asks, in registration order; an alias (a class registered twice)
    once, and no generated format (it has no files to claim)."""
    seen: list[type] = []
    for name in FORMATS:
        cls = FORMATS.get(name)
        if cls not in seen and getattr(cls, "files", True):
            seen.append(cls)
    return [cls() for cls in seen]


def _undetected(path: Path) -> ConfigError:
    formats = detection_order()
    if path.is_dir():
        hints = [f.folder_hint for f in formats if f.folder_hint]
        expected = ", ".join(hints[:-1]) + " or " + hints[-1] if len(hints) > 1 else "".join(hints)
        return ConfigError(
            f"cannot tell the dataset format of this folder (expected {expected})",
            source=str(path),
            field="data",
        )
    suffixes = list(dict.fromkeys(s for f in formats for s in f.suffixes))
    return ConfigError(
        f"unknown data file type {path.suffix.lower()!r} ({', '.join(suffixes)})",
        source=str(path),
        field="data",
    )


def detect_format(path: Path) -> DatasetFormat:
    """The first format in `detection_order` that claims the existing `path`."""
    for fmt in detection_order():
        if fmt.detect(path):
            return fmt
    raise _undetected(path)


def locate(name: str | None, path: Path) -> DatasetFormat:
    """The format of the existing `path`: detected (`name` None), or the named one, checked."""
    src = str(path)
    if not path.exists():
        raise ConfigError("data path does not exist", source=src, field="data")
    if name is None:
        return detect_format(path)
    fmt = FORMATS.create(name)
    if not fmt.detect(path):
        other = detect_format(path)
        raise ConfigError(
            f"format {name!r} given but the file looks like {other.name}", source=src, field="data"
        )
    return fmt


def resolve(name: str | None, path: Path, split: str) -> tuple[DatasetFormat, Path]:
    """Detect the format of `path` (or check the named one) and find its annotation file for
    `split`."""
    fmt = locate(name, path)
    return fmt, fmt.annotation_file(path, split)


def open_source(name: str, path: Path | None, count: int | None = None) -> Source:
    """The `Source` of a parsed data string (`trainers.data.parse_data`): the generated format
    `name` with `count` samples per split where there is no path, else the format of `path`
    (detected when `name` is '')."""
    if path is None:
        return Source(FORMATS.create(name), count=count)
    return Source(locate(name or None, path), path)
