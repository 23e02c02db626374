"""Every connection passes here first: Host, Origin, token, body type and body size.

A plain ASGI middleware rather than a FastAPI dependency, so that nothing (the page,
the static files, the OpenAPI spec, a route added later, a websocket) can be reached
around it, and a bad request is refused before any route reads it. In order:

- `Host` must name the address the service serves (421 otherwise): a DNS-rebinding
  page reaches 127.0.0.1 under its own name, and is refused by that name.
- `Origin`, when sent, must be the service's own (403 otherwise). Browsers send it on
  every POST and every websocket, so another site's page (another port counts) can
  neither start nor stop a study, even a tokenless one on the loopback address.
- The token comes as `Authorization: Bearer TOKEN`, or as the cookie a browser gets
  by opening `/?token=TOKEN` once (SameSite=Strict).
- A request that changes state (POST, PUT, PATCH, DELETE) and carries a body must
  name a config type (JSON or YAML; 415 otherwise). These types are not ones a form
  or a `no-cors` fetch can send, so a browser sends them only after a CORS preflight,
  which the service never grants.
- Bodies up to `max_body` bytes (413).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from search.service._intake import JSON_TYPES, YAML_TYPES
from search.service._settings import token_matches

COOKIE = "aer_search_token"
CHANGING_METHODS = ("POST", "PUT", "PATCH", "DELETE")
BODY_TYPES = JSON_TYPES + YAML_TYPES
FOREIGN_SITES = ("cross-site", "same-site")  # Sec-Fetch-Site of another origin's request
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Refusal = tuple[int, str, Sequence[tuple[bytes, bytes]]]


class BodyTooLarge(Exception):
    """Raised from `receive` once a body grows past the limit."""


class Guard:
    """Host, Origin and token on every connection; body type and size on every request."""

    def __init__(
        self,
        app: Callable,
        token: str | None,
        max_body: int,
        hosts: frozenset[str] | None,
    ) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body
        self.hosts = hosts  # the Host values naming the service; None: any (wildcard bind)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":  # the server starting and stopping: no client behind it
            await self.app(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        # any other connection type reaches nothing: what is not checked is not served

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        refusal = self._address_refusal(scope, headers)
        if refusal is None and self.token and await self._login(scope, send):
            return
        refusal = refusal or self._token_refusal(headers) or self._body_refusal(scope, headers)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        await self._guarded(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket is a connection like any other: the same Host, Origin and token."""
        headers = _headers(scope)
        refusal = self._address_refusal(scope, headers) or self._token_refusal(headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await receive()  # the websocket.connect message, answered by the refusal
        if "websocket.http.response" in scope.get("extensions", {}):
            await _respond(send, *refusal, prefix="websocket.")
        else:  # the server answers a close before the handshake with HTTP 403
            await send({"type": "websocket.close", "code": 1008, "reason": refusal[1][:120]})

    def _address_refusal(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        """Host must name this service; Origin, when sent, must be its own."""
        host = headers.get("host", "").strip().lower()
        if self.hosts is not None and host not in self.hosts:
            return (
                421,
                f"Host {host!r} does not name this service; use one of "
                f"{', '.join(sorted(self.hosts))}",
                (),
            )
        origin = headers.get("origin")
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", ""), scope.get("scheme"))
        own = {f"{scheme}://{name}" for name in (self.hosts or {host})}
        if origin is not None and origin.strip().lower() not in own:
            return (
                403,
                f"cross-origin request refused: Origin {origin[:100]!r} is not this "
                f"service's ({scheme}://{host})",
                (),
            )
        changing = scope["type"] == "http" and scope["method"] in CHANGING_METHODS
        if changing and headers.get("sec-fetch-site", "").lower() in FOREIGN_SITES:
            return 403, "cross-origin request refused: it comes from another site's page", ()
        return None

    def _token_refusal(self, headers: dict[str, str]) -> Refusal | None:
        if token_matches(self.token, _presented_token(headers)):
            return None
        return (
            401,
            "this service needs a token: send 'Authorization: "
            "Bearer TOKEN' (or open /?token=TOKEN in a browser)",
            [(b"www-authenticate", b"Bearer")],
        )

    def _body_refusal(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        """A state-changing body must be a config type; any body at most `max_body` bytes."""
        length = headers.get("content-length", "")
        has_body = (length.isdigit() and int(length) > 0) or "transfer-encoding" in headers
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["method"] in CHANGING_METHODS and (has_body or kind) and kind not in BODY_TYPES:
            return (
                415,
                f"Content-Type {kind!r} is refused: a request body must be {', '.join(BODY_TYPES)}",
                (),
            )
        if length.isdigit() and int(length) > self.max_body:
            return 413, self._too_large(), ()
        return None

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


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


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
    send: Send,
    status: int,
    detail: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
    prefix: str = "",
) -> None:
    """A `{"detail": ...}` response; `prefix` "websocket." refuses a websocket handshake."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": f"{prefix}http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": f"{prefix}http.response.body", "body": body})
