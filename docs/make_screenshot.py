"""Regenerate docs/web_app.png: the web app in headless Chromium after segmenting a sample image.

Needs Chromium, chromedriver and selenium (``bash .ci/browser-deps.sh``; ``pip install -r requirements-dev.txt``)
and a model worth showing, e.g. the demo's::

    skinnet demo --out /tmp/demo_app --epochs 25
    python docs/make_screenshot.py --model /tmp/demo_app/run/fold_0/best.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skinnet.app.background import serve_in_thread
from skinnet.app.browser import chromium, upload
from skinnet.app.server import create_app
from skinnet.inference.segmenter import Segmenter

DOCS = Path(__file__).resolve().parent
# Held out from the demo's training fold, so the picture shows a prediction, not a memorised mask.
WIDTH = 1200
DEFAULT_IMAGE = DOCS.parent / "skinnet" / "sample_data" / "images" / "ISIC_0010607.jpg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE), help="image to segment")
    parser.add_argument("--out", default=str(DOCS / "web_app.png"), help="screenshot file")
    args = parser.parse_args(argv)
    app = create_app(Segmenter.from_file(args.model, device="cpu"))
    with serve_in_thread(app) as url, chromium(width=WIDTH, height=800) as driver:
        driver.get(url + "/")
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
