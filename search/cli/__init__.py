"""The `search` command: a table of commands, each a class that owns its arguments.

Results go to stdout (a table, or JSON / CSV on request); logs and progress go to
stderr. Exit codes: 0 success, 2 bad input (one line naming the field), 1 anything
else, 130 interrupted (finished trials are kept; the same command resumes).
"""

from __future__ import annotations

import argparse
import logging
import sys

from search.cli._agent import LatencyAgent
from search.cli._base import Command, add_study_arguments
from search.cli._proxy import StorageProxy
from search.cli._registries import Objectives, Spaces
from search.cli._run import Run, Worker
from search.cli._serve import Dashboard, Serve
from search.cli._show import ASSESSED_COLUMNS, Pareto, Trials
from search.core import BadInput
from search.study import STORAGE_ENV

COMMANDS: dict[str, type[Command]] = {
    command.name: command
    for command in (
        Run,
        Worker,
        Dashboard,
        Serve,
        StorageProxy,
        Pareto,
        Trials,
        Objectives,
        Spaces,
        LatencyAgent,
    )
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search", description="Search for compressed models that stay robust."
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command_class in COMMANDS.items():
        command = command_class()
        doc = command_class.__doc__
        sub = subparsers.add_parser(name, help=doc, description=doc)
        sub.set_defaults(handler=command.take_action)
        if command.uses_study:
            add_study_arguments(sub)
        command.add_arguments(sub)
    return parser


def _quiet_library_warnings() -> None:
    """Optuna flags the heartbeat and metric names as experimental; users need not see it."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        format="%(message)s",
        level=logging.WARNING if args.quiet else logging.INFO,
    )
    _quiet_library_warnings()
    if args.command is None:
        args = parser.parse_args([*argv, "run"])
    try:
        return int(args.handler(args))
    except BadInput as exc:
        print(f"search: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "search: interrupted; finished trials are stored, run the same command to resume",
            file=sys.stderr,
        )
        return 130


__all__ = ["ASSESSED_COLUMNS", "COMMANDS", "STORAGE_ENV", "Command", "build_parser", "main"]
