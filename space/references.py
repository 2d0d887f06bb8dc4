"""The hand designs the search is meant to beat, as the choices they make at any size.

`paper`: Bulat et al. (FG 2020), the soft-gated block: three 3x3 branches C/2, C/4, C/4, a learnable
per-channel gate on the skip, maxpool down, nearest up, levels fused by concatenation and a 3x3 conv,
an identity skip at every level. `newell`: the stacked hourglass (ECCV 2016): bottleneck residual
blocks, plain identity shortcuts, maxpool, nearest, add, a residual block on the skip branch.

A reference has no size of its own: `project_reference` puts it at the stacks/width/depth of an
arch, `references_in_space` at every size a search space allows (what a warm start enqueues and
what `launch.py finalize` trains beside the found architectures).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from space.search_space import SearchSpace
from space.spec import ArchSpec, split_key

SHAPE_KEYS = (
    "version",
    "stacks",
    "width",
    "depth",
    "joints",
    "input_size",
    "intermediate_supervision",
)
DESIGN_KEYS = ("block", "branch_split", "gate", "gate_init", "down", "up", "fusion", "skip")
SIZE_AXES = ("stacks", "width", "depth")
REFERENCE_SIZES = ("all", "deepest", "smallest")
REFERENCES: dict[str, dict[str, Any]] = {
    "paper": {
        "block": "multibranch",
        "branch_split": ["1/2", "1/4", "1/4"],
        "gate": "channel",
        "gate_init": 1.0,
        "down": "maxpool",
        "up": "nearest",
        "fusion": "concat_conv3x3",
        "skip": "identity",
    },
    "newell": {
        "block": "bottleneck",
        "branch_split": None,
        "gate": "identity",
        "gate_init": None,
        "down": "maxpool",
        "up": "nearest",
        "fusion": "add",
        "skip": "block",
    },
}


def project_reference(arch: Mapping[str, Any], name: str) -> dict:
    """Reference `name` at the sizes of `arch` (stacks, width, depth, input size, supervision, joints)."""
    point = {k: arch[k] for k in SHAPE_KEYS if k in arch} | REFERENCES[name]
    return ArchSpec.from_dict(point).to_dict()


def design_of(arch: Mapping[str, Any]) -> str | None:
    """The reference whose design choices `arch` makes, at whatever size; None for any other design
    (a searched arch that is the paper's design at a size no family ladder has is still its design)."""
    spec = ArchSpec.from_dict(dict(arch))
    for name in REFERENCES:
        if ArchSpec.from_dict(project_reference(arch, name)) == spec:
            return name
    return None


def _allowed(space: SearchSpace, arch: Mapping[str, Any]) -> bool:
    # a reference whose choice the space does not offer (a study without channel gates) is not in it
    for key, choices in space.axes.items():
        value = arch.get(key)
        if key == "branch_split":
            value = None if value is None else split_key(value)
            choices = tuple(split_key(c) for c in choices)
        if value is not None and value not in choices:
            return False
    return True


def _reference_widths(space_widths: Sequence[int], widths: Sequence[int]) -> list[int]:
    outside = [w for w in widths if w not in space_widths]
    if outside or not widths:
        raise ValueError(
            f"reference widths {list(widths)}: expected some of the space's widths "
            f"{list(space_widths)}"
        )
    return [w for w in space_widths if w in widths]


def references_in_space(
    space: SearchSpace,
    names: Sequence[str] = tuple(REFERENCES),
    sizes: str = "all",
    widths: Sequence[int] | None = None,
) -> list[dict]:
    """Each reference at the sizes the space allows, smallest first, as ArchSpec dicts; references the
    space cannot express are left out. `sizes`: "all" (every stacks x width x depth), "deepest" (every
    stacks x width at the space's largest depth, the hourglass's own) or "smallest" (every width at the
    space's fewest stacks and smallest depth: the cheapest warm start, the sizes the paper's design is
    compared at in docs/results.md section 7). `widths`, where given, keeps only those of the
    space's widths: a space with a fine width axis warm-starts at a few of them, not all."""
    if sizes not in REFERENCE_SIZES:
        raise ValueError(f"reference sizes {sizes!r}: expected one of {', '.join(REFERENCE_SIZES)}")
    grid = {k: list(space.axes.get(k, (getattr(ArchSpec, k),))) for k in SIZE_AXES}
    if widths is not None:
        grid["width"] = _reference_widths(grid["width"], widths)
    if sizes == "deepest":
        grid["depth"] = [max(grid["depth"])]
    if sizes == "smallest":
        grid["depth"], grid["stacks"] = [min(grid["depth"])], [min(grid["stacks"])]
    fixed = {
        k: vs[0]
        for k, vs in space.axes.items()
        if k in SHAPE_KEYS and k not in SIZE_AXES and len(vs) == 1
    }
    out: dict[str, dict] = {}
    for stacks, width, depth in itertools.product(grid["stacks"], grid["width"], grid["depth"]):
        for name in names:
            arch = project_reference(
                {**fixed, "stacks": stacks, "width": width, "depth": depth}, name
            )
            if _allowed(space, arch) and space.is_valid(arch):
                out.setdefault(ArchSpec.from_dict(arch).arch_id, arch)
    return list(out.values())
