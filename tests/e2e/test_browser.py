"""The browser app end to end: headless Chromium (Selenium) against a real server on 127.0.0.1.

Skips, saying what is missing, where selenium, chromium or chromedriver is absent (.ci/browser-deps.sh and
requirements-dev.txt install them).
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from browser_harness import (
    BrowserUnavailable,
    canvas_png,
    chromium,
    displayed_confidence,
    displayed_measurements,
    download_bytes,
    drop,
    find_browser,
    upload,
    wait_for_result,
)
from PIL import Image
from scipy import ndimage

IMAGES = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images"
IMAGE = IMAGES / "ISIC_0000025.jpg"
LENGTHS = ("max_diameter", "perimeter", "equivalent_diameter", "major_axis", "minor_axis")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        find_browser()
    except BrowserUnavailable as err:
        pytest.skip(f"no headless browser: {err}")
    with chromium(width=1200, height=900) as driver:
        driver.set_script_timeout(30)
        yield driver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real model file (random SkinNet, width 4, 64 px) served on loopback.

    Random weights give nearly constant probabilities; the saved threshold is their median on the test
    image, so its mask covers part of it and the overlay can be checked pixel by pixel.
    """
    import torch
    from app_thread import serve_in_thread

    from skinnet.app.server import create_app
    from skinnet.config import load_config
    from skinnet.data.io import read_image
    from skinnet.inference.segmenter import Segmenter
    from skinnet.networks import build_model
    from skinnet.networks.files import save_weights

    torch.manual_seed(0)
    config = load_config(None, ["model.width=4", "data.image_size=64"])
    model = build_model(config.model).eval()
    probability = Segmenter(model, config, torch.device("cpu")).predict_proba(read_image(IMAGE))
    config.inference.threshold = float(np.median(probability))
    path = tmp_path_factory.mktemp("browser_model") / "random.safetensors"
    save_weights(path, model, config)
    with serve_in_thread(create_app(Segmenter.from_file(path, device="cpu"))) as url:
        yield url


