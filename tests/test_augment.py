"""augment_batch: pixels and joints move together, flips swap left and right, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers.augment import augment_batch, flip_permutation

S = 64


def dots(joints: torch.Tensor) -> torch.Tensor:
    """Black images with a Gaussian dot per joint, joint k in colour channel k (k < 3)."""
    yy, xx = torch.meshgrid(
        torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij"
    )
    b = joints.shape[0]
    img = torch.zeros(b, 3, S, S)
    for k in range(3):
        x, y = joints[:, k, 0, None, None], joints[:, k, 1, None, None]
        img[:, k] = torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    return img


def centroid(channel: torch.Tensor) -> np.ndarray:
    """Sub-pixel position of the dot in a (S, S) channel."""
    w = (channel - 0.3 * channel.max()).clamp(min=0)
    yy, xx = torch.meshgrid(
        torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij"
    )
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


def test_dots_follow_their_joints_and_flip_swaps_labels():
    g = torch.Generator().manual_seed(0)
    b = 24
    base = torch.tensor([[24.0, 30.0], [40.0, 30.0], [32.0, 20.0]])  # right, left, an unpaired one
    joints = torch.cat([base + torch.rand(b, 3, 2, generator=g) * 6 - 3, torch.ones(b, 3, 1)], -1)
    imgs = dots(joints)
    out, new = augment_batch(imgs, joints, [(0, 1)], torch.Generator().manual_seed(1), color=0.0)
    assert (new[..., 2] == 1).all()
    n_mirrored = 0
    for i in range(b):
        c = [centroid(out[i, k]) for k in range(3)]

        # mirroring reverses the orientation of the triangle of the three dots
        def cross(p):
            (ax, ay), (bx, by) = p[1] - p[0], p[2] - p[0]
            return ax * by - ay * bx

        mirrored = np.sign(cross(c)) != np.sign(cross([joints[i, k, :2].numpy() for k in range(3)]))
        n_mirrored += mirrored
        # the dot drawn for joint 0 (right) is labelled 1 (left) after a mirror, and vice versa
        want = [1, 0, 2] if mirrored else [0, 1, 2]
        for k in range(3):
            assert np.hypot(*(c[k] - new[i, want[k], :2].numpy())) < 0.6, (i, k, mirrored)
    assert 0 < n_mirrored < b


def test_identity_settings_change_nothing():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(4, 3, S, S, generator=g)
    joints = torch.cat([torch.rand(4, 5, 2, generator=g) * (S - 1), torch.ones(4, 5, 1)], -1)
    out, new = augment_batch(
        imgs, joints, [(0, 1)], g, scale=0.0, rotation=0.0, flip=False, color=0.0
    )
    torch.testing.assert_close(out, imgs, atol=1e-5, rtol=0)
    torch.testing.assert_close(new, joints, atol=1e-4, rtol=0)


def test_pure_flip_mirrors_exactly():
    g = torch.Generator().manual_seed(2)
    imgs = torch.rand(16, 3, S, S, generator=g)
    joints = torch.cat([torch.rand(16, 4, 2, generator=g) * (S - 1), torch.ones(16, 4, 1)], -1)
    pairs = [(0, 3), (1, 2)]
    out, new = augment_batch(imgs, joints, pairs, g, scale=0.0, rotation=0.0, flip=True, color=0.0)
    flipped = [bool(torch.allclose(out[i], imgs[i].flip(-1), atol=1e-5)) for i in range(16)]
    assert 0 < sum(flipped) < 16
    perm = flip_permutation(4, pairs)
    assert perm == [3, 2, 1, 0]
    for i in range(16):
        if flipped[i]:
            want = joints[i, perm].clone()
            want[:, 0] = S - 1 - want[:, 0]
        else:
            torch.testing.assert_close(out[i], imgs[i], atol=1e-5, rtol=0)
            want = joints[i]
        torch.testing.assert_close(new[i], want, atol=1e-4, rtol=0)


def test_joints_leaving_the_crop_are_marked_unannotated():
    b = 32
    corners = torch.tensor([[0.0, 0.0, 1], [S - 1.0, S - 1.0, 1], [31.5, 31.5, 1], [10.0, 10.0, 0]])
    joints = corners.expand(b, -1, -1).clone()
    imgs = torch.zeros(b, 3, S, S)
    _, new = augment_batch(
        imgs, joints, [], torch.Generator().manual_seed(3), scale=0.0, rotation=30.0, flip=False
    )
    # rotating a corner about the centre by any nonzero angle takes it outside
    assert (new[:, :2, 2] == 0).all() and (new[:, 2, 2] == 1).all() and (new[:, 3, 2] == 0).all()
    torch.testing.assert_close(new[:, 2, :2], torch.full((b, 2), 31.5), atol=1e-4, rtol=0)


def test_deterministic_for_a_seed_and_colour_gain_bounded():
    g0 = torch.Generator().manual_seed(5)
    imgs = torch.rand(6, 3, S, S, generator=g0) * 0.5 + 0.25
    joints = torch.cat([torch.rand(6, 14, 2, generator=g0) * (S - 1), torch.ones(6, 14, 1)], -1)
    a = augment_batch(imgs, joints, [(0, 5)], torch.Generator().manual_seed(9))
    b = augment_batch(imgs, joints, [(0, 5)], torch.Generator().manual_seed(9))
    c = augment_batch(imgs, joints, [(0, 5)], torch.Generator().manual_seed(10))
    torch.testing.assert_close(a[0], b[0], atol=0, rtol=0)
    torch.testing.assert_close(a[1], b[1], atol=0, rtol=0)
    assert not torch.equal(a[0], c[0])
    out, _ = augment_batch(
        imgs,
        joints,
        [],
        torch.Generator().manual_seed(1),
        scale=0.0,
        rotation=0.0,
        flip=False,
        color=0.2,
    )
    ratio = out / imgs
    per_channel = ratio.flatten(2)
    assert (per_channel.std(-1) < 1e-4).all()  # one gain per image and channel
    assert ((per_channel.mean(-1) >= 0.8 - 1e-5) & (per_channel.mean(-1) <= 1.2 + 1e-5)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(4, 3, S, S, generator=g)
    joints = torch.cat([torch.rand(4, 14, 2, generator=g) * (S - 1), torch.ones(4, 14, 1)], -1)
    cpu = augment_batch(imgs, joints, [(0, 5)], torch.Generator().manual_seed(1))
    gpu = augment_batch(imgs.cuda(), joints.cuda(), [(0, 5)], torch.Generator().manual_seed(1))
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(gpu[1].cpu(), cpu[1], atol=1e-3, rtol=0)
