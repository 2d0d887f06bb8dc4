"""Params/FLOPs table of every preset at its own input size: `python -m space.presets_table`.

Models are built on the meta device, so the table costs shapes only, no compute.
"""

from __future__ import annotations

import torch

from space.model import build_model
from space.profile import count_flops, count_params
from space.spec import load_arch, preset_names


def presets_table() -> str:
    rows = [
        "| preset | stacks x width | depth | block | gate | fusion / skip | input | params (M) | GFLOPs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in preset_names():
        spec = load_arch(name)
        with torch.device("meta"):
            model = build_model(spec)
            params, flops = count_params(model), count_flops(model, spec.input_size)
        block = spec.block + (
            f" ({'-'.join(map(str, spec.branch_split))})" if spec.branch_split else ""
        )
        rows.append(
            f"| `{name}` | {spec.stacks} x {spec.width} | {spec.depth} | {block} | {spec.gate} | "
            f"{spec.fusion} / {spec.skip} | {spec.input_size} | {params / 1e6:.2f} | {flops / 1e9:.2f} |"
        )
    return (
        "\n".join(rows)
        + "\n\nFLOPs: torch.utils.flop_counter, batch 1, 1 multiply-add = 2 FLOPs.\n"
    )


if __name__ == "__main__":
    print(presets_table(), end="")
