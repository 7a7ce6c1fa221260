"""Finding image/mask pairs on disk: the official ISIC 2017 layout or any two folders matched by ID.

Supported layouts of a data root:

- official ISIC 2017: ``ISIC-2017_{Training,Validation,Test_v2}_Data/`` with
  ``ISIC-2017_{...}_Part1_GroundTruth/`` (superpixel files and metadata CSVs ignored);
- ``images/`` and ``masks/`` folders side by side;
- one flat folder holding both ``X.jpg`` and ``X_segmentation.png``.

An image ``X.<ext>`` pairs with the mask ``X_segmentation.png`` (or ``X.png`` in a separate mask folder).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from skinnet.data.checks import InputError
from skinnet.data.formats import IMAGE_SUFFIXES

MASK_SUFFIX = "_segmentation"
IGNORED_SUFFIXES = ("_superpixels", MASK_SUFFIX)
ISIC_SUBSETS = ("Training", "Validation", "Test_v2")


class LayoutError(ValueError):
    """A data folder whose layout cannot be understood."""


def mask_file_name(image_id: str) -> str:
    """The ISIC name of an image's mask, ground truth or prediction: ``X`` → ``X_segmentation.png``."""
    return f"{image_id}{MASK_SUFFIX}.png"


@dataclass(frozen=True)
class Pair:
    """One image and its ground-truth mask."""

    id: str
    image: Path
    mask: Path


@dataclass
class PairSet:
    """The pairs found under a root, and what could not be paired."""

    pairs: list[Pair]
    problems: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [pair.id for pair in self.pairs]


def _is_image(path: Path) -> bool:
    return (
        path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not path.stem.endswith(IGNORED_SUFFIXES)
    )


def mask_id(path: Path) -> str:
    """The image ID a mask or prediction file belongs to (``X_segmentation.png`` → ``X``)."""
    stem = path.stem
    return stem[: -len(MASK_SUFFIX)] if stem.endswith(MASK_SUFFIX) else stem


def list_masks(folder: str | Path) -> dict[str, Path]:
    """Mask files of a folder by image ID; files named ``X_segmentation.png`` win over ``X.png``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LayoutError(f"{folder}: not a folder")
    masks: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() == ".png" and not path.name.startswith("."):
            key = mask_id(path)
            if key not in masks or path.stem.endswith(MASK_SUFFIX):
                masks[key] = path
    return masks


def duplicate_masks(folder: str | Path, masks: dict[str, Path]) -> list[InputError]:
    """The ``X.png`` files that :func:`list_masks` ignored because ``X_segmentation.png`` exists."""
    return [InputError(Path(folder) / f"{key}.png", f"duplicate ID {key!r} (also {path.name}); ignored")
            for key, path in masks.items()
            if path.stem.endswith(MASK_SUFFIX) and (Path(folder) / f"{key}.png").is_file()]


def find_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (not recursive) into image files, skipping masks and superpixel maps.

    Raises:
        LayoutError: an input that does not exist, or no image at all among the inputs.
    """
    found: list[Path] = []
    inputs = [Path(item) for item in inputs]
    for item in inputs:
        if item.is_dir():
            found.extend(p for p in sorted(item.iterdir()) if _is_image(p))
        elif item.exists():
            found.append(item)
        else:
            raise LayoutError(f"{item}: no such file or folder")
    if not found:
        names = ", ".join(str(item) for item in inputs[:3]) + (", ..." if len(inputs) > 3 else "") or "inputs"
        raise LayoutError(f"{names}: no images found (expected {', '.join(sorted(IMAGE_SUFFIXES))} files)")
    return found


def pair_folders(images_dir: str | Path, masks_dir: str | Path) -> PairSet:
    """Pair every image of ``images_dir`` with its mask in ``masks_dir`` by ID."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    if not images_dir.is_dir():
        raise LayoutError(f"{images_dir}: not a folder")
    masks = list_masks(masks_dir)
    problems: list[str] = []
    if images_dir.resolve() == masks_dir.resolve():  # flat folder: only X_segmentation.png are masks
        masks = {key: path for key, path in masks.items() if path.stem.endswith(MASK_SUFFIX)}
    else:
        problems += [str(err) for err in duplicate_masks(masks_dir, masks)]
    pairs: list[Pair] = []
    seen: dict[str, Path] = {}
    for image in sorted(p for p in images_dir.iterdir() if _is_image(p)):
        if image.stem in seen:
            problems.append(f"{image}: duplicate ID {image.stem!r} (also {seen[image.stem].name}); skipped")
            continue
        seen[image.stem] = image
        if image.stem in masks:
            pairs.append(Pair(image.stem, image, masks[image.stem]))
        else:
            problems.append(f"{image}: no mask {image.stem}{MASK_SUFFIX}.png in {masks_dir}; skipped")
    problems += [f"{path}: mask without an image; ignored" for key, path in masks.items() if key not in seen]
    return PairSet(pairs, problems)


def isic_folders(root: Path, subset: str) -> tuple[Path, Path] | None:
    """The (images, masks) folders of an official ISIC 2017 subset under ``root``, if present."""
    images = root / f"ISIC-2017_{subset}_Data"
    masks = root / f"ISIC-2017_{subset}_Part1_GroundTruth"
    return (images, masks) if images.is_dir() and masks.is_dir() else None


def find_pairs(root: str | Path, subset: str = "Training") -> PairSet:
    """Find the pairs under a data root in any supported layout.

    Args:
        root: the data root (see the module docstring for layouts).
        subset: which official ISIC 2017 subset to read when the root has the official layout.

    Raises:
        LayoutError: the root is missing, its layout is not recognised, or it holds no pair.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: data folder does not exist")
    official = isic_folders(root, subset)
    if official:
        found = pair_folders(*official)
    elif (root / "images").is_dir() and (root / "masks").is_dir():
        found = pair_folders(root / "images", root / "masks")
    elif any(isic_folders(root, s) for s in ISIC_SUBSETS):
        present = [s for s in ISIC_SUBSETS if isic_folders(root, s)]
        raise LayoutError(f"{root}: no ISIC-2017_{subset}_Data here (found subsets: {', '.join(present)})")
    else:
        found = pair_folders(root, root)
    if not found.pairs:
        raise LayoutError(
            f"{root}: no image/mask pairs found; expected ISIC-2017_*_Data + *_Part1_GroundTruth folders, "
            "images/ + masks/ folders, or X.jpg beside X_segmentation.png"
        )
    return found
