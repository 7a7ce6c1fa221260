"""The EfficientNet-Lite0/1/2 encoders against their reference implementation and ImageNet weights files."""

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
    VARIANTS,
    EfficientNetLite,
    EfficientNetLite0,
    imagenet_state_dict,
    imagenet_weights_path,
)
from skinnet.networks.files import load_torch_file

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "pretrained.yaml"

reference = pytest.importorskip("efficientnet_lite_pytorch", reason="the reference implementation (dev extra)")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image's sample photos (dev extra)")


# Tensors in each weights file as published (one name each, none merged), and the decoder's skip channels.
FILE_TENSORS = {"efficientnet_lite0": 296, "efficientnet_lite1": 386, "efficientnet_lite2": 386}
SKIPS = {"efficientnet_lite0": SKIP_CHANNELS, "efficientnet_lite1": (16, 24, 40, 112),
         "efficientnet_lite2": (16, 24, 48, 120)}


def classification_size(encoder: str) -> int:
    """The ImageNet size of ``encoder`` (224, 240, 260) rounded up to a multiple of 32 (224, 256, 288).

    This module's SAME padding is TensorFlow's for maps divisible by the stride, which SkinNet's inputs
    always are; at 240 or 260 px a stride-2 convolution meets an odd map (15, 65) and pads differently.
    """
    return -(-VARIANTS[encoder].imagenet_size // 32) * 32


@pytest.fixture(scope="module", params=list(VARIANTS))
def encoder(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def classifier(encoder: str) -> EfficientNetLite:
    net = EfficientNetLite(encoder, num_classes=1000)
    net.load_state_dict(imagenet_state_dict(encoder=encoder))
    return net.eval()


def reference_net(encoder: str, size: int) -> torch.nn.Module:
    # The reference computes its static SAME padding for one input size (default: the ImageNet size, which
    # would pad a 224 or 256 px input wrongly), so it is built for the size it is fed.
    return reference.EfficientNet.from_pretrained(encoder.replace("_", "-"), image_size=size,
                                                  weights_path=str(imagenet_weights_path(encoder))).eval()


def imagenet_input(photo: np.ndarray, size: int = 224) -> torch.Tensor:
    image = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    image = (image - np.asarray(INPUT_MEAN, np.float32)) / np.asarray(INPUT_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def test_every_tensor_of_the_weights_file_is_used_with_its_exact_shape(encoder: str) -> None:
    original = load_torch_file(imagenet_weights_path(encoder))
    renamed = imagenet_state_dict(encoder=encoder)
    assert len(original) == len(renamed) == FILE_TENSORS[encoder]
    ours = EfficientNetLite(encoder, num_classes=1000).state_dict()
    assert set(renamed) == set(ours)  # nothing left over on either side
    for key, tensor in renamed.items():
        assert tensor.shape == ours[key].shape, key


@pytest.mark.parametrize(("photo", "classes"), [("chelsea", {281, 282, 285}), ("coffee", {967, 968})])
def test_real_photos_come_out_as_their_imagenet_classes(classifier: EfficientNetLite, encoder: str, photo: str,
                                                        classes: set[int]) -> None:
    with torch.no_grad():
        logits = classifier(imagenet_input(getattr(skimage_data, photo)(), classification_size(encoder)))
    assert set(logits.topk(2).indices[0].tolist()) <= classes  # tabby/tiger/Egyptian cat; espresso, cup


@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_logits_match_the_reference_implementation(classifier: EfficientNetLite, encoder: str,
                                                   photo: str) -> None:
    size = classification_size(encoder)
    x = imagenet_input(getattr(skimage_data, photo)(), size)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), reference_net(encoder, size)(x), rtol=1e-4, atol=1e-4)


def test_deepest_features_match_the_reference_at_the_training_size(classifier: EfficientNetLite,
                                                                    encoder: str) -> None:
    # 256 px: every stride-2 convolution sees an even input, where TensorFlow's SAME padding is asymmetric
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = classifier.features(x)
        expected = reference_net(encoder, 256).extract_features(x)
        torch.testing.assert_close(ours[-1], expected, rtol=1e-4, atol=1e-4)
    assert [f.shape[1] for f in ours[:-1]] == list(SKIPS[encoder]) == list(classifier.skip_channels)
    assert [f.shape[-1] for f in ours] == [128, 64, 32, 16, 8]


def test_lite0_is_the_default_encoder() -> None:
    assert EfficientNetLite0().state_dict().keys() == EfficientNetLite().state_dict().keys()
    assert PretrainedSkinNet(width=4).encoder.name == "efficientnet_lite0"


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_a_larger_encoder_is_a_config_option_with_its_imagenet_weights(name: str) -> None:
    config = load_config(RECIPE, [f"model.encoder={name}", "model.width=4"])
    assert (config.model.depth, config.data.mean, config.data.std) == (5, [127.0] * 3, [128.0] * 3)  # auto
    model = build_model(config.model, init_encoder=True).eval()
    assert torch.equal(model.encoder.blocks[-1].project[0].weight,
                       imagenet_state_dict(encoder=name)["blocks.20.project.0.weight"])  # 21 blocks, not 16
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 96)).shape == (1, 2, 64, 96)


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
