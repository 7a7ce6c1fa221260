"""The receive path of one C-STORE: from the bytes a caller sent to a checked DICOM file, in bounded memory.

Before pydicom parses anything the node takes the object's encoded bytes as sent (pynetdicom's
``encoded_dataset``, never its decoded dataset). A deflated object (Deflated Explicit VR Little Endian) is
inflated here, by :func:`inflate_bounded`, never by pydicom: first its header, whose declared image size is
checked against the pixel budget of the file reader (:func:`skinnet.data.checks.check_size`), then at most the
bytes that header allows. A deflate bomb costs the node its budget, not its memory. The file reader itself
(:mod:`skinnet.data.dicom`) inflates deflated files without such a budget; the node never hands it one
(what it queues is stored inflated, as Explicit VR Little Endian).

:func:`check_header` refuses, with a one-line reason, what the node cannot segment (another SOP class, no
pixel data, several frames, monochrome, too big) before the pixels are decoded.
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

from skinnet.data.dicom import COLOUR_INTERPRETATIONS
from skinnet.data.io import InputError, check_size
from skinnet.node.config import ACCEPTED_SOP_CLASSES

DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
HEADER_BYTES = 1 << 20  # what is inflated first, to read the header: 1 MiB
HEADER_SLACK = 1 << 20  # what may follow the pixel data (trailing elements, padding)
PIXEL_DATA = 0x7FE00010

# DIMSE statuses of a refused C-STORE (PS3.4 Table B.2-1).
OUT_OF_RESOURCES = 0xA700
NOT_THE_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000


class Refused(Exception):
    """A received object the node does not take: the DIMSE status to answer and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def inflate_bounded(data: bytes, limit: int, budget: Any = None) -> bytes:
    """Inflate a raw deflate stream (PS3.5 A.5), refusing one that inflates past ``limit`` bytes.

    Args:
        data: the deflated bytes.
        limit: the most bytes the inflated object may have.
        budget: called with the first :data:`HEADER_BYTES` inflated bytes; returns a smaller limit for the
            whole (the header's declared pixels), or raises :class:`Refused`.

    Raises:
        Refused: not a deflate stream, or more than the limit (a deflate bomb).
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        head = inflater.decompress(data, HEADER_BYTES)
        if budget is not None:
            limit = min(limit, budget(head))
        rest = inflater.decompress(inflater.unconsumed_tail, max(limit - len(head), 0) + 1)
    except zlib.error as err:
        raise Refused(CANNOT_UNDERSTAND, f"corrupt deflated data ({err})") from err
    if len(head) + len(rest) > limit or inflater.unconsumed_tail:
        raise Refused(CANNOT_UNDERSTAND, f"deflated data inflates past {limit:,} bytes (refused as a possible "
                                         "decompression bomb)")
    return head + rest


def read_header(encoded: bytes, syntax: str) -> Any:
    """The dataset's elements before the pixel data (pydicom, without reading the pixels), every value parsed.

    Raises:
        Refused: a header pydicom cannot parse, or one that ends inside an element.
    """
    from pydicom.uid import UID

    uid = UID(syntax)
    ds = _parse_header(encoded, uid.is_implicit_VR, uid.is_little_endian)
    if isinstance(ds, Exception):
        raise Refused(CANNOT_UNDERSTAND, f"malformed DICOM header ({ds})")
    return ds


def _parse_header(encoded: bytes, implicit: bool, little: bool) -> Any:
    """The parsed header, or the exception that says why it is malformed."""
    from pydicom.filereader import read_dataset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns with values, which may be a patient's
            ds = read_dataset(io.BytesIO(encoded), implicit, little,
                              stop_when=lambda tag, vr, length: tag >= PIXEL_DATA)
            tags = list(ds.keys())
            if tags:  # pydicom keeps an element cut short by the end of the data: its value is too short
                raw = ds.get_item(tags[-1])
                length, value = getattr(raw, "length", None), getattr(raw, "value", None)
                if isinstance(value, bytes) and length not in (None, 0xFFFFFFFF) and len(value) < length:
                    return ValueError(f"element {tags[-1]} ends after {len(value)} of its {length} bytes")
            for element in ds:  # parse every value now: an unknown VR or a bad value raises here
                _ = element.value
    except Exception as err:  # hostile bytes fail pydicom's parser in many ways
        return ValueError(type(err).__name__)
    return ds


def declared_pixel_bytes(ds: Any) -> int:
    """The bytes of native pixel data the header declares."""
    values = [ds.get(name) for name in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated")]
    rows, columns, samples, bits = (int(v) if isinstance(v, int) else 0 for v in values)
    frames = ds.get("NumberOfFrames") or 1
    try:
        frames = max(int(frames), 1)
    except (TypeError, ValueError):
        frames = 1
    return rows * columns * max(samples, 1) * max(bits, 8) // 8 * frames


def check_header(ds: Any, sop_class: str, sop_instance: str) -> None:
    """Refuse, before decoding, an object the node does not segment.

    Args:
        ds: the header (:func:`read_header`).
        sop_class: the SOP class the caller's C-STORE request names.
        sop_instance: the SOP Instance UID it names.

    Raises:
        Refused: with the status and the reason.
    """
    if sop_class not in ACCEPTED_SOP_CLASSES:
        raise Refused(0x0122, f"SOP class {sop_class} is not segmented here")
    if str(ds.get("SOPInstanceUID", "")) != sop_instance or str(ds.get("SOPClassUID", "")) != sop_class:
        raise Refused(NOT_THE_SOP_CLASS, "the dataset's SOP Class or Instance UID differs from the request's")
    missing = [name for name in ("StudyInstanceUID", "SeriesInstanceUID") if not ds.get(name)]
    if missing:  # Type 1: the results go into the image's study and reference its series
        raise Refused(NOT_THE_SOP_CLASS, f"no {' or '.join(missing)}")
    frames = ds.get("NumberOfFrames") or 1
    if str(frames).strip() not in ("", "1"):
        raise Refused(CANNOT_UNDERSTAND, f"multi-frame image ({frames} frames): only single-frame images "
                                         "are segmented")
    interpretation = str(ds.get("PhotometricInterpretation", "")).strip()
    if interpretation not in COLOUR_INTERPRETATIONS:
        raise Refused(CANNOT_UNDERSTAND, f"{interpretation or 'no PhotometricInterpretation'}: a colour image "
                                         "is needed")
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if not isinstance(rows, int) or not isinstance(columns, int) or rows < 1 or columns < 1:
        raise Refused(NOT_THE_SOP_CLASS, "no image size (Rows, Columns)")
    try:
        check_size("image", columns, rows)
    except InputError as err:
        raise Refused(CANNOT_UNDERSTAND, err.reason) from err


# JPEG, JPEG-LS, JPEG 2000 and HTJ2K codestreams end with a two-byte marker: EOI (JPEG, JPEG-LS) or EOC
# (JPEG 2000), both FF D9. Decoders forgive a missing end (libjpeg greys out the rest), so it is checked here.
MARKER_ENDED = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
                "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")


def check_frame_end(ds: Any, syntax: str) -> None:
    """Refuse a JPEG-family frame without its end marker: cut short in transfer or on the modality.

    Args:
        ds: the dataset, with its (encapsulated) pixel data.
        syntax: its transfer syntax.

    Raises:
        Refused: the frame does not end with FF D9 (trailing zero padding aside).
    """
    if syntax not in MARKER_ENDED or "PixelData" not in ds:
        return
    from pydicom.encaps import generate_frames

    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as err:
        raise Refused(CANNOT_UNDERSTAND, f"corrupt encapsulated pixel data ({type(err).__name__})") from err
    if not frame.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise Refused(CANNOT_UNDERSTAND, f"truncated frame (no end marker after {len(frame):,} bytes)")


@dataclass(frozen=True)
class Received:
    """A checked object ready to be queued: its Part 10 bytes and what the logs name it by."""

    file: bytes
    sop_class: str
    sop_instance: str
    syntax: str


def part10(encoded: bytes, sop_class: str, sop_instance: str, syntax: str, caller: str) -> bytes:
    """A DICOM file (preamble, ``DICM``, File Meta Information) around a dataset's encoded bytes."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.SourceApplicationEntityTitle = caller
    buffer = io.BytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    buffer.write(encoded)
    return buffer.getvalue()


