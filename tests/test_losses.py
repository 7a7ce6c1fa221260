"""Eq. 1 against a value computed by hand and against MONAI's DiceLoss; eq. 1 + CE against DiceCELoss."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss, DiceLoss

from skinnet.config import Config, ConfigError, load_config
from skinnet.losses import SoftDiceLoss, dice_ce_loss, loss_function, soft_dice_loss


def test_hand_computed_example() -> None:
    # One image of 2x2 pixels. Logits chosen so that softmax gives lesion probabilities 0.8, 0.6, 0.3, 0.1.
    p_lesion = torch.tensor([[0.8, 0.6], [0.3, 0.1]])
    logits = torch.stack([torch.zeros(2, 2), torch.log(p_lesion / (1 - p_lesion))])[None]
    target = torch.tensor([[[1, 1], [0, 0]]])
    # Lesion: sum y*p = 0.8 + 0.6 = 1.4; sum y = 2; sum p = 1.8  -> 1.4 / 3.8
    # Background: sum y*p = 0.7 + 0.9 = 1.6; sum y = 2; sum p = 0.2 + 0.4 + 0.7 + 0.9 = 2.2 -> 1.6 / 4.2
    expected = 1 - (1.4 / 3.8 + 1.6 / 4.2)
    assert soft_dice_loss(logits, target, eps=0).item() == pytest.approx(expected, abs=1e-6)


def test_perfect_prediction_gives_zero_and_worst_gives_one() -> None:
    target = torch.tensor([[[1, 0], [0, 1]]])
    confident = torch.nn.functional.one_hot(target, 2).permute(0, 3, 1, 2).float() * 100
    assert soft_dice_loss(confident, target).item() == pytest.approx(0.0, abs=1e-5)
    assert soft_dice_loss(-confident, target).item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("reduction", ["batch", "image"])
def test_equals_monai_dice_loss(reduction: str) -> None:
    torch.manual_seed(1)
    logits = torch.randn(3, 2, 16, 16) * 3
    target = (torch.rand(3, 16, 16) > 0.7).long()
    target[2] = 0  # one image without lesion
    eps = 1e-5
    monai = DiceLoss(include_background=True, to_onehot_y=True, softmax=True, smooth_nr=0.0, smooth_dr=eps,
                     batch=reduction == "batch")
    ours = soft_dice_loss(logits, target, eps=eps, reduction=reduction)  # type: ignore[arg-type]
    assert ours.item() == pytest.approx(monai(logits, target[:, None]).item(), abs=1e-6)


def test_gradients_flow_and_module_matches_function() -> None:
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    target = (torch.rand(2, 8, 8) > 0.5).long()
    loss = SoftDiceLoss()(logits, target)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert loss.item() == pytest.approx(soft_dice_loss(logits, target).item())


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="expected logits"):
        soft_dice_loss(torch.randn(1, 2, 4, 4), torch.zeros(1, 5, 5, dtype=torch.long))


@pytest.mark.parametrize("reduction", ["batch", "image"])
def test_dice_ce_equals_monai_dice_ce_loss(reduction: str) -> None:
    torch.manual_seed(2)
    logits = torch.randn(3, 2, 16, 16) * 3
    target = (torch.rand(3, 16, 16) > 0.7).long()
    target[2] = 0  # one image without lesion
    eps = 1e-5
    # Eq. 1's settings of DiceLoss (above), CrossEntropyLoss(reduction="mean") over every pixel, weights 1 and 1
    monai = DiceCELoss(include_background=True, to_onehot_y=True, softmax=True, smooth_nr=0.0, smooth_dr=eps,
                       batch=reduction == "batch", reduction="mean", lambda_dice=1.0, lambda_ce=1.0)
    ours = dice_ce_loss(logits, target, eps=eps, reduction=reduction)  # type: ignore[arg-type]
    assert ours.item() == pytest.approx(monai(logits, target[:, None]).item(), abs=1e-6)
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert ours.item() == pytest.approx(soft_dice_loss(logits, target, eps, reduction).item() + ce.item())  # type: ignore[arg-type]


def test_train_loss_names_the_loss_and_dice_is_the_default() -> None:
    assert Config().train.loss == "dice"
    assert loss_function("dice") is soft_dice_loss and loss_function("dice_ce") is dice_ce_loss
    assert load_config(None, ["train.loss=dice_ce"]).train.loss == "dice_ce"
    with pytest.raises(ConfigError, match=r"train\.loss='focal': choose one of"):
        load_config(None, ["train.loss=focal"])
