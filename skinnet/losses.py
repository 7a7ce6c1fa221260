"""Training losses: the soft Dice loss of eq. 1 of the SkinNet paper, and eq. 1 plus cross-entropy.

    L = 1 - sum_k [ sum_n y_nk p_nk / (sum_n y_nk + sum_n p_nk) ]

``k`` runs over the classes (background and lesion), ``n`` over pixels, ``y`` is the one-hot ground
truth and ``p`` the softmax output. With two classes a perfect prediction gives 1/2 per class, so ``L``
lies in [0, 1]. This equals MONAI's ``DiceLoss(include_background=True, softmax=True, to_onehot_y=True,
smooth_nr=0, smooth_dr=eps)`` exactly for two classes: MONAI averages ``1 - 2 I_k / D_k`` over the K
classes, which is ``1 - (2/K) sum_k I_k / D_k``.

``train.loss`` picks one (:func:`loss_function`): ``dice`` (eq. 1) or ``dice_ce`` (eq. 1 plus the mean
pixel cross-entropy, equal weights: nnU-Net's loss, in the form of MONAI's ``DiceCELoss``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from skinnet.config import LOSSES


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    eps: float = 1e-6,
    reduction: Literal["batch", "image"] = "batch",
) -> torch.Tensor:
    """Eq. 1 of the paper on logits ``(B, K, H, W)`` and integer labels ``(B, H, W)``.

    Args:
        logits: raw network output; softmax over dim 1 is taken here, in float32 (stable under AMP).
        target: class index per pixel, ``0 <= target < K``.
        eps: added to each class's denominator so that a class absent from both truth and prediction
            cannot divide by zero.
        reduction: ``"batch"`` (default) sums over every pixel of the batch, as eq. 1 sums over all
            pixels ``n``: an image with a tiny lesion then does not get a loss dominated by a handful of
            pixels, and the gradient matches the paper. ``"image"`` applies eq. 1 to each image and
            averages the losses, which weighs every image equally.

    Returns:
        A scalar tensor.
    """
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"expected logits (B,K,H,W) and target (B,H,W), got {tuple(logits.shape)} "
                         f"and {tuple(target.shape)}")
    probs = torch.softmax(logits.float(), dim=1)
    onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3) if reduction == "batch" else (2, 3)
    intersection = (onehot * probs).sum(dims)
    denominator = onehot.sum(dims) + probs.sum(dims)
    loss = 1.0 - (intersection / (denominator + eps)).sum(-1)
    return loss.mean()


def dice_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    eps: float = 1e-6,
    reduction: Literal["batch", "image"] = "batch",
) -> torch.Tensor:
    """Eq. 1 (:func:`soft_dice_loss`) plus the cross-entropy averaged over every pixel of the batch, weighted
    equally: nnU-Net's "Dice + CE".

    It equals MONAI's ``DiceCELoss(include_background=True, to_onehot_y=True, softmax=True, smooth_nr=0,
    smooth_dr=eps, batch=reduction == "batch", lambda_dice=1, lambda_ce=1)`` (cross-entropy reduction
    "mean"). nnU-Net's own Dice term differs: it leaves the background out (``do_bg=False``), smooths the
    numerator and denominator by 1e-5 and enters as ``-Dice`` instead of ``1 - Dice``, which shifts the loss
    but not its gradient; the cross-entropy term is the same. ``reduction`` acts on the Dice term only: the
    pixel mean of the cross-entropy is the mean of each image's, as all images of a batch have one size.
    """
    dice = soft_dice_loss(logits, target, eps, reduction)
    return dice + F.cross_entropy(logits.float(), target.long())


def loss_function(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``train.loss`` names: ``dice`` (:func:`soft_dice_loss`) or ``dice_ce`` (:func:`dice_ce_loss`)."""
    functions = {"dice": soft_dice_loss, "dice_ce": dice_ce_loss}
    if name not in functions:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return functions[name]


class SoftDiceLoss(nn.Module):
    """Module form of :func:`soft_dice_loss`."""

    def __init__(self, eps: float = 1e-6, reduction: Literal["batch", "image"] = "batch") -> None:
        super().__init__()
        self.eps = eps
        self.reduction: Literal["batch", "image"] = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_dice_loss(logits, target, self.eps, self.reduction)