def receive(encoded: bytes, syntax: str, sop_class: str, sop_instance: str, caller: str,
            max_bytes: int) -> Received:
    """Inflate (bounded) and check one received dataset, and wrap it as a DICOM file.

    Args:
        encoded: the dataset as sent, in ``syntax``.
        syntax: the presentation context's transfer syntax.
        sop_class: the request's Affected SOP Class UID.
        sop_instance: the request's Affected SOP Instance UID.
        caller: the calling AE title (recorded in the file's meta information).
        max_bytes: the largest object accepted (inflated).

    Raises:
        Refused: see :func:`check_header` and :func:`inflate_bounded`.
    """
    if syntax == DEFLATED:
        def budget(head: bytes) -> int:
            ds = _header_or_none(head)
            if ds is None:  # a header longer than HEADER_BYTES: the node's own limit holds
                return max_bytes
            check_header(ds, sop_class, sop_instance)
            return declared_pixel_bytes(ds) + len(head) + HEADER_SLACK

        encoded, syntax = inflate_bounded(encoded, max_bytes, budget), EXPLICIT_LITTLE
    if len(encoded) > max_bytes:
        raise Refused(OUT_OF_RESOURCES, f"object of {len(encoded):,} bytes exceeds the limit of {max_bytes:,}")
    check_header(read_header(encoded, syntax), sop_class, sop_instance)
    return Received(part10(encoded, sop_class, sop_instance, syntax, caller), sop_class, sop_instance, syntax)


def _header_or_none(head: bytes) -> Any:
    """The header from the first inflated bytes, or ``None`` where they end inside it."""
    ds = _parse_header(head, False, True)
    if isinstance(ds, Exception) or (len(head) == HEADER_BYTES and "Rows" not in ds):
        return None
    return ds
