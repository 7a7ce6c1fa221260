"""Training of one cross-validation fold in named steps: the loop of the paper (eq. 1 loss, Adam, LR on plateau).

:class:`FoldTrainer` runs the steps in order, like nnU-Net's ``nnUNetTrainer``: :meth:`~FoldTrainer.set_up`,
:meth:`~FoldTrainer.load_data` (→ :class:`FoldData`), :meth:`~FoldTrainer.build`,
:meth:`~FoldTrainer.restore` (→ :class:`FoldState`), then per epoch :meth:`~FoldTrainer.train_epoch` and
:meth:`~FoldTrainer.end_epoch`, and last :meth:`~FoldTrainer.predict_validation`. A variant overrides one step
in a subclass. Where the fold's files go is :mod:`skinnet.runs`.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from skinnet import runs
from skinnet.batch.run import predict_files
from skinnet.config import Config
from skinnet.data.atomic import remove_stale_temporaries
from skinnet.data.cache import CachedPairs, load_cached_pairs
from skinnet.data.dataset import LesionDataset
from skinnet.data.layout import Pair, find_pairs
from skinnet.data.splits import fold_ids
from skinnet.data.transforms import training_augmentation
from skinnet.inference.segmenter import Segmenter
from skinnet.losses import loss_function
from skinnet.networks import build_model
from skinnet.networks.budget import check_budget
from skinnet.networks.files import save_weights
from skinnet.runs import FoldPaths
from skinnet.scoring import evaluate_folders
from skinnet.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from skinnet.training.distributed import init_distributed
from skinnet.training.epoch import TrainingError, run_epoch, seed_everything
from skinnet.training.logs import EpochLog
from skinnet.training.schedules import build_scheduler, step_scheduler

__all__ = ["FoldData", "FoldResult", "FoldState", "FoldTrainer", "TrainingError", "prepare_fold", "train_fold"]


@dataclass
class FoldData:
    """The load step's result: training and validation pairs at the network's size, and the validation
    images at full size (for the final out-of-fold prediction)."""

    train: CachedPairs
    val: CachedPairs
    val_pairs: list[Pair]


@dataclass
class FoldState:
    """What every epoch saves and ``--resume`` restores, besides the weights and optimiser."""

    start_epoch: int = 0
    kept_dc: float = -math.inf
    kept_epoch: int = -1
    rows: list[dict[str, float]] = field(default_factory=list)


@dataclass
class FoldResult:
    """Where a fold's outputs are and how its validation images scored."""

    paths: FoldPaths
    kept_epoch: int
    kept_val_dc: float
    val_summary: dict[str, float]


def prepare_fold(config: Config, data_root: str | Path, run_dir: str | Path, fold: int | None) -> FoldData:
    """Find, cache and split the pairs; ``fold=None`` trains on every pair and validates on none."""
    pairset = find_pairs(data_root)
    for problem in pairset.problems:
        warnings.warn(problem, stacklevel=2)
    cached = load_cached_pairs(pairset.pairs, config.data.image_size, config.data.cache_dir)
    if fold is None:
        train_ids, val_ids = list(cached.ids), []
    else:
        split = runs.load_or_create_split(run_dir, cached.ids, config.train.n_folds, config.train.seed)
        train_ids, val_ids = fold_ids(split, fold)
    present = set(cached.ids)
    train_ids = [key for key in train_ids if key in present]
    val_ids = [key for key in val_ids if key in present]
    by_id = {pair.id: pair for pair in pairset.pairs}
    return FoldData(cached.subset(train_ids), cached.subset(val_ids), [by_id[key] for key in val_ids])