def open_page(driver: Any, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    # The footer is filled from /api/health: the page's script runs and reaches the API.
    WebDriverWait(driver, 30).until(lambda d: d.find_element("id", "model").text.startswith("Model:"))


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def set_controls(driver: Any, mask: bool, outline: bool, opacity: int = 35,
                 uncertainty: bool = False) -> np.ndarray:
    """Set the toggles by clicking them, the slider by script; return the canvas pixels."""
    for element, wanted in (("show-mask", mask), ("show-outline", outline), ("show-uncertainty", uncertainty)):
        box = driver.find_element("id", element)
        if box.is_selected() != wanted:
            box.click()
    driver.execute_script("const s = document.getElementById('opacity'); s.value = arguments[0];"
                          "s.dispatchEvent(new Event('input'));", opacity)
    return pixels(canvas_png(driver))


def number(text: str) -> float:
    return float(text.split()[0].rstrip("°%"))


def test_upload_shows_the_outline_the_measurements_and_the_download(browser: Any, server: str,
                                                                     tmp_path: Path) -> None:
    open_page(browser, server)
    assert upload(browser, IMAGE) == "ready"
    with httpx.Client(base_url=server, timeout=60) as http:
        expected = http.post("/api/segment", files={"file": (IMAGE.name, IMAGE.read_bytes())}).json()
    mask_png = base64.b64decode(expected["mask_png_base64"])
    mask = np.asarray(Image.open(io.BytesIO(mask_png))) == 255
    assert 0.05 < mask.mean() < 0.95, "the test model should give a partial mask"

    # The numbers shown are the API's, rounded for reading.
    shown = displayed_measurements(browser)
    m = expected["measurements"]
    assert shown["image_size"] == "256 × 256 px"
    # A JPEG has no scale: lengths are shown in pixels, and say so.
    assert shown["area"] == f"{m['area_px']} px²"
    assert number(shown["area_percent"]) == round(m["area_percent"], 2)
    for key in LENGTHS:
        assert shown[key].endswith(" px") and number(shown[key]) == pytest.approx(m[f"{key}_px"], abs=0.051), key
    assert number(shown["orientation_deg"]) == pytest.approx(m["orientation_deg"], abs=0.051)
    for key in ("asymmetry", "compactness", "solidity"):
        assert number(shown[key]) == pytest.approx(m[key], abs=0.00051), key
    assert number(shown["colour_variegation_delta_e"]) == pytest.approx(m["colour_variegation_delta_e"], abs=0.051)
    assert shown["components"] == str(m["components"])
    assert "pixels" in browser.find_element("id", "units").text

    # The overlay lies exactly on the mask: nothing outside it changes, every lesion pixel is tinted, and
    # the outline alone is the mask's 1-pixel inner boundary (at 256 px the band is 1 pixel wide).
    plain = set_controls(browser, mask=False, outline=False)
    tinted = np.any(set_controls(browser, mask=True, outline=True) != plain, axis=-1)
    assert not tinted[~mask].any()
    assert tinted[mask].mean() > 0.99
    outlined = np.any(set_controls(browser, mask=False, outline=True) != plain, axis=-1)
    boundary = mask & ~ndimage.binary_erosion(mask, border_value=0)
    assert (outlined == boundary).mean() > 0.999
    np.testing.assert_array_equal(set_controls(browser, mask=True, outline=False, opacity=0), plain)

    # The download is the mask PNG under its ISIC name.
    assert browser.find_element("id", "download").get_attribute("download") == "ISIC_0000025_segmentation.png"
    assert download_bytes(browser) == mask_png

    # Everything the page loaded came from this server.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert all(name.startswith((server, "blob:", "data:")) for name in loaded), loaded

    set_controls(browser, mask=True, outline=True)
    shot = tmp_path / "web_app.png"
    assert browser.save_screenshot(str(shot))
    assert Image.open(shot).size[0] >= 1000


def test_drop_then_a_bad_file_shows_a_clear_error(browser: Any, server: str, tmp_path: Path) -> None:
    open_page(browser, server)
    other = IMAGES / "ISIC_0000321.jpg"
    assert drop(browser, other) == "ready"
    assert "ISIC_0000321" in browser.find_element("id", "image-name").text
    assert displayed_measurements(browser)["image_size"] == "256 × 256 px"

    bad = tmp_path / "scan.jpg"
    bad.write_bytes(b"this is a text file, not a photograph")
    assert upload(browser, bad) == "error"
    status = browser.find_element("id", "status").text
    assert status.startswith("Could not segment scan.jpg: scan.jpg: ")
    # Nothing of the previous image is left beside the error.
    assert not browser.find_element("id", "viewer").is_displayed()
    assert set(displayed_measurements(browser).values()) == {"–"}
    assert displayed_confidence(browser)["text"] == ""


def api_result(server: str, path: Path, spacing: str | None = None) -> dict:
    with httpx.Client(base_url=server, timeout=60) as http:
        data = {"pixel_spacing_mm": spacing} if spacing else {}
        return http.post("/api/segment", params={"uncertainty": "true"}, data=data,
                         files={"file": (path.name, path.read_bytes())}).json()


def test_dicom_in_mm_with_confidence_uncertainty_and_report(browser: Any, server: str, tmp_path: Path,
                                                            make_dicom: Any) -> None:
    from skinnet.data.dicom import read_dicom
    from skinnet.data.io import read_image

    path = make_dicom(tmp_path / "ISIC_0000025.dcm", read_image(IMAGE), syntax="jpeg", spacing=(0.02, 0.02))
    open_page(browser, server)
    assert upload(browser, path) == "ready"
    expected = api_result(server, path)
    m = expected["measurements"]

    # Millimetres, from the DICOM file's own spacing; the maximum diameter first.
    shown = displayed_measurements(browser)
    assert shown["max_diameter"] == f"{m['max_diameter_mm']:.2f} mm"
    assert shown["area"] == f"{m['area_mm2']:.2f} mm²"
    for key in LENGTHS:
        assert shown[key].endswith(" mm") and number(shown[key]) == pytest.approx(m[f"{key}_mm"], abs=0.0051), key
    assert "0.02 mm" in browser.find_element("id", "units").text
    assert "PixelSpacing" in browser.find_element("id", "units").text

    # The badge says what the API says.
    badge = displayed_confidence(browser)
    confidence = expected["confidence"]
    assert badge["flagged"] == str(confidence["flagged"]).lower()
    assert badge["class"] == ("flagged" if confidence["flagged"] else "ok")
    assert f"{confidence['score']:.2f}" in badge["text"]
    assert ("Check this outline" in badge["text"]) == confidence["flagged"]

    # The browser cannot decode DICOM: the photo shown is the server's decoding of it, pixel for pixel.
    plain = set_controls(browser, mask=False, outline=False)
    np.testing.assert_array_equal(plain, read_dicom(path).pixels)

    # The uncertainty overlay tints exactly the pixels the map calls uncertain.
    uncertainty = np.asarray(Image.open(io.BytesIO(base64.b64decode(expected["uncertainty_png_base64"]))))
    tinted = np.any(set_controls(browser, mask=False, outline=False, uncertainty=True) != plain, axis=-1)
    assert not tinted[uncertainty == 0].any()
    assert tinted[uncertainty >= 8].all()
    assert 0 < tinted.mean() < 1

    # The report: the outlined image, the measurements and the badge as shown, and the model's SHA-256.
    outlined = set_controls(browser, mask=False, outline=True)
    assert browser.find_element("id", "report").get_attribute("download") == "ISIC_0000025_report.html"
    report = download_bytes(browser, "report").decode("utf-8")
    assert expected["model"]["sha256"] in report and expected["model"]["version"] in report
    assert f"run as {expected['model']['runtime']};" in report  # e.g. "run as onnx int8;"
    image = re.search(r'id="outlined"[^>]* src="data:image/png;base64,([^"]+)"', report)
    np.testing.assert_array_equal(pixels(base64.b64decode(image.group(1))), outlined)
    for key, text in shown.items():
        assert f'data-key="{key}">{text.replace("<", "&lt;")}</td>' in report, key
    assert f'data-flagged="{str(confidence["flagged"]).lower()}"' in report
    assert f"{confidence['score']:.2f}" in report


def test_spacing_field_turns_pixels_into_mm(browser: Any, server: str) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, server)
    assert upload(browser, IMAGE) == "ready"
    px = api_result(server, IMAGE)["measurements"]
    assert displayed_measurements(browser)["max_diameter"] == f"{px['max_diameter_px']:.1f} px"
    browser.execute_script("document.body.dataset.state = 'sent'")
    field = browser.find_element(By.ID, "pixel-spacing")
    field.send_keys("0.05")
    field.send_keys("\t")  # leaving the field commits it: the image is sent again with the spacing
    assert wait_for_result(browser) == "ready"
    shown = displayed_measurements(browser)
    assert shown["max_diameter"] == f"{px['max_diameter_px'] * 0.05:.2f} mm"
    assert shown["area"] == f"{px['area_px'] * 0.05**2:.2f} mm²"
    assert "entered above" in browser.find_element("id", "units").text
