"""Optional dependencies: a missing extra is one line naming the pip command, and the CLI exits with 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skinnet.cli import main
from skinnet.extras import MissingExtraError, require


def test_an_installed_module_is_returned() -> None:
    assert require("json", "serve", "the web app") is sys.modules["json"]


def test_a_missing_module_names_the_extra_and_its_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what the import system does for a module that is absent
    with pytest.raises(MissingExtraError) as caught:
        require("fastapi", "serve", "the web app")
    assert str(caught.value) == ("the web app needs the 'serve' extra: pip install 'skinnet[serve]' "
                                 "(no module named 'fastapi')")
    assert isinstance(caught.value, ImportError)  # code that guards an optional import still catches it


def test_serve_without_the_serve_extra_says_how_to_install_it_in_one_line() -> None:
    # A fresh interpreter in which fastapi cannot be imported, as after a plain `pip install skinnet`.
    code = "import sys; sys.modules['fastapi'] = None; from skinnet.cli import main; sys.exit(main(['serve']))"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ("skinnet serve: error: the web app needs the 'serve' extra: "
                             "pip install 'skinnet[serve]' (no module named 'fastapi')\n")


@pytest.mark.parametrize(("module", "command", "extra"), [
    ("onnxruntime", ["export", "--onnx", "model.onnx"], "onnx"),
    ("matplotlib", ["report", "run"], "report"),
])
def test_export_and_report_without_their_extra_exit_with_2(module: str, command: list[str], extra: str,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "skinnet.inference.onnx", raising=False)  # so that it is imported anew
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pip install 'skinnet[{extra}]'" in err
    assert not (tmp_path / "model.onnx").exists()
