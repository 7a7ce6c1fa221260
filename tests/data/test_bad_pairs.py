"""Folders with missing, extra, duplicate and broken files: pairing and caching report, never crash."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinnet.data import io as skio
from skinnet.data.cache import load_cached_pairs
from skinnet.data.layout import LayoutError, find_images, find_pairs

SAMPLES = Path(skio.__file__).parents[1] / "sample_data"
IDS = sorted(path.stem for path in (SAMPLES / "images").glob("*.jpg"))[:4]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A data root with images/ and masks/ holding 4 real pairs."""
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    for key in IDS:
        shutil.copy(SAMPLES / "images" / f"{key}.jpg", tmp_path / "data" / "images")
        shutil.copy(SAMPLES / "masks" / f"{key}_segmentation.png", tmp_path / "data" / "masks")
    return tmp_path / "data"


def test_unpaired_and_duplicate_files_are_reported_and_left_out(root: Path) -> None:
    (root / "masks" / f"{IDS[0]}_segmentation.png").unlink()  # image without mask
    (root / "images" / f"{IDS[1]}.jpg").unlink()  # mask without image
    shutil.copy(root / "images" / f"{IDS[2]}.jpg", root / "images" / f"{IDS[2]}.png")  # duplicate image ID
    shutil.copy(root / "masks" / f"{IDS[3]}_segmentation.png", root / "masks" / f"{IDS[3]}.png")  # two masks
    found = find_pairs(root)
    assert found.ids == IDS[2:]
    assert [pair.image.name for pair in found.pairs] == [f"{IDS[2]}.jpg", f"{IDS[3]}.jpg"]
    problems = found.problems
    assert len(problems) == 4, problems
    expected = [(f"{IDS[0]}.jpg", "no mask"), (f"{IDS[1]}_segmentation.png", "mask without an image"),
                (f"{IDS[2]}.png", "duplicate ID"), (f"{IDS[3]}.png", "duplicate ID")]
    for name, reason in expected:
        assert any(f"/{name}: " in line and reason in line for line in problems), (name, problems)


@pytest.mark.parametrize("layout", ["empty root", "empty images and masks"])
def test_empty_folder_is_a_clear_error(layout: str, tmp_path: Path) -> None:
    if layout == "empty images and masks":
        (tmp_path / "images").mkdir()
        (tmp_path / "masks").mkdir()
    with pytest.raises(LayoutError, match="no image/mask pairs found"):
        find_pairs(tmp_path)


def test_find_images_refuses_inputs_without_any_image(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(LayoutError, match="no images found"):
        find_images([tmp_path])
    with pytest.raises(LayoutError, match="no such file or folder"):
        find_images([tmp_path / "absent"])


def test_cache_skips_bad_pairs_with_a_warning_naming_the_file(root: Path, tmp_path: Path) -> None:
    mask = np.asarray(Image.open(root / "masks" / f"{IDS[0]}_segmentation.png").convert("L"))
    Image.fromarray(mask[:128]).save(small := root / "masks" / f"{IDS[0]}_segmentation.png")  # wrong size
    Image.fromarray(mask // 255).save(zero_one := root / "masks" / f"{IDS[1]}_segmentation.png")
    (root / "images" / f"{IDS[2]}.jpg").write_bytes(b"")  # broken image
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cached = load_cached_pairs(find_pairs(root).pairs, 32, tmp_path / "cache")
    assert cached.ids == [IDS[3]]
    assert cached.images.shape == (1, 32, 32, 3) and cached.masks.shape == (1, 32, 32)
    messages = [str(warning.message) for warning in caught]
    assert any(str(small) in m and "mask is 256x128 but the image is 256x256" in m for m in messages)
    assert any(str(zero_one) in m and "0/1" in m for m in messages)
    assert any(f"{IDS[2]}.jpg" in m and "empty file" in m for m in messages)


def test_cache_refuses_when_no_pair_is_readable(root: Path, tmp_path: Path) -> None:
    for image in (root / "images").iterdir():
        image.write_text("not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LayoutError, match="none of the 4 image/mask pairs could be read"):
            load_cached_pairs(find_pairs(root).pairs, 32, tmp_path / "cache")


def test_exif_rotated_image_pairs_with_a_mask_in_displayed_orientation(root: Path, tmp_path: Path) -> None:
    image = Image.open(root / "images" / f"{IDS[0]}.jpg").convert("RGB").crop((0, 0, 256, 160))
    mask = np.asarray(Image.open(root / "masks" / f"{IDS[0]}_segmentation.png").convert("L"))[:160]
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90 degrees clockwise: 160 wide, 256 high
    image.save(root / "images" / f"{IDS[0]}.jpg", exif=exif, quality=95)
    Image.fromarray(np.rot90(mask, -1)).save(root / "masks" / f"{IDS[0]}_segmentation.png")
    Image.fromarray(mask).save(stored := root / "masks" / f"{IDS[1]}_segmentation.png")
    image.save(root / "images" / f"{IDS[1]}.jpg", exif=exif, quality=95)  # mask in stored orientation
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cached = load_cached_pairs(find_pairs(root).pairs, 32, tmp_path / "cache")
    assert IDS[0] in cached.ids and IDS[1] not in cached.ids
    assert any(str(stored) in str(w.message) and "displayed" in str(w.message) for w in caught)
