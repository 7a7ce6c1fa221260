"""The official ISIC 2017 folder layout and the shared training folder are read as pairs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from skinnet.data.layout import LayoutError, find_pairs


def make_official(root: Path, sample_data: Path, subset: str, ids: list[str]) -> None:
    images = root / f"ISIC-2017_{subset}_Data"
    masks = root / f"ISIC-2017_{subset}_Part1_GroundTruth"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for key in ids:
        shutil.copy(sample_data / "images" / f"{key}.jpg", images)
        shutil.copy(sample_data / "masks" / f"{key}_segmentation.png", masks)
        shutil.copy(sample_data / "masks" / f"{key}_segmentation.png", images / f"{key}_superpixels.png")
    (images / "ISIC-2017_Training_Data_metadata.csv").write_text("image_id,age\n")


def test_official_layout_pairs_by_id_and_ignores_superpixels(tmp_path: Path, sample_data: Path) -> None:
    ids = sorted(p.stem for p in (sample_data / "images").glob("*.jpg"))
    make_official(tmp_path, sample_data, "Training", ids[:6])
    make_official(tmp_path, sample_data, "Test_v2", ids[6:9])
    training = find_pairs(tmp_path)
    assert training.ids == ids[:6] and not training.problems
    assert all(p.mask.name == f"{p.id}_segmentation.png" for p in training.pairs)
    assert find_pairs(tmp_path, subset="Test_v2").ids == ids[6:9]
    with pytest.raises(LayoutError, match="found subsets: Training, Test_v2"):
        find_pairs(tmp_path, subset="Validation")


def test_flat_folder_pairs_images_with_their_segmentation_masks(tmp_path: Path, sample_data: Path) -> None:
    for key in ("ISIC_0000025", "ISIC_0000321"):
        shutil.copy(sample_data / "images" / f"{key}.jpg", tmp_path)
        shutil.copy(sample_data / "masks" / f"{key}_segmentation.png", tmp_path)
    assert find_pairs(tmp_path).ids == ["ISIC_0000025", "ISIC_0000321"]


def test_the_shared_training_folder_holds_2000_pairs(shared_train: Path) -> None:
    pairs = find_pairs(shared_train)
    assert len(pairs.pairs) == 2000 and not pairs.problems
