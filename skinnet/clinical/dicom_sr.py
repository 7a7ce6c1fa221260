"""The measurements of one segmented lesion as a DICOM Structured Report: TID 1500 Measurement Report (highdicom).

A Comprehensive SR (1.2.840.10008.5.1.4.1.1.88.33) in the source image's study, in a series of its own, with
one TID 1410 "Planar ROI Measurements and Qualitative Evaluations" group whose region is segment 1 of the
DICOM Segmentation the same model made (a Referenced Segmentation Frame, with the source image as its
Source Image for Segmentation). The group holds:

* **Area** (SNOMED CT 42798000): mm² where the pixel spacing is known, else the lesion's pixel count
  (UCUM ``{pixels}``);
* **Diameter** (SCT 81827009) with derivation **Maximum** (SCT 56851009): the maximum Feret diameter, in mm
  where the spacing is known, else in pixels;
* the outline's **confidence score** (0 to 1, UCUM ``1``) and the **"check this outline"** flag (Yes / No,
  SCT 373066001 / 373067005), under this project's own codes (coding scheme ``99SKINNET``, declared in the
  Coding Scheme Identification Sequence), since DICOM has no concept for either;
* the algorithm (TID 4019): name ``SkinNet <model file>``, version the model file's full SHA-256, and as
  parameters the model file, the SHA-256, the confidence method and the flag's threshold.

The observer is a device (TID 1004): SkinNet, its UID derived from the model's SHA-256. The report is
complete and unverified: a clinician checks the outline. Definitions of the measurements:
:mod:`skinnet.clinical.measurements`; of the confidence: :mod:`skinnet.clinical.confidence`.

:func:`derived_uid` makes the UIDs of a result from what determines it (the source SOP Instance UID, the
model's SHA-256 and settings, the kind of result): a result made twice, by the node after a restart or by
``skinnet predict``, is the same DICOM object, which a PACS stores once.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skinnet.version import __version__

if TYPE_CHECKING:
    from skinnet.clinical.findings import Finding

SERIES_NUMBER = 9902  # after the SEG's 9901
SERIES_DESCRIPTION = "SkinNet lesion measurements"
CODING_SCHEME = "99SKINNET"  # a private coding scheme: designators starting "99" are local (PS3.16 8.2)
DERMOSCOPIC_PHOTOGRAPHY = "1.2.840.10008.5.1.4.1.1.77.1.7"
# The namespace of skinnet's name-based UUIDs (a fixed random UUID: changing it changes every result UID).
UID_NAMESPACE = uuid.UUID("5c1e6d3a-8b0f-4e57-9a51-2f3d7c9b1a64")


def derived_uid(*parts: str) -> str:
    """A UID determined by ``parts``: ``2.25.`` and a name-based (SHA-1, version 5) UUID of them (PS3.5 B.2).

    Example: ``derived_uid(source_sop_uid, model_sha256, "seg")``. At most 44 characters.
    """
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, chr(0x1F).join(parts)).int}"


def _code(value: str, meaning: str) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=CODING_SCHEME, meaning=meaning)


def _unit(spacing_known: bool, square: bool) -> Any:
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    if spacing_known:
        return codes.UCUM.SquareMillimeter if square else codes.UCUM.Millimeter
    return CodedConcept(value="{pixels}", scheme_designator="UCUM", meaning="pixels")


def build_measurement_report(source: Any, seg: Any, finding: Finding, series_instance_uid: str,
                             sop_instance_uid: str, instance_number: int = 1) -> Any:
    """A highdicom ``ComprehensiveSR`` holding ``finding``'s measurement report (see the module docstring).

    Args:
        source: the pydicom dataset of the image that was segmented (its patient and study are copied).
        seg: the DICOM Segmentation of that image (segment 1, frame 1 is the lesion).
        finding: the measurements, confidence and model of the prediction.
        series_instance_uid: the report's series.
        sop_instance_uid: the report's own UID.
        instance_number: its Instance Number.
    """
    import highdicom as hd
    from highdicom.sr import (
        AlgorithmIdentification,
        DeviceObserverIdentifyingAttributes,
        Measurement,
        MeasurementReport,
        ObservationContext,
        ObserverContext,
        PlanarROIMeasurementsAndQualitativeEvaluations,
        QualitativeEvaluation,
        ReferencedSegmentationFrame,
        SourceImageForSegmentation,
        TrackingIdentifier,
    )
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    from skinnet.clinical.dicom_seg import with_type2_attributes

    source = with_type2_attributes(source)
    model_files = [Path(name).name for name in finding.model.file.split(";")] if finding.model.file else []
    model_name = ";".join(model_files) or "model"
    sha256 = finding.model.sha256 or "unknown"
    confidence = finding.confidence
    algorithm = AlgorithmIdentification(
        name=f"SkinNet {model_name}", version=sha256,
        parameters=[f"model file: {model_name}", f"model SHA-256: {sha256}",
                    f"confidence method: {confidence.method}", f"flag threshold: {confidence.threshold:g}"])
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=derived_uid(sha256, "device"), name="SkinNet", manufacturer_name="skinnet",
            model_name=model_name[:64]))
    measured = finding.measurements
    known = measured.pixel_spacing_mm is not None
    area = measured.area_mm2 if known else measured.area_px
    diameter = measured.max_diameter_mm if known else measured.max_diameter_px
    measurements = [
        Measurement(name=codes.SCT.Area, value=float(area), unit=_unit(known, square=True),
                    algorithm_id=algorithm),
        Measurement(name=codes.SCT.Diameter, value=float(diameter), unit=_unit(known, square=False),
                    derivation=codes.SCT.Maximum, algorithm_id=algorithm),
        Measurement(name=_code("OUTLINE-CONFIDENCE", "Outline confidence score"), value=float(confidence.score),
                    unit=codes.UCUM.NoUnits, algorithm_id=algorithm),
    ]
    flag = QualitativeEvaluation(name=_code("CHECK-OUTLINE", "Check this outline"),
                                 value=codes.SCT.Yes if confidence.flagged else codes.SCT.No)
    region = ReferencedSegmentationFrame(
        sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, frame_number=1, segment_number=1,
        source_image=SourceImageForSegmentation(source.SOPClassUID, source.SOPInstanceUID))
    # Referenced Frame Number and Referenced Segment Number exclude each other (PS3.3 Table 10-3, each
    # "required if ... the other is not present"); highdicom writes both. Frame 1 is segment 1's only frame.
    del region[0].ReferencedSOPSequence[0].ReferencedSegmentNumber
    group = PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=derived_uid(sop_instance_uid, "lesion"),
                                               identifier="Lesion 1"),
        referenced_segment=region, finding_type=codes.SCT.SkinLesion,
        finding_category=codes.SCT.MorphologicallyAbnormalStructure, algorithm_id=algorithm,
        measurements=measurements, qualitative_evaluations=[flag])
    procedure = (codes.SCT.DermoscopicPhotography if str(source.SOPClassUID) == DERMOSCOPIC_PHOTOGRAPHY
                 else codes.SCT.ImagingProcedure)
    report = MeasurementReport(observation_context=ObservationContext(observer_device_context=observer),
                               procedure_reported=procedure, imaging_measurements=[group])
    sr = hd.sr.ComprehensiveSR(
        evidence=[source, seg], content=report[0], series_instance_uid=series_instance_uid,
        series_number=SERIES_NUMBER, sop_instance_uid=sop_instance_uid, instance_number=instance_number,
        manufacturer="skinnet", is_complete=True, is_final=False, is_verified=False,
        series_description=SERIES_DESCRIPTION)
    sr.ManufacturerModelName = "SkinNet"
    sr.SoftwareVersions = str(__version__)
    scheme = Dataset()
    scheme.CodingSchemeDesignator = CODING_SCHEME
    scheme.CodingSchemeName = "SkinNet local codes"
    scheme.CodingSchemeResponsibleOrganization = "skinnet"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr
