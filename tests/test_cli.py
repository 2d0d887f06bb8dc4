"""cli/: the command table, launch.py's parser built from it, and adding a command
(docs/design.md#how-to-add-a-command)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types

import pytest
from helpers import REPO

import cli
import launch
from space.errors import ConfigError


def test_every_command_declares_its_name_help_flags_and_main():
    for name, module in cli.COMMANDS.items():
        assert module.NAME == name and isinstance(module.HELP, str), name
        assert callable(module.add_arguments) and callable(module.main), name
    assert callable(cli.DEFAULT.add_arguments) and callable(cli.DEFAULT.main)
    helptext = launch.build_parser().format_help()
    assert all(f"    {name}" in helptext for name in cli.COMMANDS)


def test_building_the_parser_imports_no_heavy_library():
    """launch.py imports every command to build its parser; their bodies' imports wait for main."""
    heavy = ("torch", "optuna", "pandas", "ray", "numpy")
    code = (
        "import sys, launch; launch.build_parser().parse_args(['profile', '--arch', 'a']); "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _hello() -> types.ModuleType:
    """A toy command, as a file in cli/ would define it."""
    module = types.ModuleType("cli.hello")
    module.NAME, module.HELP = "hello", "greet someone"

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", required=True)

    def main(args: argparse.Namespace) -> int:
        if not args.name:
            raise ConfigError("must not be empty", source="<arg>", field="--name")
        print(f"hello {args.name}")
        return 0

    module.add_arguments, module.main = add_arguments, main
    return module


def test_a_new_command_is_one_table_entry(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "hello", _hello())
    assert launch.main(["hello", "--name", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    assert launch.main(["hello", "--name", ""]) == 2  # its ConfigError: one line, exit code 2
    assert capsys.readouterr().err == "error: <arg>: --name: must not be empty\n"
    with pytest.raises(SystemExit) as exit_:
        launch.main([])
    assert exit_.value.code == 2 and "dashboard, hello)" in capsys.readouterr().err
