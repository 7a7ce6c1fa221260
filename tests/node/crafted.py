"""Hostile and broken DICOM objects for the node's receive path, built from real sample images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"


def _meta(ds: Any, syntax: str) -> bytes:
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID, meta.ImplementationClassUID = syntax, PYDICOM_IMPLEMENTATION_UID
    buffer = io.BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue()


def encode(ds: Any) -> bytes:
    """A dataset's elements in Explicit VR Little Endian, without meta information."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds)
    return buffer.getvalue()


def header_of(path: Path) -> Any:
    """A real image's dataset without its pixel data."""
    from pydicom import dcmread

    ds = dcmread(path)
    del ds.PixelData
    ds.file_meta = None
    return ds


def deflate_bomb(path: Path, template: Path, inflated_bytes: int = 1 << 30, rows: int | None = None,
                 columns: int | None = None) -> Path:
    """A Deflated Explicit VR Little Endian file whose pixel data inflates to ``inflated_bytes`` zeros.

    The header is the template's (a real image's; ``rows``/``columns`` override its declared size); the
    compressed file is about a thousandth of ``inflated_bytes``.
    """
    ds = header_of(template)
    if rows is not None:
        ds.Rows, ds.Columns = rows, columns
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as out:
        out.write(_meta(ds, DEFLATED))
        pixel_data = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, inflated_bytes)  # its element header
        out.write(compressor.compress(encode(ds) + pixel_data))
        zeros = bytes(1 << 22)
        for _ in range(inflated_bytes // len(zeros)):
            out.write(compressor.compress(zeros))
        out.write(compressor.compress(bytes(inflated_bytes % len(zeros))) + compressor.flush())
    return path


def malformed(path: Path, template: Path) -> Path:
    """A file whose meta information is good and whose dataset is garbage after its first elements."""
    ds = header_of(template)
    body = encode(ds)[:40] + bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))
    path.write_bytes(_meta(ds, EXPLICIT_LITTLE) + body)
    return path


def variant(template: Path, path: Path, change: str) -> Path:
    """The template image broken one way: ``monochrome``, ``multi-frame``, ``no-pixels``, ``truncated``
    (native pixel data cut short), ``truncated-jpeg`` (the JPEG frame cut to a third), ``huge`` (declares
    30000 x 30000 pixels)."""
    from pydicom import dcmread
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import generate_uid

    ds = dcmread(template)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if change == "monochrome":
        pixels = ds.pixel_array[..., 1]
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelData = 1, "MONOCHROME2", pixels.tobytes()
        del ds.PlanarConfiguration
    elif change == "multi-frame":
        ds.NumberOfFrames, ds.PixelData = 2, ds.PixelData * 2
    elif change == "no-pixels":
        del ds.PixelData
    elif change == "truncated":
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    elif change == "truncated-jpeg":
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        ds.PixelData = encapsulate([frame[: len(frame) // 3]])
    elif change == "huge":
        ds.Rows = ds.Columns = 30000
    else:
        raise ValueError(change)
    ds.save_as(path, enforce_file_format=True)
    return path
