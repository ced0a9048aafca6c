"""Response headers that keep the pages safe to embed and to serve: who may
frame them (CSP ``frame-ancestors``, from ``CIM_FRAME_ANCESTORS``), no MIME
sniffing, no full URLs in Referer headers sent elsewhere."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    """An ASGI middleware adding the headers to every HTTP response."""

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.headers if h[0] not in existing)]
            await send(message)

        await self.app(scope, receive, with_headers)
