"""The device agent: times ONNX files sent over HTTP, on the device it runs on.

`search latency-agent` (or `python -m search.timing`, on a device without torch) starts
it. It imports only the standard library, numpy and onnxruntime. One request is served
at a time (`HTTPServer`, not threaded), so two timings never share the device's cores.

    GET  /health                      200 {"device", "onnxruntime_version", "max_bytes"}
    POST /time?batch_size=&threads=&warmup=&repeats=   body: the ONNX file's bytes
                                      200 the `TimingResult` as JSON

Every request needs `Authorization: Bearer TOKEN` (401 otherwise; compared in constant
time). A body over `max_bytes` is refused before it is read (413), one without a length
gets 411, bytes that are not a runnable model or out-of-range parameters get 400 naming
what is wrong. Errors are JSON: {"error": "..."}.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from search.timing._local import describe_device, time_onnx_local
from search.timing._remote import TOKEN_ENV

log = logging.getLogger(__name__)
DEFAULT_PORT = 8765
DEFAULT_MAX_BYTES = 64 * 2**20  # 64 MiB: ResNet-18 in float is 45 MB
DRAIN_BYTES = 2**20  # a refused body read and dropped, at most, so the answer arrives
LIMITS = {"batch_size": 4096, "warmup": 10_000, "repeats": 10_000}
DEFAULTS = {"batch_size": 1, "threads": 1, "warmup": 10, "repeats": 50}


class AgentServer(HTTPServer):
    """An HTTP server that holds the agent's token and body cap."""

    def __init__(self, address: tuple[str, int], token: str, max_bytes: int) -> None:
        super().__init__(address, _Handler)
        self.token = token
        self.max_bytes = max_bytes


class _Handler(BaseHTTPRequestHandler):
    server: AgentServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if urllib.parse.urlsplit(self.path).path != "/health":
            self._send(404, {"error": "no such path; use GET /health or POST /time"})
            return
        self._send(200, _health(self.server.max_bytes))

    def do_POST(self) -> None:
        if not self._authorized():
            return
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/time":
            self._send(404, {"error": "no such path; use GET /health or POST /time"})
            return
        body = self._body()
        if body is None:
            return
        try:
            settings = _settings(urllib.parse.parse_qs(parts.query))
            result = time_onnx_local(body, **settings)
        except ValueError as exc:
            self._send(400, {"error": str(exc)})
            return
        log.info("timed %d bytes: median %.4g ms (%s)", len(body), result.median_ms, settings)
        self._send(200, result.to_dict())

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.token}"
        if hmac.compare_digest(given.encode(), expected.encode()):
            return True
        self._discard()
        self._send(401, {"error": "missing or wrong token (Authorization: Bearer TOKEN)"})
        return False

    def _discard(self, bound: int | None = None) -> None:
        """Read and drop a refused request's body, up to `bound` bytes (the cap): closing a
        socket with unread bytes resets it, and the client would see the reset, not the
        answer. A body over the cap is read only to DRAIN_BYTES."""
        try:
            left = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        left = min(left, self.server.max_bytes if bound is None else bound)
        while left > 0:
            chunk = self.rfile.read(min(left, 2**16))
            if not chunk:
                break
            left -= len(chunk)

    def _body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._send(411, {"error": "Content-Length is required"})
            return None
        try:
            length = int(length_text)
        except ValueError:
            self._send(400, {"error": f"Content-Length must be an integer, got {length_text!r}"})
            return None
        if length > self.server.max_bytes:
            self._discard(DRAIN_BYTES)
            self._send(
                413,
                {"error": f"body of {length} bytes exceeds --max-bytes {self.server.max_bytes}"},
            )
            return None
        if length <= 0:
            self._send(400, {"error": "the body must hold the ONNX file's bytes"})
            return None
        return self.rfile.read(length)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status >= 400:  # an unread body must not be taken for the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        log.info("%s %s", self.address_string(), format % args)


def _health(max_bytes: int) -> dict[str, Any]:
    import onnxruntime

    return {
        "device": describe_device(),
        "onnxruntime_version": onnxruntime.__version__,
        "max_bytes": max_bytes,
        "cores": os.cpu_count() or 1,
    }


def _settings(query: dict[str, list[str]]) -> dict[str, int]:
    """batch_size, threads, warmup, repeats from the query; ValueError names a bad one."""
    unknown = sorted(set(query) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; allowed: {', '.join(DEFAULTS)}")
    limits = {**LIMITS, "threads": os.cpu_count() or 1}
    settings = {}
    for name, default in DEFAULTS.items():
        text = query.get(name, [str(default)])[-1]
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {text!r}") from None
        low = 0 if name == "warmup" else 1
        if not low <= value <= limits[name]:
            raise ValueError(f"{name} must be in [{low}, {limits[name]}], got {value}")
        settings[name] = value
    return settings


def make_server(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str = "", max_bytes: int = 0
) -> AgentServer:
    """A bound agent (port 0: any free port, read it from `server.server_address`)."""
    return AgentServer((host, port), token, max_bytes or DEFAULT_MAX_BYTES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8765)")
    parser.add_argument("--token", default=None, help=f"the token clients send (or ${TOKEN_ENV})")
    parser.add_argument(
        "--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest ONNX file accepted"
    )


def serve(args: argparse.Namespace) -> int:
    """Run the agent until interrupted; 2 with one line on bad arguments."""
    token = args.token or os.environ.get(TOKEN_ENV, "")
    problem = None
    if len(token) < 8:
        problem = f"--token (or ${TOKEN_ENV}) must be set, at least 8 characters"
    elif not 0 <= args.port <= 65535:
        problem = f"--port must be in [0, 65535], got {args.port}"
    elif args.max_bytes < 1:
        problem = f"--max-bytes must be >= 1, got {args.max_bytes}"
    if problem is None:
        try:
            import onnxruntime  # noqa: F401 (the agent's one requirement)
        except ImportError:
            problem = "the agent needs onnxruntime: pip install onnxruntime numpy"
    if problem is None:
        try:
            server = make_server(args.host, args.port, token, args.max_bytes)
        except OSError as exc:
            problem = f"--host/--port: cannot listen on {args.host}:{args.port}: {exc.strerror}"
    if problem is not None:
        print(f"search latency-agent: error: {problem}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    print(f"latency agent on http://{host}:{port} ({describe_device()})", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m search.timing`: the agent, for a device without the full package."""
    parser = argparse.ArgumentParser(
        prog="search latency-agent", description=__doc__.split("\n")[0]
    )
    add_arguments(parser)
    logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.INFO)
    return serve(parser.parse_args(argv))
