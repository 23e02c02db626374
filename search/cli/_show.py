"""`search pareto` and `search trials`: read a stored study; export its front."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from search.cli._base import Command, load_existing, print_front
from search.core import BadInput

log = logging.getLogger("search")

ASSESSED_COLUMNS = [
    "test_clean_accuracy",
    "test_robust_accuracy",
    "test_robust_accuracy_final",
    "retimed_ms",
    "retimed_min_ms",
    "retimed_max_ms",
    "latency_form",
    "sanity",
]


class Pareto(Command):
    """Print the front of a stored study, re-assessed on the test split; export it."""

    name = "pareto"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--export", metavar="DIR", help="write the export layout to DIR")
        parser.add_argument("--force", action="store_true", help="overwrite an existing export")
        parser.add_argument("--json", action="store_true", help="print the front as JSON")
        parser.add_argument(
            "--validation-only",
            action="store_true",
            help="skip the test-split re-assessment (search numbers only)",
        )

    def take_action(self, args: argparse.Namespace) -> int:
        import pandas as pd

        from search.front import assess_front, assessed_row, export_front, front_frame, front_trials
        from search.study import artifact_store

        study, config, url = load_existing(args)
        artifacts = artifact_store(url, config.artifacts)
        if args.export:
            table = export_front(study, config, artifacts, Path(args.export), force=args.force)
            log.info("exported %d front members to %s", len(table), args.export)
        elif args.validation_only:
            table = front_frame(study)
        else:
            reports = assess_front(study, config, artifacts)
            table = pd.DataFrame([assessed_row(t, reports[t.number]) for t in front_trials(study)])
        if not args.json:
            print_study_header(study, config)
        print_front(table, args.json, extra=ASSESSED_COLUMNS)
        return 0


def print_study_header(study: Any, config: Any) -> None:
    """Threat model and the base model's sanity checks, above the front."""
    from search.robust import describe

    print(f"study {study.study_name!r}: {len(study.trials)} trials")
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
        parser.add_argument("--json", action="store_true")

    def take_action(self, args: argparse.Namespace) -> int:
        from search.front import format_table, frame_json, trials_frame

        study, _, _ = load_existing(args)
        frame = trials_frame(study)
        if args.csv:
            target = Path(args.csv)
            if not target.resolve().parent.is_dir():
                raise BadInput(f"--csv: directory of {args.csv!r} does not exist")
            frame.to_csv(target, index=False)
            log.info("wrote %d trials to %s", len(frame), target)
        elif args.json:
            print(frame_json(frame))
        else:
            print(format_table(frame, extra=["state", "feasible", "fail_reason"]))
        return 0
