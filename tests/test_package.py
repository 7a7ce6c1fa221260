"""``import skinnet``: the library alone, without optional dependencies or changes to the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Each is needed only by a command or extra that asks for it: the web app, augmentation, plots, ONNX, Dask,
# the DICOM node and DICOMweb.
NOT_IMPORTED = ("albumentations", "fastapi", "uvicorn", "starlette", "matplotlib", "onnx", "onnxruntime",
                "distributed", "selenium", "pynetdicom", "dicomweb_client", "highdicom")


def test_import_skinnet_loads_no_optional_dependency_and_leaves_os_environ_alone() -> None:
    code = ("import json, os, sys; before = dict(os.environ); import skinnet; "
            "print(json.dumps({'modules': sorted(sys.modules), 'environ': before == dict(os.environ)}))")
    # Without NO_ALBUMENTATIONS_UPDATE, so that setting it on import would show.
    env = {key: value for key, value in os.environ.items() if key != "NO_ALBUMENTATIONS_UPDATE"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    top_level = {name.split(".")[0] for name in report["modules"]}
    assert not top_level & set(NOT_IMPORTED)
    assert report["environ"], "import skinnet changed os.environ"


def test_the_cli_builds_its_parser_without_loading_torch() -> None:
    # `skinnet --help` and a mistyped option must answer at once: the library loads inside the commands.
    code = ("import json, sys; from skinnet.cli import build_parser; build_parser(); "
            "print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    top_level = {name.split(".")[0] for name in json.loads(result.stdout)}
    assert not top_level & {"torch", "scipy", "safetensors", "skimage", *NOT_IMPORTED}


def test_the_package_names_are_the_defining_modules_objects() -> None:
    import importlib

    import skinnet

    for name in skinnet.__all__:
        assert name in dir(skinnet)
        value = getattr(skinnet, name)
        if name != "__version__":
            assert value is getattr(importlib.import_module(value.__module__), name)
    from skinnet import Segmenter, runs  # a lazy name and a submodule, as `from skinnet import` gives them

    assert Segmenter.__name__ == "Segmenter" and runs.__name__ == "skinnet.runs"
    with pytest.raises(AttributeError, match="no attribute 'Segmentor'"):
        skinnet.Segmentor  # noqa: B018
