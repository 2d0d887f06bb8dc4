"""The helpers the dataset readers share (trainers/formats/lsp.py, mpii.py, coco.py): JSON files and
their entries, joints cleaned to v in {0, 1}, the person box from the joints, joint distances.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trainers.crop import BOX_MARGIN
from trainers.formats.base import DataError, Record


def bad_record(what: str, err: Exception, src: str, field: str) -> DataError:
    """One record of a JSON annotation file is malformed: name the missing key or the bad value."""
    detail = err.args[0] if isinstance(err, KeyError) else err
    return DataError(f"{what} ({type(err).__name__}: {detail})", source=src, field=field)


def read_entries(
    entries: list,
    make: Callable[[Any], Record | None],
    what: str,
    src: str,
    field: str,
    skip_bad: bool,
) -> tuple[list[Record], int]:
    """`make(entry)` for each entry of a JSON list (None: not a record of this split); a bad entry
    raises `bad_record` naming `field.format(i)`, or with `skip_bad` is skipped and counted."""
    records, skipped = [], 0
    for i, entry in enumerate(entries):
        try:
            rec = make(entry)
        except (KeyError, TypeError, ValueError) as err:
            if not skip_bad:
                raise bad_record(what, err, src, field.format(i)) from err
            skipped += 1
            continue
        if rec is not None:
            records.append(rec)
    return records, skipped


def clean_joints(j: np.ndarray) -> np.ndarray:
    """(J, 3) joints with v in {0, 1}; non-finite or unannotated joints become (0, 0, 0)."""
    j = np.asarray(j, dtype=np.float64).copy()
    bad = ~np.isfinite(j[:, :2]).all(axis=1)
    j[bad, 2] = 0.0
    j[j[:, 2] <= 0, :3] = 0.0
    j[:, 2] = (j[:, 2] > 0).astype(np.float64)
    return j


def box_from_joints(joints: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """Centre, crop side and raw extent of the annotated joints; None with fewer than two."""
    vis = joints[:, 2] > 0
    if vis.sum() < 2:
        return None
    xy = joints[vis, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    extent = float(max(hi - lo))
    if extent <= 0:
        return None
    return (lo + hi) / 2.0, extent * BOX_MARGIN, extent


def joint_distance(j: np.ndarray, a: int, b: int) -> float | None:
    """Distance of joints `a` and `b` in (J, 3) `j`; None unless both are annotated and apart."""
    if j[a, 2] > 0 and j[b, 2] > 0:
        d = float(np.hypot(*(j[a, :2] - j[b, :2])))
        return d if d > 0 else None
    return None


def load_json(path: Path) -> Any:
    """A JSON annotation file; a missing or unparsable one is a one-line DataError."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=str(path)) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", source=str(path)) from err


def first_char(path: Path) -> str:
    """'[' for an MPII list, '{' for a COCO dict, without parsing a possibly huge file twice."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1].decode("ascii", "replace")
