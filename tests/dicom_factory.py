"""DICOM test files built from real images: visible-light photographs as a dermatoscope or camera would store them.

Used through the ``make_dicom`` fixture (tests/conftest.py). pydicom writes the files; Pillow encodes the JPEG
and JPEG 2000 frames, pydicom's own encoders RLE and JPEG-LS (pyjpegls). The other functions damage a good
file the way a broken or hostile sender would: malformed attributes, transfer syntaxes pydicom does not know,
a frame cut short, a deflate bomb.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
                study_uid: str | None = None, frame_of_reference: bool = False, bits: int = 8) -> Path:
    """Write ``rgb`` (``uint8 (H, W, 3)``) as a single- or multi-frame DICOM image; returns the path.

    Args:
        path: the file to write.
        rgb: the pixels.
        syntax: transfer syntax: ``native`` (explicit VR little endian), ``jpeg`` (baseline, YBR_FULL_422),
            ``rle``, ``jpeg-ls`` (lossless) or ``jpeg2000`` (lossless, YBR_RCT).
        photometric: for native and RLE data: ``RGB`` or ``YBR_FULL`` (the pixels are converted to it); for
            native data also ``YBR_FULL_422`` (2 bytes a pixel: Y Y Cb Cr for each pair of columns, the
            chroma of a pair averaged) and ``PALETTE COLOR`` (the pixels reduced to 256 colours,
            :func:`palette_of`).
        spacing: ``(row, column)`` mm, or ``None`` for none.
        spacing_attribute: ``PixelSpacing`` or ``ImagerPixelSpacing``.
        frames: frames of the same picture.
        monochrome: store the green channel alone as MONOCHROME2.
        sop_class: ``vl``, ``dermoscopic``, ``microscopic`` or ``sc`` (Secondary Capture).
        study_uid: the Study Instance UID (default: a new one).
        frame_of_reference: give the image a Frame of Reference (FrameOfReferenceUID), as some cameras and
            Secondary Capture converters do.
        bits: 8, or 16 for native RGB or YBR_FULL data (each 8-bit value ``v`` stored as ``257 v``).
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
    if frame_of_reference:
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = generate_uid(), ""
    if frames > 1:
        ds.NumberOfFrames = frames
    if monochrome:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = np.stack([rgb[..., 1]] * frames).tobytes()
    elif photometric == "PALETTE COLOR":  # 8-bit indices into 16-bit lookup tables of 256 entries
        indices, palette = palette_of(rgb)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        tables = palette.T.astype("<u2") * np.uint16(257)
        for colour, channel in zip(("Red", "Green", "Blue"), tables, strict=True):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{colour}PaletteColorLookupTableData", channel.tobytes())
        ds.PixelData = np.stack([indices] * frames).tobytes()
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
        stored = rgb if photometric == "RGB" else convert_color_space(rgb, "RGB", "YBR_FULL")
        stored = np.stack([stored] * frames) if frames > 1 else stored
        if bits == 16:
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
            stored = stored.astype("<u2") * np.uint16(257)
        ds.PixelData = subsample_422(stored).tobytes() if photometric == "YBR_FULL_422" else stored.tobytes()
        if syntax in ("rle", "jpeg-ls"):
            ds.compress(RLELossless if syntax == "rle" else JPEGLSLossless, stored)
        elif syntax != "native":
            raise ValueError(f"unknown syntax {syntax!r}; one of {SYNTAXES}")
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def palette_of(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` reduced to 256 colours (Pillow's median cut): ``(uint8 indices (H, W), uint8 palette (256, 3))``;
    ``palette[indices]`` is the image a PALETTE COLOR file of them shows."""
    quantized = Image.fromarray(rgb).quantize(256)
    palette = np.zeros((256, 3), np.uint8)
    colours = np.asarray(quantized.getpalette(), np.uint8).reshape(-1, 3)[:256]
    palette[: len(colours)] = colours
    return np.asarray(quantized), palette


def subsample_422(ybr: np.ndarray) -> np.ndarray:
    """YBR_FULL ``(..., H, W, 3)`` as native YBR_FULL_422 samples: ``Y0 Y1 Cb Cr`` for each pair of columns
    (PS3.3 C.7.6.3.1.2), the pair's chroma averaged; ``(..., H, W / 2, 4)`` uint8."""
    pairs = ybr.reshape(*ybr.shape[:-2], ybr.shape[-2] // 2, 2, 3).astype(np.uint16)
    chroma = (pairs[..., 0, 1:] + pairs[..., 1, 1:] + 1) // 2
    return np.concatenate([pairs[..., 0, :1], pairs[..., 1, :1], chroma], axis=-1).astype(np.uint8)


def upsample_422(ybr: np.ndarray) -> np.ndarray:
    """What a reader makes of :func:`subsample_422`'s samples of ``ybr``: each pair's chroma on both pixels."""
    packed = subsample_422(ybr)
    out = np.empty_like(ybr)
    out[..., 0::2, 0], out[..., 1::2, 0] = packed[..., 0], packed[..., 1]
    out[..., 0::2, 1:] = out[..., 1::2, 1:] = packed[..., 2:]
    return out


def edit_dicom(path: str | Path, edit: Callable[[Any], None], out: str | Path | None = None) -> Path:
    """Read ``path``, apply ``edit(dataset)``, write it to ``out`` (default: in place); returns what it wrote."""
    import pydicom

    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(out or path)
    return Path(out or path)


def set_raw(ds: Any, keyword: str, value: bytes) -> None:
    """Store ``value`` as the raw bytes of ``keyword``'s element, unchecked (e.g. ``b"abc "`` for
    NumberOfFrames, which pydicom itself would refuse to set)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def split_file(path: Path) -> tuple[bytes, Any, bytes]:
    """A Part 10 file's preamble, its file meta information (a dataset) and its dataset's bytes as stored."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset

    data = Path(path).read_bytes()
    stream = io.BytesIO(data)
    stream.seek(132)
    meta = FileMetaDataset(read_dataset(stream, False, True, stop_when=lambda tag, vr, length: tag.group != 2))
    return data[:128], meta, data[stream.tell():]


def meta_bytes(meta: Any, enforce: bool = True) -> bytes:
    """File meta information as stored after ``DICM``; ``enforce=False`` writes it without the checks (and
    the group length) of a conformant one."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_file_meta_info(buffer, meta, enforce_standard=enforce)
    return buffer.getvalue()


def with_transfer_syntax(path: str | Path, uid: str, out: str | Path | None = None) -> Path:
    """``path`` with another TransferSyntaxUID in its file meta information and its dataset's bytes unchanged
    (pydicom refuses to write a UID it does not know, e.g. JPEG XL's)."""
    preamble, meta, dataset = split_file(Path(path))
    meta.TransferSyntaxUID = uid
    Path(out or path).write_bytes(preamble + b"DICM" + meta_bytes(meta) + dataset)
    return Path(out or path)


def deflated(path: str | Path, out: str | Path, zeros: int = 0) -> Path:
    """``path`` (Explicit VR Little Endian) as Deflated Explicit VR Little Endian, with ``zeros`` bytes of a
    private OB element (0009,1010) of zeros in front of the standard attributes when asked: a deflate bomb.

    The zeros are compressed a MiB at a time with a full flush after each, so that every MiB gives the same
    bytes: a 2 GiB element takes 2 MB of file and a few milliseconds to write.
    """
    from pydicom.filereader import read_dataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    preamble, meta, dataset = split_file(Path(path))
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    stream = io.BytesIO(dataset)  # the private group 0009 goes after group 0008, before everything else
    read_dataset(stream, False, True, stop_when=lambda tag, vr, length: tag.group > 8)
    head, tail = dataset[: stream.tell()], dataset[stream.tell():]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [compressor.compress(head)]
    if zeros:
        creator = b"SKINNET TESTS "
        parts.append(compressor.compress(struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", len(creator)) + creator +
                                         struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, zeros)))
        parts.append(compressor.flush(zlib.Z_FULL_FLUSH))
        mebibyte = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
        parts.append(mebibyte * (zeros >> 20))
        parts.append(compressor.compress(bytes(zeros & ((1 << 20) - 1))))
    parts.append(compressor.compress(tail) + compressor.flush())
    Path(out).write_bytes(preamble + b"DICM" + meta_bytes(meta) + b"".join(parts))
    return Path(out)


def cut_frame(path: str | Path, keep: float, out: str | Path | None = None) -> Path:
    """``path`` (compressed) with its frame cut to the first ``keep`` of its bytes, re-encapsulated so that
    every length in the file is right: only the frame itself is incomplete."""
    from pydicom.encaps import encapsulate, generate_frames

    def cut(ds: Any) -> None:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        ds.PixelData = encapsulate([frame[: int(len(frame) * keep) & ~1]])

    return edit_dicom(path, cut, out)
