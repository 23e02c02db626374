"""Every request passes here first: the token check and the body size limit.

A plain ASGI middleware rather than a FastAPI dependency, so that nothing (the page,
the static files, the OpenAPI spec, a route added later) can be reached without the
token, and an oversized body is refused before any route reads it. The token comes as
`Authorization: Bearer TOKEN`, or as the cookie a browser gets by opening
`/?token=TOKEN` once (SameSite=Strict, so other sites cannot send it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from search.service._settings import token_matches

COOKIE = "aer_search_token"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised from `receive` once a body grows past the limit."""


class Guard:
    """Token on every request (when configured), request bodies up to `max_body` bytes."""

    def __init__(self, app: Callable, token: str | None, max_body: int) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        if self.token and await self._login(scope, send):
            return
        if not token_matches(self.token, _presented_token(headers)):
            await _respond(
                send,
                401,
                "this service needs a token: send 'Authorization: "
                "Bearer TOKEN' (or open /?token=TOKEN in a browser)",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await _respond(send, 413, self._too_large())
            return
        await self._guarded(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, counting body bytes as they arrive (chunked bodies have no length)."""
        received = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _respond(send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"request body larger than the limit of {self.max_body} bytes"

    async def _login(self, scope: Scope, send: Send) -> bool:
        """`GET /?token=TOKEN`: a right token becomes a cookie and the page reloads clean."""
        if scope["path"] != "/" or scope["method"] != "GET":
            return False
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if not given:
            return False
        if not token_matches(self.token, given[0]):
            await _respond(send, 401, "wrong token")
            return True
        cookie = f"{COOKIE}={given[0]}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/"),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        return True


def _presented_token(headers: dict[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    cookies = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is no token
        return None
    return cookies[COOKIE].value if COOKIE in cookies else None


async def _respond(
    send: Send, status: int, detail: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
