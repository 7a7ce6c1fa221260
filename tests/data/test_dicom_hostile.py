"""Malformed and hostile DICOM files built from real ISIC images: one line each, and bounded memory.

Every file starts as a good one from tests/dicom_factory.py and is damaged the way a broken sender or an
attacker would: attributes pydicom cannot convert or that are missing, transfer syntaxes it does not know,
a JPEG frame cut short, a deflate bomb, a million empty items. Memory is measured in a fresh process from
the kernel's peak-RSS counter (as tests/data/test_bad_images.py does for the other formats).
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import (
    cut_frame,
    deflated,
    edit_dicom,
    meta_bytes,
    palette_of,
    set_raw,
    split_file,
    upsample_422,
    with_transfer_syntax,
)
from PIL import Image

from skinnet.data.dicom import read_dicom
from skinnet.data.dicom_parse import MAX_DATASET_BYTES, MAX_READS
from skinnet.data.io import InputError, read_image

IMAGE = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images" / "ISIC_0000025.jpg"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return read_image(IMAGE)


def assert_one_line(path: Path, word: str) -> str:
    with pytest.raises(InputError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 400, message
    assert word in message, message
    return message


def _delete(keyword: str) -> Callable:
    return lambda ds: delattr(ds, keyword)


MALFORMED = {
    # name: (syntax of the good file, how it is damaged, a word of the one-line error)
    "NumberOfFrames abc": ("native", lambda ds: set_raw(ds, "NumberOfFrames", b"abc "), "'abc', not a whole"),
    "NumberOfFrames 1\\2": ("native", lambda ds: set_raw(ds, "NumberOfFrames", b"1\\2 "), "not a whole number"),
    "no BitsAllocated": ("native", _delete("BitsAllocated"), "without BitsAllocated (0028,0100)"),
    "no BitsStored": ("jpeg", _delete("BitsStored"), "without BitsStored"),
    "no Rows": ("native", _delete("Rows"), "without Rows (0028,0010)"),
    "no SamplesPerPixel": ("rle", _delete("SamplesPerPixel"), "without SamplesPerPixel"),
    "no PhotometricInterpretation": ("native", _delete("PhotometricInterpretation"), "unknown DICOM image"),
    "Rows of one byte": ("native", lambda ds: set_raw(ds, "Rows", b"\x01"), "Rows (0028,0010)"),
    "BitsAllocated 32": ("native", lambda ds: setattr(ds, "BitsAllocated", 32), "32 bits allocated"),
    "BitsStored 12 of 8": ("native", lambda ds: setattr(ds, "BitsStored", 12), "12 bits stored of 8"),
    "4 samples a pixel": ("native", lambda ds: setattr(ds, "SamplesPerPixel", 4), "4 samples per pixel"),
    "no PlanarConfiguration": ("native", _delete("PlanarConfiguration"), "without PlanarConfiguration"),
    "PlanarConfiguration 2": ("native", lambda ds: setattr(ds, "PlanarConfiguration", 2), "0 or 1 is read"),
    "a sequence for Columns": ("native", lambda ds: set_raw(ds, "Columns", b"\xfe\xff\x00\xe0"), "Columns"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_attributes_are_one_line_errors(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray,
                                                  name: str) -> None:
    syntax, damage, word = MALFORMED[name]
    path = edit_dicom(make_dicom(tmp_path / "case.dcm", rgb, syntax=syntax), damage)
    assert_one_line(path, word)


@pytest.mark.parametrize("uid, word", [
    # pydicom may know JPEG XL by name (once another library has registered it) but has no decoder for it
    ("1.2.840.10008.1.2.4.110", "JPEG XL Lossless"), ("1.2.840.10008.1.2.4.112", "JPEG XL"),
    ("1.2.840.10008.1.2.8.1", "Deflated Image Frame Compression"),
    ("1.2.3.4.5.6", "'1.2.3.4.5.6', which is not a transfer syntax pydicom knows"),
    ("1.2.840.10008.1.2.4.100", "MPEG2"),  # known to pydicom, no decoder
])
def test_unknown_and_undecodable_transfer_syntaxes(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray,
                                                   uid: str, word: str) -> None:
    path = with_transfer_syntax(make_dicom(tmp_path / "case.dcm", rgb, syntax="jpeg"), uid)
    assert_one_line(path, word)


def test_no_transfer_syntax_is_one_line(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray) -> None:
    preamble, meta, dataset = split_file(make_dicom(tmp_path / "case.dcm", rgb))
    del meta.TransferSyntaxUID
    (path := tmp_path / "nots.dcm").write_bytes(preamble + b"DICM" + meta_bytes(meta, enforce=False) + dataset)
    assert_one_line(path, "TransferSyntaxUID (0002,0010) is missing")


@pytest.mark.parametrize("syntax", ["jpeg", "jpeg-ls", "jpeg2000"])
def test_a_jpeg_frame_cut_short_is_refused_like_a_plain_jpeg(make_dicom: Callable, tmp_path: Path,
                                                            rgb: np.ndarray, syntax: str) -> None:
    import pydicom
    from pydicom.encaps import generate_frames

    whole = make_dicom(tmp_path / "whole.dcm", rgb, syntax=syntax)
    cut = cut_frame(whole, 0.5, tmp_path / "cut.dcm")
    # Every length in the file is right; only the frame is half of what it was.
    frame, full = (next(generate_frames(pydicom.dcmread(path).PixelData, number_of_frames=1))
                   for path in (cut, whole))
    assert abs(len(frame) - len(full) / 2) < 2
    assert_one_line(cut, "ends without its end-of-image marker")
    if syntax == "jpeg":  # the same bytes as a plain .jpg: refused too
        (plain := tmp_path / "cut.jpg").write_bytes(frame)
        assert_one_line(plain, "truncated")
    assert read_dicom(whole).pixels.shape == rgb.shape


def test_native_ybr_full_422_is_decoded_two_bytes_a_pixel(make_dicom: Callable, tmp_path: Path,
                                                          rgb: np.ndarray) -> None:
    import pydicom
    from pydicom.pixels import convert_color_space

    path = make_dicom(tmp_path / "case.dcm", rgb, photometric="YBR_FULL_422")
    assert len(pydicom.dcmread(path).PixelData) == rgb.shape[0] * rgb.shape[1] * 2
    pixels = read_dicom(path).pixels
    # The oracle: each pair's chroma on both pixels, then YCbCr to RGB by pydicom's formula.
    expected = convert_color_space(upsample_422(convert_color_space(rgb, "RGB", "YBR_FULL")), "YBR_FULL", "RGB")
    np.testing.assert_array_equal(pixels, expected)
    assert np.abs(pixels.astype(int) - rgb).mean() < 1  # halved chroma resolution only


def test_sixteen_bits_and_palette_colour(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray) -> None:
    np.testing.assert_array_equal(read_dicom(make_dicom(tmp_path / "a.dcm", rgb, bits=16)).pixels, rgb)
    indices, palette = palette_of(rgb)
    pixels = read_dicom(make_dicom(tmp_path / "b.dcm", rgb, photometric="PALETTE COLOR")).pixels
    np.testing.assert_array_equal(pixels, palette[indices])


def test_a_deflated_file_gives_the_same_pixels_and_identifiers(make_dicom: Callable, tmp_path: Path,
                                                               rgb: np.ndarray) -> None:
    plain = make_dicom(tmp_path / "plain.dcm", rgb)
    image = read_dicom(deflated(plain, tmp_path / "deflated.dcm"))
    np.testing.assert_array_equal(image.pixels, rgb)
    assert image.dataset.PatientID == read_dicom(plain).dataset.PatientID
    assert image.pixel_spacing_mm == (0.02, 0.02)
    # A large private element of the deflated dataset is skipped, never kept in the dataset.
    padded = read_dicom(deflated(plain, tmp_path / "padded.dcm", zeros=5 << 20))
    np.testing.assert_array_equal(padded.pixels, rgb)
    assert 0x00091010 not in padded.dataset


def test_damaged_deflate_streams_are_one_line(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray) -> None:
    data = deflated(make_dicom(tmp_path / "plain.dcm", rgb), tmp_path / "deflated.dcm").read_bytes()
    (cut := tmp_path / "cut.dcm").write_bytes(data[: len(data) - 2000])
    assert_one_line(cut, "ends early")
    head = len(data) - 3000
    (garbled := tmp_path / "garbled.dcm").write_bytes(data[:head] + bytes(b ^ 0x5A for b in data[head:]))
    assert_one_line(garbled, "DICOM")


def test_pixel_spacing_out_of_bounds_is_ignored_like_a_bad_user_value(make_dicom: Callable, tmp_path: Path,
                                                                      rgb: np.ndarray) -> None:
    for value in (b"1e308\\1e308 ", b"1e-300\\1e-30", b"0.02\\200 "):
        path = edit_dicom(make_dicom(tmp_path / "case.dcm", rgb),
                          lambda ds, v=value: set_raw(ds, "PixelSpacing", v))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = read_dicom(path)
        assert image.pixel_spacing_mm is None and image.spacing_source is None
        assert any("outside 0.0001 to 100 mm; ignored" in str(warning.message) for warning in caught)
    # A bad PixelSpacing does not hide a good ImagerPixelSpacing.
    path = make_dicom(tmp_path / "imager.dcm", rgb, spacing=(0.03, 0.03), spacing_attribute="ImagerPixelSpacing")
    edit_dicom(path, lambda ds: set_raw(ds, "PixelSpacing", b"1e308\\1e308 "))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = read_dicom(path)
    assert image.pixel_spacing_mm == (0.03, 0.03) and image.spacing_source == "ImagerPixelSpacing"


def _with_private_blob(source: Path, out: Path, blob: bytes) -> Path:
    """``source`` with private elements ``blob`` (group 0009, creator included) after group 0008."""
    from pydicom.filereader import read_dataset

    preamble, meta, dataset = split_file(source)
    stream = io.BytesIO(dataset)
    read_dataset(stream, False, True, stop_when=lambda tag, vr, length: tag.group > 8)
    creator = struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", 14) + b"SKINNET TESTS "
    out.write_bytes(preamble + b"DICM" + meta_bytes(meta) + dataset[: stream.tell()] + creator + blob +
                    dataset[stream.tell():])
    return out


PROBE = """
import json, sys, time
import numpy, pydicom, pydicom.pixels
from skinnet.data.dicom import read_dicom
from skinnet.data.io import InputError

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

