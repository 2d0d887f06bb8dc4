"""Proxy-trainer throughput vs a bare PyTorch loop, and a bulat-sgsc-style proxy on LSPET.

    python benchmarks/proxy_throughput.py [--data ../shared/datasets/lspet] [--threads 1]

1. images/s of `train_proxy` (uint8 batches, batched augmentation, heatmap targets, AMP on GPU)
   against a bare loop over pre-made float tensors of the same model and batch size
   (forward + loss + backward + step only); the ratio should be >= 0.90.
2. wall time and val PCK@0.2 of a small bulat-sgsc proxy trained on an LSPET subset.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from space.model import build_model  # noqa: E402
from space.profile import resolve_device  # noqa: E402
from space.spec import load_arch  # noqa: E402
from trainers.data import load_poses  # noqa: E402
from trainers.engine import amp_dtype, prepare_images, train_step  # noqa: E402
from trainers.heatmaps import crop_to_heatmap, render_heatmaps  # noqa: E402
from trainers.proxy import ProxyBudget, train_proxy  # noqa: E402


def bare_loop(spec, train, steps: int, batch_size: int, lr: float, device: torch.device) -> float:
    """images/s of forward+backward+step over tensors already on the device (no data pipeline)."""
    size = train.images.shape[1]
    n = steps * batch_size
    x = prepare_images(torch.from_numpy(train.images[:n])).to(device)
    j = torch.from_numpy(train.joints[:n]).to(device)
    hj = torch.cat([crop_to_heatmap(j[..., :2]), j[..., 2:]], -1)
    target, weight = render_heatmaps(hj, size // 4)
    torch.manual_seed(0)
    model = build_model(spec, input_size=size).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    dtype = amp_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    t0 = time.perf_counter()
    for k in range(steps):
        s = slice(k * batch_size, (k + 1) * batch_size)
        loss = train_step(model, opt, scaler, spec, x[s], target[s], weight[s], dtype)
    float(loss)  # wait for the device
    return n / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default=str(ROOT.parent / "shared/datasets/lspet"))
    p.add_argument("--arch", default="bulat-sgsc-tiny", help="model for the throughput comparison")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=40, help="timed steps per throughput run")
    p.add_argument(
        "--repeats", type=int, default=3, help="alternating runs; the best of each is kept"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    p.add_argument("--proxy-arch", default="bulat-sgsc-proxy")
    p.add_argument("--proxy-size", type=int, default=64)
    p.add_argument("--proxy-epochs", type=int, default=6)
    p.add_argument("--proxy-subset", type=int, default=2000)
    p.add_argument("--val-subset", type=int, default=500)
    p.add_argument("--skip-proxy", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    n = args.steps * args.batch_size
    train = load_poses(args.data, "train", args.size, subset=n, workers=args.threads)
    val = load_poses(args.data, "val", args.size, subset=32, workers=args.threads)
    spec = load_arch(args.arch)
    budget = ProxyBudget(epochs=1, batch_size=args.batch_size, subset=n, seed=0)
    trainer, bare = [], []
    for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
        bare.append(bare_loop(spec, train, args.steps, args.batch_size, budget.lr, device))
        trainer.append(
            train_proxy(spec, train, val, budget, device=device, threads=args.threads).images_per_s
        )
    ratio = max(trainer) / max(bare)
    print(
        f"throughput: {args.arch} {args.size}px batch {args.batch_size}, {args.steps} steps, "
        f"{args.threads} thread(s), {device}"
    )
    print(
        f"  bare loop      {max(bare):8.1f} img/s   (runs: {', '.join(f'{v:.1f}' for v in bare)})"
    )
    print(
        f"  train_proxy    {max(trainer):8.1f} img/s   (runs: {', '.join(f'{v:.1f}' for v in trainer)})"
    )
    print(
        f"  ratio          {ratio:8.3f}        (target >= 0.90: {'ok' if ratio >= 0.9 else 'MISSED'})"
    )

    if not args.skip_proxy:
        pspec = load_arch(args.proxy_arch)
        ptrain = load_poses(
            args.data, "train", args.proxy_size, subset=args.proxy_subset, workers=args.threads
        )
        pval = load_poses(
            args.data, "val", args.proxy_size, subset=args.val_subset, workers=args.threads
        )
        r = train_proxy(
            pspec,
            ptrain,
            pval,
            ProxyBudget(epochs=args.proxy_epochs, batch_size=args.batch_size, seed=0),
            device=device,
            threads=args.threads,
        )
        print(
            f"proxy: {args.proxy_arch} at {args.proxy_size}px, {r.params / 1e6:.2f} M params, "
            f"{args.proxy_subset} train / {args.val_subset} val images, {r.epochs} epochs"
        )
        print(
            f"  wall {r.wall_s:.1f} s, {r.images_per_s:.1f} img/s, val PCK@0.2 {r.pck:.3f} "
            f"(per epoch: {', '.join(f'{v:.3f}' for v in r.val_curve)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
