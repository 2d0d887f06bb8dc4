"""The size guard (space.guard): huge specs refused from shapes alone, normal ones pass, estimates sane."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO

from space.errors import ConfigError
from space.guard import LIMIT_ENV, check_memory, memory_limit
from space.model import build_model
from space.spec import ArchSpec, load_arch

torch.set_num_threads(1)
HUGE = ArchSpec(stacks=8, width=2048, input_size=4096)  # 4.6 G parameters


def test_a_huge_spec_is_refused_without_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMIT_ENV, "64")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with pytest.raises(ConfigError) as info:
        check_memory(HUGE)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    err = info.value
    assert err.field == "arch" and "\n" not in str(err)
    assert "4,586.4 M parameters" in str(err) and f"64.0 GB limit ({LIMIT_ENV}" in str(err)
    assert after - before < 1e9  # the real network would need 18 GB for its weights alone
    with pytest.raises(ConfigError, match="training at batch 16, 4096 px"):
        check_memory(HUGE, batch_size=16, training=True)


@pytest.mark.parametrize("name", ["bulat-sgsc", "newell-hourglass", "bulat-sgsc-tiny"])
def test_presets_pass_and_the_estimate_matches_the_real_parameters(name: str) -> None:
    spec = load_arch(name)
    est = check_memory(spec)
    real = build_model(spec)
    assert est.params == sum(p.numel() for p in real.parameters())
    assert est.param_bytes == sum(
        t.numel() * t.element_size() for t in [*real.parameters(), *real.buffers()]
    )
    assert 0 < est.activation_bytes < est.total_bytes <= est.limit_bytes
    train = check_memory(spec, batch_size=4, training=True)
    # Adam keeps 4 copies of the weights; training at batch 4 keeps more activations than inference at 1
    assert train.total_bytes - train.activation_bytes == 4 * est.param_bytes
    assert train.activation_bytes > 4 * est.activation_bytes


def test_the_activation_estimate_scales_with_the_pixels() -> None:
    spec = load_arch("bulat-sgsc-tiny")
    small, large = check_memory(spec, 64).activation_bytes, check_memory(spec, 256).activation_bytes
    assert 12 < large / small <= 16


def test_the_limit_comes_from_the_env_var_or_the_ram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    assert memory_limit() == (
        os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "the machine's RAM",
    )
    monkeypatch.setenv(LIMIT_ENV, "0.5")
    assert memory_limit() == (500_000_000, LIMIT_ENV)
    for bad in ("lots", "-1", "0", "inf"):
        monkeypatch.setenv(LIMIT_ENV, bad)
        with pytest.raises(ConfigError, match=f"^{LIMIT_ENV}: expected a positive number of GB"):
            check_memory(load_arch("bulat-sgsc-tiny"))
    with pytest.raises(ConfigError, match="over the 0.1 MB limit \\(the limit given"):
        check_memory(load_arch("bulat-sgsc-tiny"), limit_bytes=10**5)


def test_the_check_leaves_the_random_stream_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    check_memory(load_arch("bulat-sgsc-tiny"), batch_size=8, training=True)
    assert torch.equal(torch.rand(4), expected)


def test_the_profile_command_refuses_a_spec_over_the_limit() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", LIMIT_ENV: "0.0001"}
    res = subprocess.run(
        [sys.executable, "launch.py", "profile", "--arch", "bulat-sgsc-tiny", "--runs", "20"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: <arg>: --arch: inference at batch 1, 64 px needs about"
    )
    assert f"over the 0.1 MB limit ({LIMIT_ENV}" in lines[0]


def test_a_study_trial_fails_an_arch_over_the_limit_before_measuring_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from search.trial import TrialJob, fits_memory

    job = TrialJob(
        cpus=1,
        gpus=0,
        data="synthetic",
        budget={"batch_size": 16, "input_size": 64},
        limits={},
        measures=(),
        meter=None,
    )
    fits_memory(load_arch("bulat-sgsc-tiny"), job)  # fits, to measure
    fits_memory(load_arch("bulat-sgsc-tiny"), job, job.budget)  # and to train
    with pytest.raises(ConfigError, match="inference at batch 1, 4096 px needs about"):
        fits_memory(HUGE, job)
    monkeypatch.setenv("SOFTGATE_MAX_MEMORY_GB", "0.001")
    with pytest.raises(ConfigError, match="training at batch 16, 64 px needs about"):
        fits_memory(load_arch("bulat-sgsc-tiny"), job, job.budget)


def test_train_refuses_an_arch_over_the_limit_before_reading_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainers.fit import fit

    monkeypatch.setenv("SOFTGATE_MAX_MEMORY_GB", "0.001")
    with pytest.raises(ConfigError) as err:
        fit(
            load_arch("bulat-sgsc-tiny"),
            "no/such/data",
            tmp_path / "run",
            epochs=1,
            input_size=64,
            progress=False,
        )
    assert err.value.field == "--arch" and "over the" in err.value.message
    assert not (tmp_path / "run").exists()
