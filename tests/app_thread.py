"""Run the app in a background thread on a free loopback port: for the app tests and docs/make_screenshot.py."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", start_timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread; yield its base URL; shut it down on exit.

    Args:
        app: the ASGI app, e.g. from :func:`skinnet.app.server.create_app`.
        host: address to bind; a free port is picked by the operating system.
        start_timeout: seconds to wait for the server to accept connections.

    Raises:
        RuntimeError: the server did not start in time.
    """
    # Binding here (port 0) and handing the socket to uvicorn leaves no window for another process to
    # take the port between choosing and binding it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    from skinnet.app.timeouts import HeaderDeadlineProtocol

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", http=HeaderDeadlineProtocol))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="skinnet-app")
    thread.start()
    deadline = time.monotonic() + start_timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start on {host}:{port} within {start_timeout:g} s")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
