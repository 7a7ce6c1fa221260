"""Request and response headers as ASGI middleware: the ``Host`` allow-list and the security headers.

A server on localhost is reachable from any web page the clinician opens, through DNS rebinding (a hostile
name that resolves to 127.0.0.1): only the ``Host`` names it was started for are answered. Every response
says not to sniff its type and not to be framed; pages get a Content Security Policy that allows nothing
from elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Swagger UI (/docs) is served from this server (fastapi-offline) and starts itself with an inline script.
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
# JSON and images: nothing to run, nothing to load.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "no-referrer"}


def host_name(value: str) -> str:
    """The name of a ``Host`` header without its port, lower-case (``[::1]:8000`` → ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> set[str]:
    """Loopback names, the bound address unless it is a wildcard, and ``extra`` (``--allow-host``)."""
    hosts = set(LOOPBACK_HOSTS) | {host_name(name) for name in extra}
    if bind not in ("0.0.0.0", "::", ""):
        hosts.add(host_name(bind))
    return hosts


class HostAndSecurityHeaders:
    """ASGI middleware: refuse a ``Host`` outside ``hosts`` (400 JSON); add the security headers to every answer.

    Args:
        app: the app.
        hosts: accepted host names (see :func:`allowed_hosts`); ``"*"`` accepts any.

    A response that sets no Content Security Policy gets :data:`DOCS_CSP` under ``/docs``, else
    :data:`DEFAULT_CSP`.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app, self.hosts = app, set(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
        csp = DOCS_CSP if scope["path"].startswith("/docs") else DEFAULT_CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
                            if name.encode() not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", csp.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if "*" not in self.hosts and host not in self.hosts:
            shown = host or "(none)"
            response = JSONResponse({"detail": f"Host {shown!r} is not served here (allowed: "
                                               f"{', '.join(sorted(self.hosts))}); start the server with "
                                               f"--allow-host {shown} to answer it", "code": "bad_host"}, 400)
            await response(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)
