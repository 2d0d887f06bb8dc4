"""Weights a user names (`--weights`, a training folder's last.pt): which arch they are for, and
loading them into a network, each a one-line ConfigError naming the file when they do not fit.

Every command that loads weights goes through here: `onnx`, `evaluate`, `predict` and finalize's
scoring (`load_model`), `train --resume` and finalize's resumed trainings (`fit` checks last.pt with
`check_arch` and loads it with `load_state`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from space.errors import ConfigError
from space.model import build_model
from space.spec import ArchSpec
from trainers.io import load_checkpoint

SHOWN_FIELDS = 4  # differing arch fields named in a message


def _shape(t: Any) -> str:
    return "x".join(map(str, t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def state_mismatch(expected: dict[str, torch.Tensor], state: dict) -> str | None:
    """What keeps `state` from loading into a network whose state_dict is `expected` (counts and
    one example of each kind: other shape, missing, unexpected), or None when it fits."""
    wrong = [
        k
        for k in expected
        if k in state
        and (not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)
    ]
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    parts = []
    if wrong:
        k = wrong[0]
        parts.append(
            f"{len(wrong)} of another shape (e.g. {k}: {_shape(state[k])} in the file, "
            f"{_shape(expected[k])} in the network)"
        )
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} not in the network (e.g. {extra[0]})")
    return f"of its {len(state)} tensors, " + "; ".join(parts) if parts else None


def load_state(model: torch.nn.Module, state: dict, source: str | Path, arch_id: str) -> None:
    """`model.load_state_dict(state)`, or a one-line ConfigError saying what does not fit."""
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise ConfigError(
            f"weights do not fit arch {arch_id}: {problem}", source=str(source), field="weights"
        )
    model.load_state_dict(state)


def _differences(theirs: dict, ours: dict) -> str:
    keys = [k for k in ours if theirs.get(k) != ours[k]] + [k for k in theirs if k not in ours]
    shown = ", ".join(f"{k} {theirs.get(k)!r} (not {ours.get(k)!r})" for k in keys[:SHOWN_FIELDS])
    return shown + (f" and {len(keys) - SHOWN_FIELDS} more" if len(keys) > SHOWN_FIELDS else "")


def arch_mismatch(arch: Any, spec: ArchSpec) -> str | None:
    """Why a checkpoint's `arch` field is not `spec` (None when it is): not a mapping, not a valid
    arch, or another arch (its id and the fields that differ)."""
    if not isinstance(arch, dict):
        shown = repr(arch) if len(repr(arch)) <= 60 else f"a {type(arch).__name__}"
        return (
            f"its 'arch' field is {shown}, not a mapping of arch fields (what train writes); "
            f"cannot tell whether it is arch {spec.arch_id}"
        )
    if arch == spec.to_dict():
        return None
    try:
        theirs = ArchSpec.from_dict(arch).arch_id
    except ConfigError as err:
        return f"its 'arch' field is not a valid arch ({err})"
    return (
        f"checkpoint is for arch {theirs}, not {spec.arch_id}: {_differences(arch, spec.to_dict())}"
    )


def check_arch(ckpt: dict, spec: ArchSpec, path: str | Path) -> None:
    """ConfigError unless the checkpoint `ckpt` read from `path` is for `spec`."""
    problem = arch_mismatch(ckpt.get("arch"), spec)
    if problem:
        raise ConfigError(problem, source=str(path), field="arch")


def _with_heads(arch: Any, spec: ArchSpec) -> ArchSpec | None:
    """`spec` with the checkpoint's joint count when that is the only difference, else None."""
    joints = arch.get("joints") if isinstance(arch, dict) else None
    try:
        other = spec.replace(joints=joints) if isinstance(joints, int) else None
    except ConfigError:
        return None
    return other if other is not None and other.to_dict() == arch else None


def load_weights(path: str | Path, spec: ArchSpec) -> tuple[dict, ArchSpec]:
    """(state_dict, the arch it is for) from a full checkpoint or a bare state_dict.

    A checkpoint trained for another arch is refused, except for the heads `train` built for the
    data's joint count (`trainers.fit.match_joints`): then the arch with those heads is returned."""
    obj = load_checkpoint(path)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        arch = obj.get("arch")
        if arch is not None and arch != spec.to_dict():
            with_heads = _with_heads(arch, spec)
            if with_heads is None:
                check_arch(obj, spec, path)
            spec = with_heads or spec
        return obj["model"], spec
    if isinstance(obj, dict) and not obj:
        raise ConfigError("holds an empty mapping: no weights", source=str(path), field="weights")
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, spec
    raise ConfigError(
        f"neither a checkpoint nor a state_dict (a {type(obj).__name__}"
        + (f" with keys {', '.join(map(str, list(obj)[:5]))}" if isinstance(obj, dict) else "")
        + ")",
        source=str(path),
        field="weights",
    )


def load_model(spec: ArchSpec, weights: str | Path, size: int) -> tuple[torch.nn.Module, ArchSpec]:
    """(the network of `spec` at `size` px with `weights` loaded, on the CPU; the spec of those
    weights). See `load_weights`; weights that do not fit the network are a one-line ConfigError."""
    state, spec = load_weights(weights, spec)
    try:
        model = build_model(spec, input_size=size)
    except ConfigError as err:
        raise ConfigError(err.message, source="<arg>", field="--input-size") from None
    load_state(model, state, weights, spec.arch_id)
    return model, spec
