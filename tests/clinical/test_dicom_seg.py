"""DICOM Segmentations of real ISIC images and masks, read back with highdicom (the oracle)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from skinnet.clinical.dicom_seg import build_dicom_seg, write_dicom_seg
from skinnet.data.dicom import read_dicom
from skinnet.data.io import read_image, read_mask

SAMPLES = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data"


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
