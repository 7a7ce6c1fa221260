"""Slow clients against the real server on 127.0.0.1: half-sent heads and stalled bodies are cut off."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_thread import serve_in_thread

from skinnet.app import timeouts
from skinnet.app.server import create_app

IMAGE = sorted((Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images").glob("*.jpg"))[0]
SLOW_CLIENTS = 40


@pytest.fixture()
def quick_deadlines(monkeypatch: pytest.MonkeyPatch, app_segmenter) -> Iterator[tuple[str, int]]:
    """A server whose deadlines are 1 s (heads, body stalls) and 3 s (whole bodies): its URL and port."""
    monkeypatch.setattr(timeouts.HeaderDeadlineProtocol, "header_timeout", 1.0)
    monkeypatch.setattr(timeouts, "BODY_IDLE_TIMEOUT", 1.0)
    monkeypatch.setattr(timeouts, "BODY_TIMEOUT", 3.0)
    with serve_in_thread(create_app(app_segmenter)) as url:
        yield url, int(url.rsplit(":", 1)[1])


def closed_by_server(sock: socket.socket, wait: float) -> bytes | None:
    """What the server sent before closing ``sock``, or ``None`` if it was still open after ``wait`` s."""
    sock.settimeout(wait)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def test_half_sent_heads_are_closed_and_others_are_still_served(quick_deadlines: tuple[str, int]) -> None:
    url, port = quick_deadlines
    slow = []
    for index in range(SLOW_CLIENTS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if index % 2:  # half send nothing at all, half a request line and part of a header
            sock.sendall(b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(sock)
    with httpx.Client(base_url=url, timeout=30) as http:  # served while the slow ones wait
        assert http.post("/api/segment", files={"file": (IMAGE.name, IMAGE.read_bytes())}).status_code == 200
    try:
        outcomes = [closed_by_server(sock, wait=15) for sock in slow]
    finally:
        for sock in slow:
            sock.close()
    assert all(outcome is not None for outcome in outcomes), "a half-sent request was still held open"


def test_a_stalled_body_gets_408(quick_deadlines: tuple[str, int]) -> None:
    _, port = quick_deadlines
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
        answer = closed_by_server(sock, wait=15)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408")
    assert b'"code":"timeout"' in answer and b"connection: close" in answer.lower()


def test_a_body_trickled_past_the_deadline_gets_408(quick_deadlines: tuple[str, int]) -> None:
    _, port = quick_deadlines
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
                     b'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n')
        for _ in range(30):  # a byte every 0.5 s: never idle for 1 s, but past 3 s in all
            if select.select([sock], [], [], 0.5)[0]:  # the server has answered
                break
            sock.sendall(b"x")
        answer = closed_by_server(sock, wait=15)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408")
