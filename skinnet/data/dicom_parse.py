"""Parsing a DICOM file with pydicom within bounds: the dataset's size, the number of reads, cut-off files.

Memory is bounded before pydicom sees the bytes, whatever the file holds (docs/security.md). This module
parses a file within these limits; :mod:`skinnet.data.dicom` checks and decodes what it returns:

* the dataset, as stored or inflated, is at most :data:`MAX_DATASET_BYTES`; a deflated one is measured by
  inflating it with its output discarded (:mod:`skinnet.data.inflate`), so a deflate bomb is refused having
  cost a second of CPU and no memory;
* pydicom reads it with values over :data:`DEFER_SIZE` deferred (large private data is never loaded) and
  may read at most :data:`MAX_READS` times (every element, item and fragment takes a read: a file of a
  million empty elements would otherwise take gigabytes as Python objects);
* a file that ends inside an element, which pydicom keeps as far as it read, is refused (:func:`cut_off`).

Each problem is an :class:`~skinnet.data.checks.InputError` naming the file; :data:`MAX_READS` exceeded is
:class:`TooManyReads`, which :func:`skinnet.data.dicom.read_dicom` words.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, BinaryIO

from skinnet.data.checks import MAX_PIXELS, InputError
from skinnet.data.inflate import InflateError, inflate

# The decoded samples of the largest image read: 100 megapixels of 3 samples at 8 bits (50 at 16).
MAX_PIXEL_BYTES = 3 * MAX_PIXELS
# The dataset as stored or inflated: those pixels (native) and 16 MiB of attributes.
MAX_DATASET_BYTES = MAX_PIXEL_BYTES + (16 << 20)
# Values larger than this are not read while parsing; the pixel data is read when decoded.
DEFER_SIZE = 1 << 16
# Reads the parser may make: a photograph's header takes a few hundred. Bounds the parsed attributes (at most
# about 25 MB of Python objects and 3 s).
MAX_READS = 100_000
# Transfer syntaxes newer than pydicom 3.0, named in the refusal.
UNSUPPORTED_SYNTAXES = {"1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
                        "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
                        "1.2.840.10008.1.2.4.112": "JPEG XL",
                        "1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression"}


class TooManyReads(Exception):
    """The parser read more elements, items and fragments than :data:`MAX_READS`."""


class CountedReads:
    """A binary file whose :meth:`read` may be called at most ``reads`` times (see :data:`MAX_READS`)."""

    def __init__(self, raw: BinaryIO, reads: int) -> None:
        self.raw, self.left = raw, reads
        self.name = getattr(raw, "name", None)

    def read(self, size: int = -1) -> bytes:
        self.left -= 1
        if self.left < 0:
            raise TooManyReads
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


def file_meta(path: Path, fp: CountedReads, end: int) -> tuple[Any, Any]:
    """The file meta information (group 0002, after the preamble) and the dataset's transfer syntax.

    Raises:
        InputError: no or an unknown transfer syntax (pydicom would guess the encoding, then fail deep down).
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset

    fp.seek(132)
    meta = FileMetaDataset(read_dataset(fp, False, True, stop_when=lambda tag, vr, length: tag.group != 2))
    syntax = meta.get("TransferSyntaxUID")
    if syntax is None:
        if fp.tell() >= end:
            raise InputError(path, "truncated DICOM file: it ends inside its file meta information")
        raise InputError(path, "DICOM file without a transfer syntax (TransferSyntaxUID (0002,0010) is missing "
                               "from its file meta information)")
    uid = str(syntax).strip()
    if not syntax.is_transfer_syntax:
        known = UNSUPPORTED_SYNTAXES.get(uid)
        what = f"{uid} ({known})" if known else f"{uid[:64]!r}, which is not a transfer syntax pydicom knows"
        raise InputError(path, f"cannot read the DICOM transfer syntax {what}; convert the file to uncompressed, "
                               "JPEG, JPEG-LS, JPEG 2000 or RLE pixel data")
    return meta, syntax


def parse_dataset(path: Path, handle: BinaryIO, size: int) -> Any:
    """Parse the file within the limits (see the module docstring): its dataset, large values deferred.

    Raises:
        InputError: the limits are exceeded, or the file is cut short or unreadable.
    """
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    preamble = handle.read(128)
    counted = CountedReads(handle, MAX_READS)
    meta, syntax = file_meta(path, counted, size)
    start = handle.tell()
    if syntax == DeflatedExplicitVRLittleEndian:
        try:
            source: BinaryIO = inflate(handle, MAX_DATASET_BYTES)
        except InflateError as err:
            if err.too_large:
                raise InputError(path, f"deflated DICOM dataset inflates to more than {MAX_DATASET_BYTES:,} bytes "
                                       "(refused as a possible decompression bomb)") from err
            raise InputError(path, f"truncated or corrupt DICOM file: {err}") from err
        end = source.seek(0, 2)
        source.seek(0)
        implicit, little = False, True
    else:
        if size - start > MAX_DATASET_BYTES:
            raise InputError(path, f"DICOM dataset of {size - start:,} bytes, more than the limit of "
                                   f"{MAX_DATASET_BYTES:,}")
        source, end = handle, size
        implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
    counted = CountedReads(source, counted.left)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # pydicom warns, rather than fails, when the file ends early
        dataset = read_dataset(counted, implicit, little, defer_size=DEFER_SIZE)
    ds = FileDataset(source, dataset, preamble, meta, implicit, little)
    ds.set_original_encoding(implicit, little, dataset.original_character_set)
    if cut_off(ds, end, any("End of file" in str(warning.message) for warning in caught)):
        raise InputError(path, "truncated or corrupt DICOM file: it ends inside an element, before the pixel data "
                               "is complete")
    return ds


def cut_off(ds: Any, end: int, warned: bool) -> bool:
    """Whether the file ended inside an element: pydicom keeps what it read and at most warns.

    Args:
        ds: the dataset as read (elements not yet accessed are still raw, with their declared length;
            deferred ones have no value yet).
        end: the size of what was parsed (the file, or the inflated dataset).
        warned: pydicom warned that the file ended before a sequence or item delimiter.
    """
    tags = list(ds.keys())
    if warned or not tags:
        return True
    last = ds.get_item(tags[-1], keep_deferred=True)  # the element being read when the file ended, if it did
    length, value = getattr(last, "length", None), getattr(last, "value", None)
    if length is None or length == 0xFFFFFFFF:
        return False
    if value is None and length:  # deferred: its bytes were skipped, not read
        return last.value_tell + length > end
    return isinstance(value, bytes) and len(value) < length


def drop_deferred(ds: Any) -> None:
    """Remove the values never read (large private data, an ICC profile): the file they would be read from
    may be gone (an upload) or in memory (an inflated dataset), and nothing downstream needs them."""
    for tag in list(ds.keys()):
        element = ds.get_item(tag, keep_deferred=True)
        if getattr(element, "value", True) is None and getattr(element, "length", 0):
            del ds[tag]
    ds.buffer = None
    ds.filename = None
