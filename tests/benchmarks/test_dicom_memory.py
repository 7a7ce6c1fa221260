"""benchmarks/dicom_memory.py: its table row for the deflate bomb (the 100-megapixel rows take minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_bomb_row_says_refused_with_no_memory() -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "dicom_memory.py"), "--only", "bomb"],
                          capture_output=True, text=True, timeout=300, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    header, rule, row = done.stdout.strip().splitlines()
    assert header.startswith("| input |") and rule.startswith("|---")
    assert "| bomb |" in row and "| 0.0" in row and "refused as a possible decompression bomb" in row, row
