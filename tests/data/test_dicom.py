"""Reading DICOM images built from real ISIC images: every colour encoding, the pixel spacing, and bad files."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinnet.data.dicom import read_dicom
from skinnet.data.formats import is_dicom
from skinnet.data.io import InputError, read_dicom_only, read_image, read_source
from skinnet.data.layout import find_images

IMAGE = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images" / "ISIC_0000025.jpg"


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return read_image(IMAGE)


@pytest.mark.parametrize("syntax, photometric", [("native", "RGB"), ("native", "YBR_FULL"), ("rle", "RGB"),
                                                 ("jpeg-ls", "RGB"), ("jpeg2000", "RGB")])
def test_lossless_encodings_give_back_the_pixels(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray,
                                                 syntax: str, photometric: str) -> None:
    path = make_dicom(tmp_path / "case.dcm", rgb, syntax=syntax, photometric=photometric)
    image = read_dicom(path)
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == rgb.shape
    # YBR_FULL holds 8-bit YCbCr: converting there and back may move a level.
    assert np.abs(image.pixels.astype(int) - rgb).max() <= (1 if photometric == "YBR_FULL" else 0)
    assert image.pixel_spacing_mm == (0.02, 0.02) and image.spacing_source == "PixelSpacing"


def test_jpeg_baseline_ybr_full_422_is_converted_to_rgb(make_dicom: Callable, tmp_path: Path,
                                                        rgb: np.ndarray) -> None:
    import pydicom
    from pydicom.encaps import generate_frames

    path = make_dicom(tmp_path / "case.dcm", rgb, syntax="jpeg")
    image = read_dicom(path)
    # The oracle: Pillow decoding the JPEG stream stored in the file (it converts YCbCr to RGB itself).
    dataset = pydicom.dcmread(path)
    frame = next(generate_frames(dataset.PixelData, number_of_frames=1))
    expected = np.asarray(Image.open(io.BytesIO(frame)).convert("RGB")).astype(int)
    difference = np.abs(image.pixels.astype(int) - expected)  # decoders round the colour conversion apart
    assert difference.max() <= 4 and difference.mean() < 0.5
    # Left as YCbCr, the channels would be far off the photograph's.
    assert np.abs(image.pixels.astype(int) - rgb).mean() < 2


def test_spacing_attributes_and_order(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray) -> None:
    imager = read_dicom(make_dicom(tmp_path / "a.dcm", rgb, spacing=(0.03, 0.025),
                                   spacing_attribute="ImagerPixelSpacing"))
    assert imager.pixel_spacing_mm == (0.03, 0.025) and imager.spacing_source == "ImagerPixelSpacing"
    none = read_dicom(make_dicom(tmp_path / "b.dcm", rgb, spacing=None))
    assert none.pixel_spacing_mm is None and none.spacing_source is None


def test_dataset_keeps_identifiers_not_pixels(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray) -> None:
    from dicom_factory import PATIENT_ID, STUDY_ID

    dataset = read_dicom(make_dicom(tmp_path / "case.dcm", rgb, sop_class="dermoscopic")).dataset
    assert dataset.PatientID == PATIENT_ID and dataset.StudyID == STUDY_ID
    assert dataset.SOPClassUID.name == "Dermoscopic Photography Image Storage"
    assert "PixelData" not in dataset


def test_recognised_by_content_and_listed_in_folders(make_dicom: Callable, tmp_path: Path,
                                                     rgb: np.ndarray) -> None:
    plain = make_dicom(tmp_path / "IMG0001", rgb)  # DICOM files often have no extension
    named = make_dicom(tmp_path / "case.dcm", rgb)
    assert is_dicom(plain) and not is_dicom(IMAGE)
    np.testing.assert_array_equal(read_image(plain), rgb)  # read_image reads DICOM too (the Python API)
    source = read_source(named)
    assert source.pixel_spacing_mm == (0.02, 0.02) and source.dataset is not None
    jpeg = read_source(IMAGE)
    assert jpeg.pixel_spacing_mm is None and jpeg.dataset is None
    # In folders, .dcm files are images; a file given by name is read whatever its name.
    assert named in find_images([tmp_path]) and plain not in find_images([tmp_path])


def bad_files(make_dicom: Callable, folder: Path, rgb: np.ndarray) -> dict[str, tuple[Path, str]]:
    """Each kind of bad DICOM file, and a word its error must contain."""
    import pydicom

    files = {
        "multi-frame": (make_dicom(folder / "multi.dcm", rgb, frames=3), "multi-frame DICOM (3 frames)"),
        "monochrome": (make_dicom(folder / "mono.dcm", rgb, monochrome=True), "MONOCHROME2"),
    }
    whole = make_dicom(folder / "whole.dcm", rgb)
    dataset = pydicom.dcmread(whole)
    del dataset.PixelData
    dataset.save_as(folder / "nopixels.dcm")
    files["no pixel data"] = (folder / "nopixels.dcm", "no pixel data")
    data = whole.read_bytes()
    for cut in (140, 400, len(data) // 2, len(data) - 10):
        (folder / f"cut{cut}.dcm").write_bytes(data[:cut])
        files[f"native cut at {cut}"] = (folder / f"cut{cut}.dcm", "truncated")
    jpeg = make_dicom(folder / "jpeg.dcm", rgb, syntax="jpeg").read_bytes()
    for cut in (len(jpeg) // 2, len(jpeg) - 10):
        (folder / f"jcut{cut}.dcm").write_bytes(jpeg[:cut])
        files[f"jpeg cut at {cut}"] = (folder / f"jcut{cut}.dcm", "truncated")
    (folder / "empty.dcm").write_bytes(b"")
    files["empty"] = (folder / "empty.dcm", "empty file")
    (folder / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 300)
    files["garbage after the marker"] = (folder / "garbage.dcm", "DICOM")
    return files


def test_bad_files_get_one_line_errors_naming_them(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray) -> None:
    for kind, (path, word) in bad_files(make_dicom, tmp_path, rgb).items():
        with pytest.raises(InputError) as caught:
            read_image(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: "), kind
        assert "\n" not in message and len(message) < 400, (kind, message)
        assert word in message, (kind, message)


def test_dicom_only_reader_refuses_other_formats(make_dicom: Callable, tmp_path: Path, rgb: np.ndarray) -> None:
    with pytest.raises(InputError, match="not a DICOM file"):
        read_dicom_only(IMAGE)
    assert read_dicom_only(make_dicom(tmp_path / "case.dcm", rgb)).dataset is not None
