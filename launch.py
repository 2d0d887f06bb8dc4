"""softgate-nas command line: parses arguments and hands them to `search.commands`.

    python launch.py --study softgate            run a study (the main job)
    python launch.py profile --arch bulat-sgsc   params, FLOPs, latency
    python launch.py onnx / train / evaluate / predict / export / report / finalize / dashboard ...
"""
from __future__ import annotations

import argparse
import sys

STUDY_COMMANDS = ("export", "report", "dashboard", "finalize")  # the subcommands that take --study/--storage/--out


def _study_args(default: object) -> argparse.ArgumentParser:
    """--study/--storage/--out, declared once: for the top level (default None) and for every study
    subcommand (default SUPPRESS: a value not given after the subcommand leaves the top-level one
    in place, so `launch.py --storage X report --study S` and `launch.py report --study S --storage X`
    agree). Two parsers, because argparse shares a parent's action objects with its children."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--study", default=default, help="study name in studies/ or path to a study YAML")
    p.add_argument("--storage", default=default, help="Optuna storage URL (default: SQLite file in the run folder)")
    p.add_argument("--out", default=default, help="run folder (default: runs/<study>)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="launch.py", description=__doc__, parents=[_study_args(None)],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, help="number of trials (overrides the study file)")
    parser.add_argument("--data", help="synthetic, a dataset path, or FORMAT:PATH (overrides the study file)")
    parser.add_argument("--address", help="Ray cluster address to join (default: start a local Ray)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted study")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own progress tables")
    sub = parser.add_subparsers(dest="command")
    _network_commands(sub)
    _predict_command(sub)
    _study_commands(sub, _study_args(argparse.SUPPRESS))
    return parser


def _network_commands(sub: argparse._SubParsersAction) -> None:
    """The commands about one architecture: profile, onnx, train, evaluate."""
    p = sub.add_parser("profile", help="params, FLOPs and latency of one architecture")
    p.add_argument("--arch", required=True, help="preset name or path to an arch YAML")
    p.add_argument("--input-size", type=int, help="input resolution (default: the spec's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--runs", type=int, default=30, help="timed runs (at least 20)")
    p.add_argument("--backend", default="torch", help="latency backend: torch (eager) or onnxruntime")

    p = sub.add_parser("onnx", help="export one architecture to ONNX and check it against PyTorch")
    p.add_argument("--arch", required=True, help="preset name or path to an arch YAML")
    p.add_argument("--weights", help="checkpoint or state_dict (default: the initial weights)")
    p.add_argument("--input-size", type=int, help="input resolution (default: the spec's)")
    p.add_argument("--out", help="ONNX file to write (default: <arch id>.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13 to 20 (default 17, space.onnx_export.DEFAULT_OPSET)")
    p.add_argument("--heads", choices=("last", "all"), default="last",
                   help="last: the last stack's heatmaps (default); all: every stack's")

    p = sub.add_parser("train", help="train one architecture fully, with checkpoints")
    p.add_argument("--arch", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2.5e-4)
    p.add_argument("--input-size", type=int, help="training resolution (default: the spec's)")
    p.add_argument("--out", default="runs/train")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--workers", type=int, default=2, help="data preparation processes")
    p.add_argument("--skip-bad", action="store_true", help="skip missing or corrupt records and report how many")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("evaluate", help="score a checkpoint on a split")
    p.add_argument("--arch", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--flip", action="store_true", help="flip test: average with the mirrored image")
    p.add_argument("--input-size", type=int)
    p.add_argument("--device")
    p.add_argument("--out", help="JSON file for the results (default: next to the weights)")
    p.add_argument("--skip-bad", action="store_true")


def _predict_command(sub: argparse._SubParsersAction) -> None:
    """predict: saved weights on images, the skeleton drawn on each (search/commands/predict.py)."""
    p = sub.add_parser("predict", help="draw predicted poses on images (PNG) and write the joints (JSON)")
    p.add_argument("--arch", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--image", nargs="+", help="image files; the person crop is the whole image (or --box)")
    p.add_argument("--box", help="x,y,w,h: the person's box in pixels, for every --image given")
    p.add_argument("--data", help="a dataset (as for train): its own person boxes and crops")
    p.add_argument("--split", help="split of --data (default test)")
    p.add_argument("--n", type=int, help="the first N records of the split (default 4)")
    p.add_argument("--out", required=True, help="folder for one NAME.png and NAME.json per image")
    p.add_argument("--flip", action="store_true", help="flip test: average with the mirrored image")
    p.add_argument("--threshold", type=float,
                   help="joints whose heatmap peak is below this are drawn faded (default: trainers.draw's, 0.2)")
    p.add_argument("--input-size", type=int, help="input resolution (default: the spec's)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")


def _study_commands(sub: argparse._SubParsersAction, study_args: argparse.ArgumentParser) -> None:
    """The commands about a study that ran: export, report, finalize, dashboard."""
    p = sub.add_parser("export", help="write the Pareto-optimal architectures as YAML", parents=[study_args])
    p.add_argument("--force", action="store_true", help="replace an existing export")

    sub.add_parser("report", help="trials as CSV, Pareto front plot, hypervolume history, PCK per choice, "
                                  "ablation tables",
                   parents=[study_args])

    p = sub.add_parser("finalize", help="retrain the exported front and the reference designs; score on test",
                       parents=[study_args])
    p.add_argument("--top", type=int, help="only the first K exported architectures")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--input-size", type=int, help="training resolution (default: each arch's)")
    p.add_argument("--data", help="dataset (default: the study's data.source)")
    p.add_argument("--seeds", type=int, default=1, help="runs per architecture, seeds 0..N-1")
    p.add_argument("--references", default="paper,newell", help="paper,newell or none")
    p.add_argument("--resume", action="store_true", help="continue an interrupted finalize")

    p = sub.add_parser("dashboard", help="optuna-dashboard on the study's storage", parents=[study_args])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--artifact-dir", help="the trials' artifact store (default: the study's dashboard.artifact_dir, "
                                          "else <run folder>/artifacts)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None and not args.study:
        parser.error("give --study NAME to run a study, or a command (profile, onnx, train, evaluate, predict, "
                     "export, report, finalize, dashboard)")
    if args.command in STUDY_COMMANDS and not args.study:
        parser.error(f"{args.command} needs --study NAME")
    from search.commands import run_command
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
