"""DICOM test files built from real images: visible-light photographs as a dermatoscope or camera would store them.

Used through the ``make_dicom`` fixture (tests/conftest.py). pydicom writes the files; Pillow encodes the JPEG
and JPEG 2000 frames, pydicom's own encoders RLE and JPEG-LS (pyjpegls).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

SYNTAXES = ("native", "jpeg", "rle", "jpeg-ls", "jpeg2000")
SOP_CLASSES = {"vl": "1.2.840.10008.5.1.4.1.1.77.1.4",            # VL Photographic Image Storage
               "dermoscopic": "1.2.840.10008.5.1.4.1.1.77.1.7",   # Dermoscopic Photography (Supplement 221)
               "microscopic": "1.2.840.10008.5.1.4.1.1.77.1.2",   # VL Microscopic Image Storage
               "sc": "1.2.840.10008.5.1.4.1.1.7"}                 # Secondary Capture Image Storage
PATIENT_ID = "SKN-0042"
STUDY_ID = "S-7"
ACCESSION = "ACC-20240101"


def build_dicom(path: str | Path, rgb: np.ndarray, syntax: str = "native", photometric: str = "RGB",
                spacing: tuple[float, float] | None = (0.02, 0.02), spacing_attribute: str = "PixelSpacing",
                frames: int = 1, monochrome: bool = False, sop_class: str = "vl",
                study_uid: str | None = None) -> Path:
    """Write ``rgb`` (``uint8 (H, W, 3)``) as a single- or multi-frame DICOM image; returns the path.

    Args:
        path: the file to write.
        rgb: the pixels.
        syntax: transfer syntax: ``native`` (explicit VR little endian), ``jpeg`` (baseline, YBR_FULL_422),
            ``rle``, ``jpeg-ls`` (lossless) or ``jpeg2000`` (lossless, YBR_RCT).
        photometric: for native and RLE data: ``RGB`` or ``YBR_FULL`` (the pixels are converted to it).
        spacing: ``(row, column)`` mm, or ``None`` for none.
        spacing_attribute: ``PixelSpacing`` or ``ImagerPixelSpacing``.
        frames: frames of the same picture.
        monochrome: store the green channel alone as MONOCHROME2.
        sop_class: ``vl``, ``dermoscopic``, ``microscopic`` or ``sc`` (Secondary Capture).
        study_uid: the Study Instance UID (default: a new one).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.pixels import convert_color_space
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGBaseline8Bit,
        JPEGLSLossless,
        RLELossless,
        generate_uid,
    )

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASSES[sop_class]
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = PATIENT_ID, "Test^Lesion", "", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or generate_uid(), generate_uid()
    ds.StudyID, ds.AccessionNumber, ds.StudyDate, ds.StudyTime = STUDY_ID, ACCESSION, "20240101", "120000"
    ds.ReferringPhysicianName, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "", "XC", 1, 1
    ds.Manufacturer, ds.ImageType = "skinnet tests", ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if spacing is not None:
        setattr(ds, spacing_attribute, [f"{value:g}" for value in spacing])
    if frames > 1:
        ds.NumberOfFrames = frames
    if monochrome:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = np.stack([rgb[..., 1]] * frames).tobytes()
    elif syntax in ("jpeg", "jpeg2000"):
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        encoded = []
        for _ in range(frames):
            buffer = io.BytesIO()
            if syntax == "jpeg":  # 4:2:2 chroma subsampling, as YBR_FULL_422 says
                Image.fromarray(rgb).save(buffer, "JPEG", quality=95, subsampling=1)
            else:
                Image.fromarray(rgb).save(buffer, "JPEG2000", irreversible=False, mct=1)
            encoded.append(buffer.getvalue())
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.PhotometricInterpretation = "YBR_FULL_422" if syntax == "jpeg" else "YBR_RCT"
        ds.LossyImageCompression = "01" if syntax == "jpeg" else "00"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit if syntax == "jpeg" else JPEG2000Lossless
    else:
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.PhotometricInterpretation = photometric
        stored = rgb if photometric == "RGB" else convert_color_space(rgb, "RGB", photometric)
        stored = np.stack([stored] * frames) if frames > 1 else stored
        ds.PixelData = stored.tobytes()
        if syntax in ("rle", "jpeg-ls"):
            ds.compress(RLELossless if syntax == "rle" else JPEGLSLossless, stored)
        elif syntax != "native":
            raise ValueError(f"unknown syntax {syntax!r}; one of {SYNTAXES}")
    ds.save_as(path, enforce_file_format=True)
    return Path(path)
