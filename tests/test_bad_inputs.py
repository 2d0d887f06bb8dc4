"""The catalogue of bad inputs (docs/reliability.md): each one is a single line `error: ...` on
stderr, exit code 2, and nothing written in the working folder (no run folder, study or file).

Every case runs `launch.main(argv)` in-process with a fresh working folder; `setup(tmp)` writes the
bad file the case needs, and the folder's content after setup is what must still be there after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from helpers import SMOKE, call_launch, study_file
from helpers import TINY as TINY_DICT

SECRET = "p@ss/w?rd"


def _study(tmp: Path, name: str = "bad", **changes) -> str:
    return str(study_file(tmp, name, **changes))


def _write(name: str, text: str) -> Callable[[Path], str]:
    def setup(tmp: Path) -> str:
        (tmp / name).write_text(text)
        return str(tmp / name)

    return setup


def _coco(images, annotations) -> Callable[[Path], str]:
    return _write(
        "person_keypoints_train2017.json",
        json.dumps({"images": images, "annotations": annotations, "categories": []}),
    )


def _mpii_valid_only(tmp: Path) -> str:
    import h5py
    import numpy as np

    (tmp / "mpii" / "annot").mkdir(parents=True)
    with h5py.File(tmp / "mpii" / "annot" / "valid.h5", "w") as f:
        f["center"] = np.zeros((1, 2))
        f["scale"] = np.ones(1)
        f["part"] = np.zeros((1, 16, 2))
        f["imgname"] = np.array([b"a.jpg"])
    return str(tmp / "mpii")


def _smoke_export(tmp: Path) -> Path:
    """A one-arch export of the `smoke` study where finalize looks for it (runs/smoke/export)."""
    from search.export import EXPORT_HEADER
    from space.spec import load_arch

    folder = tmp / "runs" / "smoke" / "export"
    folder.mkdir(parents=True)
    arch = load_arch("bulat-sgsc-tiny").to_dict()
    (folder / "01-x.yaml").write_text(
        f"{EXPORT_HEADER} test\n" + yaml.safe_dump({"arch": arch, "metrics": {}})
    )
    (folder / "index.csv").write_text("rank,file,trial,arch_id\n1,01-x.yaml,0,x\n")
    return folder


def _export_and_coco_without_test(tmp: Path) -> str:
    _smoke_export(tmp)
    return _coco([], [])(tmp)


def _weights(tmp: Path, arch: str | dict = "bulat-sgsc-tiny") -> str:
    """Untrained weights (a bare state_dict) of a preset or an arch dict, as predict's --weights."""
    import torch

    from space.model import build_model
    from space.spec import ArchSpec, load_arch

    spec = load_arch(arch) if isinstance(arch, str) else ArchSpec.from_dict(arch)
    torch.save(build_model(spec).state_dict(), tmp / "w.pt")
    return str(tmp / "w.pt")


def _weights_and_text_image(tmp: Path) -> str:
    (tmp / "bad.jpg").write_text("not a JPEG")
    return _weights(tmp)


def _weights_and_image(tmp: Path) -> str:
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp / "a.png")
    return _weights(tmp)


# -- files that cannot be read, weights that do not fit, weak flags (docs/reliability.md) ---------


def _binary(name: str) -> Callable[[Path], str]:
    def setup(tmp: Path) -> str:
        (tmp / name).write_bytes(bytes(range(256)) * 4)  # 0x80..0xff: not UTF-8
        return str(tmp / name)

    return setup


def _folder(name: str) -> Callable[[Path], str]:
    def setup(tmp: Path) -> str:
        (tmp / name).mkdir()
        return str(tmp / name)

    return setup


def _fifo(name: str) -> Callable[[Path], str]:
    def setup(tmp: Path) -> str:
        os.mkfifo(tmp / name)
        return str(tmp / name)

    return setup


def _huge_study(tmp: Path) -> str:
    """A study file of 1.5 MB (a valid study plus a long description): refused before parsing."""
    path = Path(_study(tmp))
    path.write_text(path.read_text() + "description: " + "x" * 1_500_000 + "\n")
    return str(path)


def _checkpoint(tmp: Path, name: str = "w.pt", **fields) -> str:
    """A checkpoint as train writes it (model, arch, arch_id) with `fields` replaced."""
    import torch

    from space.model import build_model
    from space.spec import load_arch

    spec = load_arch(TINY)
    ckpt = {
        "model": build_model(spec).state_dict(),
        "arch": spec.to_dict(),
        "arch_id": spec.arch_id,
        **fields,
    }
    torch.save(ckpt, tmp / name)
    return str(tmp / name)


