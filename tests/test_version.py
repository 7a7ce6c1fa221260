"""The version is written once (skinnet/version.py); the installed metadata and the web app report it."""

from __future__ import annotations

import importlib.metadata

import skinnet
from skinnet.version import __version__


def test_the_installed_metadata_reads_the_one_version() -> None:
    assert importlib.metadata.version("skinnet") == __version__ == skinnet.__version__


def test_the_web_api_reports_it() -> None:
    from skinnet.app.server import create_app
    from skinnet.inference.segmenter import Segmenter

    assert create_app(Segmenter.from_file(None, device="cpu")).version == __version__
