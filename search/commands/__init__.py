"""One module per launch.py command; `run_command` dispatches and turns user errors into exit code 2."""
from __future__ import annotations

import argparse
import importlib
import sys

from space.errors import ConfigError

# command name -> module in this package exposing `main(args) -> int`
COMMANDS = {
    None: "study",
    "profile": "profile",
    "onnx": "onnx",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "export": "export",
    "report": "report",
    "dashboard": "dashboard",
    "finalize": "finalize",
}


def run_command(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"search.commands.{COMMANDS[args.command]}")
    try:
        return int(module.main(args) or 0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
