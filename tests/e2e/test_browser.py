"""The browser app end to end: headless Chromium (Selenium) against a real server on 127.0.0.1.

Skips, saying what is missing, where selenium, chromium or chromedriver is absent (.ci/browser-deps.sh and
requirements-dev.txt install them).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from skinnet.app.browser import (
    BrowserUnavailable,
    canvas_png,
    chromium,
    displayed_measurements,
    download_bytes,
    drop,
    find_browser,
    upload,
)

IMAGES = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images"
IMAGE = IMAGES / "ISIC_0000025.jpg"


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

    from skinnet.app.background import serve_in_thread
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


def set_controls(driver: Any, mask: bool, outline: bool, opacity: int = 35) -> np.ndarray:
    """Set the toggles by clicking them, the slider by script; return the canvas pixels."""
    for element, wanted in (("show-mask", mask), ("show-outline", outline)):
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
    assert shown["area_px"] == f"{m['area_px']} px²"
    assert number(shown["area_percent"]) == round(m["area_percent"], 2)
    for key in ("perimeter_px", "equivalent_diameter_px", "major_axis_px", "minor_axis_px", "orientation_deg"):
        assert number(shown[key]) == pytest.approx(m[key], abs=0.051), key
    for key in ("asymmetry", "compactness"):
        assert number(shown[key]) == pytest.approx(m[key], abs=0.00051), key
    assert shown["components"] == str(m["components"])

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
