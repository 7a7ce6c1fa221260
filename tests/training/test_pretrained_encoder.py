"""A tiny CPU training of SkinNet on the ImageNet-pretrained EfficientNet-Lite0 encoder (configs/pretrained)."""

from __future__ import annotations

from pathlib import Path

import torch

from skinnet.networks import PretrainedSkinNet
from skinnet.networks.efficientnet_lite import imagenet_state_dict
from skinnet.networks.files import load_model
from skinnet.runs import read_log


def test_training_starts_from_imagenet_and_fine_tunes_the_encoder(tiny_pretrained_run: Path) -> None:
    model, config = load_model(tiny_pretrained_run / "fold_0" / "best.safetensors")
    assert isinstance(model, PretrainedSkinNet) and config.model.encoder == "efficientnet_lite0"
    imagenet = imagenet_state_dict()["blocks.0.depthwise.1.weight"]
    tuned = model.encoder.blocks[0].depthwise[1].weight
    # fine-tuned, not replaced: still close to the ImageNet filters, but moved by the training steps
    assert not torch.equal(tuned, imagenet)
    assert torch.nn.functional.cosine_similarity(tuned.flatten(), imagenet.flatten(), dim=0) > 0.9


def test_the_loss_falls_and_the_validation_images_are_segmented(tiny_pretrained_run: Path) -> None:
    rows = read_log(tiny_pretrained_run / "fold_0" / "log.csv")
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    predictions = sorted((tiny_pretrained_run / "fold_0" / "val_predictions").glob("*_segmentation.png"))
    assert len(predictions) == 8  # fold 0 of the 40 sample pairs
