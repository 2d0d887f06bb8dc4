"""Zero-cost proxies: score an untrained network from one batch, in seconds instead of a training run.

- `synflow` (Tanaka et al. 2020, as a NAS proxy in Abdelfattah et al. 2021): with every weight
  replaced by its absolute value and an all-ones input, R = sum of the outputs;
  score = sum over parameters of |theta * dR/dtheta|. It uses only the input's shape, never the
  data. Computed in float64 on a copy (products over depth overflow float32), BatchNorm in eval
  mode (running stats of a fresh net: no normalisation), so the model passed in is untouched.
- `naswot` (Mellor et al. 2021, "Neural Architecture Search without Training"): each input's binary
  code is which ReLU units it switches on; K[i, j] = units - Hamming(c_i, c_j) (the number of
  units on which i and j agree); score = log|det K|. Inputs that a network tells apart (distinct
  codes) give a better conditioned K and a higher score. BatchNorm in train mode (batch statistics,
  as in the paper) on a copy, so running stats of the model passed in do not change.
- parameter count (`space.profile.count_params`), the baseline every proxy has to beat.

The batch should be real data (`image_batch`): NASWOT depends on it; synflow does not.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor, nn

from space.model import build_model
from space.profile import count_params
from space.spec import ArchSpec
from trainers.data import PoseSet
from trainers.engine import prepare_images


def _outputs(out: Tensor | list[Tensor] | tuple[Tensor, ...]) -> list[Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def synflow(model: nn.Module, batch: Tensor) -> float:
    """Synaptic-flow score of `model` for inputs shaped like one item of `batch` (values unused)."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    x = torch.ones((1, *batch.shape[1:]), dtype=torch.float64, device=batch.device)
    total = sum(o.sum() for o in _outputs(net(x)))
    total.backward()
    return sum(
        float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None
    )


def naswot(model: nn.Module, batch: Tensor) -> float:
    """log|det K| of the ReLU activation-pattern kernel over `batch` (N inputs: K is N x N)."""
    net = copy.deepcopy(model).train()
    n = batch.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=batch.device)

    def hook(_module: nn.Module, _inputs: tuple, output: Tensor) -> None:
        codes = (output.detach().reshape(n, -1) > 0).double()
        # agreements: both on + both off = units - Hamming distance
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    if not handles:
        raise ValueError("naswot needs a network with nn.ReLU modules")
    try:
        with torch.no_grad():
            net(batch)
    finally:
        for h in handles:
            h.remove()
    # K holds whole counts, so repeated codes make it exactly singular; slogdet's LU may still
    # return a finite log of a rounding-error pivot (seen with another LAPACK), the rank test does not
    if int(torch.linalg.matrix_rank(kernel)) < n:
        return -math.inf
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


def image_batch(
    poses: PoseSet, n: int, seed: int = 0, device: str | torch.device = "cpu"
) -> Tensor:
    """`n` images of a PoseSet (a seeded choice), as the network's float input."""
    idx = np.sort(
        np.random.default_rng(seed).choice(
            len(poses.images), min(n, len(poses.images)), replace=False
        )
    )
    return prepare_images(torch.from_numpy(np.array(poses.images[idx]))).to(device)


def zero_cost_scores(spec: ArchSpec, batch: Tensor, *, seed: int = 0) -> dict[str, float]:
    """params, synflow and naswot of `spec` freshly initialised with `seed`, on `batch` (N, 3, S, S)."""
    torch.manual_seed(seed)
    model = build_model(spec, input_size=int(batch.shape[-1])).to(batch.device)
    return {
        "params": float(count_params(model)),
        "synflow": synflow(model, batch),
        "naswot": naswot(model, batch),
    }
