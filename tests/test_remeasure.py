"""Quiet re-measurement of a front (search/remeasure.py): the noise band, the recomputed front."""

from __future__ import annotations

from search.remeasure import Point, front_keys, quiet_latencies, requalify, within_band
from space.spec import load_arch

POINTS = [
    Point("fast", 0.10, 10.0),
    Point("mid", 0.15, 20.0),
    Point("slow", 0.20, 40.0),
    Point("near", 0.14, 21.0),
    Point("worse", 0.05, 45.0),
]


def test_the_front_keeps_only_points_nothing_beats() -> None:
    assert front_keys(POINTS) == ["fast", "mid", "slow"]
    assert front_keys([Point("a", 0.1, 5.0), Point("b", 0.1, 6.0)]) == ["a"]


def test_the_noise_band_adds_points_a_latency_error_could_put_on_the_front() -> None:
    band = within_band(POINTS, band=0.15)
    assert {"fast", "mid", "slow", "near"} <= set(band)
    assert "worse" not in band  # beaten at far less latency than the noise could explain
    assert set(within_band(POINTS, band=0.0)) == {"fast", "mid", "slow"}


def test_quiet_latencies_decide_the_front_again() -> None:
    tiny = load_arch("bulat-sgsc-tiny").to_dict()
    archs = {"tiny": tiny, "wide": tiny | {"width": 64}}
    latency = {"device": "cpu", "threads": 1, "backend": "torch", "clock": "auto"}
    quiet = quiet_latencies(archs, latency, input_size=64, target=0.5, max_seconds=5)
    assert quiet["tiny"]["ratio"] == 1.0 and quiet["tiny"]["reference"] == "tiny"
    assert quiet["wide"]["latency_quiet_ms"] > quiet["tiny"]["latency_quiet_ms"]
    # screened as equally fast, the wider arch no longer dominates once timed quietly
    points = [Point("tiny", 0.10, 5.0), Point("wide", 0.09, 5.0)]
    assert front_keys(points) == ["tiny"]
    assert requalify([Point("tiny", 0.10, 5.0), Point("wide", 0.12, 4.0)], quiet) == [
        "tiny",
        "wide",
    ]


def test_the_study_keeps_the_quiet_latencies_that_decided_its_export(tmp_path) -> None:
    import optuna
    import yaml
    from optuna_dashboard._note import get_note_from_system_attrs

    from search.remeasure import keep_quiet_latencies

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    path = tmp_path / "01-a.yaml"
    metrics = {
        "pck": 0.5,
        "latency_ms": 5.0,
        "latency_quiet_ms": 6.0,
        "latency_quiet_low_ms": 5.9,
        "latency_quiet_high_ms": 6.1,
        "latency_decided_by": "quiet interleaved pass",
    }
    record = {"metrics": metrics, "provenance": {"arch_id": "a", "trial": 3}}
    path.write_text(yaml.safe_dump(record))
    keep_quiet_latencies(study, [path])
    kept = study.user_attrs["quiet_latency"]
    assert kept["decided_by"] == "quiet interleaved pass"
    assert kept["a"] == {
        "trial": 3,
        **{k: v for k, v in metrics.items() if k != "latency_decided_by"},
    }
    attrs = study._storage.get_study_system_attrs(study._study_id)
    note = get_note_from_system_attrs(attrs, None)["body"]
    assert "decided by the quiet interleaved pass" in note
    assert "| 3 | `a` | 0.5 | 5 | 6 | 5.9-6.1 |" in note
    path.write_text(yaml.safe_dump({**record, "metrics": {"pck": 0.5, "latency_ms": 5.0}}))
    keep_quiet_latencies(study, [path])  # a later export decided by in-study values
    assert study.user_attrs["quiet_latency"] == {"decided_by": "in-study latency"}
