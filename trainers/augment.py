"""Batched training augmentation on tensors: one random similarity per sample, on any device.

Scale, rotation and horizontal flip are one affine per sample applied to the image with
F.affine_grid / F.grid_sample and to the joints with the same matrix, so joints and pixels cannot
drift apart; a flip also swaps left and right joint indices. Colour jitter scales each channel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def flip_permutation(num_joints: int, flip_pairs: Sequence[Sequence[int]]) -> list[int]:
    """Index map that swaps each (left, right) pair: joints_flipped = joints[:, perm]."""
    perm = list(range(num_joints))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


def augment_batch(
    images: torch.Tensor,
    joints: torch.Tensor,
    flip_pairs: Sequence[Sequence[int]],
    generator: torch.Generator,
    scale: float = 0.25,
    rotation: float = 30.0,
    flip: bool = True,
    color: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment (B, 3, S, S) float images in [0, 1] and their (B, J, 3) joints (x, y, v in pixels).

    Per sample: zoom by a factor in [1 - scale, 1 + scale], rotate by an angle in
    [-rotation, rotation] degrees about the crop centre, mirror with probability 1/2 (if `flip`),
    multiply each colour channel by a factor in [1 - color, 1 + color]. Joints that leave the
    crop get v = 0. Random numbers come from `generator` (on its own device), so a fixed seed
    gives the same batch on CPU and GPU. Returns new tensors.
    """
    b, _, h, w = images.shape
    if h != w:
        raise ValueError(f"augment_batch expects square images, got {h}x{w}")
    size = h
    gdev = generator.device
    u = torch.rand(b, 3, generator=generator, device=gdev, dtype=torch.float32).to(images.device)
    s = 1.0 + scale * (2.0 * u[:, 0] - 1.0)
    ang = math.radians(rotation) * (2.0 * u[:, 1] - 1.0)
    mirrored = (u[:, 2] < 0.5) if flip else torch.zeros(b, dtype=torch.bool, device=images.device)
    f = 1.0 - 2.0 * mirrored.to(images.dtype)

    # Forward map on joints about the centre c: p' = c + s R(ang) diag(f, 1) (p - c).
    cos, sin = torch.cos(ang), torch.sin(ang)
    fwd = torch.stack(
        [torch.stack([s * cos * f, -s * sin], -1), torch.stack([s * sin * f, s * cos], -1)], -2
    )  # (B, 2, 2)
    # grid_sample wants output -> input in normalised coordinates; for a square crop with
    # align_corners=False the centre maps to 0 and the scaling is isotropic, so it is fwd^-1.
    inv = torch.linalg.inv(fwd)
    theta = torch.cat([inv, torch.zeros(b, 2, 1, device=images.device, dtype=images.dtype)], -1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if color > 0:
        gain = 1.0 + color * (2.0 * torch.rand(b, 3, generator=generator, device=gdev) - 1.0)
        out = (out * gain.to(out.device, out.dtype)[:, :, None, None]).clamp_(0.0, 1.0)

    centre = (size - 1) / 2.0
    j = joints.to(images.device, torch.float32)
    xy = torch.einsum("bij,bkj->bki", fwd.float(), j[..., :2] - centre) + centre
    v = j[..., 2:3]
    inside = ((xy >= 0) & (xy <= size - 1)).all(-1, keepdim=True)
    v = v * inside.to(v.dtype)
    new = torch.cat([xy * (v > 0), v], -1)
    if flip and mirrored.any():
        perm = torch.tensor(flip_permutation(j.shape[1], flip_pairs), device=new.device)
        new = torch.where(mirrored[:, None, None], new[:, perm], new)
    return out, new.to(joints.dtype)
