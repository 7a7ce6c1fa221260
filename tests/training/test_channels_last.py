"""train.channels_last: the network and its batches are NHWC throughout training, and nothing else changes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from skinnet.config import load_config
from skinnet.networks.files import load_model
from skinnet.training import trainer

TINY = ["model.width=4", "model.dilations=[1,2]", "data.image_size=32", "train.epochs=2", "train.threads=1",
        "train.lr=0.003"]
RUN_EPOCH = trainer.run_epoch  # the real one: a second recorder must not wrap the first


def first_3x3_weight(model: torch.nn.Module) -> torch.Tensor:
    # a 1x1 kernel is contiguous in both layouts, so it cannot tell them apart
    return next(p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1)


def train_recording_layouts(channels_last: bool, data: Path, run: Path,
                            monkeypatch: pytest.MonkeyPatch) -> tuple[set[tuple[bool, bool]], pd.DataFrame]:
    """Train a tiny fold; returns the (input NHWC, weights NHWC) pairs the network saw, and the log."""
    seen: set[tuple[bool, bool]] = set()

    def recording(model: torch.nn.Module, *args: object, **kwargs: object) -> dict[str, float]:
        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            seen.add((inputs[0].is_contiguous(memory_format=torch.channels_last),
                      first_3x3_weight(module).is_contiguous(memory_format=torch.channels_last)))

        handle = model.register_forward_pre_hook(hook)
        try:
            return RUN_EPOCH(model, *args, **kwargs)
        finally:
            handle.remove()

    monkeypatch.setattr(trainer, "run_epoch", recording)
    config = load_config(None, [*TINY, f"train.channels_last={str(channels_last).lower()}",
                                f"data.cache_dir={run / 'cache'}"])
    trainer.train_fold(config, data, run, fold=0)
    return seen, pd.read_csv(run / "fold_0" / "log.csv")


@pytest.mark.slow
def test_channels_last_trains_nhwc_and_learns_the_same(sample_data: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    default_seen, default_log = train_recording_layouts(False, sample_data, tmp_path / "default", monkeypatch)
    nhwc_seen, nhwc_log = train_recording_layouts(True, sample_data, tmp_path / "nhwc", monkeypatch)
    assert default_seen == {(False, False)}  # training and validation batches alike
    assert nhwc_seen == {(True, True)}
    # The same seed, data order and arithmetic: only the summation order inside convolutions differs.
    for column in ("train_loss", "val_loss"):
        assert nhwc_log[column].to_numpy() == pytest.approx(default_log[column].to_numpy(), rel=1e-3, abs=1e-4)
    # DC thresholds the probabilities, so a rounding difference can flip a pixel near 0.5
    assert nhwc_log["val_dc"].to_numpy() == pytest.approx(default_log["val_dc"].to_numpy(), abs=0.02)
    # The saved model is an ordinary one: it loads and predicts like the default run's.
    model, config = load_model(tmp_path / "nhwc" / "fold_0" / "best.safetensors")
    assert config.train.channels_last and not first_3x3_weight(model).is_contiguous(
        memory_format=torch.channels_last)
    assert (tmp_path / "nhwc" / "fold_0" / "val_summary.json").exists()
