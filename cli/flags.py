"""Flags shared by several commands, and range checks for numeric flags run before a command does
anything.

A bad value is a one-line ConfigError, printed as `error: <arg>: --flag: must be ...` (exit code 2).
"""

from __future__ import annotations

import argparse
import math

from space.errors import ConfigError

MAX_SEED = 2**32 - 1


def add_study_args(parser: argparse.ArgumentParser, default: object) -> None:
    """--study/--storage/--out, declared once: for the top level (default None) and for every
    study command (default SUPPRESS: a value not given after the command leaves the top-level one
    in place, so `launch.py --storage X report --study S` and `launch.py report --study S --storage
    X` agree)."""
    parser.add_argument(
        "--study", default=default, help="study name in studies/ or path to a study YAML"
    )
    parser.add_argument(
        "--storage",
        default=default,
        help="Optuna storage URL (default: SQLite file in the run folder)",
    )
    parser.add_argument("--out", default=default, help="run folder (default: runs/<study>)")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_int(args: argparse.Namespace, dest: str, low: int, high: int | None = None) -> None:
    """`args.<dest>` (when given) lies in [low, high]."""
    value = getattr(args, dest)
    if value is None or (low <= value and (high is None or value <= high)):
        return
    bounds = f"at least {low}" if high is None else f"between {low} and {high}"
    raise ConfigError(f"must be {bounds}, got {value}", source="<arg>", field=_flag(dest))


def check_positive(args: argparse.Namespace, dest: str) -> None:
    """`args.<dest>` (when given) is a finite number above 0."""
    value = getattr(args, dest)
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"must be a positive number, got {value}", source="<arg>", field=_flag(dest)
        )


def check_input_size(args: argparse.Namespace) -> None:
    """`args.input_size` (when given) lies in the range an ArchSpec allows."""
    from space.spec import RANGES  # imports torch: only once a command runs (cli/__init__.py)

    check_int(args, "input_size", *RANGES["input_size"])
