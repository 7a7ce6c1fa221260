"""Learning-rate schedules of ``train.schedule``: on plateau (the paper's "reduced during training"), at fixed
epochs, or polynomial decay (nnU-Net)."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, MultiStepLR, ReduceLROnPlateau

from skinnet.config import TrainConfig

Scheduler = ReduceLROnPlateau | LRScheduler


class PolyFactor:
    """``(1 - epoch / epochs) ** power``, floored at ``floor``: the factor LambdaLR multiplies the LR by.

    A class rather than a lambda so that LambdaLR's state (and so ``--resume``) holds it.
    """

    def __init__(self, epochs: int, power: float, floor: float) -> None:
        self.epochs, self.power, self.floor = epochs, power, floor

    def __call__(self, epoch: int) -> float:
        return max(self.floor, (1.0 - min(epoch, self.epochs) / self.epochs) ** self.power)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Scheduler:
    """The scheduler ``config.schedule`` names, stepped once per epoch by :func:`step_scheduler`."""
    if config.schedule == "step":
        return MultiStepLR(optimizer, milestones=config.lr_milestones, gamma=config.lr_factor)
    if config.schedule == "poly":
        return LambdaLR(optimizer, PolyFactor(config.epochs, config.poly_power, config.min_lr / config.lr))
    return ReduceLROnPlateau(optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience,
                             min_lr=config.min_lr)


def step_scheduler(scheduler: Scheduler, monitored_loss: float) -> None:
    """End-of-epoch step; only the plateau schedule looks at the loss (a NaN never compares as better, so it
    counts as an epoch without improvement)."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(monitored_loss)
    else:
        scheduler.step()
