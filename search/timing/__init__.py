"""Timing an ONNX file, here or on the user's device: the light part of aer-search.

`time_onnx_local` times a model in an onnxruntime CPU session on this machine;
`time_onnx_remote` sends it to a device agent (`search latency-agent`, `_agent`) on the
device a user deploys to (a Raspberry Pi, a phone) and returns that device's timing, in
the same `TimingResult`. With `latency.device: URL` a study times its trials there.

This package imports neither torch nor the rest of aer-search's heavy parts (only
numpy and onnxruntime, lazily), so the agent runs on a device that has onnxruntime and
nothing else: tests/test_latency_agent.py checks that with torch blocked.
"""

from __future__ import annotations

from search.timing._agent import add_arguments as add_agent_arguments
from search.timing._agent import make_server as make_agent_server
from search.timing._agent import serve as serve_agent
from search.timing._local import describe_device, time_onnx_local
from search.timing._remote import (
    TOKEN_ENV,
    AgentError,
    AgentRefused,
    AgentUnreachable,
    check_agent,
    time_onnx_remote,
)
from search.timing._result import TimingResult

__all__ = [
    "TOKEN_ENV",
    "AgentError",
    "AgentRefused",
    "AgentUnreachable",
    "TimingResult",
    "add_agent_arguments",
    "make_agent_server",
    "serve_agent",
    "check_agent",
    "describe_device",
    "time_onnx_local",
    "time_onnx_remote",
]
