"""Person-centred crops by an affine warp, and the maps between crop and original pixels.

Convention: a point (x, y) is in pixel-index units (pixel i's centre is at i), in the original
image and in the crop alike. `affine` is the (2, 3) matrix mapping original -> crop; its inverse
maps predictions back (`crop_to_original`).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

# Square crop side = this many times the extent of the annotated joints (room for arms and context).
BOX_MARGIN = 1.3
# below this many images a process pool costs more to start than it saves
_POOL_MIN = 256


def crop_affine(center: np.ndarray, box: float, size: int) -> np.ndarray:
    """Original -> crop (2, 3) affine: the `box` x `box` square around `center` onto `size` x `size`."""
    s = size / float(box)
    cx, cy = float(center[0]), float(center[1])
    half = (size - 1) / 2.0
    return np.array([[s, 0.0, half - s * cx], [0.0, s, half - s * cy]], dtype=np.float64)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of (..., 2, 3) affines."""
    a = np.asarray(affine, dtype=np.float64)
    m = np.linalg.inv(a[..., :2, :2])
    t = -np.einsum("...ij,...j->...i", m, a[..., :2, 2])
    return np.concatenate([m, t[..., None]], axis=-1)


def _apply(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    a = np.asarray(affine, dtype=np.float64)
    out = p.copy()
    # (..., J, 2) with (..., 2, 3): broadcast one affine over each sample's joints
    out[..., :2] = np.einsum("...ij,...kj->...ki", a[..., :2, :2], p[..., :2]) + a[..., None, :2, 2]
    return out.astype(np.result_type(np.asarray(points).dtype, np.float32))


def original_to_crop(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map points (..., J, 2+) from original to crop pixels; extra columns (v) are kept."""
    return _apply(points, affine)


def crop_to_original(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map points (..., J, 2+) from crop back to original pixels (predictions -> image)."""
    return _apply(points, invert_affine(affine))


def warp_image(img: Image.Image, affine: np.ndarray, size: int) -> np.ndarray:
    """Crop `img` by the original -> crop `affine` into a (size, size, 3) uint8 array (outside = black).

    Uses JPEG draft decoding and integer reduction first, so a big photo is not decoded at full
    resolution for a small crop, and bilinear sampling does not alias.
    """
    scale = math.hypot(affine[0, 0], affine[1, 0])  # crop pixels per original pixel
    w0, h0 = img.size
    if scale < 1.0 and img.format == "JPEG":
        img.draft("RGB", (max(1, math.ceil(w0 * scale)), max(1, math.ceil(h0 * scale))))
    img = img.convert("RGB")
    fx, fy = w0 / img.size[0], h0 / img.size[1]
    k = int(1.0 / (scale * max(fx, fy))) if scale * max(fx, fy) < 0.5 else 1
    if k > 1:
        img = img.reduce(k)
        fx, fy = w0 / img.size[0], h0 / img.size[1]
    inv = invert_affine(affine)
    m, t = inv[:, :2], inv[:, 2]
    # PIL samples at continuous coordinates (pixel i spans [i, i+1)), we use pixel centres at i.
    t = t + 0.5 - m @ np.array([0.5, 0.5])
    m = m / np.array([[fx], [fy]])
    t = t / np.array([fx, fy])
    data = (m[0, 0], m[0, 1], t[0], m[1, 0], m[1, 1], t[1])
    out = img.transform(
        (size, size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.uint8)


class ImageTooLarge(ValueError):
    """An image with more pixels than PIL decodes without warning (Image.MAX_IMAGE_PIXELS, 89 M)."""


@contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """`Image.open(path)`, where an image over PIL's decompression-bomb limit (its warning from
    MAX_IMAGE_PIXELS pixels, its error from twice that) is an `ImageTooLarge` error, never a
    warning line or a traceback. The one place an image a user gives is opened."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(Path(path))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageTooLarge(f"too large to decode ({err})") from None
    with img:
        yield img


def load_crop(task: tuple[int, str, np.ndarray, int]) -> tuple[int, np.ndarray | None, str | None]:
    """Pool worker: decode one image file and crop it. Returns (index, crop or None, error or None)."""
    index, path, affine, size = task
    try:
        with open_image(path) as img:
            return index, warp_image(img, affine, size), None
    except FileNotFoundError:
        return index, None, "image file not found"
    except ImageTooLarge as err:
        return index, None, str(err)
    except (OSError, ValueError, SyntaxError) as err:  # PIL's ways of saying "corrupt"
        return index, None, f"cannot decode image ({type(err).__name__}: {err})"


def decode_crops(
    paths: list[str], affines: list[np.ndarray], size: int, workers: int | None
) -> tuple[dict[int, np.ndarray], list[tuple[int, str]]]:
    """Decode and crop every image (`workers` processes, default up to 4); returns the crops by
    index and sorted (index, error) pairs for the images that failed."""
    tasks = [(i, p, a, size) for i, (p, a) in enumerate(zip(paths, affines))]
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    crops: dict[int, np.ndarray] = {}
    errors: list[tuple[int, str]] = []

    def collect(results) -> None:
        for i, img, err in results:
            if err:
                errors.append((i, err))
            else:
                crops[i] = img

    if workers <= 1 or len(tasks) < _POOL_MIN:
        collect(map(load_crop, tasks))
    else:
        # fork, like torch's DataLoader: no re-import of __main__ (spawn breaks for stdin scripts),
        # and the children only run PIL and numpy, never the parent's torch threads or CUDA.
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
        with ctx.Pool(workers) as pool:
            collect(pool.imap(load_crop, tasks, chunksize=32))
    errors.sort()
    return crops, errors
