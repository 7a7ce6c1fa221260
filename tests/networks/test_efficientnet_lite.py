"""The EfficientNet-Lite0 encoder against its reference implementation and the ImageNet weights file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from skinnet.config import ConfigError, ModelConfig, load_config
from skinnet.networks import PretrainedSkinNet, build_model
from skinnet.networks.efficientnet_lite import (
    INPUT_MEAN,
    INPUT_STD,
    SKIP_CHANNELS,
    EfficientNetLite0,
    imagenet_state_dict,
    imagenet_weights_path,
)
from skinnet.networks.files import load_torch_file

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "pretrained.yaml"

reference = pytest.importorskip("efficientnet_lite_pytorch", reason="the reference implementation (dev extra)")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image's sample photos (dev extra)")


@pytest.fixture(scope="module")
def classifier() -> EfficientNetLite0:
    net = EfficientNetLite0(num_classes=1000)
    net.load_state_dict(imagenet_state_dict())
    return net.eval()


@pytest.fixture(scope="module")
def reference_net() -> torch.nn.Module:
    return reference.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(imagenet_weights_path()))


def imagenet_input(photo: np.ndarray, size: int = 224) -> torch.Tensor:
    image = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    image = (image - np.asarray(INPUT_MEAN, np.float32)) / np.asarray(INPUT_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def test_every_tensor_of_the_weights_file_is_used_with_its_exact_shape() -> None:
    original = load_torch_file(imagenet_weights_path())
    renamed = imagenet_state_dict()
    assert len(original) == len(renamed) == 296  # the file as published: one name each, none merged
    ours = EfficientNetLite0(num_classes=1000).state_dict()
    assert set(renamed) == set(ours)  # nothing left over on either side
    for key, tensor in renamed.items():
        assert tensor.shape == ours[key].shape, key


@pytest.mark.parametrize(("photo", "classes"), [("chelsea", {281, 282, 285}), ("coffee", {967, 968})])
def test_real_photos_come_out_as_their_imagenet_classes(classifier: EfficientNetLite0, photo: str,
                                                        classes: set[int]) -> None:
    with torch.no_grad():
        logits = classifier(imagenet_input(getattr(skimage_data, photo)()))
    assert set(logits.topk(2).indices[0].tolist()) <= classes  # tabby/tiger/Egyptian cat; espresso, cup


@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_logits_match_the_reference_implementation(classifier: EfficientNetLite0, reference_net: torch.nn.Module,
                                                   photo: str) -> None:
    x = imagenet_input(getattr(skimage_data, photo)())
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), reference_net.eval()(x), rtol=1e-4, atol=1e-4)


def test_deepest_features_match_the_reference_at_the_training_size(classifier: EfficientNetLite0,
                                                                    reference_net: torch.nn.Module) -> None:
    # 256 px: every stride-2 convolution sees an even input, where TensorFlow's SAME padding is asymmetric
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = classifier.features(x)
        torch.testing.assert_close(ours[-1], reference_net.eval().extract_features(x), rtol=1e-4, atol=1e-4)
    assert [f.shape[1] for f in ours[:-1]] == list(SKIP_CHANNELS)
    assert [f.shape[-1] for f in ours] == [128, 64, 32, 16, 8]


def test_build_model_loads_the_imagenet_encoder_only_when_asked() -> None:
    config = load_config(RECIPE, ["model.width=4"]).model
    pretrained = build_model(config, init_encoder=True)
    fresh = build_model(config)
    assert isinstance(pretrained, PretrainedSkinNet)
    stem = imagenet_state_dict()["stem.1.weight"]
    assert torch.equal(pretrained.encoder.stem[1].weight, stem)
    assert not torch.equal(fresh.encoder.stem[1].weight, stem)
    random_start = build_model(ModelConfig(**{**vars(config), "encoder_weights": "random"}), init_encoder=True)
    assert not torch.equal(random_start.encoder.stem[1].weight, stem)


def test_segmentation_output_has_the_input_size() -> None:
    net = PretrainedSkinNet(width=4).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 96, 160)).shape == (1, 2, 96, 160)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth=32"):
        net(torch.zeros(1, 3, 80, 80))


@pytest.mark.parametrize(("override", "message"), [
    ("model.depth=4", "model.depth=5"),
    ("data.mean=[180.5,150.8,139.5]", "data.mean=\\[127.0"),
    ("model.name=unet", "model.name=skinnet"),
    ("model.encoder=resnet50", "known encoders"),
    ("model.encoder_weights=coco", "encoder_weights"),
])
def test_config_refuses_a_pretrained_encoder_it_cannot_feed(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(RECIPE, [override])
