"""Training of one cross-validation fold: the loop of the paper (eq. 1 loss, Adam, LR on plateau)."""

from __future__ import annotations

import functools
import json
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from skinnet.budget import check_budget
from skinnet.config import Config
from skinnet.data.cache import CachedPairs, load_cached_pairs
from skinnet.data.dataset import LesionDataset
from skinnet.data.io import remove_stale_temporaries, write_json, write_text
from skinnet.data.layout import find_pairs
from skinnet.data.splits import fold_ids, load_or_create_folds
from skinnet.data.transforms import training_augmentation
from skinnet.evaluation.evaluate import evaluate_folders
from skinnet.inference.predict import predict_files
from skinnet.inference.segmenter import Segmenter
from skinnet.losses import soft_dice_loss
from skinnet.metrics import image_metrics
from skinnet.networks import build_model
from skinnet.networks.files import save_weights
from skinnet.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from skinnet.training.distributed import init_distributed
from skinnet.training.logs import EpochLog, read_log
from skinnet.training.schedules import build_scheduler, step_scheduler


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


@dataclass
class FoldResult:
    """Where a fold's outputs are and how its validation images scored."""

    fold_dir: Path
    best_epoch: int
    best_val_dc: float
    val_summary: dict[str, float]


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
              desc: str = "", channels_last: bool = False) -> dict[str, float]:
    """One pass over ``loader``; trains when an optimizer is given, else evaluates.

    Returns the mean loss (weighted by batch size) and the mean per-image DC and JI. ``channels_last`` hands
    the model NHWC batches (give it a model converted with ``.to(memory_format=torch.channels_last)``).

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
            loss = soft_dice_loss(logits, masks)
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


def prepare_fold(config: Config, data_root: str | Path, run_dir: str | Path,
                 fold: int | None) -> tuple[CachedPairs, CachedPairs, list[Any]]:
    """Find, cache and split the pairs; returns (train pairs, validation pairs, validation Pair records).

    ``fold=None`` trains on every pair and validates on none.
    """
    pairset = find_pairs(data_root)
    for problem in pairset.problems:
        warnings.warn(problem, stacklevel=2)
    cached = load_cached_pairs(pairset.pairs, config.data.image_size, config.data.cache_dir)
    if fold is None:
        train_ids, val_ids = list(cached.ids), []
    else:
        folds = load_or_create_folds(Path(run_dir) / "splits.json", cached.ids, config.train.n_folds,
                                     config.train.seed)
        train_ids, val_ids = fold_ids(folds, fold)
    present = set(cached.ids)
    train_ids = [key for key in train_ids if key in present]
    val_ids = [key for key in val_ids if key in present]
    by_id = {pair.id: pair for pair in pairset.pairs}
    return cached.subset(train_ids), cached.subset(val_ids), [by_id[key] for key in val_ids]


def train_fold(config: Config, data_root: str | Path, run_dir: str | Path, fold: int | None = 0,
               resume: bool = False) -> FoldResult:
    """Train one fold and write its outputs under ``run_dir/fold_<fold>/``.

    Outputs: ``last.pt`` (full state, every epoch), ``best.pt`` and ``best.safetensors`` (best validation
    DC, or the last epoch with ``train.keep=last``), ``log.csv``, ``val_predictions/<id>_segmentation.png``
    at the ground truth's size, ``val_metrics.csv`` (per image) and ``val_summary.json``. The split is
    ``run_dir/splits.json``, created from the seed if absent and reused (or user-edited) otherwise. Started
    by ``torchrun``, the fold trains data-parallel over its processes and rank 0 writes the outputs (see
    :mod:`skinnet.training.distributed`).

    Args:
        config: the run config.
        data_root: data folder in any layout :func:`skinnet.data.layout.find_pairs` reads.
        run_dir: the run's folder, shared by its folds.
        fold: which fold to validate on; ``None`` trains on all pairs into ``run_dir/all/`` (no validation:
            "best" is the last epoch, and the LR should follow a schedule fixed in advance,
            ``train.schedule=step`` or ``poly``). This is how a final model is trained once cross-validation
            has measured the recipe.
        resume: continue from ``last.pt`` if it exists.
    """
    check_budget(config, "config")  # before any folder, cache or tensor is made
    run_dir = Path(run_dir)
    fold_dir = run_dir / ("all" if fold is None else f"fold_{fold}")
    fold_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(fold_dir)  # left by a killed run; they would only fill the disk
    write_text(run_dir / "config.json", json.dumps(config.to_dict(), indent=1))
    if fold is None and config.train.schedule == "plateau":
        warnings.warn("training on all pairs with train.schedule=plateau: with no validation loss the LR follows "
                      "the training loss, which rarely plateaus; fix the schedule in advance with "
                      "train.schedule=step and train.lr_milestones (e.g. where a CV fold cut the LR) or "
                      "train.schedule=poly", stacklevel=2)
    fold_seed = config.train.seed + (fold or 0)
    seed_everything(fold_seed)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    dist_ctx = init_distributed(config.train.device)  # one process, or one of torchrun's (distributed.py)
    device = dist_ctx.device
    if device.type == "cuda":  # one input size throughout: let cuDNN time its algorithms once and keep the fastest
        torch.backends.cudnn.benchmark = True
    with dist_ctx.main_first():  # rank 0 fills the resize cache and writes the split; the others reuse them
        train_pairs, val_pairs, val_records = prepare_fold(config, data_root, run_dir, fold)

    model = build_model(config.model, init_encoder=True).to(device)
    if config.train.channels_last:  # before the optimizer and DDP see the parameters
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = build_scheduler(optimizer, config.train)
    scaler = torch.amp.GradScaler(device.type, enabled=config.train.amp and device.type == "cuda")
    start_epoch, best_dc, best_epoch, rows = 0, -math.inf, -1, []
    if resume and (fold_dir / "last.pt").exists():
        state = load_checkpoint(fold_dir / "last.pt")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise TrainingError(f"{fold_dir / 'last.pt'} holds a different network than the config describes; "
                                "resume with the config the run started with") from err
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best_dc, best_epoch = state["epoch"] + 1, state["best_dc"], state["best_epoch"]
        set_rng_state(state["rng"])
        rows = [row for row in read_log(fold_dir / "log.csv") if row["epoch"] <= state["epoch"]]

    trained = dist_ctx.wrap(model)  # DDP under torchrun, else model itself; model is saved and validated
    augment = training_augmentation(config.data, fold_seed) if config.data.augment else None
    train_set = LesionDataset(train_pairs, config.data, augment)
    val_loader = DataLoader(LesionDataset(val_pairs, config.data), batch_size=config.train.batch_size,
                            num_workers=config.data.num_workers)
    log = EpochLog(fold_dir, rows) if dist_ctx.is_main else None  # only rank 0 writes files
    epochs = tqdm(range(start_epoch, config.train.epochs), initial=start_epoch, total=config.train.epochs,
                  desc="all data" if fold is None else f"fold {fold}", unit="epoch", dynamic_ncols=True,
                  disable=not dist_ctx.is_main)
    for epoch in epochs:
        started = time.perf_counter()
        if augment is not None:  # per-epoch seeds make a resumed run draw the same augmentations
            # (offset by rank, so that processes do not draw the same transforms for their images)
            augment.set_random_seed(fold_seed + 1000 * epoch + 7919 * dist_ctx.rank)
        train_loader = dist_ctx.train_loader(train_set, config.train.batch_size, fold_seed, epoch,
                                             config.data.num_workers)
        try:
            train = dist_ctx.mean_over_ranks(run_epoch(trained, train_loader, device, optimizer, scaler,
                                                       desc=f"epoch {epoch + 1} train",
                                                       channels_last=config.train.channels_last))
            # rank 0 validates and shares the scores: every process then takes the same LR and best decisions
            validate = functools.partial(run_epoch, model, val_loader, device, desc=f"epoch {epoch + 1} val",
                                         channels_last=config.train.channels_last)
            val = dist_ctx.from_main(validate) if val_records else {
                "loss": math.nan, "dc": math.nan, "ji": math.nan}
        except TrainingError as err:
            raise TrainingError(f"{err}; {_last_good(fold_dir, epoch)}. Lower train.lr and train again "
                                "(--resume keeps the saved learning rate), or check the data") from err
        step_scheduler(scheduler, val["loss"] if val_records else train["loss"])
        row = {"epoch": epoch, "train_loss": train["loss"], "train_dc": train["dc"], "train_ji": train["ji"],
               "val_loss": val["loss"], "val_dc": val["dc"], "val_ji": val["ji"],
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
        if val["dc"] > best_dc or not val_records or config.train.keep == "last":
            best_dc, best_epoch = val["dc"], epoch
        state = {"config": config.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                 "best_dc": best_dc, "best_epoch": best_epoch, "rng": rng_state()}
        if log is not None:  # rank 0
            save_epoch(fold_dir, log, row, model, config, state)
        epochs.set_postfix(loss=f"{train['loss']:.4f}", val_dc=f"{val['dc']:.4f}", lr=f"{row['lr']:.1e}")
    if log is not None:
        log.close()
    summary = dist_ctx.from_main(functools.partial(predict_validation, fold_dir, val_records, device)) \
        if val_records else {}
    dist_ctx.close()
    return FoldResult(fold_dir, best_epoch, best_dc, summary)


def _last_good(fold_dir: Path, epoch: int) -> str:
    """Where the state before ``epoch`` is, for error messages."""
    if epoch == 0:
        return "no epoch was completed, so there is no checkpoint"
    return f"the last good state, epoch {epoch}, is in {fold_dir / 'last.pt'}"


def save_epoch(fold_dir: Path, log: EpochLog, row: dict[str, float], model: nn.Module, config: Config,
               state: dict[str, Any]) -> None:
    """Log the epoch's row, write ``best.safetensors`` and ``best.pt`` if it is the best so far, then ``last.pt``.

    The row goes first: a kill before ``last.pt`` is written re-runs the epoch on ``--resume``, which
    replaces the row; the other order would lose the row of an epoch that ``last.pt`` already holds.

    Raises:
        TrainingError: a file cannot be written (e.g. a full disk); earlier files are left intact.
    """
    epoch = state["epoch"]
    target = log.path
    try:
        log.append(row)
        target = fold_dir / "best.safetensors"
        if state["best_epoch"] == epoch:
            save_weights(target, model, config)
            target = fold_dir / "best.pt"
            save_checkpoint(target, state)
        target = fold_dir / "last.pt"
        save_checkpoint(target, state)
    except (OSError, RuntimeError, SafetensorError) as err:  # safetensors has its own type for a full disk
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise TrainingError(f"cannot write {target} ({reason}) after epoch {epoch + 1}; "
                            f"{_last_good(fold_dir, epoch)}. Free space or fix the folder, then run again "
                            "with --resume") from err


def predict_validation(fold_dir: Path, val_records: list[Any], device: torch.device) -> dict[str, float]:
    """Predict the fold's validation images with the best model at full size, and score them."""
    segmenter = Segmenter.from_file(fold_dir / "best.safetensors", device=str(device))
    pred_dir = fold_dir / "val_predictions"
    predict_files(segmenter, [record.image for record in val_records], pred_dir)
    evaluation = evaluate_folders(pred_dir, val_records[0].mask.parent)
    evaluation.write_csv(fold_dir / "val_metrics.csv")
    summary = evaluation.summary
    write_json(fold_dir / "val_summary.json", summary)  # strict JSON: an undefined mean is null, never NaN
    return summary
