"""softgate-nas command line: parses arguments and hands them to `cli`.

python launch.py --study softgate            run a study (the main job)
python launch.py profile --arch bulat-sgsc   params, FLOPs, latency
python launch.py onnx / train / evaluate / predict / export / report / finalize / dashboard ...
"""

from __future__ import annotations

import argparse
import sys

import cli


def build_parser() -> argparse.ArgumentParser:
    """The top-level flags are the default (study) command's; each command module adds its own
    subcommand and flags (cli/__init__.py)."""
    parser = argparse.ArgumentParser(
        prog="launch.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.DEFAULT.add_arguments(parser)
    sub = parser.add_subparsers(dest="command")
    for name, module in cli.COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None and not args.study:
        parser.error(f"give --study NAME to run a study, or a command ({', '.join(cli.COMMANDS)})")
    if getattr(cli.command_for(args), "NEEDS_STUDY", False) and not args.study:
        parser.error(f"{args.command} needs --study NAME")
    return cli.run_command(args)


if __name__ == "__main__":
    sys.exit(main())
