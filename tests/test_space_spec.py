"""ArchSpec validation, YAML round-trip, presets and a property test over random valid specs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from space.errors import ConfigError
from space.model import build_model
from space.profile import count_params
from space.registry import BLOCKS, DOWNSAMPLE, FUSIONS, GATES, SKIPS, UPSAMPLE
from space.spec import ArchSpec, dump_arch, load_arch, preset_names

torch.set_num_threads(1)

TINY = dict(stacks=1, width=16, depth=2, joints=3, input_size=32)


def test_presets_load_by_name_and_match_their_papers() -> None:
    assert {"newell-hourglass", "bulat-sgsc"} <= set(preset_names())
    newell = load_arch("newell-hourglass")
    assert (
        newell.stacks,
        newell.width,
        newell.block,
        newell.gate,
        newell.fusion,
        newell.skip,
        newell.down,
        newell.up,
    ) == (8, 256, "bottleneck", "identity", "add", "block", "maxpool", "nearest")
    bulat = load_arch("bulat-sgsc")
    assert (bulat.block, bulat.gate, bulat.fusion, bulat.skip) == (
        "multibranch",
        "channel",
        "concat_conv3x3",
        "identity",
    )
    assert bulat.branch_split == (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4))
    assert any(load_arch(n).stacks <= 2 and load_arch(n).width <= 64 for n in preset_names())


def test_yaml_round_trip_is_exact_and_readable(tmp_path: Path) -> None:
    spec = ArchSpec(
        **TINY, branch_split=[0.25, "1/4", Fraction(1, 2)], gate="scalar", gate_init=0.5
    )
    dump_arch(spec, tmp_path / "a.yaml")
    text = (tmp_path / "a.yaml").read_text()
    assert "version: 1" in text and "- 1/4" in text and "- 1/2" in text
    again = load_arch(tmp_path / "a.yaml")
    assert again == spec and again.arch_id == spec.arch_id and hash(again) == hash(spec)


def test_float_thirds_are_stored_exactly() -> None:
    spec = ArchSpec(**{**TINY, "width": 24}, branch_split=[0.3333333, 0.3333333, 0.3333334])
    assert spec.branch_split == (Fraction(1, 3),) * 3
    assert spec.to_dict()["branch_split"] == ["1/3", "1/3", "1/3"]


def test_arch_id_is_stable_and_discriminating() -> None:
    a, b = ArchSpec(**TINY), ArchSpec(**TINY)
    assert a.arch_id == b.arch_id and len(a.arch_id) == 12 and int(a.arch_id, 16) >= 0
    assert a.replace(width=24).arch_id != a.arch_id
    assert a.replace(gate="se").arch_id != a.arch_id


def test_exported_yaml_with_arch_mapping_loads(tmp_path: Path) -> None:
    spec = load_arch("bulat-sgsc-tiny")
    path = tmp_path / "export.yaml"
    path.write_text(yaml.safe_dump({"rank": 1, "pck": 0.5, "arch": spec.to_dict()}))
    assert load_arch(path) == spec


def test_equal_specs_give_equal_models() -> None:
    torch.manual_seed(3)
    a = build_model(ArchSpec(**TINY)).state_dict()
    torch.manual_seed(3)
    b = build_model(ArchSpec.from_dict(yaml.safe_load(ArchSpec(**TINY).to_yaml()))).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


BAD = [
    ({"gate": "sigmoid"}, "gate"),
    ({"block": "inverted"}, "block"),
    ({"down": "stride3"}, "down"),
    ({"up": "cubic"}, "up"),
    ({"fusion": "mul"}, "fusion"),
    ({"skip": "dense"}, "skip"),
    ({"branch_split": ["1/2", "1/4"]}, "branch_split"),  # sums to 3/4
    ({"branch_split": ["1/2", "1/2", "1/4"]}, "branch_split"),  # sums to 5/4
    ({"branch_split": ["1/2", "1/2", "0", "0", "0"]}, "branch_split"),
    ({"branch_split": ["1/2", "x"]}, "branch_split"),
    ({"branch_split": ["1/3", "1/3", "1/3"]}, "branch_split"),  # 16 * 1/3 not whole
    ({"width": 100, "branch_split": ["1/3", "1/3", "1/3"]}, "branch_split"),
    ({"block": "bottleneck", "branch_split": ["1/2", "1/2"]}, "branch_split"),
    ({"depth": 1}, "depth"),
    ({"depth": 6}, "depth"),
    ({"stacks": 0}, "stacks"),
    ({"stacks": 9}, "stacks"),
    ({"stacks": 2.5}, "stacks"),
    ({"width": "64"}, "width"),
    ({"width": True}, "width"),
    ({"joints": 0}, "joints"),
    ({"input_size": 40}, "input_size"),  # not a multiple of 16 at depth 2
    ({"intermediate_supervision": "yes"}, "intermediate_supervision"),
    ({"gate": "se", "gate_init": 0.5}, "gate_init"),
    ({"gate": "channel", "gate_init": "big"}, "gate_init"),
    ({"version": 2}, "version"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize("change,field", BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD)])
def test_invalid_specs_name_the_key(change: dict, field: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**ArchSpec(**TINY).to_dict(), **change}))
    with pytest.raises(ConfigError) as info:
        load_arch(path)
    err = info.value
    assert err.field == field and err.source == str(path)
    assert str(err).startswith(f"{path}: {field}: ") and "\n" not in str(err)


def test_bad_yaml_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "syntax.yaml").write_text("stacks: [1, 2\nwidth: 3\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    for name in ("syntax.yaml", "list.yaml", "missing.yaml"):
        with pytest.raises(ConfigError) as info:
            load_arch(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no such file or preset"):
        load_arch("not-a-preset")


def test_unknown_key_error_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("version: 1\nstack: 2\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: stack: unknown key"):
        load_arch(path)


def test_missing_split_and_init_take_the_block_and_gate_defaults() -> None:
    assert ArchSpec.from_dict({"block": "bottleneck", "gate": "identity"}).branch_split is None
    assert ArchSpec.from_dict({"block": "bottleneck", "gate": "identity"}).gate_init is None
    assert ArchSpec.from_dict({"gate": "scalar"}).gate_init == 1.0
    assert ArchSpec.from_dict({"block": "multibranch"}).branch_split == (
        Fraction(1, 2),
        Fraction(1, 4),
        Fraction(1, 4),
    )


# ---------------------------------------------------------------- property test

SPLITS = [
    ("1/2", "1/4", "1/4"),
    ("1/3", "1/3", "1/3"),
    ("1/4", "1/4", "1/2"),
    ("1/2", "1/2"),
    ("1/4", "1/4", "1/4", "1/4"),
    ("1/8", "3/8", "1/2"),
]


@st.composite
def valid_specs(draw: st.DrawFn) -> ArchSpec:
    depth = draw(st.integers(2, 3))
    block = draw(st.sampled_from(BLOCKS.names()))
    width = draw(st.sampled_from([8, 12, 16, 24]))
    split = None
    if block == "multibranch":
        fits = [s for s in SPLITS if all((width * Fraction(f)).denominator == 1 for f in s)]
        split = list(draw(st.sampled_from(fits)))
    gate = draw(st.sampled_from(GATES.names()))
    gate_init = draw(st.floats(0.0, 2.0, allow_nan=False)) if GATES.get(gate).takes_init else None
    return ArchSpec(
        stacks=draw(st.integers(1, 2)),
        width=width,
        depth=depth,
        joints=draw(st.integers(1, 5)),
        input_size=4 * 2**depth * draw(st.integers(1, 2)),
        intermediate_supervision=draw(st.booleans()),
        block=block,
        branch_split=split,
        gate=gate,
        gate_init=gate_init,
        down=draw(st.sampled_from(DOWNSAMPLE.names())),
        up=draw(st.sampled_from(UPSAMPLE.names())),
        fusion=draw(st.sampled_from(FUSIONS.names())),
        skip=draw(st.sampled_from(SKIPS.names())),
    )


@settings(max_examples=25, deadline=None)
@given(spec=valid_specs())
def test_random_valid_specs_build_round_trip_and_rebuild(spec: ArchSpec) -> None:
    model = build_model(spec).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, spec.input_size, spec.input_size))
    assert len(outs) == (spec.stacks if spec.intermediate_supervision else 1)
    assert all(
        o.shape == (1, spec.joints, spec.input_size // 4, spec.input_size // 4) for o in outs
    )
    again = ArchSpec.from_dict(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.arch_id == spec.arch_id
    assert count_params(build_model(again)) == count_params(model)


def test_docs_table_matches_the_code() -> None:
    from space.presets_table import presets_table

    docs = Path(__file__).resolve().parents[1] / "docs" / "space.md"
    assert presets_table().split("\n\n")[0] in docs.read_text(), (
        "regenerate: python -m space.presets_table"
    )


def test_replace_adapts_split_and_init_to_the_new_block_and_gate() -> None:
    newell = load_arch("newell-hourglass-proxy")
    bulatish = newell.replace(block="multibranch", gate="channel")
    assert (
        bulatish.branch_split == (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4))
        and bulatish.gate_init == 1.0
    )
    back = bulatish.replace(block="bottleneck", gate="identity")
    assert back == newell
    with pytest.raises(ConfigError, match="width"):
        newell.replace(width=-1)


def test_numpy_integers_are_accepted_as_counts() -> None:
    np = pytest.importorskip("numpy")
    spec = ArchSpec.from_dict(
        {**ArchSpec(**TINY).to_dict(), "width": np.int64(16), "stacks": np.int32(1)}
    )
    assert spec == ArchSpec(**TINY) and type(spec.width) is int
