"""Gaussian heatmap targets and their decoding.

Coordinate convention: pixel centres sit at integer coordinates (as in an affine warp that samples
the source at integer pixel positions), both in the crop and in the heatmap. A heatmap pixel at
stride s covers crop pixels s*j .. s*j+s-1, so its centre is at crop coordinate s*j + (s-1)/2:

    heatmap = (crop + 0.5) / s - 0.5        crop = (heatmap + 0.5) * s - 0.5

With this convention a horizontal flip of the crop (x -> S-1-x) is exactly a flip of the heatmap
(u -> W-1-u), so the flip test needs no extra pixel shift for pooling-based down-sampling.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Output stride of every hourglass in space.model (two stride-2 stages in the stem).
STRIDE = 4
# sigma of the target Gaussian at a 64 px heatmap (256 px input); scaled with the resolution.
SIGMA_AT_64 = 2.0


def default_sigma(out_size: int) -> float:
    """Sigma in heatmap pixels for an out_size heatmap: 2 at 64 px, proportional to resolution.

    Keeping sigma a fixed fraction of the person keeps the task identical across proxy
    resolutions; it is floored at 1 px so small proxies still get a peak wider than one pixel
    (the quarter-offset decoding needs a smooth neighbourhood).
    """
    return max(1.0, SIGMA_AT_64 * out_size / 64.0)


def crop_to_heatmap(xy: Tensor, stride: int = STRIDE) -> Tensor:
    """Crop pixel coordinates (..., 2) -> heatmap pixel coordinates."""
    return (xy + 0.5) / stride - 0.5


def heatmap_to_crop(uv: Tensor, stride: int = STRIDE) -> Tensor:
    """Heatmap pixel coordinates (..., 2) -> crop pixel coordinates."""
    return (uv + 0.5) * stride - 0.5


def render_heatmaps(
    joints: Tensor, out_size: int, sigma: float | None = None
) -> tuple[Tensor, Tensor]:
    """Gaussian targets for joints given in HEATMAP pixel coordinates.

    joints: (N, J, 3) x, y, v (v > 0: annotated). Returns (heatmaps (N, J, H, W), weights (N, J)).
    A joint that is unannotated or whose peak falls outside the map gets an all-zero target and
    weight 0, so the masked loss neither rewards nor punishes any prediction for it.
    """
    if sigma is None:
        sigma = default_sigma(out_size)
    x, y, v = joints[..., 0], joints[..., 1], joints[..., 2]
    grid = torch.arange(out_size, device=joints.device, dtype=joints.dtype)
    # Separable Gaussian: an outer product of two 1-D profiles is far cheaper than a full 2-D grid.
    gx = torch.exp(-((grid - x[..., None]) ** 2) / (2 * sigma**2))  # (N, J, W)
    gy = torch.exp(-((grid - y[..., None]) ** 2) / (2 * sigma**2))  # (N, J, H)
    inside = (x > -0.5) & (x < out_size - 0.5) & (y > -0.5) & (y < out_size - 0.5)
    weights = ((v > 0) & inside).to(joints.dtype)
    heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
    return heatmaps, weights


def decode_heatmaps(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Peak positions of (N, J, H, W) heatmaps in heatmap pixel coordinates.

    Argmax, then a quarter pixel towards the higher neighbour on each axis (Newell et al.): for a
    symmetric peak this halves the worst-case quantisation error to 0.25 px.
    Returns (coords (N, J, 2) float32 as x, y; maxvals (N, J)).
    """
    n, j, h, w = heatmaps.shape
    hm = heatmaps.detach().float()
    flat = hm.reshape(n, j, h * w)
    maxvals, idx = flat.max(dim=-1)
    px, py = idx % w, idx // w
    coords = torch.stack([px, py], dim=-1).float()

    def value(xx: Tensor, yy: Tensor) -> Tensor:
        return flat.gather(-1, (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1))[..., None])[..., 0]

    dx = value(px + 1, py) - value(px - 1, py)
    dy = value(px, py + 1) - value(px, py - 1)
    # No refinement on the border, where one neighbour does not exist.
    dx = torch.where((px > 0) & (px < w - 1), dx, torch.zeros_like(dx))
    dy = torch.where((py > 0) & (py < h - 1), dy, torch.zeros_like(dy))
    coords += 0.25 * torch.stack([torch.sign(dx), torch.sign(dy)], dim=-1)
    return coords, maxvals


def flip_heatmaps(heatmaps: Tensor, flip_pairs: list[tuple[int, int]] | list[list[int]]) -> Tensor:
    """Mirror (N, J, H, W) heatmaps of a flipped image back and swap left/right joint channels."""
    flipped = heatmaps.flip(-1)
    perm = list(range(heatmaps.shape[1]))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return flipped[:, perm]