def _saved(obj: object) -> Callable[[Path], str]:
    def setup(tmp: Path) -> str:
        import torch

        torch.save(obj, tmp / "w.pt")
        return str(tmp / "w.pt")

    return setup


def _last_pt(**changes: Callable[[], object] | None) -> Callable[[Path], str]:
    """A training folder t/ whose last.pt is bulat-sgsc-tiny's as train writes it, with `changes`
    (each made by calling it; None: the key left out)."""

    def setup(tmp: Path) -> str:
        import torch

        (tmp / "t").mkdir()
        ckpt = torch.load(_checkpoint(tmp, "t/last.pt"), weights_only=True)
        ckpt.update(
            {
                "optimizer": {},
                "scheduler": {},
                "scaler": {},
                "epoch": 1,
                "best_score": 0.0,
                "best_epoch": 1,
                "rng": {},
                "history": [],
                "input_size": 64,
            }
        )
        for key, make in changes.items():
            if make is None:
                del ckpt[key]
            else:
                ckpt[key] = make()
        torch.save(ckpt, tmp / "t" / "last.pt")
        return str(tmp / "t")

    return setup


def _proxy_arch() -> dict:
    from space.spec import load_arch

    return load_arch("bulat-sgsc-proxy").to_dict()


def _one_tensor() -> dict:
    import torch

    return {"stem.0.weight": torch.zeros(1)}


def _bomb_and_weights(tmp: Path) -> str:
    from PIL import Image

    Image.new("1", (20000, 20000)).save(tmp / "big.png")  # 400 M pixels, 50 KB on disk
    return _weights(tmp)


def _edited_export(edit: Callable[[Path], None]) -> Callable[[Path], str]:
    """runs/exp/: a study storage and its export, then `edit(export folder)`."""

    def setup(tmp: Path) -> str:
        from test_export import make_study

        from search.export import export_study

        run = tmp / "runs" / "exp"
        run.mkdir(parents=True)
        url = f"sqlite:///{run / 'study.db'}"
        make_study(url)
        export_study(url, "exp", run / "export")
        edit(run / "export")
        return url

    return setup


def _rename_listed(folder: Path) -> None:
    first = min(folder.glob("*.yaml"))
    first.rename(folder / ("renamed-" + first.name))


def _drop_column(folder: Path) -> None:
    index = folder / "index.csv"
    index.write_text(index.read_text().replace("arch_id", "arch", 1))


def _export_without_arch(tmp: Path) -> str:
    folder = _smoke_export(tmp)
    (folder / "01-x.yaml").write_text("# softgate-nas export: test\narch: 5\nmetrics: {}\n")
    return str(folder)


HUGE_ARCH = (
    "version: 1\nstacks: 8\nwidth: 2048\ndepth: 4\njoints: 14\ninput_size: 4096\n"
    "block: multibranch\nbranch_split: ['1/2', '1/4', '1/4']\ngate: channel\n"
)
TINY = "bulat-sgsc-tiny"

PROFILE = ["profile", "--arch", "{p}"]
RESUME = [
    "train",
    "--arch",
    TINY,
    "--data",
    "synthetic",
    "--out",
    "{p}",
    "--resume",
    "--epochs",
    "2",
]
DASHBOARD = ["dashboard", "--study", "smoke"]
EXPORT = ["export", "--study", "exp", "--storage", "{p}", "--force"]


def _onnx(arch: str, *extra: str) -> list[str]:
    return ["onnx", "--arch", arch, "--weights", "{p}", *extra, "--out", "x.onnx"]


def _evaluate(arch: str) -> list[str]:
    return ["evaluate", "--arch", arch, "--weights", "{p}", "--data", "synthetic"]


def _predict(*extra: str) -> list[str]:
    return ["predict", "--arch", TINY, "--weights", "{p}", *extra, "--out", "o"]


