"""What every command shares: the base class, the study flags, result printing.

A command is a small class (as optuna/cli.py's): its docstring is its help, it adds
its own arguments and `take_action` returns the exit code. Results go to stdout (a
table, or JSON / CSV on request); logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from search.study import STORAGE_ENV


class Command:
    """Base of every `search` command."""

    name: str = ""
    uses_study: bool = True  # --study and --storage, as every command reading a study

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this command's own flags (the study flags are added for it)."""

    def take_action(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", help="study name (default: the config's, or the only one)")
    parser.add_argument(
        "--storage",
        help=f"storage URL (default: ${STORAGE_ENV} or "
        "sqlite:///aer-search.db); journal:FILE for a journal file, grpc://HOST:PORT "
        "for a `search storage-proxy`",
    )


def load_existing(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """An existing study, its stored config and the storage URL; writes nothing."""
    from search.study import open_stored_study, storage_url

    url = storage_url(args.storage)
    study, config = open_stored_study(url, args.study)
    return study, config, url


def print_front(frame: Any, as_json: bool, extra: Sequence[str] | None = None) -> None:
    from search.front import format_table, frame_json

    if as_json:
        print(frame_json(frame))
    else:
        print(format_table(frame, extra=extra))


def set_threads(threads: int | None) -> None:
    """CPU threads of this process's training and attacks (torch's default: all cores).

    Several workers on one machine should split its cores: oversubscribed threads slow
    every trial several-fold.
    """
    if threads is None:
        return
    import os

    from search.core import BadInput

    cores = os.cpu_count() or 1
    if not 1 <= threads <= cores:
        raise BadInput(f"--threads must be in [1, {cores}] (this machine's cores), got {threads}")
    import torch

    torch.set_num_threads(threads)
