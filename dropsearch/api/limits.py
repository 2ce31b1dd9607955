"""Request-size limit: a pure ASGI middleware that answers 413 for bodies over ``max_bytes``.

A declared ``Content-Length`` over the limit is refused before anything is read; a chunked body is read up to the
limit and refused as soon as it goes over, so no route ever sees (or buffers) a body larger than ``max_bytes``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["RequestSizeLimit"]

Scope = dict[str, Any]
Message = dict[str, Any]


class RequestSizeLimit:
    """Refuse HTTP requests whose body is larger than ``max_bytes`` with 413 and a JSON ``detail``.

    Args:
        app: the ASGI app to wrap.
        max_bytes: the largest body accepted, in bytes.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Serve one ASGI connection, refusing it with 413 when its body is too large."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reply(send, 400, f"invalid Content-Length header {declared.decode(errors='replace')!r}")
                return
            if size > self.max_bytes:
                await self._reply(send, 413, self._too_large(f"{size} bytes"))
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        # No length declared (chunked): read the body up to the limit, then replay it.
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._reply(send, 413, self._too_large(f"more than {self.max_bytes} bytes"))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, size: str) -> str:
        return f"request body too large: {size}; the limit is {self.max_bytes} bytes (max_request_bytes)"

    @staticmethod
    async def _reply(send: Any, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