# id -> (setup(tmp) -> path or None, argv with {p} for that path)
CASES: dict[str, tuple[Callable[[Path], str | None] | None, list[str]]] = {
    # study files
    "unknown study name": (None, ["--study", "no-such-study"]),
    "missing study file": (None, ["--study", "missing.yaml"]),
    "study not YAML": (_write("s.yaml", "name: [unclosed\n"), ["--study", "{p}"]),
    "study unknown key": (lambda t: _study(t, colour="red"), ["--study", "{p}"]),
    "study trials 0": (lambda t: _study(t, trials=0), ["--study", "{p}"]),
    "study timeout 0": (lambda t: _study(t, timeout=0), ["--study", "{p}"]),
    "study timeout words": (lambda t: _study(t, timeout="ten minutes"), ["--study", "{p}"]),
    "costaware reference_sizes unknown": (
        lambda t: _study(
            t, sampler={"name": "costaware", "options": {"reference_sizes": "largest"}}
        ),
        ["--study", "{p}"],
    ),
    "costaware reference_widths outside the space": (
        lambda t: _study(t, sampler={"name": "costaware", "options": {"reference_widths": [40]}}),
        ["--study", "{p}"],
    ),
    "study name with a slash": (lambda t: _study(t, name="a b"), ["--study", "{p}"]),
    "sampler unknown": (lambda t: _study(t, sampler={"name": "annealing"}), ["--study", "{p}"]),
    "sampler population_size 1": (
        lambda t: _study(t, sampler={"options": {"population_size": 1}}),
        ["--study", "{p}"],
    ),
    "sampler option misspelt": (
        lambda t: _study(t, sampler={"options": {"populaton_size": 4}}),
        ["--study", "{p}"],
    ),
    "sampler import path missing": (
        lambda t: _study(t, sampler={"name": "no_such_mod.x:Sampler"}),
        ["--study", "{p}"],
    ),
    "sampler import path not a sampler": (
        lambda t: _study(t, sampler={"name": "collections:OrderedDict"}),
        ["--study", "{p}"],
    ),
    "proxy.lr not a number": (lambda t: _study(t, proxy={"lr": "fast"}), ["--study", "{p}"]),
    "proxy.epochs 0": (lambda t: _study(t, proxy={"epochs": 0}), ["--study", "{p}"]),
    "constraint negative": (
        lambda t: _study(t, constraints={"max_params": -1}),
        ["--study", "{p}"],
    ),
    "constraint unknown measure": (
        lambda t: _study(t, constraints={"max_colour": 1}),
        ["--study", "{p}"],
    ),
    "objective unknown": (lambda t: _study(t, objectives=[{"name": "beauty"}]), ["--study", "{p}"]),
    "space unknown axis": (
        lambda t: _study(t, space={**SMOKE["space"], "colour": "red"}),
        ["--study", "{p}"],
    ),
    "space with no buildable point": (
        lambda t: _study(t, space={**SMOKE["space"], "input_size": 40}, proxy={"input_size": 40}),
        ["--study", "{p}"],
    ),
    "latency device tpu": (lambda t: _study(t, latency={"device": "tpu"}), ["--study", "{p}"]),
    "dashboard.artifacts not a bool": (
        lambda t: _study(t, dashboard={"artifacts": "off"}),
        ["--study", "{p}"],
    ),
    "costaware with one objective": (
        lambda t: _study(
            t, sampler={"name": "costaware", "options": {}}, objectives=[{"name": "pck"}]
        ),
        ["--study", "{p}"],
    ),
    "costaware unknown option": (
        lambda t: _study(t, sampler={"name": "costaware", "options": {"warm": 1}}),
        ["--study", "{p}"],
    ),
    "--trials 0": (lambda t: _study(t), ["--study", "{p}", "--trials", "0"]),
    "--data missing path": (lambda t: _study(t), ["--study", "{p}", "--data", "no/such/data"]),
    "--storage unwritable sqlite": (
        lambda t: _study(t),
        ["--study", "{p}", "--storage", "sqlite:////proc/nope/x.db"],
    ),
    "--storage not a URL": (lambda t: _study(t), ["--study", "{p}", "--storage", "not a url"]),
    "--storage one slash with password": (
        lambda t: _study(t),
        ["--study", "{p}", "--storage", f"postgresql:/u:{SECRET}@127.0.0.1:1/db"],
    ),
    "--storage unreachable postgres": (
        lambda t: _study(t),
        ["--study", "{p}", "--storage", "postgresql://u:pw@127.0.0.1:1/db"],
    ),
    "--address nothing listening": (
        lambda t: _study(t),
        ["--study", "{p}", "--address", "127.0.0.1:1"],
    ),
    # single-network commands
    "profile unknown arch": (None, ["profile", "--arch", "no-such-arch"]),
    "profile --runs 5": (None, ["profile", "--arch", TINY, "--runs", "5"]),
    "profile --threads 0": (None, ["profile", "--arch", TINY, "--threads", "0"]),
    "profile --device tpu": (None, ["profile", "--arch", TINY, "--device", "tpu"]),
    "profile --input-size 30": (None, ["profile", "--arch", TINY, "--input-size", "30"]),
    "profile arch too large for memory": (
        _write("huge.yaml", HUGE_ARCH),
        ["profile", "--arch", "{p}"],
    ),
    "train arch too large for memory": (
        _write("huge.yaml", HUGE_ARCH),
        ["train", "--arch", "{p}", "--data", "synthetic", "--out", "t"],
    ),
    "arch YAML bad field": (
        _write("a.yaml", "version: 1\nstacks: 0\n"),
        ["profile", "--arch", "{p}"],
    ),
    "arch YAML python object": (
        _write("a.yaml", "!!python/object:os.system {}\n"),
        ["profile", "--arch", "{p}"],
    ),
    "train --batch-size 0": (
        None,
        ["train", "--arch", TINY, "--data", "synthetic", "--batch-size", "0", "--out", "t"],
    ),
    "train --lr -1": (
        None,
        ["train", "--arch", TINY, "--data", "synthetic", "--lr", "-1", "--out", "t"],
    ),
    "train --epochs 0": (
        None,
        ["train", "--arch", TINY, "--data", "synthetic", "--epochs", "0", "--out", "t"],
    ),
    "train --epochs huge": (
        None,
        ["train", "--arch", TINY, "--data", "synthetic", "--epochs", "10000000", "--out", "t"],
    ),
    "train --workers -1": (
        None,
        ["train", "--arch", TINY, "--data", "synthetic", "--workers", "-1", "--out", "t"],
    ),
    "train --input-size 30": (
        None,
        ["train", "--arch", TINY, "--data", "synthetic", "--input-size", "30", "--out", "t"],
    ),
    "train --data missing": (
        None,
        ["train", "--arch", TINY, "--data", "no/such/dir", "--out", "t"],
    ),
    "train --data unknown format": (
        None,
        ["train", "--arch", TINY, "--data", "nosuchformat:x", "--out", "t"],
    ),
    "train COCO images not a list": (
        _coco(5, []),
        ["train", "--arch", TINY, "--data", "{p}", "--out", "t"],
    ),
    "train COCO annotations not objects": (
        _coco([{"id": 1, "file_name": "a.jpg"}], [1, 2]),
        ["train", "--arch", TINY, "--data", "{p}", "--out", "t"],
    ),
    "train MPII folder without train.h5": (
        _mpii_valid_only,
        ["train", "--arch", TINY, "--data", "{p}", "--out", "t"],
    ),
    "evaluate missing weights": (
        None,
        ["evaluate", "--arch", TINY, "--weights", "none.pt", "--data", "synthetic"],
    ),
    "evaluate weights not a checkpoint": (
        _write("w.pt", "not a checkpoint"),
        ["evaluate", "--arch", TINY, "--weights", "{p}", "--data", "synthetic"],
    ),
    "predict missing image file": (
        _weights,
        ["predict", "--arch", TINY, "--weights", "{p}", "--image", "none.jpg", "--out", "o"],
    ),
    "predict unreadable image": (
        _weights_and_text_image,
        ["predict", "--arch", TINY, "--weights", "{p}", "--image", "bad.jpg", "--out", "o"],
    ),
    "predict --box with 3 numbers": (
        _weights_and_image,
        [
            "predict",
            "--arch",
            TINY,
            "--weights",
            "{p}",
            "--image",
            "a.png",
            "--box",
            "1,2,3",
            "--out",
            "o",
        ],
    ),
    "predict --box of width 0": (
        _weights_and_image,
        [
            "predict",
            "--arch",
            TINY,
            "--weights",
            "{p}",
            "--image",
            "a.png",
            "--box",
            "1,2,0,5",
            "--out",
            "o",
        ],
    ),
    "predict weights of another arch": (
        lambda t: (_weights_and_image(t), _weights(t, TINY_DICT))[1],
        ["predict", "--arch", TINY, "--weights", "{p}", "--image", "a.png", "--out", "o"],
    ),
    "predict both --image and --data": (
        None,
        [
            "predict",
            "--arch",
            TINY,
            "--weights",
            "w.pt",
            "--image",
            "a.png",
            "--data",
            "synthetic",
            "--out",
            "o",
        ],
    ),
    "predict neither --image nor --data": (
        None,
        ["predict", "--arch", TINY, "--weights", "w.pt", "--out", "o"],
    ),
    "predict unknown split": (
        _weights,
        [
            "predict",
            "--arch",
            TINY,
            "--weights",
            "{p}",
            "--data",
            "synthetic",
            "--split",
            "nosuch",
            "--out",
            "o",
        ],
    ),
    "predict --n 0": (
        None,
        [
            "predict",
            "--arch",
            TINY,
            "--weights",
            "w.pt",
            "--data",
            "synthetic",
            "--n",
            "0",
            "--out",
            "o",
        ],
    ),
    "predict --out is a file": (
        _weights_and_image,
        ["predict", "--arch", TINY, "--weights", "{p}", "--image", "a.png", "--out", "a.png"],
    ),
    # study tools
    "export of a study never run": (None, ["export", "--study", "never-ran"]),
    "report of a study never run": (None, ["report", "--study", "never-ran"]),
    "dashboard of a study never run": (None, ["dashboard", "--study", "never-ran"]),
    "dashboard --port 99999": (None, ["dashboard", "--study", "smoke", "--port", "99999"]),
    "dashboard --port -1": (None, ["dashboard", "--study", "smoke", "--port", "-1"]),
    "finalize of a study never run": (None, ["finalize", "--study", "smoke", "--epochs", "1"]),
    "finalize unknown reference": (
        None,
        ["finalize", "--study", "smoke", "--references", "paper,vgg"],
    ),
    "finalize --epochs 0": (None, ["finalize", "--study", "smoke", "--epochs", "0"]),
    "finalize --epochs 10001": (None, ["finalize", "--study", "smoke", "--epochs", "10001"]),
    "finalize --seeds 0": (None, ["finalize", "--study", "smoke", "--seeds", "0"]),
    "finalize --top 0": (None, ["finalize", "--study", "smoke", "--top", "0"]),
    "finalize dataset without a test split": (
        _export_and_coco_without_test,
        ["finalize", "--study", "smoke", "--epochs", "1", "--data", "{p}"],
    ),
    # files that cannot be read (arch YAML, study file, weights, images)
    "arch YAML binary": (_binary("a.yaml"), PROFILE),
    "arch YAML is a folder": (_folder("a.yaml"), PROFILE),
    "arch YAML over 1 MB": (_write("a.yaml", "version: 1\n" + "#" * 1_100_000 + "\n"), PROFILE),
    "arch YAML a FIFO": (_fifo("a.yaml"), PROFILE),
    "arch YAML with a NUL byte": (_write("a.yaml", "version: 1\x00\n"), PROFILE),
    "arch YAML nested too deeply": (_write("a.yaml", "[" * 100_000), PROFILE),
    "onnx arch YAML binary": (_binary("a.yaml"), ["onnx", "--arch", "{p}", "--out", "x.onnx"]),
    "study file binary": (_binary("s.yaml"), ["--study", "{p}"]),
    "study file is a folder": (_folder("s.yaml"), ["--study", "{p}"]),
    "study file over 1 MB": (_huge_study, ["--study", "{p}"]),
    "report of a binary study file": (_binary("s.yaml"), ["report", "--study", "{p}"]),
    "study file with an empty key": (_write("s.yaml", "'': 1\n"), ["--study", "{p}"]),
    "onnx weights of zero bytes": (_write("w.pt", ""), _onnx(TINY)),
    "evaluate weights are a folder": (_folder("w.pt"), _evaluate(TINY)),
    "onnx weights of another arch": (_weights, _onnx("bulat-sgsc-proxy", "--input-size", "32")),
    "evaluate weights of another arch": (_weights, _evaluate("bulat-sgsc-proxy")),
    "train --resume last.pt of another arch": (_last_pt(arch=_proxy_arch), RESUME),
    "train --resume last.pt with weights that do not fit": (_last_pt(model=_one_tensor), RESUME),
    "train --resume last.pt without optimizer": (_last_pt(optimizer=None), RESUME),
    "predict image over the pixel limit": (_bomb_and_weights, _predict("--image", "big.png")),
    "predict image is a folder": (
        lambda t: (_folder("d.png")(t), _weights(t))[1],
        _predict("--image", "d.png"),
    ),
    # checkpoints with weak fields
    "checkpoint arch is a string": (lambda t: _checkpoint(t, arch=TINY), _evaluate(TINY)),
    "checkpoint arch not a valid arch": (
        lambda t: _checkpoint(t, arch={"width": "wide"}),
        _predict("--data", "synthetic"),
    ),
    "checkpoint an empty mapping": (_saved({}), _evaluate(TINY)),
    "checkpoint a list": (_saved([1, 2]), _onnx(TINY)),
    # weak flags
    "dashboard --port 0": (None, DASHBOARD + ["--port", "0"]),
    "dashboard --host 999.1.1.1": (None, DASHBOARD + ["--host", "999.1.1.1"]),
    "dashboard --artifact-dir /proc/nope": (None, DASHBOARD + ["--artifact-dir", "/proc/nope"]),
    "dashboard --artifact-dir a file": (
        _write("f.txt", "x"),
        DASHBOARD + ["--artifact-dir", "{p}"],
    ),
    "predict --threshold 2": (_weights_and_image, _predict("--image", "a.png", "--threshold", "2")),
    "predict --threshold nan": (
        _weights_and_image,
        _predict("--image", "a.png", "--threshold", "nan"),
    ),
    "predict --box right of the image": (
        _weights_and_image,
        _predict("--image", "a.png", "--box", "100,5,10,10"),
    ),
    "predict --box above the image": (
        _weights_and_image,
        _predict("--image", "a.png", "--box=5,-50,10,10"),
    ),
    # an export edited by hand
    "export over an export with a listed file renamed": (_edited_export(_rename_listed), EXPORT),
    "export over an export whose index lost a column": (_edited_export(_drop_column), EXPORT),
    "finalize an export YAML without an arch": (
        _export_without_arch,
        ["finalize", "--study", "smoke", "--epochs", "1"],
    ),
}

