"""launch.py report: trials CSV, Pareto PNG/HTML, hypervolume history, ablation table on real SQLite studies."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from helpers import REPO
from PIL import Image

from search.report import (
    ablation_axis,
    ablation_table,
    default_reference_point,
    hypervolume_history,
    trials_frame,
    values_table,
    write_report,
)
from search.report_plots import hypervolume_figure, metric_label, pareto_figure, values_figure
from space.errors import ConfigError

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
CHOICES = {"width": [32, 64, 128], "gate": ["channel", "se", "eca"]}


def new_study(url: str, name: str = "rep") -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(["pck", "latency_ms"])
    return study


def add(
    study: optuna.Study,
    pck: float,
    latency: float,
    width: int = 32,
    gate: str = "channel",
    suggest: tuple[str, ...] = ("width",),
) -> None:
    values = {"width": width, "gate": gate}
    study.enqueue_trial({key: values[key] for key in suggest})  # the axes the "sampler" varied
    trial = study.ask()
    for key in suggest:
        assert trial.suggest_categorical(key, CHOICES[key]) == values[key]
    trial.set_user_attr(
        "arch", {"width": width, "gate": gate, "branch_split": ["1/2", "1/4", "1/4"]}
    )
    trial.set_user_attr("arch_id", f"id{trial.number:03d}")
    trial.set_user_attr("params", width * 1000)
    trial.set_user_attr("flops", width * 10_000)
    trial.set_user_attr("latency_ms", latency)
    trial.set_user_attr("budget", {"epochs": 1, "input_size": 64})
    trial.set_user_attr("per_joint_pck", [pck, pck])
    study.tell(trial, [pck, latency])


def fail(study: optuna.Study, reason: str = "NaN loss") -> None:
    trial = study.ask()
    trial.set_user_attr("fail_reason", reason)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


def test_hypervolume_by_hand(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    add(study, 0.5, 1.0)
    add(study, 0.8, 3.0)
    fail(study)
    add(study, 0.4, 2.0)  # dominated by the first: adds nothing
    add(study, 0.9, 5.0)  # beyond the reference latency: adds nothing
    history = hypervolume_history(study, reference_point=[0.0, 4.0])
    # boxes to (pck 0, latency 4): 0.5 x 3 = 1.5; adding 0.8 x 1 minus their overlap 0.5 x 1 = 1.8
    assert history["trial"].tolist() == [0, 1, 3, 4]
    assert history["hypervolume"].tolist() == pytest.approx([1.5, 1.8, 1.8, 1.8])
    assert history["pareto_size"].tolist() == [1, 2, 2, 2]


def test_hypervolume_skips_infeasible_trials(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    add(study, 0.5, 1.0)
    study.add_trial(optuna.trial.create_trial(values=[0.9, 0.5], constraints={"max_params": 1.0}))
    assert hypervolume_history(study, [0.0, 4.0])["hypervolume"].tolist() == pytest.approx(
        [1.5, 1.5]
    )


def test_hypervolume_matches_optuna_plot(tmp_path: Path) -> None:
    """Same history as optuna's own plot_hypervolume_history (a separate implementation)."""
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    rng = random.Random(3)
    for _ in range(40):
        add(study, rng.random(), rng.uniform(1, 20))
    ref = [0.0, 22.0]
    ax = optuna.visualization.matplotlib.plot_hypervolume_history(study, ref)
    expected = np.asarray(ax.lines[0].get_ydata(), float)
    assert hypervolume_history(study, ref)["hypervolume"].to_numpy() == pytest.approx(expected)


