"""The JSON API on a real uvicorn server on 127.0.0.1: real images, bad input, limits, the queue, the CLI."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from app_thread import serve_in_thread
from gated_predictor import GatedPredictor
from PIL import Image

from skinnet.app.server import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_QUEUE_SIZE, create_app
from skinnet.clinical.measurements import measure
from skinnet.data.io import read_image
from skinnet.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[2]
IMAGES = sorted((REPO / "skinnet" / "sample_data" / "images").glob("*.jpg"))
SMALL_LIMIT = 100_000


@pytest.fixture(scope="module")
def server(app_segmenter) -> Iterator[str]:
    """The app with its default settings (20 MB, 1 worker, queue of 32)."""
    with serve_in_thread(create_app(app_segmenter)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def small_server(app_segmenter) -> Iterator[str]:
    """The app with a 100 kB upload limit."""
    with serve_in_thread(create_app(app_segmenter, max_upload_bytes=SMALL_LIMIT)) as url:
        yield url


def post(http: httpx.Client, name: str, data: bytes, **params: str) -> httpx.Response:
    return http.post("/api/segment", params=params, files={"file": (name, data, "application/octet-stream")})


def decode_mask(text: str) -> np.ndarray:
    png = Image.open(io.BytesIO(base64.b64decode(text)))
    assert png.format == "PNG" and png.mode == "L"
    values = np.asarray(png)
    assert set(np.unique(values).tolist()) <= {0, 255}
    return values == 255


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and len(body["detail"]) > 10
    return body["detail"]


def test_health_docs_and_openapi(client: httpx.Client) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["model"]["image_size"] == 64
    assert health["max_upload_bytes"] == DEFAULT_MAX_UPLOAD_BYTES == 20_000_000
    assert health["queue_size"] == DEFAULT_QUEUE_SIZE and health["in_flight"] == 0

    # The docs page loads Swagger UI from this server, not a CDN (the machines are offline).
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(asset.startswith("/") for asset in assets), assets
    assert all(client.get(asset).status_code == 200 for asset in assets)

    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/segment"]["post"]
    assert {"200", "400", "413", "422", "503"} <= set(operation["responses"])
    fields = spec["components"]["schemas"]["LesionMeasurements"]["properties"]
    assert all(field.get("description") for field in fields.values())
    assert "Crofton" in fields["perimeter_px"]["description"]
    assert "mirror" in fields["asymmetry"]["description"]
    assert "4π" in fields["compactness"]["description"]


def test_index_page_is_one_self_contained_file(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert not re.search(r"https?://", page.text), "the page must not load anything from elsewhere"
    for element in ("file", "drop", "view", "show-mask", "show-outline", "opacity", "download", "measurements",
                    "pixel-spacing", "confidence", "show-uncertainty", "report"):
        assert f'id="{element}"' in page.text


def test_real_images_masks_and_measurements(client: httpx.Client, app_segmenter, app_model: Path) -> None:
    model_sha256 = hashlib.sha256(app_model.read_bytes()).hexdigest()
    partial = 0
    for path in IMAGES[:6]:
        response = post(client, path.name, path.read_bytes())
        assert response.status_code == 200, response.text
        body = response.json()
        image = read_image(path)
        height, width = image.shape[:2]
        assert body["image"] == {"width": width, "height": height}
        assert body["id"] == path.stem and body["mask_filename"] == f"{path.stem}_segmentation.png"
        mask = decode_mask(body["mask_png_base64"])
        assert mask.shape == (height, width)
        # The served mask is the model's own prediction, and the numbers describe that very mask.
        np.testing.assert_array_equal(mask, app_segmenter.predict(image))
        shown = body["measurements"]
        assert shown["area_px"] == int(mask.sum())
        assert shown["area_percent"] == pytest.approx(100 * mask.sum() / mask.size)
        for key, value in measure(mask, image).to_dict().items():
            assert shown[key] == (value if value is None else pytest.approx(value)), key
        # A JPEG has no scale: millimetres are unknown, not guessed.
        assert body["spacing_source"] is None and shown["max_diameter_mm"] is None
        assert body["source_format"] == "image" and body["display_png_base64"] is None
        confidence = body["confidence"]
        assert 0 <= confidence["score"] <= 1 and confidence["method"] == "tta"
        assert confidence["flagged"] == (confidence["score"] < confidence["threshold"] or not mask.any()
                                         or mask.all())
        assert body["model"]["sha256"] == model_sha256
        partial += 0 < mask.sum() < mask.size
    assert partial >= 3, "the test model should give partial masks (see the app_model fixture)"


def test_png_format_and_safe_file_name(client: httpx.Client) -> None:
    data = IMAGES[1].read_bytes()
    body = post(client, IMAGES[1].name, data).json()
    response = post(client, "../../etc/ISIC 0000321 (copy).jpg", data, format="png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'attachment; filename="ISIC_0000321__copy_segmentation.png"'
    assert response.content == base64.b64decode(body["mask_png_base64"])
    assert int(response.headers["x-lesion-area-px"]) == body["measurements"]["area_px"]


def test_exif_rotation_gives_a_mask_of_the_displayed_size(client: httpx.Client) -> None:
    stored = Image.fromarray(read_image(IMAGES[0])[:, :96])  # 96 wide, 256 tall as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90°: 256 wide, 96 tall
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif)
    body = post(client, "rotated.jpg", buffer.getvalue()).json()
    assert body["image"] == {"width": 256, "height": 96}
    assert decode_mask(body["mask_png_base64"]).shape == (96, 256)


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    """144 megapixels of black in ~20 kB: beyond the pixel limit, refused before decoding."""
    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, make", [
    ("notes.jpg", lambda: b"these bytes are not pixels" * 10),
    ("truncated.jpg", lambda: IMAGES[0].read_bytes()[:3000]),
    ("empty.png", lambda: b""),
    ("renamed.png", lambda: json.dumps({"an": "object"}).encode()),
])
def test_unusable_files_get_422_and_the_server_goes_on(client: httpx.Client, name: str, make) -> None:
    detail = assert_error(post(client, name, make()), 422, "invalid_image")
    assert detail.startswith(f"{name}: ")
    assert post(client, IMAGES[0].name, IMAGES[0].read_bytes()).status_code == 200


def test_decompression_bomb_is_refused_quickly(client: httpx.Client, bomb_png: bytes) -> None:
    started = time.perf_counter()
    detail = assert_error(post(client, "bomb.png", bomb_png), 422, "invalid_image")
    assert "bomb" in detail or "pixels" in detail
    assert time.perf_counter() - started < 5, "the bomb must be refused from its header, not decoded"
    assert client.get("/api/health").json()["status"] == "ok"


def test_malformed_requests_get_400(client: httpx.Client) -> None:
    jpeg = IMAGES[0].read_bytes()
    wrong_field = client.post("/api/segment", files={"image": ("a.jpg", jpeg, "image/jpeg")})
    assert "file" in assert_error(wrong_field, 400, "bad_request")
    raw_body = client.post("/api/segment", content=jpeg, headers={"content-type": "image/jpeg"})
    assert_error(raw_body, 400, "bad_request")
    assert_error(post(client, "a.jpg", jpeg, format="gif"), 400, "bad_request")
    assert_error(client.get("/api/segment"), 405, "method_not_allowed")


def test_file_over_the_limit_gets_413(small_server: str) -> None:
    with httpx.Client(base_url=small_server, timeout=30) as http:
        detail = assert_error(post(http, "big.jpg", b"\xff" * (SMALL_LIMIT + 1)), 413, "too_large")
        assert "0.1 MB" in detail
        # At the limit it is read, and judged as an image.
        assert_error(post(http, "junk.jpg", b"\xff" * SMALL_LIMIT), 422, "invalid_image")


def test_chunked_body_over_the_limit_gets_413(small_server: str) -> None:
    def body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'
        for _ in range(14):  # 14 x 16 kB = 229 kB: over the limit, within what is drained
            yield b"\0" * 16384
        yield b"\r\n--b--\r\n"

    with httpx.Client(base_url=small_server, timeout=30) as http:
        response = http.post("/api/segment", content=body(),
                             headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "too_large")


def raw_request(url: str, head: bytes) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.sendall(head)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_huge_declared_body_is_refused_without_reading_it(small_server: str) -> None:
    head = (b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
    # Not one byte of the body is sent: the answer can only come from the headers.
    with raw_request(small_server, head) as sock:
        response = read_until_closed(sock)
    status, _, body = response.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["code"] == "too_large"


def test_endless_chunked_body_is_cut_off(small_server: str) -> None:
    head = (b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="endless.jpg"\r\n\r\n'
    chunk = b"10000\r\n" + b"\0" * 0x10000 + b"\r\n"
    sent, cap = 0, 40_000_000
    answer = b""
    with raw_request(small_server, head + f"{len(part):x}\r\n".encode() + part + b"\r\n") as sock:
        try:
            while sent < cap and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += len(chunk)
            answer = read_until_closed(sock)
        except OSError:  # the server closed the connection while we were still sending: also a refusal
            pass
    assert sent < cap, "the server kept reading an endless body"
    assert not answer or answer.startswith(b"HTTP/1.1 413")
    with httpx.Client(base_url=small_server, timeout=30) as http:
        assert http.get("/api/health").json()["in_flight"] == 0


def test_twenty_concurrent_requests_are_all_answered(server: str, app_segmenter) -> None:
    paths = [IMAGES[i % 10] for i in range(20)]
    expected = {path: int(app_segmenter.predict(read_image(path)).sum()) for path in set(paths)}
    start = threading.Barrier(len(paths))

    def one(path: Path) -> httpx.Response:
        with httpx.Client(base_url=server, timeout=120) as http:  # one connection each
            start.wait(timeout=30)
            return post(http, path.name, path.read_bytes())

    with ThreadPoolExecutor(len(paths)) as pool:
        responses = list(pool.map(one, paths))
    for path, response in zip(paths, responses, strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == path.stem and body["measurements"]["area_px"] == expected[path]
        assert int(decode_mask(body["mask_png_base64"]).sum()) == expected[path]
    with httpx.Client(base_url=server) as http:
        assert http.get("/api/health").json()["in_flight"] == 0


def test_full_queue_answers_503_with_retry_after(app_segmenter) -> None:
    predictor = GatedPredictor(app_segmenter.config)
    jpeg = IMAGES[0].read_bytes()
    with serve_in_thread(create_app(predictor, workers=1, queue_size=2)) as url, \
            httpx.Client(base_url=url, timeout=60) as http, ThreadPoolExecutor(2) as pool:
        admitted = [pool.submit(post, http, "a.jpg", jpeg) for _ in range(2)]
        deadline = time.monotonic() + 20
        while http.get("/api/health").json()["in_flight"] < 2:
            assert time.monotonic() < deadline, "the two requests were never admitted"
            time.sleep(0.02)
        refused = post(http, "c.jpg", jpeg)
        assert_error(refused, 503, "busy")
        assert int(refused.headers["retry-after"]) >= 1
        predictor.gate.set()
        for future in admitted:
            body = future.result(timeout=30).json()
            # An empty mask: zero area, the shape measures that need a lesion are null, and it is flagged.
            assert body["measurements"]["area_px"] == 0 and body["measurements"]["asymmetry"] is None
            assert body["confidence"] == {"score": 0.0, "method": app_segmenter.config.inference.confidence,
                                          "threshold": app_segmenter.config.inference.confidence_threshold,
                                          "flagged": True, "reason": "no lesion found"}
        assert post(http, "d.jpg", jpeg).status_code == 200


class FailingPredictor(Predictor):
    def predict_proba_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        raise RuntimeError("out of memory, say")


def test_inference_failure_is_a_json_500_and_the_server_goes_on(app_segmenter) -> None:
    with serve_in_thread(create_app(FailingPredictor(app_segmenter.config))) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        assert_error(post(http, "a.jpg", IMAGES[0].read_bytes()), 500, "internal_error")
        health = http.get("/api/health").json()
        assert health["status"] == "ok" and health["in_flight"] == 0


def test_cli_serve_without_a_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import skinnet.weights
    from skinnet.cli import main

    monkeypatch.setattr(skinnet.weights, "default_model_path", lambda: None)
    assert main(["serve"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["serve", "--model", "any.safetensors", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_cli_serve_int8_on_the_torch_backend_is_a_clear_error(app_model: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from skinnet.cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["serve", "--model", str(app_model), "--port", str(port), "--int8", "--backend", "torch"]) == 2
    assert capsys.readouterr().err == ("skinnet serve: error: int8 runs on ONNX Runtime: use the onnx backend "
                                       "(--backend onnx)\n")


def test_the_answers_say_which_backend_and_precision_ran(app_model: Path, app_segmenter, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from skinnet.inference.segmenter import Segmenter

    monkeypatch.setenv("SKINNET_CACHE", str(tmp_path / "cache"))
    int8 = Segmenter.from_file(app_model, device="cpu", precision="int8")  # what serve --int8 loads
    for segmenter, runtime in ((int8, "onnx int8"), (app_segmenter, "torch float32")):
        with serve_in_thread(create_app(segmenter)) as url, httpx.Client(base_url=url, timeout=60) as http:
            assert http.get("/api/health").json()["model"]["runtime"] == runtime
            assert post(http, "lesion.jpg", IMAGES[0].read_bytes()).json()["model"]["runtime"] == runtime


def test_cli_serve_starts_a_server(app_model: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("w+")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "skinnet", "serve", "--model", str(app_model), "--port", str(port),
               "--max-upload-mb", "1.5"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"skinnet serve exited: {Path(log.name).read_text()}"
            assert time.monotonic() < deadline, "skinnet serve did not come up in 90 s"
            try:
                health = httpx.get(url + "/api/health", timeout=5).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health["max_upload_bytes"] == 1_500_000
        with httpx.Client(base_url=url, timeout=60) as http:
            assert post(http, IMAGES[0].name, IMAGES[0].read_bytes()).status_code == 200
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    assert "http://127.0.0.1" in Path(log.name).read_text()


def _status_bytes(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))


def test_a_dicom_deflate_bomb_keeps_the_server_under_its_memory_bound(app_model: Path, tmp_path: Path,
                                                                       make_dicom) -> None:
    """A 2 MB deflated DICOM whose private element inflates to 2 GiB, uploaded to a real ``skinnet serve``:
    refused while inflating, the server process's peak resident memory (its kernel counter) barely moves."""
    from dicom_factory import deflated

    small = make_dicom(tmp_path / "small.dcm", read_image(IMAGES[0]))
    bomb = deflated(small, tmp_path / "bomb.dcm", zeros=2 << 30).read_bytes()
    assert len(bomb) < 3_000_000  # well under the default upload limit of 20 MB
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("w+")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "skinnet", "serve", "--model", str(app_model), "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"skinnet serve exited: {Path(log.name).read_text()}"
            assert time.monotonic() < deadline, "skinnet serve did not come up in 90 s"
            try:
                httpx.get(url + "/api/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=120) as http:
            # A good DICOM first: the decoders are loaded and the model has run once.
            assert post(http, "small.dcm", small.read_bytes()).status_code == 200
            try:
                with open(f"/proc/{process.pid}/clear_refs", "w") as handle:  # restart the peak counter
                    handle.write("5")
            except OSError:
                pytest.skip("cannot reset the server's peak-memory counter (/proc/PID/clear_refs)")
            before = _status_bytes(process.pid, "VmRSS:")
            detail = assert_error(post(http, "bomb.dcm", bomb), 422, "invalid_image")
            peak = _status_bytes(process.pid, "VmHWM:") - before
            assert "refused as a possible decompression bomb" in detail and detail.startswith("bomb.dcm: ")
            assert peak < 64 * 2**20, f"the server's peak grew by {peak / 2**20:.0f} MiB"  # pydicom alone: 2+ GB
            assert http.get("/api/health").json()["status"] == "ok"
            assert post(http, "small.dcm", small.read_bytes()).status_code == 200
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
