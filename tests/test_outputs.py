"""Where output goes (docs/reliability.md): nothing overwritten, nothing half-written.

Every command's --out is checked before any work (trainers/outputs.py): a path in the project's
source (never, not even with --force), an existing file that is not the command's own kind of
output (without --force), a file where a folder goes and a folder where a file goes, an unwritable
folder and a full disk are each one line `error: ...` on stderr, exit 2, and nothing created or
changed (the folder tree with sizes and mtimes compared before and after). A write that fails
half-way leaves no temporary and no folder it made; a killed run's temporaries go with the next.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REPO, call_launch, study_file

import launch
from trainers import outputs

TINY = "bulat-sgsc-tiny"
FULL = {"SOFTGATE_MIN_FREE_MB": "1e12"}  # no disk has that much free: "full"


def _weights(tmp: Path) -> None:
    import torch

    from space.model import build_model
    from space.spec import load_arch

    torch.save(build_model(load_arch(TINY)).state_dict(), tmp / "w.pt")


def _image(tmp: Path) -> None:
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp / "a.png")
    _weights(tmp)


def _file(name: str, text: str = "mine\n") -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)

    return setup


def _folder(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).mkdir(parents=True)


def _link_to_pyproject(tmp: Path) -> None:
    (tmp / "link.onnx").symlink_to(REPO / "pyproject.toml")


def _study_with(**changes) -> Callable[[Path], None]:
    """The smoke study as outs.yaml with `changes` ({tmp} in a value: the working folder)."""

    def setup(tmp: Path) -> None:
        study_file(tmp, "outs", **json.loads(json.dumps(changes).replace("{tmp}", str(tmp))))

    return setup


def _export_dir_a_file(tmp: Path) -> None:
    _study_with(export={"auto": True, "dir": "{tmp}/exp"})(tmp)
    (tmp / "exp").write_text("a file, not a folder\n")


def _prediction_beside(tmp: Path) -> None:
    _image(tmp)
    (tmp / "o").mkdir()
    (tmp / "o" / "a.json").write_text('{"someone": "else"}\n')


T = ["train", "--arch", TINY, "--data", "synthetic:8", "--epochs", "1", "--batch-size", "4"]
E = ["evaluate", "--arch", TINY, "--weights", "w.pt", "--data", "synthetic:8"]
P = ["predict", "--arch", TINY, "--weights", "w.pt", "--image", "a.png"]
R = str(REPO)

# id -> (setup(tmp) or None, argv ({tmp} and {repo} replaced), extra environment)
CASES: dict[str, tuple[Callable[[Path], None] | None, list[str], dict[str, str]]] = {
    # onnx: a single file
    "onnx --out launch.py": (None, ["onnx", "--arch", TINY, "--out", f"{R}/launch.py"], {}),
    "onnx --out launch.py --force": (
        None,
        ["onnx", "--arch", TINY, "--out", f"{R}/launch.py", "--force"],
        {},
    ),
    "onnx --out a new file in space/": (
        None,
        ["onnx", "--arch", TINY, "--out", f"{R}/space/x.onnx", "--force"],
        {},
    ),
    "onnx --out a link to pyproject.toml": (
        _link_to_pyproject,
        ["onnx", "--arch", TINY, "--out", "link.onnx", "--force"],
        {},
    ),
    "onnx --out an existing other file": (
        _file("notes.onnx"),
        ["onnx", "--arch", TINY, "--out", "notes.onnx"],
        {},
    ),
    "onnx --out a folder": (_folder("d.onnx"), ["onnx", "--arch", TINY, "--out", "d.onnx"], {}),
    "onnx --out below a file": (
        _file("f.txt"),
        ["onnx", "--arch", TINY, "--out", "f.txt/x.onnx"],
        {},
    ),
    "onnx on a full disk": (None, ["onnx", "--arch", TINY, "--out", "x.onnx"], FULL),
    # evaluate: a single file
    "evaluate --out a folder": (_folder("r.json"), [*E, "--out", "r.json"], {}),
    "evaluate --out an existing other JSON": (
        _file("r.json", '{"a": 1}\n'),
        [*E, "--out", "r.json"],
        {},
    ),
    "evaluate --out pyproject.toml --force": (
        None,
        [*E, "--out", f"{R}/pyproject.toml", "--force"],
        {},
    ),
    "evaluate default out inside docs/": (None, [*E[:4], f"{R}/docs/w.pt", *E[5:]], {}),
    "evaluate on a full disk": (_weights, [*E, "--out", "r.json"], FULL),
    # predict: a folder of NAME.png + NAME.json
    "predict --out docs": (None, [*P, "--out", f"{R}/docs"], {}),
    "predict --out below a file": (_file("f.txt"), [*P, "--out", "f.txt/o"], {}),
    "predict over its own --image, even with --force": (_image, [*P, "--out", ".", "--force"], {}),
    "predict over another NAME.json": (_prediction_beside, [*P, "--out", "o"], {}),
    # train: a folder
    "train --out an existing file": (_file("run"), [*T, "--out", "run"], {}),
    "train --out tests": (None, [*T, "--out", f"{R}/tests"], {}),
    "train --out the project root": (None, [*T, "--out", R], {}),
    "train --out .git": (None, [*T, "--out", f"{R}/.git/run"], {}),
    "train --out a folder with metrics.json": (
        _file("run/metrics.json", "{}\n"),
        [*T, "--out", "run"],
        {},
    ),
    "train on a full disk": (None, [*T, "--out", "run"], FULL),
    # study tools: folders inside the run folder
    "export --out space": (None, ["export", "--study", "never-ran", "--out", f"{R}/space"], {}),
    "export: its folder is a file": (
        _file("run/export"),
        ["export", "--study", "never-ran", "--out", "run"],
        {},
    ),
    "report --out studies": (None, ["report", "--study", "never-ran", "--out", f"{R}/studies"], {}),
    "report: its folder is a file": (
        _file("run/report"),
        ["report", "--study", "never-ran", "--out", "run"],
        {},
    ),
    "report on a full disk": (None, ["report", "--study", "never-ran", "--out", "run"], FULL),
    "finalize: its folder is a file": (
        _file("run/final"),
        ["finalize", "--study", "smoke", "--out", "run", "--epochs", "1"],
        {},
    ),
    # the study run
    "study --out an existing file": (_file("run"), ["--study", "smoke", "--out", "run"], {}),
    "study --out cli": (None, ["--study", "smoke", "--out", f"{R}/cli"], {}),
    "study export.dir is a file": (
        _export_dir_a_file,
        ["--study", "{tmp}/outs.yaml", "--out", "run"],
        {},
    ),
    "study artifact_dir in benchmarks": (
        _study_with(dashboard={"artifact_dir": f"{R}/benchmarks"}),
        ["--study", "{tmp}/outs.yaml", "--out", "run"],
        {},
    ),
    "study SQLite file in space/": (
        None,
        ["--study", "smoke", "--out", "run", "--storage", f"sqlite:///{R}/space/study.db"],
        {},
    ),
    "study on a full disk": (None, ["--study", "smoke", "--out", "run"], FULL),
}


def _snapshot(tmp: Path, argv: list[str]) -> dict[str, tuple[int, int, int]]:
    """Every entry under `tmp`, and the project paths the case names (with their folder's entries):
    kind, size and mtime."""
    paths = [tmp, *tmp.rglob("*")]
    for arg in argv:
        word = arg.replace("sqlite:///", "")
        if word.startswith(R):
            near = outputs._nearest_existing(Path(word))
            paths += [near, *(near.iterdir() if near.is_dir() else near.parent.iterdir())]
    snap = {}
    for path in paths:
        if "__pycache__" in path.parts:  # Python's own, written when a module is first imported
            continue
        st = path.lstat()
        snap[str(path)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return snap


@pytest.fixture
def project_files():
    """The project's own files a case aims at, put back if a failure ever wrote over them."""
    saved = {p: p.read_bytes() for p in (REPO / "launch.py", REPO / "pyproject.toml")}
    yield
    for path, data in saved.items():
        if path.read_bytes() != data:
            path.write_bytes(data)


_run = call_launch


def _one_error_line(rc: int, out: str, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (rc, out, err)
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_output_refused_before_any_work_one_line_nothing_changed(
    case, tmp_path, monkeypatch, capsys, project_files
):
    setup, argv, env = CASES[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOFTGATE_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if setup:
        setup(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    before = _snapshot(tmp_path, argv)
    rc, out, err = _run(argv, capsys)
    _one_error_line(rc, out, err)
    assert out == "", (case, out)
    assert _snapshot(tmp_path, argv) == before, case


def test_messages_name_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.onnx").write_text("mine\n")
    line = _one_error_line(
        *_run(["onnx", "--arch", TINY, "--out", f"{R}/launch.py", "--force"], capsys)
    )
    assert "is part of the project's source" in line and "--out" in line
    line = _one_error_line(*_run(["onnx", "--arch", TINY, "--out", "notes.onnx"], capsys))
    assert "exists and is not an ONNX file of this command; pass --force" in line
    monkeypatch.setenv("SOFTGATE_MIN_FREE_MB", "1e12")
    line = _one_error_line(*_run(["onnx", "--arch", TINY, "--out", "x.onnx"], capsys))
    assert "MiB free on the disk of" in line


def test_unwritable_folder_is_refused_before_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(outputs, "_may_write", lambda folder: False)
    line = _one_error_line(*_run([*T, "--out", "run"], capsys))
    assert "permission denied" in line and not (tmp_path / "run").exists()
    monkeypatch.setattr(outputs, "_may_write", lambda folder: True)
    monkeypatch.setattr(outputs, "_read_only", lambda folder: True)
    line = _one_error_line(*_run(["onnx", "--arch", TINY, "--out", "x.onnx"], capsys))
    assert "read-only file system" in line and list(tmp_path.iterdir()) == []


def _mount(where: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_a_real_read_only_file_system(tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    if not _mount(ro, "ro,size=1m"):
        pytest.skip("needs root and mount (a read-only tmpfs)")
    try:
        monkeypatch.chdir(tmp_path)
        _weights(tmp_path)
        line = _one_error_line(*_run([*E, "--out", "ro/r.json"], capsys))
        assert "read-only file system" in line
        line = _one_error_line(*_run([*T, "--out", "ro/run"], capsys))
        assert "read-only file system" in line
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_the_projects_source_is_found_from_the_installed_packages():
    assert outputs.PROJECT_ROOT == REPO
    for path in (
        "launch.py",
        "pyproject.toml",
        "space/x.onnx",
        "tests",
        "docs/a/b.json",
        ".git",
        "studies/new.yaml",
        "README.md",
        "setup.cfg",
    ):
        assert outputs.in_source(REPO / path), path
    assert outputs.in_source(REPO, folder=True) and not outputs.in_source(REPO / "x.onnx")
    for path in ("runs/train", "runs/smoke/export", "model.onnx", "best.eval-test.json"):
        assert not outputs.in_source(REPO / path), path
    assert not outputs.in_source("/tmp/space/launch.py")


# -- own outputs are replaced; other files only with --force --------------------------------------


def test_onnx_replaces_its_own_file_and_another_only_with_force(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    base = ["onnx", "--arch", TINY, "--input-size", "32", "--out", "x.onnx"]
    assert launch.main(base) == 0
    first = (tmp_path / "x.onnx").stat().st_mtime_ns
    assert launch.main(base) == 0  # its own earlier output: no --force needed
    assert (tmp_path / "x.onnx").stat().st_mtime_ns >= first
    (tmp_path / "y.onnx").write_text("someone's notes\n")
    capsys.readouterr()
    _one_error_line(*_run([*base[:-1], "y.onnx"], capsys))
    assert (tmp_path / "y.onnx").read_text() == "someone's notes\n"
    assert launch.main([*base[:-1], "y.onnx", "--force"]) == 0
    assert (tmp_path / "y.onnx").read_bytes()[:1] == b"\x08"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx", "y.onnx"]


def test_evaluate_replaces_its_own_result_and_predict_its_own_pictures(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOFTGATE_CACHE", str(tmp_path / "cache"))
    _image(tmp_path)
    for _ in range(2):
        assert launch.main([*E, "--device", "cpu", "--out", "r.json"]) == 0
        assert launch.main([*P, "--device", "cpu", "--out", "o"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.json", "a.png"]
    assert "metrics" in json.loads((tmp_path / "r.json").read_text())


# -- nothing half-written -----------------------------------------------------------------------


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_write_on_a_full_disk_leaves_no_temporary_and_no_folder(tmp_path):
    from trainers.io import atomic_write

    def half(tmp: str) -> None:
        Path(tmp).write_bytes(b"x" * 4096)
        _enospc()

    with pytest.raises(OSError):
        atomic_write(tmp_path / "new" / "deeper" / "f.bin", half)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f.bin").write_bytes(b"good")
    with pytest.raises(OSError):
        atomic_write(tmp_path / "f.bin", half)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    assert (tmp_path / "f.bin").read_bytes() == b"good"


def test_onnx_on_a_disk_that_fills_while_writing(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    real = Path.write_bytes

    def fill(self: Path, data: bytes) -> int:
        if self.name.endswith(".tmp"):
            real(self, data[: len(data) // 2])
            _enospc()
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", fill)
    line = _one_error_line(
        *_run(["onnx", "--arch", TINY, "--input-size", "32", "--out", "x.onnx"], capsys)
    )
    assert "x.onnx: --out: no space left on device" in line
    assert list(tmp_path.iterdir()) == []


def test_evaluate_on_a_disk_that_fills_leaves_no_folder_or_temporary(tmp_path, monkeypatch, capsys):
    import trainers.io

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOFTGATE_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    _weights(tmp_path)
    monkeypatch.setattr(trainers.io.json, "dump", lambda obj, f, **kw: (f.write("{"), _enospc()))
    assert "no space left on device" in _one_error_line(
        *_run([*E, "--device", "cpu", "--out", "new/r.json"], capsys)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_train_on_a_disk_that_fills_leaves_no_folder_or_temporary(tmp_path, monkeypatch, capsys):
    import trainers.io

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOFTGATE_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))

    def fill(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"PK" * 1000)
        _enospc()

    monkeypatch.setattr(trainers.io.torch, "save", fill)
    rc, out, err = _run([*T, "--device", "cpu", "--workers", "0", "--out", "runs/t"], capsys)
    lines = err.strip().splitlines()  # the epoch's progress bar, then the error
    said = out.splitlines()  # train says which split selects best.pt before the first epoch
    assert rc == 2 and all(x.startswith("selecting best.pt on ") for x in said), out
    assert [x for x in lines if x.startswith("error:")] == lines[-1:], err
    line = lines[-1]
    assert "runs/t: --out: no space left on device while writing" in line and "--resume" in line
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_its_own_kind_go_fresh_ones_stay(tmp_path):
    from trainers.io import atomic_write

    old = time.time() - 3600
    stale = [tmp_path / ".f.json.abcd1234.tmp", tmp_path / ".f.json.zz_99xyz.tmp"]
    fresh = tmp_path / ".f.json.newer123.tmp"  # a run that started after this process
    others = [tmp_path / ".g.json.abcd1234.tmp", tmp_path / "f.json.tmp", tmp_path / "notes.tmp"]
    for path in [*stale, fresh, *others]:
        path.write_text("x")
    for path in [*stale, *others]:
        os.utime(path, (old, old))
    atomic_write(tmp_path / "f.json", lambda tmp: Path(tmp).write_text("{}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["f.json", fresh.name, *(p.name for p in others)]
    )


def test_a_killed_exports_temporaries_go_with_the_next_export(tmp_path):
    from test_export import make_study

    from search.export import export_study

    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_study(url)
    old = time.time() - 3600
    killed = [tmp_path / ".export.tmp-abcd1234", tmp_path / ".export.old-4242"]
    for folder in killed:
        folder.mkdir()
        (folder / "01-x.yaml").write_text("# softgate-nas export: old\n")
        os.utime(folder, (old, old))
    running = tmp_path / ".export.tmp-efgh5678"  # another export, started after this process
    running.mkdir()
    (tmp_path / ".other.tmp-abcd1234").mkdir()
    os.utime(tmp_path / ".other.tmp-abcd1234", (old, old))
    export_study(url, "exp", tmp_path / "export")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([".export.tmp-efgh5678", ".other.tmp-abcd1234", "export", "study.db"])


# -- a study on a disk that fills -----------------------------------------------------------------


def _disk_full_storage_error() -> Exception:
    from optuna.exceptions import StorageInternalError

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as err:
            raise StorageInternalError("An exception is raised during the commit.") from err
    except StorageInternalError as err:
        return err


def test_a_study_whose_disk_fills_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    import search.study

    def run_study(*args, **kwargs):
        raise _disk_full_storage_error()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(search.study, "run_study", run_study)
    line = _one_error_line(*_run(["--study", "smoke", "--out", "run"], capsys))
    assert line == (
        "error: run: --out: no space left on device while writing; free space, then "
        "continue with --resume"
    )


def test_tunes_logged_storage_error_is_kept_and_raised_once(tmp_path):
    from optuna.exceptions import StorageInternalError

    from search.study import DiskErrors

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record.getMessage())

    kept: list[str] = []
    tune_log = logging.getLogger(DiskErrors.LOGGERS[0])
    tune_log.addHandler(handler := Kept())
    with pytest.raises(StorageInternalError), DiskErrors(tmp_path):
        try:
            raise _disk_full_storage_error()
        except StorageInternalError:
            tune_log.exception("Trial t: Error stopping trial.")
        try:
            raise ValueError("a bug")
        except ValueError:
            tune_log.exception("Trial u: Error stopping trial.")
    tune_log.removeHandler(handler)
    assert kept == ["Trial u: Error stopping trial."]


@pytest.mark.slow
def test_a_real_study_on_a_disk_that_fills_then_resumes(tmp_path):
    """The smoke study on a 240 KiB tmpfs: it fills during the run (one line, exit 2); once the
    disk is larger, --resume completes the study. Needs root (mount); about 3 minutes."""
    disk = tmp_path / "disk"
    if not _mount(disk, "size=240k"):
        pytest.skip("needs root and mount (a small tmpfs)")
    env = {
        **os.environ,
        "SOFTGATE_MIN_FREE_MB": "0.01",
        "PYTHONPATH": str(REPO),
        "SOFTGATE_CACHE": str(tmp_path / "cache"),
    }
    cmd = [sys.executable, str(REPO / "launch.py"), "--study", "smoke", "--out", str(disk / "run")]
    try:
        full = subprocess.run(
            cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path, check=False
        )
        assert full.returncode == 2, full.stderr[-3000:]
        assert full.stderr.strip().splitlines() == [
            (
                f"error: {disk / 'run'}: --out: no space left on device while writing; free space, "
                "then continue with --resume"
            )
        ]
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        resumed = subprocess.run(
            [*cmd, "--resume"],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "4 COMPLETE" in resumed.stdout and (disk / "run" / "export" / "index.csv").is_file()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
