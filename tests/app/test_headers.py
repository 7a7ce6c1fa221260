"""Security headers on every answer, the Host allow-list, and uploads in formats that are not decoded."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_thread import serve_in_thread

from skinnet.app.headers import allowed_hosts, host_name
from skinnet.app.server import create_app

REPO = Path(__file__).resolve().parents[2]
IMAGE = sorted((REPO / "skinnet" / "sample_data" / "images").glob("*.jpg"))[0]
POSTSCRIPT = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
              b"newpath 8 8 moveto 56 56 lineto 4 setlinewidth stroke\nshowpage\n%%EOF\n")


@pytest.fixture(scope="module")
def server(app_segmenter) -> Iterator[str]:
    with serve_in_thread(create_app(app_segmenter, max_upload_bytes=100_000)) as url:
        yield url


def test_every_answer_carries_the_security_headers(server: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as http:
        answers = {"page": http.get("/"), "docs": http.get("/docs"), "json": http.get("/api/health"),
                   "missing": http.get("/nope"), "too large": http.post("/api/segment", content=b"x" * 200_000),
                   "segmented": http.post("/api/segment", files={"file": (IMAGE.name, IMAGE.read_bytes())})}
    for name, response in answers.items():
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["x-frame-options"] == "DENY", name
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], name
    assert [answers[name].status_code for name in answers] == [200, 200, 200, 404, 413, 200]
    # The docs page's own scripts and styles come from this server only; the JSON may load nothing.
    assert "script-src 'self' 'unsafe-inline'" in answers["docs"].headers["content-security-policy"]
    assert answers["json"].headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src 'unsafe-inline'" in answers["page"].headers["content-security-policy"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::2]:80"])
def test_other_host_names_are_refused(server: str, host: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"x-frame-options: DENY" in head
    assert b'"code":"bad_host"' in body and b"--allow-host" in body


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:1234", "[::1]:8000", "LOCALHOST"])
def test_loopback_names_are_answered(server: str, host: str) -> None:
    with httpx.Client(base_url=server, timeout=30, headers={"Host": host}) as http:
        assert http.get("/api/health").status_code == 200


def test_allow_host_widens_the_list(app_segmenter) -> None:
    assert host_name("[::1]:80") == "::1" and host_name("Lesions.Clinic:443") == "lesions.clinic"
    assert allowed_hosts("0.0.0.0") == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts("10.0.0.5", ["lesions.clinic"]) == {"localhost", "127.0.0.1", "::1", "10.0.0.5",
                                                             "lesions.clinic"}
    app = create_app(app_segmenter, hosts=allowed_hosts("127.0.0.1", ["lesions.clinic"]))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/api/health", headers={"Host": "lesions.clinic"}).status_code == 200
        assert http.get("/api/health", headers={"Host": "other.clinic"}).status_code == 400


def test_postscript_upload_is_refused_without_server_paths(server: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as http:
        response = http.post("/api/segment", files={"file": ("lesion.jpg", POSTSCRIPT)})
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail == ("lesion.jpg: not a readable image: the file is PostScript, not one of the accepted "
                          "formats (JPEG, PNG, TIFF, BMP, WebP or DICOM)")
        assert http.post("/api/segment", files={"file": (IMAGE.name, IMAGE.read_bytes())}).status_code == 200
