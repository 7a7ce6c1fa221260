"""One pass over a data loader: the inner loop of training (eq. 1 loss, Adam step, AMP) and of validation."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from skinnet.losses import soft_dice_loss
from skinnet.metrics import image_metrics


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN, or a checkpoint cannot be written)."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batch_dice_jaccard(logits: torch.Tensor, target: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-image DC and JI of the argmax prediction (official conventions)."""
    pred = logits.argmax(1).cpu().numpy().astype(bool)
    truth = target.cpu().numpy().astype(bool)
    scores = [image_metrics(t, p) for t, p in zip(truth, pred, strict=True)]
    return [s["DC"] for s in scores], [s["JI"] for s in scores]


def run_epoch(model: nn.Module, loader: DataLoader, device: torch.device,
              optimizer: torch.optim.Optimizer | None = None, scaler: torch.amp.GradScaler | None = None,
              desc: str = "", channels_last: bool = False,
              loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = soft_dice_loss) -> dict[str, float]:
    """One pass over ``loader``; trains when an optimizer is given, else evaluates.

    Returns the mean loss (weighted by batch size) and the mean per-image DC and JI. ``channels_last`` hands
    the model NHWC batches (give it a model converted with ``.to(memory_format=torch.channels_last)``).
    ``loss_fn`` is the loss on logits and labels (``train.loss``, :func:`skinnet.losses.loss_function`).

    Raises:
        TrainingError: the loss is NaN or infinite.
    """
    training = optimizer is not None
    model.train(training)
    total_loss, count, dices, jaccards = 0.0, 0, [], []
    use_amp = device.type == "cuda" and scaler is not None and scaler.is_enabled()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    bar = tqdm(loader, desc=desc, leave=False, unit="batch", dynamic_ncols=True)
    with torch.set_grad_enabled(training):
        for images, masks in bar:
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            masks = masks.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(images)
            loss = loss_fn(logits, masks)
            if not torch.isfinite(loss):
                raise TrainingError(f"loss became {loss.item()} in {desc}")
            if training:
                optimizer.zero_grad(set_to_none=True)
                if use_amp:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
            total_loss += loss.item() * len(images)
            count += len(images)
            dc, ji = batch_dice_jaccard(logits.detach(), masks)
            dices += dc
            jaccards += ji
            bar.set_postfix(loss=f"{total_loss / count:.4f}", dc=f"{np.mean(dices):.3f}")
    return {"loss": total_loss / max(count, 1), "dc": float(np.mean(dices)), "ji": float(np.mean(jaccards))}
