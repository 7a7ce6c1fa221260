"""``skinnet predict`` on DICOM files built from real ISIC images: SEG, millimetres, confidence, bad files."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from skimage.measure import regionprops

from skinnet.data.io import read_image, read_mask
from skinnet.weights import default_model_path

SAMPLES = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images"
SPACING = 0.0125  # mm per pixel, written into the DICOM file


def skinnet(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "skinnet", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def model() -> Path:
    path = default_model_path()
    if path is None:
        pytest.skip("no shipped model in skinnet/weights/")
    return path


def test_dicom_in_seg_and_mm_table_out(model: Path, make_dicom: Callable, tmp_path: Path) -> None:
    """The issue's acceptance run: predict case.dcm --out o --dicom-seg --measurements m.csv."""
    case = make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "ISIC_0010607.jpg"), syntax="jpeg",
                      spacing=(SPACING, SPACING))
    out, table = tmp_path / "o", tmp_path / "m.csv"
    done = skinnet("predict", str(case), "--out", str(out), "--dicom-seg", "--measurements", str(table),
                   "--uncertainty", "--progress", "off")
    assert done.returncode == 0, done.stderr[-3000:]
    mask = read_mask(out / "case_segmentation.png")
    assert 0.01 < mask.mean() < 0.9, "the shipped model should find the lesion"

    # The SEG, read back by highdicom, holds the same mask and points at the source image.
    source = pydicom.dcmread(case)
    seg = hd.seg.segread(out / "case_seg.dcm")
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[source.SOPInstanceUID],
                                               segment_numbers=[1])
    np.testing.assert_array_equal(pixels[0, ..., 0].astype(bool), mask)
    assert seg.PatientID == source.PatientID and seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.AccessionNumber == source.AccessionNumber

    # One row, in mm at the file's spacing: scikit-image on the written mask is the oracle.
    with open(table, newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    region = regionprops(mask.astype(np.uint8), spacing=(SPACING, SPACING))[0]
    assert row["id"] == "case" and row["spacing_source"] == "PixelSpacing"
    assert float(row["pixel_spacing_row_mm"]) == SPACING == float(row["pixel_spacing_column_mm"])
    assert float(row["area_mm2"]) == pytest.approx(mask.sum() * SPACING**2, rel=1e-9)
    assert float(row["max_diameter_mm"]) == pytest.approx(region.feret_diameter_max, rel=1e-9)
    assert float(row["perimeter_mm"]) == pytest.approx(region.perimeter_crofton, rel=1e-9)
    assert float(row["equivalent_diameter_mm"]) == pytest.approx(region.equivalent_diameter_area, rel=1e-9)
    assert row["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert row["confidence_method"] in ("tta", "margin") and 0 <= float(row["confidence"]) <= 1
    assert row["flagged"] in ("True", "False")
    assert np.asarray(Image.open(out / "case_uncertainty.png")).shape == mask.shape


def test_bad_dicoms_fail_one_line_each_and_the_batch_goes_on(model: Path, make_dicom: Callable,
                                                             tmp_path: Path) -> None:
    rgb = read_image(SAMPLES / "ISIC_0000025.jpg")
    batch = tmp_path / "batch"
    batch.mkdir()
    make_dicom(batch / "good.dcm", rgb)
    make_dicom(batch / "multi.dcm", rgb, frames=2)
    make_dicom(batch / "mono.dcm", rgb, monochrome=True)
    whole = make_dicom(tmp_path / "whole.dcm", rgb, syntax="jpeg").read_bytes()
    (batch / "cut.dcm").write_bytes(whole[: len(whole) // 2])
    dataset = pydicom.dcmread(tmp_path / "whole.dcm")
    del dataset.PixelData
    dataset.save_as(batch / "nopixels.dcm")
    (batch / "photo.jpg").write_bytes((SAMPLES / "ISIC_0000321.jpg").read_bytes())
    out = tmp_path / "o"
    done = skinnet("predict", str(batch), "--out", str(out), "--dicom-seg", "--measurements",
                   str(tmp_path / "m.csv"), "--progress", "off")
    assert done.returncode == 1, done.stderr[-3000:]
    assert (out / "good_seg.dcm").is_file() and (out / "good_segmentation.png").is_file()
    assert "5 file(s) failed:" in done.stderr
    failures = {line.strip().split(":")[0]: line for line in done.stderr.splitlines() if line.startswith("  /")}
    expected = {"multi.dcm": "multi-frame", "mono.dcm": "MONOCHROME2", "cut.dcm": "truncated",
                "nopixels.dcm": "no pixel data", "photo.jpg": "not a DICOM file"}
    for name, word in expected.items():
        assert word in failures[str(batch / name)], failures
    with open(tmp_path / "m.csv", newline="") as handle:
        assert [row["id"] for row in csv.DictReader(handle)] == ["good"]
