"""Request body size limit as ASGI middleware: large uploads are refused without being stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def run_or_answer(app: ASGIApp, scope: Scope, receive: Receive, send: Send, error: type[Exception],
                        answer: Callable[[], Awaitable[None]]) -> None:
    """Run ``app``; where it raises ``error`` before its response has started, send ``answer()`` instead.

    Once a response has started the client already holds part of it, so the error goes on up.
    """
    started = False

    async def tracking_send(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, receive, tracking_send)
    except error:
        if started:
            raise
        await answer()


class BodyTooLarge(HTTPException):
    """Raised while reading a request body past the limit; an HTTPException so FastAPI passes it on."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")


class UploadLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes; nothing past the limit is ever stored.

    A declared ``Content-Length`` over the limit is refused before reading; a chunked body is counted as it
    arrives. The answer is ``too_large`` JSON with 413 and ``Connection: close``. Before answering, the rest
    of a body up to ``drain_limit`` bytes is read and discarded: a client that sends its whole body before
    reading (most HTTP libraries) then gets the 413 instead of a connection reset. Bodies declared larger than
    that, and clients waiting on ``Expect: 100-continue``, are answered without reading any of it.
    """

    def __init__(self, app: ASGIApp, limit: int, detail: str, drain_limit: int) -> None:
        self.app, self.limit, self.detail, self.drain_limit = app, limit, detail, drain_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            if int(declared) <= self.drain_limit and headers.get(b"expect", b"").lower() != b"100-continue":
                await self.drain(receive, 0)
            await self.reject(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                if message.get("more_body", False):
                    await self.drain(receive, received)
                raise BodyTooLarge
            return message

        # normally the app's handler answers BodyTooLarge; this covers reads outside FastAPI's
        await run_or_answer(self.app, scope, counting_receive, send, BodyTooLarge,
                            lambda: self.reject(scope, receive, send))

    async def drain(self, receive: Receive, received: int) -> None:
        """Read and discard the rest of the body while at most ``drain_limit`` bytes have come in all."""
        while received <= self.drain_limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": self.detail, "code": "too_large"}, 413, headers={"Connection": "close"})
        await response(scope, receive, send)
