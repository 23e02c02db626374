"""The client of a device agent: send an ONNX file, get the device's timing back.

The token travels in an `Authorization: Bearer` header and is never stored: a study's
config names the environment variable that holds it (`latency.token_env`, by default
$AER_SEARCH_AGENT_TOKEN). Every failure is an `AgentError` whose message is one line
naming the agent and the reason: `AgentUnreachable` (no connection, a timeout),
`AgentRefused` (401: the token), or the agent's own 4xx / 5xx reason.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from search.timing._result import TimingResult

TOKEN_ENV = "AER_SEARCH_AGENT_TOKEN"
TIMEOUT_S = 30.0  # connecting and reading; a timing of `repeats` runs takes its own time


class AgentError(RuntimeError):
    """The agent did not return a timing (the message says why, in one line)."""


class AgentUnreachable(AgentError):
    """No answer from the agent: refused connection, unknown host, timeout."""


class AgentRefused(AgentError):
    """The agent refused the token (HTTP 401)."""


def time_onnx_remote(
    url: str,
    token: str,
    onnx_model: bytes | Path,
    batch_size: int = 1,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    timeout: float | None = None,
) -> TimingResult:
    """Time `onnx_model` on the device whose agent listens at `url` (http://HOST:PORT).

    `timeout` (seconds) defaults to a budget that grows with the runs asked for.
    """
    data = onnx_model.read_bytes() if isinstance(onnx_model, Path) else onnx_model
    query = urllib.parse.urlencode(
        {"batch_size": batch_size, "threads": threads, "warmup": warmup, "repeats": repeats}
    )
    budget = timeout if timeout is not None else TIMEOUT_S + 0.5 * (warmup + repeats)
    answer = _call(url, token, f"/time?{query}", data, budget)
    try:
        return TimingResult.from_dict(answer)
    except ValueError as exc:
        raise AgentError(f"device agent at {url} sent a bad timing: {exc}") from None


def check_agent(url: str, token: str, timeout: float = 10.0) -> dict[str, Any]:
    """The agent's description of its device ({"device": ..., "onnxruntime_version": ...,
    "max_bytes": ...}); raises AgentError when it is unreachable or refuses the token."""
    answer = _call(url, token, "/health", None, timeout)
    if not isinstance(answer, dict) or "device" not in answer:
        raise AgentError(f"device agent at {url} sent no device description")
    return answer


def _call(url: str, token: str, path: str, data: bytes | None, timeout: float) -> Any:
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        reason = _reason(exc)
        if exc.code == 401:
            raise AgentRefused(
                f"device agent at {url} refused the token (401): set ${TOKEN_ENV} "
                "(or latency.token_env's variable) to the token the agent was started with"
            ) from None
        raise AgentError(f"device agent at {url} answered {exc.code}: {reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        # HTTPException: the agent went away mid-answer (IncompleteRead, RemoteDisconnected)
        why = getattr(exc, "reason", exc)
        raise AgentUnreachable(f"device agent at {url} is unreachable: {why}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise AgentError(f"device agent at {url} sent something that is not JSON") from None


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read()).get("error", error.reason))
    except (ValueError, AttributeError, OSError):
        return str(error.reason)
