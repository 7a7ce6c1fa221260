"""Deadlines for slow clients: the request head and the request body must arrive in time.

uvicorn waits for a request's headers as long as the client keeps the connection open, and hands the body to
the app as slowly as it comes; 300 clients sending a byte now and then would hold 300 connections forever.
:class:`HeaderDeadlineProtocol` closes a connection whose request line and headers are not complete within
``header_timeout`` seconds of its first byte (or of the connection); :class:`BodyDeadline` answers 408 when
a body stalls for ``idle_timeout`` seconds or is not complete within ``body_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import h11
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from skinnet.app.limits import run_or_answer

HEADER_TIMEOUT = 10.0
BODY_IDLE_TIMEOUT = 15.0
BODY_TIMEOUT = 120.0


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head does not arrive within ``header_timeout``."""

    header_timeout = HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # the head of a request is still incomplete
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self.head_deadline is None:
            self.head_deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _expire(self) -> None:
        self.head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closed a connection whose request head took over %g s", self.header_timeout)
            self.transport.close()


class BodyTimeout(HTTPException):
    """The client stopped sending its body, or sent it too slowly; an HTTPException so FastAPI passes it on."""

    def __init__(self) -> None:
        super().__init__(408, "the request body did not arrive in time")


class BodyDeadline:
    """ASGI middleware: a request body must not stall for ``idle_timeout`` s nor take over ``body_timeout`` s.

    The answer is :func:`timeout_response` (the app's handler gives it for reads inside FastAPI; this middleware
    for any other). Once the body is complete, reads (an app waiting for the client to go away) have no
    deadline.
    """

    def __init__(self, app: ASGIApp, idle_timeout: float | None = None, body_timeout: float | None = None) -> None:
        # The module's values are read now, not at import: a test (or an embedding app) may change them.
        self.app = app
        self.idle_timeout = BODY_IDLE_TIMEOUT if idle_timeout is None else idle_timeout
        self.body_timeout = BODY_TIMEOUT if body_timeout is None else body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.body_timeout
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            wait = min(self.idle_timeout, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.0))
            except TimeoutError:
                raise BodyTimeout from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await run_or_answer(self.app, scope, timed_receive, send, BodyTimeout,
                            lambda: timeout_response(self.idle_timeout, self.body_timeout)(scope, receive, send))


def timeout_response(idle_timeout: float | None = None, body_timeout: float | None = None) -> JSONResponse:
    """The 408 answer to a body that did not arrive in time; the connection is closed after it."""
    idle = BODY_IDLE_TIMEOUT if idle_timeout is None else idle_timeout
    total = BODY_TIMEOUT if body_timeout is None else body_timeout
    detail = f"the request body did not arrive in time (at most {idle:g} s without data, {total:g} s in all)"
    return JSONResponse({"detail": detail, "code": "timeout"}, 408, headers={"Connection": "close"})
