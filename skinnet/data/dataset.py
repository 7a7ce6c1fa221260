"""Torch dataset over cached, resized pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from skinnet.config import DataConfig
from skinnet.data.cache import CachedPairs
from skinnet.data.normalize import prepare_input

if TYPE_CHECKING:  # only for the annotation: the pipeline itself comes from skinnet.data.transforms
    import albumentations as A


class LesionDataset(Dataset):
    """Yields ``(image float32 (3, S, S), mask int64 (S, S))`` with optional augmentation.

    Args:
        pairs: cached images and masks.
        data: the preprocessing (colour constancy, normalisation) shared with inference.
        augment: albumentations pipeline applied to image and mask together, or ``None``.
    """

    def __init__(self, pairs: CachedPairs, data: DataConfig, augment: A.Compose | None = None) -> None:
        self.pairs = pairs
        self.data = data
        self.augment = augment

    def __len__(self) -> int:
        return len(self.pairs.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = np.asarray(self.pairs.images[index])
        mask = np.asarray(self.pairs.masks[index], dtype=np.uint8)
        if self.augment is not None:
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return torch.from_numpy(prepare_input(image, self.data)), torch.from_numpy(mask.astype(np.int64))
