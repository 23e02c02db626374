"""`search latency-agent`: the device agent (search.timing), run on the target device."""

from __future__ import annotations

import argparse

from search.cli._base import Command


class LatencyAgent(Command):
    """Time ONNX files sent over HTTP on this device, for studies with latency.device (on
    a device without torch: python -m search.timing; see docs/latency-agent.md)."""

    name = "latency-agent"
    uses_study = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from search.timing import add_agent_arguments

        add_agent_arguments(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        from search.timing import serve_agent

        return serve_agent(args)
