"""DICOM Segmentations of real ISIC images and masks, read back with highdicom (the oracle).

Every SEG a test here writes is also checked against the IOD by dciodvfy (dicom3tools; .ci/dicom-deps.sh
installs it), after the test, with zero errors allowed: see :func:`every_seg_passes_dciodvfy`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from skinnet.clinical.dicom_seg import REQUIRED_IDENTIFIERS, build_dicom_seg, write_dicom_seg
from skinnet.data.dicom import read_dicom
from skinnet.data.io import read_image, read_mask

SAMPLES = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data"
DCIODVFY = shutil.which("dciodvfy")


def dciodvfy_errors(path: Path) -> list[str]:
    """The lines dciodvfy reports as errors for a file (warnings are not counted)."""
    assert DCIODVFY is not None
    done = subprocess.run([DCIODVFY, "-new", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(autouse=True)
def every_seg_passes_dciodvfy(tmp_path: Path) -> Iterator[None]:
    """After each test: every Segmentation it wrote under ``tmp_path`` has no dciodvfy error (where installed;
    :func:`test_dciodvfy_is_there_and_finds_errors` says so when it is not)."""
    yield
    if DCIODVFY is None:
        return
    for path in sorted(tmp_path.rglob("*.dcm")):
        if pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID.name == "Segmentation Storage":
            assert dciodvfy_errors(path) == [], path


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) is not installed: bash .ci/dicom-deps.sh")
def test_dciodvfy_is_there_and_finds_errors(make_dicom: Callable, tmp_path: Path) -> None:
    # Guards the fixture above: a SEG broken on purpose (its Patient Orientation, Type 2C, removed) is caught.
    source = read_dicom(make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0000321.jpg")))
    seg = build_dicom_seg(source.dataset, np.zeros((source.dataset.Rows, source.dataset.Columns), bool), "m", "v")
    del seg.PatientOrientation
    seg.save_as(broken := tmp_path / "broken.seg")
    assert any("PatientOrientation" in line for line in dciodvfy_errors(broken))


def read_back(path: Path, source: pydicom.Dataset) -> np.ndarray:
    """The SEG's mask for the source image, as highdicom reads it."""
    seg = hd.seg.segread(path)
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[source.SOPInstanceUID],
                                               segment_numbers=[1])
    assert pixels.shape == (1, source.Rows, source.Columns, 1)
    return pixels[0, ..., 0].astype(bool)


@pytest.mark.parametrize("image_id, syntax, sop_class", [("ISIC_0000025", "jpeg", "vl"),
                                                         ("ISIC_0010607", "native", "dermoscopic"),
                                                         ("ISIC_0013243", "rle", "vl")])
def test_seg_of_a_real_mask_reads_back_the_same(make_dicom: Callable, tmp_path: Path, image_id: str,
                                                syntax: str, sop_class: str) -> None:
    from dicom_factory import ACCESSION, PATIENT_ID, STUDY_ID

    source = read_dicom(make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / f"{image_id}.jpg"),
                                   syntax=syntax, sop_class=sop_class, spacing=(0.0125, 0.0125)))
    mask = read_mask(SAMPLES / "masks" / f"{image_id}_segmentation.png")
    assert 0 < mask.mean() < 1
    path = write_dicom_seg(tmp_path / "out" / "case_seg.dcm", source.dataset, mask, "model.safetensors",
                           "0123456789abcdef")
    np.testing.assert_array_equal(read_back(path, source.dataset), mask)

    seg = pydicom.dcmread(path)
    assert seg.SOPClassUID.name == "Segmentation Storage"
    # The patient and the study are the source's; the series and the instance are new.
    assert (seg.PatientID, seg.StudyID, seg.AccessionNumber) == (PATIENT_ID, STUDY_ID, ACCESSION)
    assert seg.StudyInstanceUID == source.dataset.StudyInstanceUID
    assert seg.SeriesInstanceUID != source.dataset.SeriesInstanceUID
    # The source image is referenced, pixel for pixel (no Frame of Reference, so no Pixel Measures).
    derivation = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert derivation.ReferencedSOPInstanceUID == source.dataset.SOPInstanceUID
    assert derivation.ReferencedSOPClassUID == source.dataset.SOPClassUID
    assert "FrameOfReferenceUID" not in seg
    assert "PixelMeasuresSequence" not in seg.SharedFunctionalGroupsSequence[0]
    segment = seg.SegmentSequence[0]
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "95324001"  # SNOMED CT: skin lesion
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentAlgorithmName == "SkinNet model.safetensors"
    assert seg.ContentDescription.startswith("Automatic lesion segmentation")
    # The caller's dataset is left as it was: its spacing still measures in millimetres.
    assert source.dataset.PixelSpacing == [0.0125, 0.0125]


