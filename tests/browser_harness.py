"""Drive the web app in headless Chromium with Selenium: the end-to-end test and docs/make_screenshot.py.

Uses the system's Chromium and chromedriver (Debian packages ``chromium`` and ``chromium-driver``, see
``.ci/browser-deps.sh``), or the paths in ``$CHROMIUM`` and ``$CHROMEDRIVER``; nothing is downloaded. It lives
with the tests, not in the package: an installed skinnet never drives a browser.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Headless, and quiet on the network: no sync, updates, QUIC or other background traffic.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


class BrowserUnavailable(RuntimeError):
    """Selenium, Chromium or chromedriver is missing; the message says which and how to install it."""


def find_browser() -> tuple[str, str]:
    """Paths of Chromium and chromedriver.

    Raises:
        BrowserUnavailable: selenium is not importable, or either program is not found.
    """
    try:
        import selenium  # noqa: F401
    except ImportError as err:
        raise BrowserUnavailable("selenium is not installed (pip install -r requirements-dev.txt)") from err
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver))
               if not path or not os.access(path, os.X_OK)]
    if missing:
        raise BrowserUnavailable(f"{' and '.join(missing)} not found; install the Debian packages chromium and "
                                 "chromium-driver (bash .ci/browser-deps.sh) or set $CHROMIUM/$CHROMEDRIVER")
    return str(chromium), str(driver)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile, quit on exit.

    Args:
        width: window width in CSS pixels.
        height: window height in CSS pixels.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = find_browser()
    with tempfile.TemporaryDirectory(prefix="skinnet-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
            options.add_argument(flag)
        # An explicit driver path keeps Selenium Manager from looking for (or downloading) one.
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            yield driver
        finally:
            driver.quit()


def wait_for_result(driver: Any, timeout: float = 60) -> str:
    """Wait until the page has shown a result or an error; return ``"ready"`` or ``"error"``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.state") in ("ready", "error"))
    return driver.execute_script("return document.body.dataset.state")


def upload(driver: Any, image: str | Path, timeout: float = 60) -> str:
    """Choose ``image`` in the page's file picker and wait for the outcome (``"ready"`` or ``"error"``)."""
    from selenium.webdriver.common.by import By

    driver.execute_script("document.body.dataset.state = 'sent'")
    driver.find_element(By.ID, "file").send_keys(str(Path(image).resolve()))
    return wait_for_result(driver, timeout)


def drop(driver: Any, image: str | Path, timeout: float = 60) -> str:
    """Drop ``image`` on the page's drop zone (a synthetic drag-and-drop) and wait for the outcome."""
    driver.execute_script("""
        const [data, name] = arguments;
        document.body.dataset.state = 'sent';
        const file = new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name);
        const transfer = new DataTransfer();
        transfer.items.add(file);
        const zone = document.getElementById('drop');
        for (const type of ['dragenter', 'dragover', 'drop']) {
          zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""", base64.b64encode(Path(image).read_bytes()).decode("ascii"), Path(image).name)
    return wait_for_result(driver, timeout)


def displayed_measurements(driver: Any) -> dict[str, str]:
    """The measurement table as shown: ``{data-key: text}``."""
    return driver.execute_script("""
        const out = {};
        for (const cell of document.querySelectorAll('#measurements td[data-key]')) {
          out[cell.dataset.key] = cell.textContent;
        }
        return out;""")


def canvas_png(driver: Any) -> bytes:
    """The viewer canvas as PNG bytes (exact pixels, unlike a screenshot)."""
    url = driver.execute_script("return document.getElementById('view').toDataURL('image/png')")
    return base64.b64decode(url.split(",", 1)[1])


def displayed_confidence(driver: Any) -> dict[str, str]:
    """The confidence badge as shown: its text, class (``ok`` or ``flagged``) and ``data-flagged``."""
    return driver.execute_script("""
        const badge = document.getElementById('confidence');
        return {text: badge.textContent, class: badge.className, flagged: badge.dataset.flagged};""")


def download_bytes(driver: Any, link: str = "download") -> bytes:
    """What one of the page's download links would save: ``download`` (the mask PNG) or ``report``."""
    data = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById(arguments[0]).href).then((r) => r.arrayBuffer()).then((buffer) => {
          let text = '';
          for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
          done(btoa(text));
        }).catch((err) => done('error: ' + err));""", link)
    if data.startswith("error: "):
        raise RuntimeError(f"download link failed: {data}")
    return base64.b64decode(data)
