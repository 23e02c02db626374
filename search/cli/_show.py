"""`search pareto` and `search trials`: read a stored study; export its front."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from search.cli._base import Command, load_existing, print_front
from search.core import ASSESSED_COLUMNS, BadInput

log = logging.getLogger("search")


class Pareto(Command):
    """Print the front of a stored study, re-assessed on the test split; export it."""

    name = "pareto"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--export", metavar="DIR", help="write the export layout to DIR")
        parser.add_argument(
            "--force", action="store_true", help="replace an earlier export in DIR (only that)"
        )
        parser.add_argument("--json", action="store_true", help="print the front as JSON")
        parser.add_argument(
            "--validation-only",
            action="store_true",
            help="skip the test-split re-assessment (search numbers only)",
        )
        parser.add_argument(
            "--pick",
            metavar="RULE",
            help="show (or export) only the member RULE picks, e.g. 'latency_ms <= 0.2; "
            "maximize robust_accuracy' or 'knee'; validation numbers unless RULE names a "
            "test_... or retimed_... one (then the front is re-assessed first)",
        )
        parser.add_argument(
            "--history",
            action="store_true",
            help="print the study's hypervolume after each completed trial instead "
            "(validation, each objective min-max normalised over the study's trials)",
        )

    def take_action(self, args: argparse.Namespace) -> int:
        from search.study import artifact_dir, artifact_store

        if args.history and (args.export or args.pick is not None):
            raise BadInput(
                "--history prints the hypervolume history only; allowed without --export and --pick"
            )
        study, config, url = load_existing(args)
        if args.history:
            print_history(study, args.json)
            return 0
        if args.export:  # before anything is written or assessed (the store makes a folder)
            from search.front import check_export_dir, export_front  # torch: exports only

            check_export_dir(
                Path(args.export), args.force, url, artifact_dir(url, config.artifacts)
            )
        artifacts = artifact_store(url, config.artifacts)
        picked = self._picked(args, study, config, artifacts)
        if args.export:
            only = None if picked is None else [picked["trial"]]
            table = export_front(
                study,
                config,
                artifacts,
                Path(args.export),
                force=args.force,
                storage=url,
                only=only,
            )
            log.info("exported %d front members to %s", len(table), args.export)
        elif picked is not None:
            import pandas as pd

            table = pd.DataFrame([picked])
        else:
            table = self._front(study, config, artifacts, args.validation_only)
        if not args.json:
            print_study_header(study, config)
        print_front(table, args.json, extra=ASSESSED_COLUMNS)
        return 0

    @staticmethod
    def _picked(args: argparse.Namespace, study: Any, config: Any, artifacts: Any) -> Any:
        """The row `--pick` chooses (None without it), before any export work."""
        if args.pick is None:
            return None
        from search.front import pick_member

        return pick_member(
            study, config, artifacts, args.pick, validation_only=args.validation_only
        )

    @staticmethod
    def _front(study: Any, config: Any, artifacts: Any, validation_only: bool) -> Any:
        """Every front member: search numbers, or re-assessed on the test split."""
        import pandas as pd

        from search.front import front_frame

        if validation_only:  # search numbers only: no model is loaded, no torch imported
            return front_frame(study)
        from search.front import assess_front, assessed_row, front_trials, mark_latency_ties

        reports = assess_front(study, config, artifacts)
        rows = [assessed_row(t, reports[t.number]) for t in front_trials(study)]
        return pd.DataFrame(mark_latency_ties(study, rows))


def print_history(study: Any, as_json: bool) -> None:
    """The hypervolume after each completed trial: a table, or JSON rows."""
    import json

    import pandas as pd

    from search.front import MARGIN, hypervolume_history, study_objectives

    rows = [point.to_dict() for point in hypervolume_history(study)]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    goals = ", ".join(f"{n} ({d})" for n, d in study_objectives(study).items())
    print(
        f"study {study.study_name!r}: hypervolume after each completed trial (validation; "
        f"{goals}; each min-max normalised over the study's trials, reference {1 + MARGIN:g})"
    )
    if not rows:
        print("(no complete trial)")
        return
    frame = pd.DataFrame(rows)
    frame["completed"] = frame["completed"].map(lambda v: (v or "")[:19].replace("T", " "))
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.6f}"))


def print_study_header(study: Any, config: Any) -> None:
    """Threat model and the base model's sanity checks, above the front."""
    from search.robust import describe
    from search.study import read_trials

    print(f"study {study.study_name!r}: {len(read_trials(study))} trials")
    print(f"search attack (validation): {describe(config.evaluation)}")
    print(f"final attack (test):        {describe(config.evaluation, final=True)}")
    if config.constraints:
        print(
            f"constraints: {'; '.join(config.constraints)} "
            "(infeasible trials are kept, never on the front)"
        )
    for check in study.user_attrs.get("sanity.base", []):
        status = "ok" if check["passed"] else "FAILED"
        print(f"base model sanity {check['name']}: {status} ({check['detail']})")
    print()


