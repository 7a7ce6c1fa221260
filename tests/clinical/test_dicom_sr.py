"""The measurement report (TID 1500 SR) of a real image and mask, read back with pydicom, checked by dciodvfy."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sr_content import sr_content

from skinnet.data.dicom import read_dicom
from skinnet.data.io import read_image, read_mask

pytest.importorskip("highdicom")
SAMPLES = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data"


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for a file (Debian dicom3tools); skips where it is not installed."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (Debian: dicom3tools; .ci/dicom-deps.sh)")
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


def test_derived_uids_are_uuid_uids_of_their_parts() -> None:
    from skinnet.clinical.dicom_sr import derived_uid

    assert derived_uid("1.2.3", "ab", "seg") == derived_uid("1.2.3", "ab", "seg")
    assert len({derived_uid("1.2.3", "ab", "seg"), derived_uid("1.2.3", "ab", "sr"),
                derived_uid("1.2.3a", "b", "seg")}) == 3  # the parts are kept apart
    for uid in (derived_uid("x" * 1000), derived_uid("")):
        assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64


@pytest.mark.parametrize("spacing", [True, False], ids=["mm", "pixels"])
def test_the_sr_reports_the_measurements_of_a_real_mask(make_dicom: Callable, tmp_path: Path,
                                                        spacing: bool) -> None:
    from pydicom import dcmread

    from skinnet.clinical.confidence import Confidence
    from skinnet.clinical.dicom_seg import build_dicom_seg
    from skinnet.clinical.dicom_sr import build_measurement_report
    from skinnet.clinical.findings import Finding, ModelInfo
    from skinnet.clinical.measurements import measure

    source = read_dicom(make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0000025.jpg"),
                                   sop_class="dermoscopic", spacing=(0.02, 0.02) if spacing else None))
    mask = read_mask(SAMPLES / "masks" / "ISIC_0000025_segmentation.png")
    measured = measure(mask, source.pixels, source.pixel_spacing_mm)
    finding = Finding(256, 256, source.spacing_source, measured, Confidence(0.91, "tta", 0.96, True, "low"),
                      ModelInfo("/models/model.safetensors", "ab" * 32))
    seg = build_dicom_seg(source.dataset, mask, "model.safetensors", "abab", "2.25.1", "2.25.2")
    sr = build_measurement_report(source.dataset, seg, finding, "2.25.3", "2.25.4")
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    items = sr_content(dcmread(tmp_path / "sr.dcm"))
    if spacing:
        assert items["Area"] == (pytest.approx(measured.area_mm2), "mm2")
        assert items["Diameter"] == (pytest.approx(measured.max_diameter_mm), "mm")
    else:
        assert items["Area"] == (measured.area_px, "{pixels}")
        assert items["Diameter"] == (pytest.approx(measured.max_diameter_px), "{pixels}")
    assert items["Outline confidence score"] == (pytest.approx(0.91), "1")
    assert items["Check this outline"] == "Yes"
    assert items["Finding"] == "Skin lesion"
    # the region is frame 1 of the SEG; the image it was made from, the source
    assert items["Referenced Segmentation Frame"] == ("2.25.2", 1)
    assert items["Source Image for Segmentation"][0] == source.dataset.SOPInstanceUID
    assert sr.StudyInstanceUID == source.dataset.StudyInstanceUID and sr.Modality == "SR"
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    seg.save_as(tmp_path / "seg.dcm")
    for path in (tmp_path / "sr.dcm", tmp_path / "seg.dcm"):
        assert not dciodvfy_errors(path)




@pytest.mark.parametrize("orientation", [None, ["A", "F"]], ids=["none", "source's"])
def test_the_seg_has_the_patient_orientation_dciodvfy_requires(make_dicom: Callable, tmp_path: Path,
                                                               orientation: list[str] | None) -> None:
    """General Image's Type 2C Patient Orientation: the source's where it has one, else empty."""
    from pydicom import dcmread

    from skinnet.clinical.dicom_seg import write_dicom_seg

    path = make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0000344.jpg"), sop_class="vl")
    if orientation:
        ds = dcmread(path)
        ds.PatientOrientation = orientation
        ds.save_as(path)
    source = read_dicom(path)
    mask = read_mask(SAMPLES / "masks" / "ISIC_0000344_segmentation.png")
    seg = dcmread(write_dicom_seg(tmp_path / "seg.dcm", source.dataset, mask, "m.safetensors", "ab"))
    assert "PatientOrientation" in seg and list(seg.PatientOrientation or []) == (orientation or [])
    assert not dciodvfy_errors(tmp_path / "seg.dcm")


def test_a_source_without_its_type_2_patient_and_study_attributes_still_gets_a_seg_and_an_sr(
        make_dicom: Callable, tmp_path: Path) -> None:
    """Cameras leave Type 2 attributes out; highdicom reads them: the results have them, empty."""
    import numpy as np
    from pydicom import dcmread

    from skinnet.clinical.confidence import Confidence
    from skinnet.clinical.dicom_seg import TYPE2_COPIED, build_dicom_seg
    from skinnet.clinical.dicom_sr import build_measurement_report
    from skinnet.clinical.findings import Finding, ModelInfo
    from skinnet.clinical.measurements import measure

    path = make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0000395.jpg"))
    ds = dcmread(path)
    for name in TYPE2_COPIED:
        ds.pop(name, None)
    ds.save_as(path)
    source = read_dicom(path)
    mask = np.zeros((256, 256), bool)
    mask[100:150, 90:170] = True
    seg = build_dicom_seg(source.dataset, mask, "m.safetensors", "ab", "2.25.1", "2.25.2")
    finding = Finding(256, 256, None, measure(mask), Confidence(0.99, "margin", 0.5, False, None),
                      ModelInfo("m.safetensors", "ab"))
    sr = build_measurement_report(source.dataset, seg, finding, "2.25.3", "2.25.4")
    assert "PatientID" not in source.dataset  # the caller's dataset is left alone
    for name, result in (("seg", seg), ("sr", sr)):
        assert all(result.get(attribute, None) in ("", None) for attribute in TYPE2_COPIED)
        result.save_as(tmp_path / f"{name}.dcm", enforce_file_format=True)
        assert not dciodvfy_errors(tmp_path / f"{name}.dcm")