# what the message must say, where an earlier check could fire instead of the one meant
NEEDLES: dict[str, str] = {
    "arch YAML binary": "binary, not UTF-8 text",
    "arch YAML is a folder": "is a folder",
    "arch YAML over 1 MB": "too large for an arch YAML file",
    "arch YAML a FIFO": "not a regular file",
    "arch YAML with a NUL byte": "not valid YAML",
    "arch YAML nested too deeply": "nested too deeply",
    "onnx arch YAML binary": "binary",
    "study file binary": "binary",
    "study file is a folder": "is a folder",
    "study file over 1 MB": "too large for a study file",
    "report of a binary study file": "binary",
    "study file with an empty key": "'': unknown key",
    "onnx weights of zero bytes": "is empty (0 bytes)",
    "evaluate weights are a folder": "weights: is a folder",
    "onnx weights of another arch": "weights do not fit arch",
    "evaluate weights of another arch": "do not fit",
    "train --resume last.pt of another arch": "checkpoint is for arch",
    "train --resume last.pt with weights that do not fit": "weights do not fit",
    "train --resume last.pt without optimizer": "not a training checkpoint (no optimizer)",
    "predict image over the pixel limit": "too large to decode",
    "predict image is a folder": "is a folder",
    "checkpoint arch is a string": "'arch' field is 'bulat-sgsc-tiny', not a mapping",
    "checkpoint arch not a valid arch": "not a valid arch",
    "checkpoint an empty mapping": "empty mapping",
    "checkpoint a list": "neither a checkpoint nor a state_dict (a list)",
    "dashboard --port 99999": "--port: must be between 1 and 65535",
    "dashboard --port 0": "--port",
    "dashboard --host 999.1.1.1": "--host",
    "dashboard --artifact-dir /proc/nope": "--artifact-dir",
    "dashboard --artifact-dir a file": "--artifact-dir: is a file",
    "predict --threshold 2": "--threshold",
    "predict --threshold nan": "--threshold",
    "predict --box right of the image": "--box: box 100,5",
    "predict --box above the image": "lies wholly outside the image (40x30 pixels)",
    "export over an export with a listed file renamed": "which is missing",
    "export over an export whose index lost a column": "index.csv has no arch_id column",
    "finalize an export YAML without an arch": "no 'arch:' mapping",
}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    setup, argv = CASES[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOFTGATE_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    path = setup(tmp_path) if setup else None
    argv = [a.replace("{p}", str(path)) for a in argv]
    before = _tree(tmp_path)
    rc, out, err = call_launch(argv, capsys)
    assert rc == 2, (case, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, err)
    assert out == "", (case, out)
    assert _tree(tmp_path) == before, (case, _tree(tmp_path) - before)
    assert SECRET not in out + err and "pw@" not in out + err
    assert NEEDLES.get(case, "") in lines[0], (case, lines[0])
