"""Range checks for numeric command-line flags, run before a command does anything.

A bad value is a one-line ConfigError, printed as `error: <arg>: --flag: must be ...` (exit code 2).
"""
from __future__ import annotations

import argparse
import math

from space.errors import ConfigError

MAX_SEED = 2 ** 32 - 1


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
        raise ConfigError(f"must be a positive number, got {value}", source="<arg>", field=_flag(dest))
