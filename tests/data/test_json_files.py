"""JSON outputs (cv_summary.json, comparison.json) are strict JSON: an undefined statistic is null, not NaN."""

from __future__ import annotations

import json
import math
from pathlib import Path

from skinnet.data.atomic import write_json


def test_json_files_are_strict_json_with_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json(path, {"DC_sd": math.nan, "folds": [0], "nested": [{"p_value": math.nan}]})
    text = path.read_text()
    assert json.loads(text) == {"DC_sd": None, "folds": [0], "nested": [{"p_value": None}]}
    assert "NaN" not in text
