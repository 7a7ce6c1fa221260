"""The LR schedules of ``train.schedule``: fixed epochs, polynomial decay, plateau; resumable state."""

from __future__ import annotations

import math

import pytest
import torch

from skinnet.config import ConfigError, load_config
from skinnet.training.schedules import build_scheduler, step_scheduler


def lrs_after_each_epoch(overrides: list[str], losses: list[float]) -> list[float]:
    config = load_config(None, overrides)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.train.lr)
    scheduler = build_scheduler(optimizer, config.train)
    lrs = []
    for loss in losses:
        optimizer.step()
        step_scheduler(scheduler, loss)
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_step_schedule_multiplies_by_the_factor_after_each_milestone() -> None:
    lrs = lrs_after_each_epoch(["train.schedule=step", "train.lr=1e-3", "train.lr_factor=0.3",
                                "train.lr_milestones=[2, 4]"], [1.0] * 5)
    assert lrs == pytest.approx([1e-3, 3e-4, 3e-4, 9e-5, 9e-5])


def test_poly_schedule_follows_nnunet_formula_down_to_min_lr() -> None:
    epochs = 10
    lrs = lrs_after_each_epoch(["train.schedule=poly", "train.lr=1e-2", f"train.epochs={epochs}",
                                "train.poly_power=0.9", "train.min_lr=1e-4"], [1.0] * epochs)
    expected = [max(1e-4, 1e-2 * (1 - k / epochs) ** 0.9) for k in range(1, epochs + 1)]
    assert lrs == pytest.approx(expected)
    assert lrs[-1] == pytest.approx(1e-4)  # (1 - 1) ** 0.9 = 0 is floored


def test_plateau_schedule_cuts_after_patience_epochs_without_improvement_and_nan_is_no_improvement() -> None:
    lrs = lrs_after_each_epoch(["train.schedule=plateau", "train.lr=1e-3", "train.lr_factor=0.5",
                                "train.lr_patience=1"], [1.0, 0.5, math.nan, math.nan, 0.1])
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4])


def test_poly_state_round_trips_so_a_resumed_run_continues_the_decay() -> None:
    config = load_config(None, ["train.schedule=poly", "train.epochs=8"])
    first = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.train.lr)
    scheduler = build_scheduler(first, config.train)
    for _ in range(3):
        first.step()
        step_scheduler(scheduler, 0.0)
    second = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.train.lr)
    second.load_state_dict(first.state_dict())
    resumed = build_scheduler(second, config.train)
    resumed.load_state_dict(scheduler.state_dict())
    for optimizer, sched in ((first, scheduler), (second, resumed)):
        optimizer.step()
        step_scheduler(sched, 0.0)
    assert second.param_groups[0]["lr"] == first.param_groups[0]["lr"] < config.train.lr


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.schedule=cosine"], "known schedules"),
    (["train.schedule=step"], "needs train.lr_milestones"),
    (["train.schedule=step", "train.lr_milestones=[0]"], r"train\.lr_milestones=0 is out of range"),
])
def test_bad_schedules_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
