"""The predicted lesion as a DICOM Segmentation (highdicom), beside the DICOM image it was predicted from.

One binary segment, "Skin lesion" (SNOMED CT 95324001, category Morphologically abnormal structure
49755003), found by an automatic algorithm (SkinNet, family Artificial Intelligence, version = the first 16
hex digits of the model file's SHA-256). highdicom copies the patient and study modules (Patient ID, name,
Study Instance UID, Study ID, accession number, ...) from the source and references the source SOP instance
in the Derivation Image functional group and the Common Instance Reference module.

Dermoscopic and other visible-light photographs (VL Photographic Image, Dermoscopic Photography Image of
Supplement 221) have no Frame of Reference. The Segmentation IOD allows that: its Frame of Reference module
is required only where the Derivation Image functional group is absent (PS3.3 Table A.51-1), and without a
Frame of Reference each segmentation pixel corresponds to the pixel of the referenced image at the same row
and column (PS3.3 A.51.5.1). highdicom writes such a SEG for a single-frame source; the mask therefore has
the source's rows and columns exactly, and no Pixel Measures (which Table A.51-2 allows only with a
patient-relative Frame of Reference) or plane positions are written: the pixel spacing stays in the source
image. A photograph that has a Frame of Reference (some cameras and Secondary Capture converters write one)
keeps it in the SEG; Pixel Measures are written only where they can be complete, i.e. the source also has
a Slice Thickness, which the Pixel Measures macro then requires (PS3.3 C.7.6.16.2.1) and highdicom's own
reader insists on; otherwise the spacing again stays in the source image. Without plane orientation the SEG
carries Patient Orientation (General Image module, Type 2C): the source's, else empty (unknown).

The source must name what the SEG belongs to: :data:`REQUIRED_IDENTIFIERS` must be present and not empty
(:func:`source_problem`); the other Type 2 attributes of the Patient and General Study modules that
highdicom copies are written empty where the source lacks them. See docs/how-to/dicom.md.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.data.atomic import atomic_path
from skinnet.version import __version__

SERIES_NUMBER = 9901  # where viewers list it: after the acquisitions, in a series of its own
SERIES_DESCRIPTION = "SkinNet lesion segmentation"
# Type 2 attributes of the Patient and General Study modules, which highdicom copies from the source: a
# camera may leave some out; the results then have them empty, as Type 2 allows.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber")
# What a SEG cannot be written without: the patient, and the study, series and instance it references.
# (PatientID is Type 2: a camera may leave it empty, and the SEG then has it empty too.)
REQUIRED_IDENTIFIERS = {"StudyInstanceUID": "(0020,000D)",
                        "SeriesInstanceUID": "(0020,000E)", "SOPInstanceUID": "(0008,0018)",
                        "SOPClassUID": "(0008,0016)"}


def source_problem(source: Any) -> str | None:
    """Why no DICOM Segmentation can reference ``source`` (a pydicom dataset), or ``None`` where it can."""
    missing = [f"{name} {tag}" for name, tag in REQUIRED_IDENTIFIERS.items()
               if not str(source.get(name, "") or "").strip()]
    if missing:
        return (f"no DICOM Segmentation (--dicom-seg) can reference this image: it lacks {', '.join(missing)}, "
                "which name the patient, the study and the image")
    return None


def with_type2_attributes(source: Any) -> Any:
    """``source``, or a copy of it with the missing :data:`TYPE2_COPIED` attributes present and empty."""
    missing = [name for name in TYPE2_COPIED if name not in source]
    if not missing:
        return source
    source = copy.deepcopy(source)  # the caller's dataset stays as it was (its pixel data is already gone)
    for name in missing:
        setattr(source, name, "")
    return source


def build_dicom_seg(source: Any, mask: np.ndarray, model_name: str, model_version: str,
                    series_instance_uid: str | None = None, sop_instance_uid: str | None = None,
                    instance_number: int = 1) -> Any:
    """A highdicom ``Segmentation`` of ``mask`` referencing the source image ``source``.

    Args:
        source: the pydicom dataset of the single-frame image the mask was predicted from.
        mask: boolean ``(Rows, Columns)`` of that image.
        model_name: what made it (e.g. the model file's name), recorded as the algorithm's name.
        model_version: the model's version, e.g. the start of its SHA-256.
        series_instance_uid: the SEG's series; ``None``: a new random UID.
        sop_instance_uid: the SEG's own UID; ``None``: a new random UID (the DICOM node derives both from
            the source and the model, so that a result made twice is the same object).
        instance_number: the SEG's Instance Number.

    Raises:
        ValueError: the mask does not have the source's size, or the source lacks an identifier
            (:func:`source_problem`).
    """
    import highdicom as hd  # here: importing it takes a second, and most runs write no SEG
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    problem = source_problem(source)
    if problem:
        raise ValueError(problem)
    mask = np.asarray(mask, dtype=bool)
    source = with_type2_attributes(source)
    if mask.shape != (int(source.Rows), int(source.Columns)):
        raise ValueError(f"mask of shape {mask.shape} for an image of {source.Rows} x {source.Columns} pixels")
    source = copy.deepcopy(source)  # the caller's dataset stays as it was (a shallow copy shares elements)
    if "PixelSpacing" in source and ("FrameOfReferenceUID" not in source or "SliceThickness" not in source):
        # Without a Frame of Reference, the SEG's pixels are the source's: Pixel Measures may not be present
        # (PS3.3 Table A.51-2). With one but without a Slice Thickness, highdicom would write Pixel Measures
        # lacking it (a Type 1C attribute there), which its own reader then refuses. Either way the spacing
        # stays in the source image.
        del source.PixelSpacing
    algorithm = hd.AlgorithmIdentificationSequence(name=f"SkinNet {model_name}"[:64],
                                                   family=codes.cid7162.ArtificialIntelligence,
                                                   version=model_version[:64])
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="Lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.SkinLesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[segment],
        series_instance_uid=series_instance_uid or generate_uid(), series_number=SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid or generate_uid(), instance_number=instance_number,
        manufacturer="skinnet", manufacturer_model_name="SkinNet",
        software_versions=str(__version__), device_serial_number="none",
        series_description=SERIES_DESCRIPTION, content_label="LESION",
        content_description="Automatic lesion segmentation; check it before clinical use",
        omit_empty_frames=False,  # an empty prediction is still an answer, and a file to check
    )
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "PlaneOrientationSequence" not in shared and "PatientOrientation" not in seg:
        # Type 2C: required where the image needs no Image Orientation (Patient); empty means unknown.
        seg.PatientOrientation = source.get("PatientOrientation", "")
    return seg


def save_dicom_seg(path: str | Path, seg: Any) -> Path:
    """Write a SEG :func:`build_dicom_seg` made to ``path`` atomically."""
    with atomic_path(path) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return Path(path)


def write_dicom_seg(path: str | Path, source: Any, mask: np.ndarray, model_name: str, model_version: str) -> Path:
    """Build the SEG (see :func:`build_dicom_seg`) and write it to ``path`` atomically."""
    return save_dicom_seg(path, build_dicom_seg(source, mask, model_name, model_version))
