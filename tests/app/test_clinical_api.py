"""The API's clinical fields on a real server: DICOM uploads, millimetres, confidence, uncertainty, model."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from app_thread import serve_in_thread
from PIL import Image

from skinnet.app.server import create_app
from skinnet.clinical.measurements import measure
from skinnet.data.dicom import read_dicom
from skinnet.data.io import read_image

REPO = Path(__file__).resolve().parents[2]
IMAGES = sorted((REPO / "skinnet" / "sample_data" / "images").glob("*.jpg"))
LENGTHS = ("perimeter", "equivalent_diameter", "max_diameter", "major_axis", "minor_axis")


@pytest.fixture(scope="module")
def client(app_segmenter) -> Iterator[httpx.Client]:
    with serve_in_thread(create_app(app_segmenter)) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


def post(http: httpx.Client, name: str, data: bytes, form: dict | None = None, **params: str) -> httpx.Response:
    return http.post("/api/segment", params=params, data=form or {},
                     files={"file": (name, data, "application/octet-stream")})


def png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_dicom_upload_is_measured_in_millimetres(client: httpx.Client, make_dicom: Callable, tmp_path: Path,
                                                 app_segmenter) -> None:
    rgb = read_image(IMAGES[2])
    path = make_dicom(tmp_path / "case.dcm", rgb, syntax="jpeg", spacing=(0.015, 0.015))
    body = post(client, "case.dcm", path.read_bytes()).json()
    assert body["source_format"] == "dicom" and body["spacing_source"] == "PixelSpacing"
    # The browser cannot show DICOM: the decoded pixels come back as a PNG, the very image that was segmented.
    decoded = read_dicom(path).pixels
    np.testing.assert_array_equal(png(body["display_png_base64"]), decoded)
    mask = png(body["mask_png_base64"]) == 255
    np.testing.assert_array_equal(mask, app_segmenter.predict(decoded))
    shown = body["measurements"]
    assert shown["pixel_spacing_mm"] == [0.015, 0.015]
    assert shown["area_mm2"] == pytest.approx(mask.sum() * 0.015**2)
    for key in LENGTHS:
        assert shown[f"{key}_mm"] == pytest.approx(shown[f"{key}_px"] * 0.015), key
    assert shown["max_diameter_px"] == pytest.approx(measure(mask).max_diameter_px)


def test_spacing_field_for_images_without_one(client: httpx.Client, make_dicom: Callable, tmp_path: Path) -> None:
    jpeg = IMAGES[3].read_bytes()
    plain = post(client, IMAGES[3].name, jpeg).json()
    given = post(client, IMAGES[3].name, jpeg, {"pixel_spacing_mm": "0.05"}).json()
    assert given["spacing_source"] == "user" and given["measurements"]["pixel_spacing_mm"] == [0.05, 0.05]
    assert given["measurements"]["max_diameter_mm"] == pytest.approx(plain["measurements"]["max_diameter_px"]
                                                                     * 0.05)
    # A DICOM file's own spacing wins over the field.
    path = make_dicom(tmp_path / "case.dcm", read_image(IMAGES[3]), spacing=(0.02, 0.02))
    own = post(client, "case.dcm", path.read_bytes(), {"pixel_spacing_mm": "0.05"}).json()
    assert own["spacing_source"] == "PixelSpacing" and own["measurements"]["pixel_spacing_mm"] == [0.02, 0.02]
    for bad in ("0", "-1", "abc", "1000"):
        response = post(client, IMAGES[3].name, jpeg, {"pixel_spacing_mm": bad})
        assert response.status_code == 400 and "pixel_spacing_mm" in response.json()["detail"], bad


def test_uncertainty_map_on_request(client: httpx.Client) -> None:
    without = post(client, IMAGES[0].name, IMAGES[0].read_bytes()).json()
    assert without["uncertainty_png_base64"] is None
    body = post(client, IMAGES[0].name, IMAGES[0].read_bytes(), uncertainty="true").json()
    uncertainty = png(body["uncertainty_png_base64"])
    assert uncertainty.dtype == np.uint8 and uncertainty.shape == (body["image"]["height"], body["image"]["width"])
    assert uncertainty.max() > uncertainty.min()  # a map, not a constant


def test_png_format_carries_the_confidence(client: httpx.Client) -> None:
    body = post(client, IMAGES[1].name, IMAGES[1].read_bytes()).json()
    response = post(client, IMAGES[1].name, IMAGES[1].read_bytes(), format="png")
    assert float(response.headers["x-confidence"]) == pytest.approx(body["confidence"]["score"], abs=1e-4)
    assert response.headers["x-flagged"] == str(body["confidence"]["flagged"]).lower()


def test_bad_dicom_files_get_422_with_one_line(client: httpx.Client, make_dicom: Callable, tmp_path: Path) -> None:
    rgb = read_image(IMAGES[0])
    whole = make_dicom(tmp_path / "whole.dcm", rgb).read_bytes()
    cases = {"multi.dcm": (make_dicom(tmp_path / "m.dcm", rgb, frames=2).read_bytes(), "multi-frame"),
             "mono.dcm": (make_dicom(tmp_path / "g.dcm", rgb, monochrome=True).read_bytes(), "MONOCHROME2"),
             "cut.dcm": (whole[: len(whole) // 2], "truncated")}
    for name, (data, word) in cases.items():
        response = post(client, name, data)
        assert response.status_code == 422 and response.json()["code"] == "invalid_image"
        detail = response.json()["detail"]
        assert detail.startswith(f"{name}: ") and word in detail and "\n" not in detail, detail
    assert post(client, "whole.dcm", whole).status_code == 200


def test_health_names_the_model_and_the_confidence_rule(client: httpx.Client, app_model: Path) -> None:
    model = client.get("/api/health").json()["model"]
    assert model["file"] == app_model.name
    assert model["sha256"] == hashlib.sha256(app_model.read_bytes()).hexdigest()
    assert model["version"] == model["sha256"][:16]
    assert model["confidence"] in ("tta", "margin") and 0 <= model["confidence_threshold"] <= 1
    spec = client.get("/openapi.json").json()
    fields = spec["components"]["schemas"]["LesionMeasurements"]["properties"]
    assert "Feret" in fields["max_diameter_px"]["description"]
    assert "CIELAB" in fields["colour_variegation_delta_e"]["description"]
    assert all(field.get("description") for field in fields.values())


def test_dicom_ids_are_not_echoed(client: httpx.Client, make_dicom: Callable, tmp_path: Path) -> None:
    """The answer identifies the upload by its file name only: no patient data leaves in the JSON."""
    from dicom_factory import PATIENT_ID

    path = make_dicom(tmp_path / "case.dcm", read_image(IMAGES[0]))
    assert PATIENT_ID not in post(client, "case.dcm", path.read_bytes()).text