def test_default_reference_point(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    add(study, 0.3, 10.0)
    add(study, 0.6, 4.0)
    assert default_reference_point(study) == pytest.approx([0.0, 11.0])


def test_trials_csv_flattens_user_attrs(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    add(study, 0.5, 1.0, width=32)
    fail(study, "out of memory")
    df = trials_frame(study)
    assert df["state"].tolist() == ["COMPLETE", "FAIL"]
    assert df.loc[0, "values_pck"] == 0.5 and df.loc[0, "values_latency_ms"] == 1.0
    assert df.loc[0, "user_attrs_arch.width"] == 32
    assert df.loc[0, "user_attrs_budget.epochs"] == 1
    assert df.loc[0, "user_attrs_arch.branch_split"] == '["1/2", "1/4", "1/4"]'
    assert df.loc[1, "user_attrs_fail_reason"] == "out of memory"


def test_ablation_table_by_axis(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    for width, pcks in ((32, (0.4, 0.6)), (64, (0.7, 0.7)), (128, (0.9, 0.8))):
        for pck in pcks:
            add(study, pck, width / 10, width=width)
    fail(study)
    assert ablation_axis(study) == "width"
    table = ablation_table(study, "width")
    assert table.index.tolist() == [32, 64, 128]
    assert table["trials"].tolist() == [2, 2, 2]
    assert table["pck_mean"].tolist() == pytest.approx([0.5, 0.7, 0.85])
    assert table["pck_std"].tolist() == pytest.approx([0.1414214, 0.0, 0.0707107], abs=1e-6)
    assert table["params_mean"].tolist() == [32000, 64000, 128000]
    assert table["latency_ms_mean"].tolist() == pytest.approx([3.2, 6.4, 12.8])


def test_no_ablation_when_two_axes_vary(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    add(study, 0.5, 1.0, width=32, gate="se", suggest=("width", "gate"))
    add(study, 0.6, 2.0, width=64, gate="eca", suggest=("width", "gate"))
    assert ablation_axis(study) is None


def test_write_report_files(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = new_study(url)
    for width, pck, latency in ((32, 0.5, 1.0), (64, 0.45, 2.0), (128, 0.8, 3.0)):
        add(study, pck, latency, width=width)
    fail(study)
    written = write_report(url, "rep", tmp_path / "report")
    assert set(written) >= {
        "trials",
        "pareto_png",
        "pareto_html",
        "hypervolume",
        "hypervolume_png",
        "ablation",
    }
    assert len(pd.read_csv(written["trials"])) == 4
    for key in ("pareto_png", "hypervolume_png"):
        with Image.open(written[key]) as img:
            assert img.format == "PNG" and img.size[0] > 200
    page = written["pareto_html"].read_text()
    assert page.count("data:image/png;base64,") == 2 and "<script" not in page
    assert "id000" in page and "id002" in page and "id001" not in page  # the Pareto table only
    assert len(pd.read_csv(written["hypervolume"])) == 3


def test_report_without_complete_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    fail(new_study(url))
    assert set(write_report(url, "rep", tmp_path / "report")) == {"trials"}


def test_report_unknown_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    new_study(url)
    with pytest.raises(ConfigError, match="known studies: rep"):
        write_report(url, "other", tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_cli_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = new_study(url)
    for width, pck in ((32, 0.5), (32, 0.6), (64, 0.7)):
        add(study, pck, width / 10, width=width)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        str(REPO / "launch.py"),
        "report",
        "--study",
        "rep",
        "--storage",
        url,
        "--out",
        str(tmp_path / "run"),
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run/report/pareto.html").is_file()
    assert "ablation over width" in done.stdout and "pck_mean" in done.stdout
    cmd[4] = "missing"
    bad = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert (
        bad.returncode == 2 and "Traceback" not in bad.stderr and "known studies: rep" in bad.stderr
    )


@pytest.mark.parametrize("order", ["top-level", "subcommand"])
def test_cli_report_takes_storage_and_out_before_or_after_the_command(
    tmp_path: Path, order: str
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = new_study(url)
    for width, pck in ((32, 0.5), (64, 0.7)):
        add(study, pck, width / 10, width=width)
    where = ["--storage", url, "--out", str(tmp_path / "run")]
    args = (
        [*where, "report", "--study", "rep"]
        if order == "top-level"
        else ["report", "--study", "rep", *where]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run/report/trials.csv").is_file()
    assert not (
        tmp_path / "runs"
    ).exists()  # the default run folder (and its study.db) was not used


# -- per-value summary (values.csv, values.png) --------------------------------------------------------
def test_values_table_without_a_stored_space(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    for width, gate, pck in ((32, "channel", 0.5), (32, "se", 0.7), (64, "channel", 0.3)):
        add(study, pck, 1.0, width=width, gate=gate, suggest=("width", "gate"))
    fail(study)
    table = values_table(study).set_index(["axis", "value"])
    assert list(table.index) == [
        ("width", "32"),
        ("width", "64"),
        ("gate", "channel"),
        ("gate", "se"),
    ]
    assert table["trials"].tolist() == [2, 1, 2, 1]
    assert table["pck_mean"].tolist() == pytest.approx([0.6, 0.3, 0.4, 0.7])
    assert table.loc[("width", "32"), "pck_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))


def test_values_table_lists_every_choice_of_the_stored_space(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = new_study(url)
    study.set_user_attr(
        "config",
        {
            "space": {
                "width": [32, 64, 128],
                "gate": "channel",
                "branch_split": ["1/2,1/4,1/4", "1/3,1/3,1/3"],
            }
        },
    )
    add(study, 0.5, 1.0, width=32)
    add(study, 0.7, 1.0, width=64)
    table = values_table(study)
    assert (
        table["axis"].tolist() == ["width"] * 3 + ["branch_split"] * 2
    )  # gate has one value: no chart
    assert table["value"].tolist() == ["32", "64", "128", "1/2,1/4,1/4", "1/3,1/3,1/3"]
    assert table["trials"].tolist() == [1, 1, 0, 2, 0]
    assert np.isnan(table["pck_mean"].iloc[2]) and table["pck_mean"].iloc[3] == pytest.approx(0.6)
    written = write_report(url, "rep", tmp_path / "report")
    assert pd.read_csv(written["values"])["trials"].tolist() == [1, 1, 0, 2, 0]
    with Image.open(written["values_png"]) as img:
        assert img.format == "PNG" and img.size[0] > 400


def test_no_values_files_when_nothing_varies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = new_study(url)
    add(study, 0.5, 1.0)
    add(study, 0.6, 2.0)
    written = write_report(url, "rep", tmp_path / "report")
    assert "values" not in written and not (tmp_path / "report" / "values.png").exists()


# -- figures that explain themselves ------------------------------------------------------------
CONFIG = {
    "data": {"source": "synthetic", "val": 32, "val_split": "val"},
    "latency": {"device": "cpu", "threads": 2},
}


def reuse(study: optuna.Study, number: int) -> None:
    """A trial that takes trial `number`'s result (as StorageSearcher._reuse does)."""
    earlier = study.trials[number]
    trial = study.ask()
    for key, value in earlier.user_attrs.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("reused_from", number)
    study.tell(trial, list(earlier.values))


def test_pareto_figure_joins_the_front_and_says_what_was_measured(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    study.set_user_attr("config", CONFIG)
    for width, pck, latency in ((32, 0.5, 1.0), (64, 0.45, 2.0), (128, 0.8, 3.0), (64, 0.3, 0.5)):
        add(study, pck, latency, width=width)
    reuse(study, 2)
    fig = pareto_figure(study)
    ax = fig.axes[0]
    front = [line for line in ax.lines if line.get_drawstyle().startswith("steps")]
    assert len(front) == 1  # one step line through the Pareto points, by latency
    assert list(front[0].get_xdata()) == [0.5, 1.0, 3.0]
    assert list(front[0].get_ydata()) == [0.3, 0.5, 0.8]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Pareto-optimal (3)" in legend and "other trials (1)" in legend
    assert not any("Best Trial" in t for t in legend)
    assert ax.get_xlabel() == "latency (ms, median, batch 1, cpu, 2 threads)"
    assert ax.get_ylabel() == "PCK@0.2 (torso), proxy validation: synthetic val, 32 images (0-1)"
    assert "Pareto front of 4 archs" in ax.get_title()
    assert "1 reused result not drawn" in ax.get_title()
    plt_close(fig)


def test_the_front_decided_by_the_quiet_pass_is_drawn_and_tabled_beside_the_in_study_one(
    tmp_path: Path,
) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = new_study(storage)
    study.set_user_attr("config", CONFIG)
    for width, pck, latency in ((32, 0.5, 1.0), (64, 0.8, 3.0)):
        add(study, pck, latency, width=width)
    quiet = {
        "a": {"trial": 0, "pck": 0.5, "latency_ms": 1.0, "latency_quiet_ms": 1.2,
              "latency_quiet_low_ms": 1.1, "latency_quiet_high_ms": 1.3},
        "b": {"trial": 1, "pck": 0.8, "latency_ms": 3.0, "latency_quiet_ms": 2.5,
              "latency_quiet_low_ms": 2.4, "latency_quiet_high_ms": 2.7},
    }  # fmt: skip
    study.set_user_attr("quiet_latency", {"decided_by": "quiet interleaved pass", **quiet})
    fig = pareto_figure(study)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("exported (2): quiet interleaved latency") for t in legend)
    assert any(t.startswith("front by in-study latency_ms (screening)") for t in legend)
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [list(d.get_xdata()) for d in dashed] == [[1.2, 2.5]]
    plt_close(fig)
    written = write_report(storage, study.study_name, tmp_path / "report")
    page = written["pareto_html"].read_text()
    assert "latency decided by the quiet interleaved pass" in page
    assert "latency_quiet_high_ms" in page


def test_labels_without_a_stored_config() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert metric_label(study, "pck") == "PCK, proxy validation split (0-1)"
    assert metric_label(study, "latency_ms") == "latency (ms, median, batch 1)"
    assert metric_label(study, "params") == "params (parameters)"


def test_values_count_trained_archs_not_reuses_and_show_error_bars(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    for width, pck in ((32, 0.4), (32, 0.6), (64, 0.7)):
        add(study, pck, 1.0, width=width)
    reuse(study, 2)
    reuse(study, 2)  # the 64-wide arch was trained once: n = 1, its mean its one result
    table = values_table(study).set_index("value")
    assert table["trials"].tolist() == [2, 1]
    assert table.loc["64", "pck_mean"] == pytest.approx(0.7)
    assert np.isnan(table.loc["64", "pck_std"])
    fig = values_figure(values_table(study), "pck", "t", xlabel="mean PCK")
    ax = fig.axes[0]
    from matplotlib.container import ErrorbarContainer

    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)  # whiskers: +-1 std
    assert [t.get_text() for t in ax.texts] == ["0.500, n=2", "0.700, n=1"]
    assert ax.get_xlabel() == "mean PCK"
    plt_close(fig)


def test_hypervolume_figure_has_integer_trial_ticks(tmp_path: Path) -> None:
    study = new_study(f"sqlite:///{tmp_path / 's.db'}")
    for pck, latency in ((0.5, 1.0), (0.8, 3.0), (0.6, 2.0)):
        add(study, pck, latency)
    history = hypervolume_history(study, [0.0, 4.0])
    fig = hypervolume_figure(history, [0.0, 4.0], "hv", ["pck", "latency_ms"])
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_xlabel() == "trial number"
    assert "reference point: pck 0, latency_ms 4" in ax.get_title()
    plt_close(fig)


def plt_close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)
