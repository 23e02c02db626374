"""`search objectives` and `search spaces`: what a config may name, and what it expands to."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from search.cli._base import Command
from search.core import BadInput

log = logging.getLogger("search")


class Objectives(Command):
    """List every objective a config may name: direction, source, what it measures."""

    name = "objectives"
    uses_study = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true")

    def take_action(self, args: argparse.Namespace) -> int:
        # Sources: built-in, an installed plug-in (entry-point group aer_search.objectives,
        # with its distribution) or an import path already imported. A plug-in that fails to
        # import is listed as broken with its error instead of failing the command.
        from objectives import available, broken_plugins

        rows = [
            {
                "name": o.name,
                "direction": o.direction,
                "source": o.source,
                "origin": o.origin,
                "distribution": o.distribution,
                "broken": False,
                "description": (o.fn.__doc__ or "").strip().split("\n")[0],
            }
            for o in available()
        ]
        rows += [
            {
                "name": b.entry_point,
                "direction": None,
                "source": f"entry point {b.distribution}",
                "origin": "entry-point",
                "distribution": b.distribution,
                "broken": True,
                "description": f"BROKEN: {b.error}",
            }
            for b in broken_plugins()
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        widths = {
            key: max(len(str(row[key] or "-")) for row in rows)
            for key in ("name", "direction", "source")
        }
        for row in rows:
            print(
                "  ".join(f"{str(row[key] or '-'):<{width}}" for key, width in widths.items())
                + f"  {row['description']}"
            )
        print(
            "\nor any 'pkg.module:function' decorated with @objectives.objective", file=sys.stderr
        )
        return 0


class Spaces(Command):
    """Show every parameter a config's space expands to, with its range (runs nothing)."""

    name = "spaces"
    uses_study = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", nargs="?", metavar="CONFIG.yaml")
        parser.add_argument(
            "--config",
            dest="config_file",
            metavar="FILE",
            help="study config (same as the positional CONFIG.yaml)",
        )
        parser.add_argument("--preset", help="a packaged config by name (e.g. digits)")
        parser.add_argument("--json", action="store_true")

    def take_action(self, args: argparse.Namespace) -> int:
        from search.compress import prunable_layers, weighted_layers
        from search.study import load_config
        from search.zoo import build_model, load_splits
        from spaces import expand

        if args.config and args.config_file:
            raise BadInput("give the config as CONFIG.yaml or --config FILE, not both")
        config = load_config(args.config or args.config_file, args.preset)
        model = build_model(config.model.name, load_splits(config.data, config.seed).info)
        prunable, quantizable = list(prunable_layers(model)), list(weighted_layers(model))
        params = expand(config.space, prunable, quantizable)
        if config.fidelity.enabled:  # the rung schedule sets the fine-tuning budget
            params = [p for p in params if p.name != "epochs"]
        kind = (
            f"space.factory {config.space.factory}"
            if config.space.factory
            else f"granularity {config.space.granularity}"
        )
        log.info(
            "model %s: %d prunable and %d quantizable layers; %s; %d parameters",
            config.model.name,
            len(prunable),
            len(quantizable),
            kind,
            len(params),
        )
        if args.json:
            print(json.dumps([p.to_dict() for p in params], indent=2))
        else:
            for param in params:
                print(param.describe())
        return 0
