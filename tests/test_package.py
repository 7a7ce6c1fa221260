"""``import skinnet``: the library alone, without optional dependencies or changes to the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Each is needed only by a command or extra that asks for it: the web app, augmentation, plots, ONNX, Dask.
NOT_IMPORTED = ("albumentations", "fastapi", "uvicorn", "starlette", "matplotlib", "onnx", "onnxruntime",
                "distributed", "selenium")


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