class FoldTrainer:
    """Train one fold and write its outputs (see :mod:`skinnet.runs` for the files).

    Args:
        config: the run config.
        data_root: data folder in any layout :func:`skinnet.data.layout.find_pairs` reads.
        run_dir: the run's folder, shared by its folds.
        fold: which fold to validate on; ``None`` trains on all pairs (see :func:`train_fold`).
        resume: continue from the fold's last checkpoint if it exists.
    """

    def __init__(self, config: Config, data_root: str | Path, run_dir: str | Path, fold: int | None = 0,
                 resume: bool = False) -> None:
        self.config, self.data_root, self.run_dir = config, data_root, Path(run_dir)
        self.fold, self.resume = fold, resume
        self.paths = runs.fold_paths(run_dir, fold)
        self.seed = config.train.seed + (fold or 0)

    def run(self) -> FoldResult:
        """All steps in order."""
        self.set_up()
        data = self.load_data()
        self.build()
        state = self.restore()
        self.fit(data, state)
        summary = self.dist.from_main(functools.partial(self.predict_validation, data)) if data.val_pairs else {}
        self.dist.close()
        return FoldResult(self.paths, state.kept_epoch, state.kept_dc, summary)

    def set_up(self) -> None:
        """Check the budget, make the fold's folder, record the config, seed, and join the process group."""
        config = self.config
        check_budget(config, "config")  # before any folder, cache or tensor is made
        self.paths.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.paths.folder)  # left by a killed run; they would only fill the disk
        runs.write_config(self.run_dir, config)
        if self.fold is None and config.train.schedule == "plateau":
            warnings.warn("training on all pairs with train.schedule=plateau: with no validation loss the LR "
                          "follows the training loss, which rarely plateaus; fix the schedule in advance with "
                          "train.schedule=step and train.lr_milestones (e.g. where a CV fold cut the LR) or "
                          "train.schedule=poly", stacklevel=3)
        seed_everything(self.seed)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self.dist = init_distributed(config.train.device)  # one process, or one of torchrun's
        self.device = self.dist.device
        if self.device.type == "cuda":  # one input size throughout: cuDNN times its algorithms once
            torch.backends.cudnn.benchmark = True

    def load_data(self) -> FoldData:
        """Rank 0 fills the resize cache and writes the split; the other processes then reuse them."""
        with self.dist.main_first():
            return prepare_fold(self.config, self.data_root, self.run_dir, self.fold)

    def build(self) -> None:
        """The network (with its pretrained encoder's weights), optimiser, LR schedule and gradient scaler."""
        train = self.config.train
        self.model: nn.Module = build_model(self.config.model, init_encoder=True).to(self.device)
        if train.channels_last:  # before the optimizer and DDP see the parameters
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, train)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=train.amp and self.device.type == "cuda")

    def restore(self) -> FoldState:
        """With ``resume``, the state of the last checkpoint; else a fresh one.

        Raises:
            TrainingError: the checkpoint holds another network than the config describes.
        """
        checkpoint = self.paths.last_checkpoint
        if not (self.resume and checkpoint.exists()):
            return FoldState()
        saved = load_checkpoint(checkpoint)
        try:
            self.model.load_state_dict(saved["model"])
        except RuntimeError as err:
            raise TrainingError(f"{checkpoint} holds a different network than the config describes; "
                                "resume with the config the run started with") from err
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        rows = [row for row in runs.read_log(self.paths.log) if row["epoch"] <= saved["epoch"]]
        return FoldState(saved["epoch"] + 1, saved["best_dc"], saved["best_epoch"], rows)

    def fit(self, data: FoldData, state: FoldState) -> None:
        """The epochs from ``state.start_epoch`` on; ``state`` is updated in place."""
        config = self.config
        self.trained = self.dist.wrap(self.model)  # DDP under torchrun; self.model is saved and validated
        self.augment = training_augmentation(config.data, self.seed) if config.data.augment else None
        self.train_set = LesionDataset(data.train, config.data, self.augment)
        self.val_loader = DataLoader(LesionDataset(data.val, config.data), batch_size=config.train.batch_size,
                                     num_workers=config.data.num_workers)
        log = EpochLog(self.paths, state.rows) if self.dist.is_main else None  # only rank 0 writes files
        epochs = tqdm(range(state.start_epoch, config.train.epochs), initial=state.start_epoch,
                      total=config.train.epochs, desc="all data" if self.fold is None else f"fold {self.fold}",
                      unit="epoch", dynamic_ncols=True, disable=not self.dist.is_main)
        for epoch in epochs:
            row = self.train_epoch(epoch, validate=bool(data.val_pairs))
            self.end_epoch(row, state, log, validated=bool(data.val_pairs))
            epochs.set_postfix(loss=f"{row['train_loss']:.4f}", val_dc=f"{row['val_dc']:.4f}",
                               lr=f"{row['lr']:.1e}")
        if log is not None:
            log.close()

    def train_epoch(self, epoch: int, validate: bool) -> dict[str, float]:
        """Train one epoch, validate (rank 0, shared with the others), step the LR; returns the log row.

        Raises:
            TrainingError: the loss became NaN or infinite (the message says where the last good state is).
        """
        started = time.perf_counter()
        config, dist = self.config, self.dist
        if self.augment is not None:  # per-epoch seeds make a resumed run draw the same augmentations
            # (offset by rank, so that processes do not draw the same transforms for their images)
            self.augment.set_random_seed(self.seed + 1000 * epoch + 7919 * dist.rank)
        loader = dist.train_loader(self.train_set, config.train.batch_size, self.seed, epoch,
                                   config.data.num_workers)
        try:
            loss_fn = loss_function(config.train.loss)
            train = dist.mean_over_ranks(run_epoch(self.trained, loader, self.device, self.optimizer, self.scaler,
                                                   desc=f"epoch {epoch + 1} train",
                                                   channels_last=config.train.channels_last, loss_fn=loss_fn))
            # rank 0 validates and shares the scores: every process then takes the same LR and best decisions
            check = functools.partial(run_epoch, self.model, self.val_loader, self.device,
                                      desc=f"epoch {epoch + 1} val", channels_last=config.train.channels_last,
                                      loss_fn=loss_fn)
            val = dist.from_main(check) if validate else {"loss": math.nan, "dc": math.nan, "ji": math.nan}
        except TrainingError as err:
            raise TrainingError(f"{err}; {self._last_good(epoch)}. Lower train.lr and train again "
                                "(--resume keeps the saved learning rate), or check the data") from err
        step_scheduler(self.scheduler, val["loss"] if validate else train["loss"])
        return {"epoch": epoch, "train_loss": train["loss"], "train_dc": train["dc"], "train_ji": train["ji"],
                "val_loss": val["loss"], "val_dc": val["dc"], "val_ji": val["ji"],
                "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}

    def end_epoch(self, row: dict[str, float], state: FoldState, log: EpochLog | None, validated: bool) -> None:
        """Track the kept epoch (best validation DC, or the last with ``train.keep=last``) and save (rank 0)."""
        epoch = int(row["epoch"])
        if row["val_dc"] > state.kept_dc or not validated or self.config.train.keep == "last":
            state.kept_dc, state.kept_epoch = row["val_dc"], epoch
        # The checkpoint's keys keep their names from before kept_* (issue 22): runs saved then still resume.
        checkpoint = {"config": self.config.to_dict(), "model": self.model.state_dict(),
                      "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                      "scaler": self.scaler.state_dict(), "epoch": epoch, "best_dc": state.kept_dc,
                      "best_epoch": state.kept_epoch, "rng": rng_state()}
        if log is not None:
            self.save_epoch(log, row, checkpoint)

    def save_epoch(self, log: EpochLog, row: dict[str, float], checkpoint: dict[str, Any]) -> None:
        """Log the row, write the kept model if this epoch is kept, then the last checkpoint.

        The row goes first: a kill before the checkpoint is written re-runs the epoch on ``--resume``, which
        replaces the row; the other order would lose the row of an epoch that the checkpoint already holds.

        Raises:
            TrainingError: a file cannot be written (e.g. a full disk); earlier files are left intact.
        """
        epoch, paths = checkpoint["epoch"], self.paths
        target = paths.log
        try:
            log.append(row)
            target = paths.kept_weights
            if checkpoint["best_epoch"] == epoch:
                save_weights(target, self.model, self.config)
                target = paths.kept_checkpoint
                save_checkpoint(target, checkpoint)
            target = paths.last_checkpoint
            save_checkpoint(target, checkpoint)
        except (OSError, RuntimeError, SafetensorError) as err:  # safetensors has its own type for a full disk
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise TrainingError(f"cannot write {target} ({reason}) after epoch {epoch + 1}; "
                                f"{self._last_good(epoch)}. Free space or fix the folder, then run again "
                                "with --resume") from err

    def predict_validation(self, data: FoldData) -> dict[str, float]:
        """Predict the fold's validation images with the kept model at full size, and score them."""
        return predict_validation(self.paths, data.val_pairs, self.device)

    def _last_good(self, epoch: int) -> str:
        """Where the state before ``epoch`` is, for error messages."""
        if epoch == 0:
            return "no epoch was completed, so there is no checkpoint"
        return f"the last good state, epoch {epoch}, is in {self.paths.last_checkpoint}"


def predict_validation(paths: FoldPaths, val_pairs: list[Pair], device: torch.device) -> dict[str, float]:
    """Predict a fold's validation images with its kept model at full size, score them, write the results."""
    segmenter = Segmenter.from_file(paths.kept_weights, device=str(device))
    predict_files(segmenter, [pair.image for pair in val_pairs], paths.val_predictions)
    evaluation = evaluate_folders(paths.val_predictions, val_pairs[0].mask.parent)
    evaluation.write_csv(paths.val_metrics)
    runs.write_fold_summary(paths, evaluation.summary)
    return evaluation.summary


def train_fold(config: Config, data_root: str | Path, run_dir: str | Path, fold: int | None = 0,
               resume: bool = False) -> FoldResult:
    """Train one fold and write its outputs into its folder of ``run_dir`` (:func:`skinnet.runs.fold_paths`).

    Outputs: the last checkpoint (full state, every epoch), the kept model and its checkpoint (best
    validation DC, or the last epoch with ``train.keep=last``), the epoch log, the out-of-fold masks at the
    ground truth's size, their per-image scores and their means. The split is the run's, created from the
    seed if absent and reused (or user-edited) otherwise. Started by ``torchrun``, the fold trains
    data-parallel over its processes and rank 0 writes the outputs (see :mod:`skinnet.training.distributed`).

    Args:
        config: the run config.
        data_root: data folder in any layout :func:`skinnet.data.layout.find_pairs` reads.
        run_dir: the run's folder, shared by its folds.
        fold: which fold to validate on; ``None`` trains on all pairs into the all-data folder (no
            validation: the kept model is the last epoch, and the LR should follow a schedule fixed in
            advance, ``train.schedule=step`` or ``poly``). This is how a final model is trained once
            cross-validation has measured the recipe.
        resume: continue from the last checkpoint if it exists.
    """
    return FoldTrainer(config, data_root, run_dir, fold, resume).run()
