"""The queue on a real server: abandoned requests are not computed, Retry-After follows the measured drain
rate, and a busy port is one line with no banner."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from app_thread import serve_in_thread
from gated_predictor import GatedPredictor

from skinnet.app import drain as drain_module
from skinnet.app.drain import DrainRate
from skinnet.app.server import create_app
from skinnet.cli import main

IMAGE = sorted((Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images").glob("*.jpg"))[0]


def multipart(data: bytes) -> bytes:
    return (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"gone.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--b--\r\n")


def test_a_client_that_went_away_is_not_computed(app_segmenter) -> None:
    predictor = GatedPredictor(app_segmenter.config)
    with serve_in_thread(create_app(predictor, workers=1, queue_size=4)) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        first = threading.Thread(target=http.post, args=("/api/segment",),
                                 kwargs={"files": {"file": (IMAGE.name, IMAGE.read_bytes())}})
        first.start()
        assert predictor.started.wait(timeout=30)  # the only worker is busy with the first image
        body = multipart(IMAGE.read_bytes())
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
            sock.sendall(b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                         b"boundary=b\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            for _ in range(600):  # admitted: it waits for the worker
                if http.get("/api/health").json()["in_flight"] == 2:
                    break
                time.sleep(0.05)
        # The second client has hung up; the server notices before the worker is free.
        for _ in range(600):
            if http.get("/api/health").json()["in_flight"] == 1:
                break
            time.sleep(0.05)
        assert http.get("/api/health").json()["in_flight"] == 1
        predictor.gate.set()
        first.join(timeout=30)
        assert predictor.calls == 1, "the abandoned image was computed"


def test_drain_rate_is_measured_between_completions_of_a_busy_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([10.0, 10.4, 10.8, 11.2, 20.0, 20.2])
    monkeypatch.setattr(drain_module.time, "monotonic", lambda: next(clock))
    rate = DrainRate(workers=2)
    assert rate.seconds_to_drain(8) == 8 * drain_module.PRIOR_SECONDS / 2  # nothing measured yet
    rate.done(1.6, still_queued=5)  # t = 10.0
    assert rate.seconds_per_image() == pytest.approx(0.8)  # compute time shared by 2 workers, for now
    rate.done(1.6, still_queued=4)  # 10.4
    rate.done(1.6, still_queued=3)  # 10.8
    rate.done(1.6, still_queued=0)  # 11.2: three busy intervals of 0.4 s
    assert rate.seconds_per_image() == pytest.approx(0.4) and rate.seconds_to_drain(20) == pytest.approx(8.0)
    rate.done(1.6, still_queued=1)  # 20.0: the idle gap since 11.2 is not a drain interval
    rate.done(1.6, still_queued=0)  # 20.2
    assert rate.seconds_per_image() == pytest.approx(0.4)


def test_retry_after_follows_the_measured_rate(app_segmenter) -> None:
    predictor = GatedPredictor(app_segmenter.config)
    app = create_app(predictor, workers=1, queue_size=2)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        upload = {"files": {"file": (IMAGE.name, IMAGE.read_bytes())}}
        threads = [threading.Thread(target=http.post, args=("/api/segment",), kwargs=upload) for _ in range(2)]
        for thread in threads:
            thread.start()
        for _ in range(600):
            if http.get("/api/health").json()["in_flight"] == 2:
                break
            time.sleep(0.05)
        refused = http.post("/api/segment", files={"file": (IMAGE.name, IMAGE.read_bytes())})
        assert refused.status_code == 503 and refused.json()["code"] == "busy"
        # Nothing measured yet: 2 queued at the 1 s prior, and the detail says the same number.
        assert refused.headers["retry-after"] == "2" and "drains in about 2 s" in refused.json()["detail"]
        predictor.gate.set()
        for thread in threads:
            thread.join(timeout=30)


def test_a_busy_port_is_one_line_and_no_banner(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"skinnet serve: error: 127.0.0.1:{port}: cannot listen here (Address already in use)")
    assert len(err.splitlines()) == 1 and "http://" not in err


def test_admission_counts_the_pixels_the_headers_declare(app_segmenter) -> None:
    import io

    from PIL import Image

    predictor = GatedPredictor(app_segmenter.config)
    # Room for one 256x256 sample at a time by pixels, though the queue has 8 places.
    app = create_app(predictor, workers=1, queue_size=8, queue_pixels=100_000)
    big = io.BytesIO()
    Image.new("L", (1000, 1000)).save(big, "PNG")  # 1 megapixel in 1 kB: alone, it is still admitted
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        upload = {"files": {"file": (IMAGE.name, IMAGE.read_bytes())}}
        first = threading.Thread(target=http.post, args=("/api/segment",), kwargs=upload)
        first.start()
        assert predictor.started.wait(timeout=30)
        refused = http.post("/api/segment", files={"file": ("big.png", big.getvalue())})
        assert refused.status_code == 503
        assert refused.json()["detail"].startswith("1 images are queued (0.0655 of the 0.1 megapixels admitted at "
                                                   "once are taken; this image has 1); the queue drains in about ")
        assert int(refused.headers["retry-after"]) >= 1
        predictor.gate.set()
        first.join(timeout=30)
        assert http.post("/api/segment", files={"file": ("big.png", big.getvalue())}).status_code == 200
        assert http.get("/api/health").json()["in_flight"] == 0
