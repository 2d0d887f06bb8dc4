"""Where a study's files are: its study file, and the run folder with its default storage.

A study is named by a file (a path, or a bare name looked up in ./studies, then in the repo's
studies/). Its run folder is `--out` when given, else runs/<name> under the working directory;
the storage defaults to the SQLite file study.db in it, the export to export/ and the
optuna-dashboard artifact store to artifacts/ (docs/design.md, the storage contract).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from space.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
STUDIES_DIR = REPO / "studies"
RUNS_DIR = Path("runs")  # relative: run folders are made where launch.py runs, not in the repo


def find_study_file(name_or_path: str) -> Path | None:
    """The study file a `--study` value names: a path as given (whether or not it exists), a bare
    name's YAML in ./studies or the repo's studies/, else None."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        return path
    for folder in (Path("studies"), STUDIES_DIR):
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    return None


def resolve_study_file(name_or_path: str) -> Path:
    """The study file a `--study` value names; ConfigError if there is none."""
    path = find_study_file(name_or_path)
    if path is None:
        known = sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))
        raise ConfigError(
            f"no study named {name_or_path!r}; known: {', '.join(known) or 'none'}",
            source="<arg>",
            field="--study",
        )
    if not path.exists():  # a folder or a FIFO: space.files.read_yaml_file names what it is
        raise ConfigError("no such study file", source=str(path), field="--study")
    return path


@dataclass(frozen=True)
class RunFolder:
    """A study's run folder and the files it holds unless the study file puts them elsewhere."""

    path: Path

    @classmethod
    def of(cls, name: str, out: str | Path | None = None) -> RunFolder:
        """`out` (the --out given) when not None, else runs/<name>."""
        return cls(Path(out) if out is not None else RUNS_DIR / name)

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{self.path / 'study.db'}"

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    @property
    def artifact_dir(self) -> Path:
        return self.path / "artifacts"
