"""The web app and JSON API: one model loaded once, inference in a thread pool behind a bounded queue.

Routes: ``GET /`` (the browser app), ``POST /api/segment``, ``GET /api/health``, ``GET /docs`` (OpenAPI,
served without a CDN when ``fastapi-offline`` is installed) and ``GET /openapi.json``.

Errors are JSON ``{"detail": "<what is wrong>", "code": "<machine-readable>"}``. There is no authentication:
the server binds to loopback by default; put it behind an authenticating proxy before exposing it.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import logging
import math
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from skinnet.app.drain import DrainRate
from skinnet.app.headers import HostAndSecurityHeaders, allowed_hosts
from skinnet.app.limits import BodyTooLarge, UploadLimit
from skinnet.app.schemas import (
    ConfidenceResult,
    ErrorBody,
    Health,
    ImageSize,
    LesionMeasurements,
    ModelIdentity,
    SegmentResult,
)
from skinnet.app.segment import ApiError, ClientGone, Segmentation, image_id, segment_upload
from skinnet.app.timeouts import BodyDeadline, BodyTimeout, HeaderDeadlineProtocol, timeout_response
from skinnet.clinical.findings import ModelInfo
from skinnet.config import ConfigError
from skinnet.data.checks import MAX_PIXELS
from skinnet.data.formats import ACCEPTED
from skinnet.data.io import declared_size
from skinnet.data.layout import mask_file_name
from skinnet.data.spacing import MAX_SPACING_MM, MIN_SPACING_MM
from skinnet.inference.predictor import Predictor
from skinnet.version import __version__

log = logging.getLogger(__name__)
DEFAULT_MAX_UPLOAD_BYTES = 20_000_000
DEFAULT_WORKERS = 1
DEFAULT_QUEUE_SIZE = 32
# Pixels admitted at once, by the images' headers: two of the largest allowed images, or a full queue of
# 6-megapixel photographs. Decoding costs memory and time by pixels, not by file size (a 97 kB PNG can
# declare 100 megapixels).
DEFAULT_QUEUE_PIXELS = 2 * MAX_PIXELS
# Room for the multipart envelope (boundaries, part headers) around the file itself.
MULTIPART_SLACK_BYTES = 64 * 1024
INDEX_HTML = Path(__file__).parent / "static" / "index.html"
# The page is self-contained: the browser may load nothing but this server's API and in-page images.
PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src 'self' blob: data:; connect-src 'self' blob:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:g} MB"


def create_app(predictor: Predictor, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               workers: int = DEFAULT_WORKERS, queue_size: int = DEFAULT_QUEUE_SIZE,
               hosts: Iterable[str] | None = None, queue_pixels: int = DEFAULT_QUEUE_PIXELS) -> FastAPI:
    """The FastAPI app serving ``predictor``.

    Args:
        predictor: the loaded model, a :class:`~skinnet.inference.predictor.Predictor` (shared by all
            requests; called from ``workers`` threads).
        max_upload_bytes: largest accepted image file; larger uploads get 413 before the body is read
            past this limit (plus a small multipart allowance).
        workers: threads running inference side by side.
        queue_size: requests admitted at once, running or waiting for a worker; beyond it the answer is
            503 with ``Retry-After`` (seconds) instead of an unbounded backlog.
        hosts: ``Host`` names answered (:func:`skinnet.app.headers.allowed_hosts`); default: loopback names.
        queue_pixels: pixels admitted at once, as the images' headers declare them; an image that would pass
            it is answered 503 like a full queue (one image alone is always admitted, up to the per-file
            limits of :func:`skinnet.data.checks.check_size`).
    """
    if max_upload_bytes < 1 or workers < 1 or queue_size < workers:
        raise ValueError("need max_upload_bytes >= 1, workers >= 1 and queue_size >= workers")
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="skinnet-infer")
    model = ModelInfo.of(predictor)
    state = {"in_flight": 0, "pixels": 0}
    drain = DrainRate(workers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    try:  # the same OpenAPI docs, with Swagger UI served from the package instead of a CDN
        from fastapi_offline import FastAPIOffline as make_app
    except ImportError:
        make_app = FastAPI
    app = make_app(title="SkinNet", version=__version__, lifespan=lifespan, redoc_url=None,
                   description=f"Skin lesion segmentation: upload a dermoscopy image ({ACCEPTED}; DICOM: "
                               "single-frame colour), get the lesion mask, its measurements (in mm where "
                               "the pixel spacing is known) and a confidence flag. Errors are JSON "
                               "{detail, code}.")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"detail": err.detail, "code": err.code}, err.status, headers=err.headers)

    too_large = f"upload larger than the limit of {_megabytes(max_upload_bytes)}"
    app.add_middleware(UploadLimit, limit=max_upload_bytes + MULTIPART_SLACK_BYTES, detail=too_large,
                       drain_limit=2 * max_upload_bytes + MULTIPART_SLACK_BYTES)
    app.add_middleware(BodyDeadline)
    # Outermost, so that every answer (413, 408, a refused Host) carries the security headers.
    app.add_middleware(HostAndSecurityHeaders, hosts=allowed_hosts("127.0.0.1") if hosts is None else hosts)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, err: HTTPException) -> JSONResponse:
        if isinstance(err, BodyTooLarge):
            return JSONResponse({"detail": too_large, "code": "too_large"}, 413, headers={"Connection": "close"})
        if isinstance(err, BodyTimeout):
            return timeout_response()
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "error")
        return JSONResponse({"detail": str(err.detail), "code": code}, err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, err: Exception) -> JSONResponse:
        # uvicorn logs the traceback; the client gets JSON like every other error, and the server goes on.
        return JSONResponse({"detail": f"internal error ({type(err).__name__})", "code": "internal_error"}, 500)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(map(str, error.get('loc', ())))}: {error.get('msg')}" for error in err.errors()]
        detail = "; ".join(problems)
        if any(tuple(error.get("loc", ()))[:2] in (("body",), ("body", "file")) for error in err.errors()):
            detail += " (send the image as multipart/form-data in the field 'file')"
        return JSONResponse({"detail": detail, "code": "bad_request"}, 400)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(INDEX_HTML.read_text(encoding="utf-8"), headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/api/health", response_model=Health, summary="Is the server up, and with which model")
    async def health() -> Health:
        config = predictor.config
        return Health(status="ok", device=str(predictor.device), workers=workers,
                      model={"name": config.model.name, "width": config.model.width,
                             "depth": config.model.depth, "image_size": config.data.image_size,
                             "file": Path(model.file.split(";")[0]).name if model.file else "",
                             "sha256": model.sha256, "version": model.version, "runtime": model.runtime,
                             "confidence": config.inference.confidence,
                             "confidence_threshold": config.inference.confidence_threshold},
                      queue_size=queue_size, in_flight=state["in_flight"], max_upload_bytes=max_upload_bytes)

    errors = {status: {"model": ErrorBody, "description": text} for status, text in {
        400: "Not a multipart upload with a 'file' field, or a bad query parameter.",
        413: "The file is larger than the upload limit.",
        422: "The file is not a usable image: unknown format, truncated or corrupt, a decompression bomb, or a "
             "DICOM file that is multi-frame, monochrome or without pixel data.",
        503: "The queue is full; retry after the Retry-After header's seconds.",
    }.items()}
    png_response = {"content": {"image/png": {}},
                    "description": "JSON as below, or with ?format=png the mask PNG itself (Content-Disposition "
                                   "names it <id>_segmentation.png; X-Lesion-Area-Px gives the area, X-Confidence "
                                   "and X-Flagged the confidence)."}

    def busy(queued: int, why: str = "") -> ApiError:
        """503 with the time the ``queued`` admitted requests take to drain, at the measured rate."""
        retry = max(1, math.ceil(drain.seconds_to_drain(queued)))
        return ApiError(503, "busy", f"{queued} images are queued{why}; the queue drains in about {retry} s",
                        {"Retry-After": str(retry)})

    @app.post("/api/segment", response_model=SegmentResult, responses={200: png_response, **errors},
              summary="Segment the lesion in an uploaded image and measure it",
              description=f"Upload one image as multipart/form-data in the field `file` (at most "
                          f"{_megabytes(max_upload_bytes)}). The mask has the size of the image as displayed "
                          f"(EXIF orientation applied). Images are segmented {workers} at a time; up to "
                          f"{queue_size} requests are admitted at once (running or waiting), more are answered "
                          "503 with a Retry-After header in seconds.")
    async def segment(
        request: Request,
        file: Annotated[UploadFile, File(description=f"The image: {ACCEPTED} (DICOM: a single-frame colour "
                                                     "image)")],
        output: Annotated[Literal["json", "png"], Query(alias="format", description="json or png")] = "json",
        uncertainty: Annotated[bool, Query(description="Include the uncertainty map (uncertainty_png_base64)")]
        = False,
        pixel_spacing_mm: Annotated[float | None, Form(
            ge=MIN_SPACING_MM, le=MAX_SPACING_MM, description="mm per pixel, for images whose file gives no "
            "spacing (a DICOM file's own wins); lengths are then also in mm")] = None,
    ) -> SegmentResult | Response:
        if file.size is not None and file.size > max_upload_bytes:
            raise ApiError(413, "too_large", f"{file.filename}: {too_large}")
        if state["in_flight"] >= queue_size:
            raise busy(state["in_flight"])
        # No await between the check and the increment: the event loop cannot admit two at once.
        state["in_flight"] += 1
        pixels = 0
        try:
            # Read only once admitted, so that refused requests hold no image in memory.
            data = await file.read(max_upload_bytes + 1)
            if len(data) > max_upload_bytes:
                raise ApiError(413, "too_large", f"{file.filename}: {too_large}")
            width, height = declared_size(data) or (0, 0)
            if state["pixels"] and state["pixels"] + width * height > queue_pixels:
                taken = f"{state['pixels'] / 1e6:.3g} of the {queue_pixels / 1e6:.3g} megapixels admitted at once"
                raise busy(state["in_flight"] - 1, f" ({taken} are taken; this image has "
                                                   f"{width * height / 1e6:.3g})")
            pixels = width * height
            state["pixels"] += pixels
            gone = threading.Event()
            work = asyncio.get_running_loop().run_in_executor(
                executor, segment_upload, predictor, data, file.filename or "upload", model, pixel_spacing_mm,
                uncertainty, gone)
            result = await _unless_gone(work, request, gone)
            drain.done(result.seconds, state["in_flight"] - 1)
        except ClientGone:
            log.info("%s: the client went away; its image was not computed further", file.filename)
            return Response(status_code=499)  # never read: the connection is closed
        except ApiError:
            raise
        except Exception as err:
            # Answered here rather than by the catch-all handler, which would also drop the connection.
            log.exception("segmenting %s failed", file.filename)
            raise ApiError(500, "internal_error", f"segmentation failed ({type(err).__name__}); see the server "
                                                  "log") from err
        finally:
            state["in_flight"] -= 1
            state["pixels"] -= pixels
        key = image_id(file.filename)
        finding = result.finding
        if output == "png":
            return Response(result.png, media_type="image/png", headers={
                "Content-Disposition": f'attachment; filename="{mask_file_name(key)}"',
                "X-Lesion-Area-Px": str(finding.measurements.area_px),
                "X-Confidence": f"{finding.confidence.score:.4f}",
                "X-Flagged": str(finding.confidence.flagged).lower(),
            })
        return SegmentResult(id=key, mask_filename=mask_file_name(key),
                             image=ImageSize(width=finding.width, height=finding.height),
                             source_format=result.source_format, spacing_source=finding.spacing_source,
                             threshold=predictor.threshold, postprocess=list(predictor.postprocess),
                             measurements=LesionMeasurements(**finding.measurements.to_dict()),
                             confidence=ConfidenceResult(**finding.confidence.to_dict()),
                             model=ModelIdentity(file=Path(model.file.split(";")[0]).name if model.file else "",
                                                 sha256=model.sha256, version=model.version,
                                                 runtime=model.runtime),
                             mask_png_base64=_b64(result.png), uncertainty_png_base64=_b64(result.uncertainty_png),
                             display_png_base64=_b64(result.display_png), seconds=result.seconds)

    return app


async def _unless_gone(work: asyncio.Future, request: Request, gone: threading.Event,
                       poll_seconds: float = 0.2) -> Segmentation:
    """Await the worker's result, checking that the client is still there; if it left, stop the work.

    A job still waiting for a worker is cancelled; a running one sees ``gone`` at its next step.

    Raises:
        ClientGone: the client disconnected before the result was ready.
    """
    while True:
        done, _ = await asyncio.wait({work}, timeout=poll_seconds)
        if done:
            return work.result()
        if await request.is_disconnected():
            gone.set()
            work.cancel()
            raise ClientGone


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, made before anything says the server is there.

    Raises:
        OSError: the port is taken or the address is not this machine's; named ``host:port``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts need no wait
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as err:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        hint = "; is another server on this port?" if err.errno == errno.EADDRINUSE else ""
        raise OSError(err.errno, f"cannot listen here ({err.strerror}){hint}", where) from err
    return sock


def serve(model: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          backend: str = "auto", max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, workers: int = DEFAULT_WORKERS,
          queue_size: int = DEFAULT_QUEUE_SIZE, allow_hosts: Iterable[str] = (),
          precision: str | None = "auto") -> int:
    """Load the model once and serve the app with uvicorn until interrupted (``skinnet serve``).

    The port is bound first: a busy port is one error line, and the banner's URL is only printed once the
    server can be reached there.

    Args:
        model: model file; ``None`` takes the shipped model (:func:`skinnet.networks.files.model_path`).
        host: address to bind; the default answers only this machine.
        port: TCP port.
        device: ``auto``, ``cpu``, ``cuda``, ... (torch backend).
        backend: ``auto``, ``torch`` or ``onnx``.
        max_upload_bytes: largest accepted image file.
        workers: images segmented at the same time.
        queue_size: requests admitted at once before answering 503.
        allow_hosts: ``Host`` names answered besides the loopback names and ``host`` (``--allow-host``;
            ``*`` answers any).
        precision: ``auto``, ``float32`` or ``int8`` (the model's int8 copy through ONNX Runtime); with both
            auto the shipped model on a CPU serves its packaged int8 copy (see
            :func:`skinnet.inference.segmenter.choose_runtime`). Health, answers and reports name what ran.

    Raises:
        ConfigError: limits that make no sense.
        ModelFileError: no model given and none ships, or the file cannot be loaded.
        OSError: the address cannot be bound (e.g. the port is taken).
    """
    import uvicorn

    from skinnet.inference.segmenter import Segmenter, choose_runtime
    from skinnet.networks.files import model_path

    if max_upload_bytes < 1 or workers < 1 or queue_size < workers:
        raise ConfigError("need --max-upload-mb > 0, --workers >= 1 and --queue >= --workers")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: a TCP port is 1 to 65535")
    path = model_path(model)
    sock = bind(host, port)
    try:
        note = choose_runtime(path, backend, precision, device).note
        if note:
            print(f"note: {note}", file=sys.stderr)
        segmenter = Segmenter.from_file(path, device=device, backend=backend, precision=precision)
        app = create_app(segmenter, max_upload_bytes, workers, queue_size, allowed_hosts(host, allow_hosts))
        shown = f"[{host}]" if ":" in host else host
        print(f"SkinNet app: http://{shown}:{port}/  API docs: http://{shown}:{port}/docs  (model {path}, "
              f"{segmenter.runtime})", file=sys.stderr)
        config = uvicorn.Config(app, log_level="info", http=HeaderDeadlineProtocol)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0
