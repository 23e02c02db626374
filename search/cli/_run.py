"""`search run` and `search worker`: start, resume or join a study."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from search.cli._base import Command, load_existing, print_front, set_threads
from search.core import BadInput


class Run(Command):
    """Run (or resume) a study and print its Pareto front."""

    name = "run"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "config",
            nargs="?",
            metavar="CONFIG.yaml",
            help="study config (default: the embedded digits study)",
        )
        parser.add_argument("--preset", help="a packaged config by name (e.g. digits)")
        parser.add_argument("--checkpoint", help="base model state dict (torch.save) to start from")
        parser.add_argument("--trials", type=int, help="total trial budget of the study")
        parser.add_argument("--timeout", type=float, help="stop starting trials after SECONDS")
        parser.add_argument("--seed", type=int)
        parser.add_argument(
            "--device", help="auto, cpu, cuda, cuda:N or mps (default: the config's)"
        )
        parser.add_argument(
            "--backend",
            default="optuna",
            help="optuna (this process) or ray (Ray Tune, local or a cluster)",
        )
        parser.add_argument(
            "--address",
            help="Ray cluster to join (HOST:PORT, ray://HOST:PORT "
            "or auto); default: a local Ray sized to this machine",
        )
        parser.add_argument("--sampler", help="tpe, gp, nsga2 or random (default: the config's)")
        parser.add_argument(
            "--baseline",
            metavar="NAME",
            help="run a baseline study of the config instead: paper-grid, "
            "random, adversarial-training or trades-training (named STUDY-NAME unless "
            "--study is given)",
        )
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="FIELD=VALUE",
            help="override one config field (dotted, the value read as YAML), e.g. "
            "--set fidelity.enabled=false; repeatable",
        )
        parser.add_argument("--json", action="store_true", help="print the front as JSON")

    def take_action(self, args: argparse.Namespace) -> int:
        from search.backends import BACKENDS, launch
        from search.core import check_device_name
        from search.front import front_frame
        from search.study import baseline_config, load_config

        if args.device is not None:
            check_device_name(args.device, "--device")
        if args.backend not in BACKENDS:
            raise BadInput(f"--backend must be one of {', '.join(BACKENDS)}, got {args.backend!r}")
        if args.address and args.backend != "ray":
            raise BadInput("--address joins a Ray cluster; it needs --backend ray")
        config = load_config(
            args.config,
            args.preset,
            {
                **parse_overrides(args.set),
                "study": args.study,
                "storage": args.storage,
                "trials": args.trials,
                "timeout": args.timeout,
                "seed": args.seed,
                "device": args.device,
                "sampler": args.sampler,
                "model.checkpoint": args.checkpoint,
            },
        )
        if args.baseline:
            config = baseline_config(config, args.baseline, study=args.study)
        study = launch(
            config,
            storage=args.storage,
            backend=args.backend,
            address=args.address,
            baseline=args.baseline,
        )
        print_front(front_frame(study), args.json)
        if not args.json:
            print(
                f"\nexport it with: search pareto --study {config.study} --export DIR",
                file=sys.stderr,
            )
        return 0


class Worker(Command):
    """Join a running study and run its trials until the study's budget is spent."""

    name = "worker"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--device", help="auto, cpu, cuda, cuda:N or mps (default: the study's)"
        )
        parser.add_argument(
            "--threads",
            type=int,
            help="CPU threads of this worker (default: all cores); N workers "
            "on one machine: cores / N",
        )

    def take_action(self, args: argparse.Namespace) -> int:
        from search.backends._optuna import run_study
        from search.core import resolve_device
        from search.study import artifact_store, setup_from_study

        if args.device is not None:  # before the storage is opened: nothing to undo
            resolve_device(args.device, "--device")  # its form, and that it exists here
        study, config, url = load_existing(args)
        if args.device is not None:
            config = dataclasses.replace(config, device=args.device).validate()
        set_threads(args.threads)
        artifacts = artifact_store(url, config.artifacts)
        run_study(config, setup_from_study(study, config, artifacts), study, artifacts)
        return 0


def parse_overrides(items: list[str]) -> dict[str, object]:
    """`--set a.b=VALUE` items as dotted overrides; each VALUE is read as one YAML scalar
    or list (safe loader), so `false`, `3` and `[0, 1]` mean what they say."""
    import yaml

    overrides: dict[str, object] = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not field.strip():
            raise BadInput(f"--set must be FIELD=VALUE (e.g. fidelity.enabled=false), got {item!r}")
        try:
            overrides[field.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise BadInput(f"--set {field.strip()}: {text[:80]!r} is not a YAML value") from None
    return overrides
