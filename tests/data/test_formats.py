"""Only the accepted formats are ever decoded, and an image's sides are bounded as well as its area."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from skinnet.cli import main
from skinnet.data import io as skio
from skinnet.data.checks import MAX_ASPECT, MAX_SIDE
from skinnet.data.io import InputError, read_image, read_mask

SAMPLES = Path(skio.__file__).parents[1] / "sample_data"
SAMPLE_IMAGE = sorted((SAMPLES / "images").glob("*.jpg"))[0]
# A real PostScript program (draws a line): Pillow would hand it to Ghostscript if it were allowed to.
POSTSCRIPT = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
              b"newpath 8 8 moveto 56 56 lineto 4 setlinewidth stroke\nshowpage\n%%EOF\n")


@pytest.fixture()
def no_postscript_decoder(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any use of Pillow's PostScript reader: the refusal must come before any decoder runs."""
    calls: list[str] = []

    def record(self: EpsImagePlugin.EpsImageFile) -> None:
        calls.append("EpsImageFile._open")
        raise SyntaxError("the PostScript reader ran")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", record)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append("Ghostscript"))
    return calls


def test_without_the_allow_list_pillow_would_read_postscript(tmp_path: Path,
                                                            no_postscript_decoder: list[str]) -> None:
    # The control: the bytes really are PostScript to Pillow, so the refusal below is the allow-list's doing.
    (path := tmp_path / "lesion.jpg").write_bytes(POSTSCRIPT)
    with pytest.raises(Exception):  # noqa: B017 - the recorder makes the reader fail; that it ran is the point
        Image.open(path)
    assert no_postscript_decoder == ["EpsImageFile._open"]


@pytest.mark.parametrize("reader", [read_image, read_mask])
def test_postscript_named_jpg_is_refused_before_any_decoder(tmp_path: Path, no_postscript_decoder: list[str],
                                                            reader) -> None:
    (path := tmp_path / "lesion.jpg").write_bytes(POSTSCRIPT)
    with pytest.raises(InputError) as caught:
        reader(path)
    assert str(caught.value) == (f"{path}: not a readable image: the file is PostScript, not one of the accepted "
                                 "formats (JPEG, PNG, TIFF, BMP, WebP or DICOM)")
    assert no_postscript_decoder == []


def test_other_formats_pillow_knows_are_refused(tmp_path: Path) -> None:
    photo = Image.open(SAMPLE_IMAGE).convert("RGB")
    for fmt, name in (("GIF", "GIF"), ("PDF", "PDF"), ("ICO", "ICO"), ("PPM", None)):
        buffer = io.BytesIO()
        photo.save(buffer, fmt)
        (path := tmp_path / f"as_{fmt.lower()}.png").write_bytes(buffer.getvalue())
        with pytest.raises(InputError, match="not a readable image") as caught:
            read_image(path)
        assert (f"the file is {name}," in str(caught.value)) if name else "JPEG, PNG, TIFF" in str(caught.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "BMP", "WEBP"])
def test_each_accepted_format_is_read(tmp_path: Path, fmt: str) -> None:
    photo = Image.open(SAMPLE_IMAGE).convert("RGB")
    photo.save(path := tmp_path / f"lesion.{fmt.lower()}", fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    image = read_image(path)
    assert image.shape == (photo.height, photo.width, 3)
    if fmt != "JPEG":
        assert np.array_equal(image, np.asarray(photo))


@pytest.mark.parametrize(("size", "reason"), [
    ((2, 2_000_000), f"a side is longer than the limit of {MAX_SIDE:,} pixels"),
    ((MAX_SIDE + 1, 4000), f"a side is longer than the limit of {MAX_SIDE:,} pixels"),
    ((100, 100 * MAX_ASPECT + 1), f"more than {MAX_ASPECT} times as long as it is wide"),
])
def test_tall_and_long_pngs_are_refused_before_decoding(tmp_path: Path, size: tuple[int, int],
                                                        reason: str) -> None:
    Image.new("1", size).save(path := tmp_path / "tall.png")  # a few kB, however many pixels
    assert path.stat().st_size < 300_000
    with pytest.raises(InputError, match=reason) as caught:
        read_image(path)
    assert str(caught.value).startswith(f"{path}: image of {size[0]}x{size[1]} pixels")


def test_the_widest_allowed_shape_is_read(tmp_path: Path) -> None:
    Image.new("L", (100 * MAX_ASPECT, 100), 200).save(path := tmp_path / "wide.png")
    assert read_image(path).shape == (100, 100 * MAX_ASPECT, 3)


def test_cli_predict_refuses_postscript_and_goes_on(tmp_path: Path, no_postscript_decoder: list[str],
                                                    capsys: pytest.CaptureFixture[str], tiny_model: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "lesion.jpg").write_bytes(POSTSCRIPT)
    (images / "good.jpg").write_bytes(SAMPLE_IMAGE.read_bytes())
    out = tmp_path / "out"
    assert main(["predict", str(images), "--out", str(out), "--model", str(tiny_model), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "1 file(s) failed" in err
    assert f"{images / 'lesion.jpg'}: not a readable image: the file is PostScript" in err
    assert (out / "good_segmentation.png").is_file() and not (out / "lesion_segmentation.png").exists()
    assert no_postscript_decoder == []
