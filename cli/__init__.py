"""The launch.py commands: one module per command, and the table of them.

Each command module has NAME (the subcommand), HELP (its line in `launch.py --help`),
`add_arguments(parser)` (its flags) and `main(args) -> int` (its exit code); a study command (one
about a study that ran) also sets NEEDS_STUDY = True. `study` is the default command: it runs when
no subcommand is given, its flags are the top-level ones and it has no NAME.

launch.py imports every command to build its parser, so a command module imports only argparse,
cli.flags and space.errors at its top; what its body needs (torch, optuna, Ray, pandas) it imports
inside the functions, so that `launch.py --help` or one command never pays for another's imports.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from cli import dashboard, evaluate, export, finalize, onnx, predict, profile, report, study, train
from space.errors import ConfigError

DEFAULT = study  # runs when no subcommand is given

# The subcommands, in the order `launch.py --help` lists them.
COMMANDS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        profile,
        onnx,
        train,
        evaluate,
        predict,
        export,
        report,
        finalize,
        dashboard,
    )
}


def command_for(args: argparse.Namespace) -> ModuleType:
    """The module of the command `args` were parsed for."""
    return COMMANDS[args.command] if args.command is not None else DEFAULT


def run_command(args: argparse.Namespace) -> int:
    """Runs the command; a ConfigError (the user's fault) becomes `error: FILE: KEY: message` on
    stderr and exit code 2, anything else (a bug) propagates with its traceback."""
    try:
        return int(command_for(args).main(args) or 0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