try:
    with open("/proc/self/clear_refs", "w") as handle:  # restart the peak (VmHWM) from the current RSS
        handle.write("5")
except OSError:
    print(json.dumps({"unsupported": True}))
    sys.exit()
before, started = rss("VmHWM:"), time.perf_counter()
try:
    shape, error = list(read_dicom(sys.argv[1]).pixels.shape), None
except InputError as err:
    shape, error = None, str(err)
print(json.dumps({"peak": rss("VmHWM:") - before, "seconds": time.perf_counter() - started, "shape": shape,
                  "error": error}))
"""


def peak_of_reading(path: Path) -> dict:
    """Read ``path`` in a fresh process; its peak memory above the state before reading, in bytes."""
    result = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=ENV,
                            timeout=300, check=True)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    if probe.get("unsupported"):
        pytest.skip("this kernel cannot reset the peak-memory counter (/proc/self/clear_refs)")
    return probe


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory, rgb: np.ndarray) -> Path:
    """A 2 MB deflated DICOM whose private element inflates to 2 GiB of zeros (pydicom alone peaks past 4 GB)."""
    from dicom_factory import build_dicom

    folder = tmp_path_factory.mktemp("bomb")
    path = deflated(build_dicom(folder / "small.dcm", rgb), folder / "bomb.dcm", zeros=2 << 30)
    assert path.stat().st_size < 3_000_000
    return path


def test_a_deflate_bomb_is_refused_while_inflating_in_bounded_memory(bomb: Path) -> None:
    probe = peak_of_reading(bomb)
    assert probe["error"] and "refused as a possible decompression bomb" in probe["error"], probe
    assert f"more than {MAX_DATASET_BYTES:,} bytes" in probe["error"]
    assert probe["peak"] < 48 * 2**20, f"peak {probe['peak'] / 2**20:.0f} MiB"  # pydicom alone: over 4 GB


@pytest.mark.parametrize("kind", ["items", "elements"])
def test_a_million_empty_elements_are_refused_in_bounded_memory(make_dicom: Callable, tmp_path: Path,
                                                                 rgb: np.ndarray, kind: str) -> None:
    count = 1_000_000
    if kind == "items":  # one private sequence of empty items: a Python object each
        blob = (struct.pack("<HH2sHI", 0x0009, 0x1010, b"SQ", 0, 0xFFFFFFFF) +
                struct.pack("<HHI", 0xFFFE, 0xE000, 0) * count + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    else:  # empty private elements, 8 bytes each
        blob = b"".join(struct.pack("<HH2sH", 0x0009 + 2 * (i // 0xEF00), 0x1000 + i % 0xEF00, b"LO", 0)
                        for i in range(count))
    path = _with_private_blob(make_dicom(tmp_path / "case.dcm", rgb), tmp_path / "many.dcm", blob)
    probe = peak_of_reading(path)
    assert probe["error"] and f"more than {MAX_READS:,} elements, items and fragments" in probe["error"], probe
    assert probe["peak"] < 96 * 2**20, f"peak {probe['peak'] / 2**20:.0f} MiB"


@pytest.mark.slow
@pytest.mark.parametrize("encoding, limit", [
    # (how the image is stored, bytes a pixel it may cost): 1.5 GB at the largest image the limits allow,
    # 100 megapixels, or 60 for JPEG 2000 (benchmarks/dicom_memory.py measures those; docs/security.md).
    ({"photometric": "YBR_FULL_422"}, 15), ({"syntax": "jpeg"}, 15), ({"bits": 16}, 15), ({"deflate": True}, 15),
    ({"syntax": "jpeg2000"}, 25),
])
def test_reading_a_large_legal_file_stays_within_the_bound(make_dicom: Callable, tmp_path: Path,
                                                           encoding: dict, limit: int) -> None:
    width, height = 3000, 2000
    with Image.open(IMAGE) as image:
        photo = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR))
    options = {key: value for key, value in encoding.items() if key != "deflate"}
    path = make_dicom(tmp_path / "large.dcm", photo, **options)
    if encoding.get("deflate"):
        path = deflated(path, tmp_path / "deflated.dcm")
    probe = peak_of_reading(path)
    assert probe["error"] is None and probe["shape"] == [height, width, 3], probe
    assert probe["peak"] < limit * width * height, f"peak {probe['peak'] / 2**20:.0f} MiB"


def test_files_over_the_limits_are_refused_from_their_header(make_dicom: Callable, tmp_path: Path,
                                                             rgb: np.ndarray) -> None:
    def declare(rows: int, columns: int, bits: int = 8) -> Callable:
        def edit(ds) -> None:
            ds.Rows, ds.Columns = rows, columns
            if bits == 16:
                ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        return edit

    path = make_dicom(tmp_path / "case.dcm", rgb)
    assert_one_line(edit_dicom(path, declare(11_000, 11_000), tmp_path / "area.dcm"),
                    "exceeds the limit of 100,000,000")
    assert_one_line(edit_dicom(path, declare(7_000, 8_000, 16), tmp_path / "deep.dcm"),
                    "would decode to 336,000,000 bytes, more than the limit of 300,000,000")
    j2k = make_dicom(tmp_path / "j2k.dcm", rgb, syntax="jpeg2000")
    assert_one_line(edit_dicom(j2k, declare(8_000, 8_000), tmp_path / "big_j2k.dcm"),
                    "exceeds the limit of 60,000,000 for this transfer syntax")
