import torch

from trainers.heatmaps import (
    crop_to_heatmap,
    decode_heatmaps,
    default_sigma,
    flip_heatmaps,
    heatmap_to_crop,
    render_heatmaps,
)


def test_round_trip_under_quarter_pixel_over_random_subpixel_positions():
    g = torch.Generator().manual_seed(0)
    out = 16
    xy = 2 + torch.rand(64, 5, 2, generator=g) * (out - 4)  # keep peaks off the border
    joints = torch.cat([xy, torch.ones(64, 5, 1)], dim=-1)
    hm, w = render_heatmaps(joints, out, sigma=1.5)
    assert hm.shape == (64, 5, out, out) and bool(w.all())
    coords, maxvals = decode_heatmaps(hm)
    err = (coords - xy).abs()
    assert err.max() < 0.25 + 1e-5
    # Plain argmax would err by ~0.25 px on average per axis; the refinement must do better.
    assert err.mean() < 0.15
    assert bool((maxvals > 0.8).all())


def test_peak_at_rendered_position_and_gaussian_width():
    joints = torch.tensor([[[5.0, 9.0, 1.0]]])
    hm, _ = render_heatmaps(joints, 16, sigma=2.0)
    assert hm[0, 0, 9, 5] == 1.0
    # one sigma away along x: exp(-1/2)
    assert abs(float(hm[0, 0, 9, 7]) - 0.6065306597) < 1e-6


def test_unannotated_and_outside_joints_get_zero_target_and_weight():
    joints = torch.tensor([[[5.0, 5.0, 0.0], [-3.0, 4.0, 1.0], [4.0, 20.0, 1.0], [3.0, 3.0, 1.0]]])
    hm, w = render_heatmaps(joints, 16, sigma=2.0)
    assert w.tolist() == [[0.0, 0.0, 0.0, 1.0]]
    assert hm[0, :3].abs().sum() == 0 and hm[0, 3].max() == 1.0


def test_sigma_scales_with_resolution():
    assert default_sigma(64) == 2.0
    assert default_sigma(32) == 1.0
    assert default_sigma(128) == 4.0
    assert default_sigma(8) == 1.0  # floor


def test_coordinate_mapping_inverts_and_matches_pooling():
    xy = torch.tensor([[0.0, 3.0], [1.5, 1.5], [63.0, 10.25]])
    assert torch.allclose(heatmap_to_crop(crop_to_heatmap(xy)), xy)
    # Heatmap pixel 0 at stride 4 pools crop pixels 0..3, centred at 1.5.
    assert crop_to_heatmap(torch.tensor([1.5, 1.5])).tolist() == [0.0, 0.0]


def test_flip_heatmaps_mirrors_and_swaps_channels():
    s = 16
    joints = torch.tensor([[[3.25, 6.0, 1.0], [10.0, 2.5, 1.0], [7.0, 7.0, 1.0]]])
    hm, _ = render_heatmaps(joints, s, sigma=1.5)
    # The mirrored image has x -> W-1-x and joints 0 and 1 exchanged.
    mirrored = joints.clone()
    mirrored[..., 0] = s - 1 - mirrored[..., 0]
    mirrored = mirrored[:, [1, 0, 2]]
    hm_m, _ = render_heatmaps(mirrored, s, sigma=1.5)
    back = flip_heatmaps(hm_m, [(0, 1)])
    assert torch.allclose(back, hm, atol=1e-6)
    coords, _ = decode_heatmaps(back)
    assert (coords - joints[..., :2]).abs().max() < 0.25 + 1e-5
