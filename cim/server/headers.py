"""Response headers that keep the pages safe to embed and to serve: who may
frame them (CSP ``frame-ancestors``, from ``CIM_FRAME_ANCESTORS``), no MIME
sniffing, no full URLs in Referer headers sent elsewhere; and the Host names
the server answers to (no DNS rebinding).

Both run on every request, vector tiles included: their work is done once
(the header list, the Hosts accepted), a request pays a list copy and a set
lookup.
"""

from __future__ import annotations

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    """An ASGI middleware adding the headers to every HTTP response (a header
    the response sets itself is left as it is)."""

    def __init__(self, app: ASGIApp, frame_ancestors: tuple[str, ...] = ()) -> None:
        self.app = app
        ancestors = " ".join(("'self'", *frame_ancestors))
        self.headers = [
            (b"content-security-policy", f"frame-ancestors {ancestors}".encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]
        if not frame_ancestors:  # browsers without CSP level 2: the same rule
            self.headers.append((b"x-frame-options", b"SAMEORIGIN"))
        self.names = frozenset(name for name, _ in self.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = message.get("headers", [])
                names = self.names
                if any(k.lower() in names for k, _ in existing):  # rare: the response set one of them
                    present = {k.lower() for k, _ in existing}
                    message["headers"] = [*existing, *(h for h in self.headers if h[0] not in present)]
                else:
                    message["headers"] = [*existing, *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)


class TrustedHosts:
    """Starlette's ``TrustedHostMiddleware`` (the same patterns, the same 400 or
    www-redirect for another Host), with the ``Host`` headers it accepted kept: a
    request for a known host is one set lookup, any other goes through
    Starlette's check and is answered by it (its verdict depends on the Host
    header alone)."""

    KEPT = 64  # accepted Host headers remembered (a wildcard pattern accepts any number)

    def __init__(self, app: ASGIApp, allowed_hosts: list[str] | None = None, www_redirect: bool = True) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(self._accepted, allowed_hosts=allowed_hosts, www_redirect=www_redirect)
        self.known: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.check.allow_any or scope["type"] not in ("http", "websocket") or _host(scope) in self.known:
            await self.app(scope, receive, send)
        else:
            await self.check(scope, receive, send)

    async def _accepted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Starlette let the request in."""
        host = _host(scope)
        if host is not None and len(self.known) < self.KEPT:
            self.known.add(host)
        await self.app(scope, receive, send)


def _host(scope: Scope) -> bytes | None:
    """The first Host header (the one Starlette reads), as sent."""
    for name, value in scope["headers"]:
        if name == b"host":
            return value
    return None
