"""Cross-validation: every fold trained once, finished folds skipped, out-of-fold results pooled, resume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from skinnet.config import Config, load_config
from skinnet.data.layout import find_pairs
from skinnet.metrics import METRIC_NAMES
from skinnet.runs import RunError, fold_finished
from skinnet.training.checkpoint import load_checkpoint
from skinnet.training.cv import run_cv

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.width=4", "data.image_size=32", "train.batch_size=8", "model.dilations=[1,2]", "train.threads=1",
        "train.n_folds=2"]


def tiny_config(cache: Path, *extra: str) -> Config:
    return load_config(REPO / "configs" / "cpu.yaml", [*TINY, "train.epochs=2", f"data.cache_dir={cache}", *extra])


def mtimes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    root = tmp_path_factory.mktemp("cv")
    result = run_cv(tiny_config(root / "cache"), sample_data, root / "run")
    assert result.trained == [0, 1] and result.skipped == []
    return root / "run"


@pytest.mark.slow
def test_pooled_out_of_fold_metrics_cover_every_pair_once(cv_run: Path, sample_data: Path) -> None:
    summary = json.loads((cv_run / "cv_summary.json").read_text())
    ids = sorted(pair.id for pair in find_pairs(sample_data).pairs)
    assert summary["pooled"]["n"] == len(ids) == 40
    assert summary["complete"] and summary["folds_done"] == [0, 1]
    table = pd.read_csv(cv_run / "cv_metrics.csv")
    assert sorted(table["id"]) == ids
    split = json.loads((cv_run / "splits.json").read_text())["folds"]
    fold_of = {key: fold for fold, keys in enumerate(split) for key in keys}
    assert fold_of == dict(zip(table["id"], table["fold"], strict=True))
    # Recompute from the folds' own per-image files, independently of skinnet.
    per_image = pd.concat([pd.read_csv(cv_run / f"fold_{k}" / "val_metrics.csv") for k in (0, 1)])
    fold_means = pd.DataFrame([pd.read_csv(cv_run / f"fold_{k}" / "val_metrics.csv")[list(METRIC_NAMES)].mean()
                               for k in (0, 1)])
    for name in METRIC_NAMES:
        assert summary["pooled"][name] == pytest.approx(per_image[name].mean(), abs=1e-12)
        assert summary["pooled_sd"][name] == pytest.approx(per_image[name].std(), abs=1e-12)
        assert summary["fold_mean"][name] == pytest.approx(fold_means[name].mean(), abs=1e-12)
        assert summary["fold_sd"][name] == pytest.approx(fold_means[name].std(), abs=1e-12)
    for k in (0, 1):
        assert [int(e) for e in pd.read_csv(cv_run / f"fold_{k}" / "log.csv")["epoch"]] == [0, 1]
        assert len(list((cv_run / f"fold_{k}" / "val_predictions").glob("*_segmentation.png"))) == 20


@pytest.mark.slow
def test_finished_folds_are_skipped_untouched(cv_run: Path, sample_data: Path) -> None:
    before = {k: mtimes(cv_run / f"fold_{k}") for k in (0, 1)}

    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished fold was trained again")

    result = run_cv(tiny_config(cv_run.parent / "cache"), sample_data, cv_run, train=must_not_train)
    assert result.trained == [] and result.skipped == [0, 1]
    assert {k: mtimes(cv_run / f"fold_{k}") for k in (0, 1)} == before
    assert result.summary["pooled"]["n"] == 40


@pytest.mark.slow
def test_more_epochs_unfinish_a_fold_and_cv_resumes_it(cv_run: Path, sample_data: Path) -> None:
    calls = []

    class Stop(Exception):
        pass

    def spy(config: Config, data_root: Path, run_dir: Path, fold: int, resume: bool) -> None:
        calls.append((fold, resume, config.train.epochs))
        raise Stop  # before anything is written

    assert fold_finished(cv_run, 0, epochs=2) and not fold_finished(cv_run, 0, epochs=3)
    with pytest.raises(Stop):
        run_cv(tiny_config(cv_run.parent / "cache", "train.epochs=3"), sample_data, cv_run, folds=[1],
               resume=True, train=spy)
    assert calls == [(1, True, 3)]


@pytest.mark.slow
def test_a_run_folder_refuses_another_network(cv_run: Path, sample_data: Path) -> None:
    with pytest.raises(RunError, match="model"):
        run_cv(tiny_config(cv_run.parent / "cache", "model.name=unet"), sample_data, cv_run)
    with pytest.raises(RunError, match="folds"):
        run_cv(tiny_config(cv_run.parent / "cache"), sample_data, cv_run, folds=[2])


def skinnet_cv(sample_data: Path, root: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    command = [sys.executable, "-m", "skinnet", "cv", "--config", str(REPO / "configs" / "cpu.yaml"), "--data",
               str(sample_data), "--out", str(root / "run"), *TINY, "train.epochs=8",
               f"data.cache_dir={root / 'cache'}", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


@pytest.mark.slow
def test_cv_killed_mid_fold_resumes_that_fold_and_skips_the_finished_one(sample_data: Path,
                                                                        tmp_path: Path) -> None:
    run = tmp_path / "run"
    process = skinnet_cv(sample_data, tmp_path)
    deadline = time.monotonic() + 240
    # Fold 0 is finished, and fold 1 has written its second checkpoint: its epoch bar counted the first epoch
    # (tqdm counts an epoch when the next one starts, just after its checkpoint; a kill at the first
    # checkpoint could land before the bar says 1/8).
    last, first_write = run / "fold_1" / "last.pt", None
    while True:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        written = last.stat().st_mtime_ns if last.exists() else None
        if first_write is None:
            first_write = written
        elif written != first_write:
            break
        time.sleep(0.02)
    process.kill()  # SIGKILL: no clean-up of any kind
    _, stderr = process.communicate()
    assert not (run / "fold_1" / "val_summary.json").exists(), "fold 1 finished before the kill"
    # The epoch bar: epochs done of 8, elapsed<remaining (the ETA), and loss, validation DC and lr.
    assert re.search(r"fold 1: .*\| [1-8]/8 \[[\d:]+<[\d:]+, .*loss=.*lr=.*val_dc=", stderr)
    checkpoint_epoch = load_checkpoint(run / "fold_1" / "last.pt")["epoch"]
    rows_before = pd.read_csv(run / "fold_1" / "log.csv")
    rows_before = rows_before[rows_before["epoch"] <= checkpoint_epoch]
    fold0 = mtimes(run / "fold_0")

    process = skinnet_cv(sample_data, tmp_path, "--resume")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert "fold 0: finished before, skipped" in stdout
    assert mtimes(run / "fold_0") == fold0
    log = pd.read_csv(run / "fold_1" / "log.csv")
    assert list(log["epoch"]) == list(range(8))
    # The epochs before the kill were kept as logged, not trained again.
    pd.testing.assert_frame_equal(log.iloc[: len(rows_before)], rows_before)
    summary = json.loads((run / "cv_summary.json").read_text())
    assert summary["complete"] and summary["pooled"]["n"] == 40


def test_a_reused_split_with_another_number_of_folds_is_refused(tmp_path: Path) -> None:
    from skinnet.data.splits import SplitError, load_or_create_folds

    ids = [f"ISIC_{i:07d}" for i in range(12)]
    path = tmp_path / "splits.json"
    assert len(load_or_create_folds(path, ids, 3, seed=1)) == 3
    assert load_or_create_folds(path, ids, 3, seed=1) == load_or_create_folds(path, ids, 3, seed=7)
    with pytest.raises(SplitError, match=rf"{path}: has 3 folds, the config asks for train.n_folds=5"):
        load_or_create_folds(path, ids, 5, seed=1)