class Trials(Command):
    """Print every trial of a stored study (state, metrics, params, failure reason)."""

    name = "trials"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--csv", metavar="FILE", help="write every trial to FILE as CSV")
        parser.add_argument(
            "--force", action="store_true", help="overwrite an existing FILE (never the study's)"
        )
        parser.add_argument("--json", action="store_true")

    def take_action(self, args: argparse.Namespace) -> int:
        from search.front import format_table, frame_json, trials_frame

        study, config, url = load_existing(args)
        if args.csv:
            check_csv_target(Path(args.csv), args.force, study_files(url, config))
        frame = trials_frame(study)
        if args.csv:
            target = Path(args.csv)
            frame.to_csv(target, index=False)
            log.info("wrote %d trials to %s", len(frame), target)
        elif args.json:
            print(frame_json(frame))
        else:
            print(format_table(frame, extra=["state", "feasible", "fail_reason"]))
        return 0


CSV_ALLOWED = "a new file, or an existing one with --force (never the study's own files)"
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")  # SQLite's own files beside the database


def study_files(url: str, config: Any) -> tuple[list[Path], Path | None]:
    """The files `--csv` may never overwrite, and the artifacts folder it may not enter.

    The storage file (with SQLite's journal files) and the model checkpoint the study
    was built from: overwriting one of them loses the study.
    """
    from search.study import artifact_dir, storage_file

    files = []
    storage = storage_file(url)
    if storage is not None:
        files += [storage, *(storage.with_name(storage.name + s) for s in SQLITE_SIDE_FILES)]
    if config.model.checkpoint:
        files.append(Path(config.model.checkpoint))
    try:
        return files, artifact_dir(url, config.artifacts)
    except BadInput:  # a grpc:// study whose folder is not named here: none to protect
        return files, None


def check_csv_target(target: Path, force: bool, protected: tuple[list[Path], Path | None]) -> None:
    """Raise BadInput unless `search trials --csv` may write `target`; writes nothing."""
    given = f"--csv: {str(target)!r}"
    files, artifacts = protected
    if target.is_symlink():
        raise BadInput(f"{given} is a symbolic link; allowed: {CSV_ALLOWED}")
    resolved = target.resolve()
    if resolved in {file.resolve() for file in files}:
        raise BadInput(f"{given} is one of the study's own files; allowed: {CSV_ALLOWED}")
    if artifacts is not None and resolved.is_relative_to(artifacts.resolve()):
        raise BadInput(f"{given} is inside the study's artifacts; allowed: {CSV_ALLOWED}")
    if resolved.is_dir():
        raise BadInput(f"{given} is an existing directory; allowed: {CSV_ALLOWED}")
    if not resolved.parent.is_dir():
        raise BadInput(f"--csv: directory of {str(target)!r} does not exist")
    if resolved.exists() and not force:
        raise BadInput(f"{given} exists; pass --force to overwrite it")
    if resolved.exists() and not resolved.is_file():
        raise BadInput(f"{given} is not a regular file; allowed: {CSV_ALLOWED}")
