"""Regenerate docs/web_app.png: the web app in headless Chromium after segmenting a sample image.

Needs Chromium, chromedriver and selenium (``bash .ci/browser-deps.sh``; ``pip install -r requirements-dev.txt``);
uses the shipped model unless ``--model`` names another. The bundled JPEGs carry no scale, so the pixel spacing
field is filled with an illustrative ``--pixel-spacing`` (0.08 mm: a 256-pixel image 20 mm across, a common
dermatoscope field of view) to show lengths in millimetres::

    python docs/make_screenshot.py [--model M] [--pixel-spacing 0.08]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app_thread import serve_in_thread

from skinnet.app.server import create_app
from skinnet.inference.segmenter import Segmenter

DOCS = Path(__file__).resolve().parent
HARNESS = DOCS.parent / "tests"  # browser_harness.py: the Selenium driver the browser test uses too
# Held out from the demo's training fold, so the picture shows a prediction, not a memorised mask.
WIDTH = 1200
DEFAULT_IMAGE = DOCS.parent / "skinnet" / "sample_data" / "images" / "ISIC_0010607.jpg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE), help="image to segment")
    parser.add_argument("--out", default=str(DOCS / "web_app.png"), help="screenshot file")
    parser.add_argument("--pixel-spacing", default="0.08", help="mm per pixel typed into the page ('' for none)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HARNESS))
    from browser_harness import chromium, upload

    app = create_app(Segmenter.from_file(args.model, device="cpu"))
    with serve_in_thread(app) as url, chromium(width=WIDTH, height=800) as driver:
        driver.get(url + "/")
        if args.pixel_spacing:
            driver.find_element("id", "pixel-spacing").send_keys(args.pixel_spacing)
        if upload(driver, args.image) != "ready":
            print(driver.find_element("id", "status").text, file=sys.stderr)
            return 1
        # The whole page, not just the first screenful.
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
        driver.save_screenshot(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
