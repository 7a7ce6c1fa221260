"""Reading real images in every awkward form: each is either read correctly or refused in one clear line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinnet.data import checks
from skinnet.data import io as skio
from skinnet.data.io import InputError, read_image

SAMPLES = Path(skio.__file__).parents[1] / "sample_data"
SAMPLE_IMAGE = sorted((SAMPLES / "images").glob("*.jpg"))[0]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A real ISIC image, 256x256 RGB."""
    with Image.open(SAMPLE_IMAGE) as image:
        return image.convert("RGB")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _truncated_jpeg(folder: Path, photo: Image.Image) -> Path:
    data = SAMPLE_IMAGE.read_bytes()
    (path := folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return path


def _truncated_png(folder: Path, photo: Image.Image) -> Path:
    data = _png_bytes(photo)
    (path := folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return path


def _corrupt_jpeg_header(folder: Path, photo: Image.Image) -> Path:
    data = bytearray(SAMPLE_IMAGE.read_bytes())
    frame = data.index(b"\xff\xc0")  # start-of-frame: zero its height and width
    data[frame + 5: frame + 9] = bytes(4)
    (path := folder / "corrupt_header.jpg").write_bytes(bytes(data))
    return path


def _corrupt_png_data(folder: Path, photo: Image.Image) -> Path:
    data = bytearray(_png_bytes(photo))
    data[data.index(b"IDAT") + 100] ^= 0xFF  # damage the compressed pixels
    (path := folder / "corrupt_data.png").write_bytes(bytes(data))
    return path


def _zero_bytes(folder: Path, photo: Image.Image) -> Path:
    (path := folder / "empty.jpg").write_bytes(b"")
    return path


def _text_as_jpeg(folder: Path, photo: Image.Image) -> Path:
    (path := folder / "notes.jpg").write_text("patient notes, not an image\n")
    return path


def _pdf_as_png(folder: Path, photo: Image.Image) -> Path:
    (path := folder / "report.png").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    return path


def _directory(folder: Path, photo: Image.Image) -> Path:
    (path := folder / "folder.jpg").mkdir()
    return path


def _missing(folder: Path, photo: Image.Image) -> Path:
    return folder / "missing.jpg"


def _bomb(folder: Path, photo: Image.Image) -> Path:
    # A real 20000x20000 1-bit PNG: 400 megapixels in about 50 kB.
    Image.new("1", (20_000, 20_000)).save(path := folder / "bomb.png")
    return path


def _over_limit(folder: Path, photo: Image.Image) -> Path:
    # 144 megapixels: over MAX_PIXELS, under PIL's own hard limit, so it is our check that refuses it.
    Image.new("P", (12_000, 12_000)).save(path := folder / "over_limit.png")
    return path


BAD_FILES: dict[str, tuple[Callable[[Path, Image.Image], Path], str]] = {
    "truncated jpeg": (_truncated_jpeg, "truncated"),
    "truncated png": (_truncated_png, "truncated"),
    "corrupt jpeg header": (_corrupt_jpeg_header, "not a readable image"),
    "corrupt png data": (_corrupt_png_data, "corrupt"),
    "zero bytes": (_zero_bytes, "empty file (0 bytes)"),
    "text with .jpg": (_text_as_jpeg, "not a readable image"),
    "pdf with .png": (_pdf_as_png, "not a readable image"),
    "directory": (_directory, "is a directory"),
    "missing": (_missing, "no such file"),
    "decompression bomb": (_bomb, "decompression bomb"),
    "over the pixel limit": (_over_limit, "12000x12000 pixels exceeds the limit"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_gives_one_line_error_naming_file_and_reason(
        case: str, tmp_path: Path, photo: Image.Image) -> None:
    make, reason = BAD_FILES[case]
    path = make(tmp_path, photo)
    with pytest.raises(InputError) as info:
        read_image(path)
    message = str(info.value)
    assert info.value.path == path
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert "\n" not in message


def test_sample_jpeg_reads_as_rgb_uint8(photo: Image.Image) -> None:
    image = read_image(SAMPLE_IMAGE)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert np.array_equal(image, np.asarray(photo))
    assert image.flags.writeable  # callers may normalise in place


def test_grayscale_is_replicated_to_three_channels(tmp_path: Path, photo: Image.Image) -> None:
    gray = photo.convert("L")
    gray.save(path := tmp_path / "gray.png")
    image = read_image(path)
    assert image.shape == (256, 256, 3)
    for channel in range(3):
        assert np.array_equal(image[..., channel], np.asarray(gray))


def test_rgba_drops_alpha_onto_black(tmp_path: Path, photo: Image.Image) -> None:
    rgba = photo.convert("RGBA")
    alpha = np.full((256, 256), 255, np.uint8)
    alpha[:, :64] = 0  # a transparent stripe on the left
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(path := tmp_path / "rgba.png")
    image = read_image(path)
    assert np.array_equal(image[:, 64:], np.asarray(photo)[:, 64:])
    assert not image[:, :64].any()


def test_palette_image_is_expanded(tmp_path: Path, photo: Image.Image) -> None:
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.save(path := tmp_path / "palette.png")
    assert np.array_equal(read_image(path), np.asarray(palette.convert("RGB")))


def test_cmyk_jpeg_comes_back_close_to_the_rgb_original(tmp_path: Path, photo: Image.Image) -> None:
    photo.convert("CMYK").save(path := tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as opened:
        assert opened.mode == "CMYK"
    difference = np.abs(read_image(path).astype(int) - np.asarray(photo).astype(int))
    assert difference.mean() < 3 and difference.max() < 40


def test_16_bit_png_is_scaled_to_8_bits(tmp_path: Path, photo: Image.Image) -> None:
    gray = np.asarray(photo.convert("L"))
    Image.fromarray(gray.astype(np.uint16) * 257).save(path := tmp_path / "deep.png")
    with Image.open(path) as opened:
        assert opened.mode == "I;16"
    image = read_image(path)
    assert image.dtype == np.uint8
    assert np.array_equal(image[..., 0], gray)  # 257 * v scales back to exactly v


@pytest.mark.parametrize(("orientation", "turns"), [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_gives_the_displayed_image(
        orientation: int, turns: int, tmp_path: Path, photo: Image.Image) -> None:
    stored = photo.crop((0, 0, 256, 160))  # not square, so a missed rotation shows in the shape
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path := tmp_path / f"exif{orientation}.jpg", exif=exif, quality=95)
    with Image.open(path) as opened:
        decoded = np.asarray(opened.convert("RGB"))  # the stored pixels, not yet turned
    expected = np.rot90(decoded, turns)  # np.rot90 turns counter-clockwise for positive k
    image = read_image(path)
    assert image.shape == expected.shape
    assert np.array_equal(image, expected)


def test_pil_warning_threshold_does_not_refuse_a_legal_image(
        tmp_path: Path, photo: Image.Image, monkeypatch: pytest.MonkeyPatch) -> None:
    # PIL warns from Image.MAX_IMAGE_PIXELS on; only our MAX_PIXELS may refuse an image.
    photo.resize((40, 40)).save(path := tmp_path / "legal.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert read_image(path).shape == (40, 40, 3)
    monkeypatch.setattr(checks, "MAX_PIXELS", 1000)
    with pytest.raises(InputError, match="40x40 pixels exceeds the limit of 1,000"):
        read_image(path)


MEMORY_PROBE = """
import json, sys
from skinnet.data.io import InputError, read_image

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

try:
    with open("/proc/self/clear_refs", "w") as handle:  # restart the peak (VmHWM) from the current RSS
        handle.write("5")
except OSError:
    print(json.dumps({"unsupported": True}))
    sys.exit()
before = rss("VmHWM:")
try:
    shape, error = list(read_image(sys.argv[1]).shape), None
except InputError as err:
    shape, error = None, str(err)
print(json.dumps({"peak": rss("VmHWM:") - before, "shape": shape, "error": error}))
"""


def _peak_memory_of_reading(path: Path) -> dict:
    """Read ``path`` in a fresh process; its peak memory above the state before reading, in bytes."""
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True,
                            env=ENV, timeout=120, check=True)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    if probe.get("unsupported"):
        pytest.skip("this kernel cannot reset the peak-memory counter (/proc/self/clear_refs)")
    return probe


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path, photo: Image.Image) -> None:
    probe = _peak_memory_of_reading(_bomb(tmp_path, photo))
    assert probe["error"] and "decompression bomb" in probe["error"]
    assert probe["peak"] < 30 * 2**20  # decoding would need 400 MB at 1 byte a pixel



def test_huge_legal_image_is_read_in_bounded_memory(tmp_path: Path, photo: Image.Image) -> None:
    # 30 megapixels, the largest ISIC 2017 originals. PIL holds RGB at 4 bytes a pixel and the result
    # takes 3: a bound of 9 bytes a pixel leaves room for one strip, but not for whole-image copies.
    width, height = 6000, 5000
    photo.resize((width, height)).save(path := tmp_path / "huge.jpg", quality=80)
    probe = _peak_memory_of_reading(path)
    assert probe["error"] is None and probe["shape"] == [height, width, 3]
    assert probe["peak"] < 9 * width * height, f"peak {probe['peak'] / 2**20:.0f} MiB"