def test_empty_prediction_is_still_a_seg(make_dicom: Callable, tmp_path: Path) -> None:
    source = read_dicom(make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0000321.jpg")))
    empty = np.zeros((source.dataset.Rows, source.dataset.Columns), bool)
    path = write_dicom_seg(tmp_path / "seg.dcm", source.dataset, empty, "m", "v")
    assert not read_back(path, source.dataset).any()


def test_mask_of_another_size_is_refused(make_dicom: Callable, tmp_path: Path) -> None:
    source = read_dicom(make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0000321.jpg")))
    with pytest.raises(ValueError, match="mask of shape"):
        build_dicom_seg(source.dataset, np.zeros((10, 10), bool), "m", "v")


@pytest.mark.parametrize("thickness", [None, 0.5])
def test_seg_of_a_source_with_a_frame_of_reference_reads_back(make_dicom: Callable, tmp_path: Path,
                                                              thickness: float | None) -> None:
    # A VL photograph with a Frame of Reference and a pixel spacing, as some cameras and converters write.
    path = make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0013243.jpg"),
                      frame_of_reference=True, spacing=(0.02, 0.02))
    if thickness is not None:
        dataset = pydicom.dcmread(path)
        dataset.SliceThickness = thickness
        dataset.save_as(path)
    source = read_dicom(path)
    mask = read_mask(SAMPLES / "masks" / "ISIC_0013243_segmentation.png")
    seg_path = write_dicom_seg(tmp_path / "seg.dcm", source.dataset, mask, "m", "v")
    np.testing.assert_array_equal(read_back(seg_path, source.dataset), mask)  # highdicom's segread reads it
    seg = pydicom.dcmread(seg_path)
    assert seg.FrameOfReferenceUID == source.dataset.FrameOfReferenceUID
    shared = seg.SharedFunctionalGroupsSequence[0]
    if thickness is None:  # Pixel Measures would lack the Slice Thickness they require: none are written
        assert "PixelMeasuresSequence" not in shared
    else:
        measures = shared.PixelMeasuresSequence[0]
        assert measures.PixelSpacing == [0.02, 0.02] and measures.SliceThickness == thickness
    assert seg.PatientOrientation == ""


@pytest.mark.parametrize("name", list(REQUIRED_IDENTIFIERS))
def test_a_source_without_an_identifier_is_refused_in_one_line(make_dicom: Callable, tmp_path: Path,
                                                               name: str) -> None:
    source = read_dicom(make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0000321.jpg")))
    mask = np.zeros((source.dataset.Rows, source.dataset.Columns), bool)
    for value in (None, ""):
        if value is None:
            delattr(source.dataset, name)
        else:
            setattr(source.dataset, name, value)
        with pytest.raises(ValueError) as caught:
            build_dicom_seg(source.dataset, mask, "m", "v")
        message = str(caught.value)
        assert f"lacks {name} {REQUIRED_IDENTIFIERS[name]}" in message and "\n" not in message


def test_absent_type_2_attributes_are_written_empty(make_dicom: Callable, tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "case.dcm", read_image(SAMPLES / "images" / "ISIC_0000321.jpg"))
    dataset = pydicom.dcmread(path)
    for name in ("PatientName", "PatientBirthDate", "StudyDate", "StudyTime", "StudyID", "AccessionNumber"):
        delattr(dataset, name)
    dataset.save_as(path)
    source = read_dicom(path)
    empty = np.zeros((source.dataset.Rows, source.dataset.Columns), bool)
    seg = pydicom.dcmread(write_dicom_seg(tmp_path / "seg.dcm", source.dataset, empty, "m", "v"))
    assert seg.PatientName == "" and seg.StudyDate == "" and seg.PatientID == source.dataset.PatientID
    assert "PatientName" not in source.dataset  # the caller's dataset is not changed
