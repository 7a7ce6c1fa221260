"""scripts/gpu_paper_fold0.sh (issue 10) at toy scale on the CPU, and its planning and deadline on their own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from scipy import stats
from script_loader import load_script as load_repo_script

from skinnet.config import config_from_dict, load_config
from skinnet.evaluation.comparison import count_flops, count_parameters

REPO = Path(__file__).resolve().parents[2]
NETWORKS = ("skinnet", "unet", "nodilation")
TOY = ["--probe-steps", "2", "--min-epochs", "1", "model.width=4", "data.image_size=64", "train.epochs=1",
       "train.threads=1"]


def load_script(name: str) -> ModuleType:
    """scripts/ is not a package: load a script from its path."""
    return load_repo_script(f"scripts/{name}.py")


@pytest.fixture()
def twelve_pairs(sample_data: Path, tmp_path: Path) -> Path:
    """12 of the bundled pairs: fold 0 of the seeded 5-fold split then validates on 3 of them."""
    data = tmp_path / "data"
    for folder in ("images", "masks"):
        (data / folder).mkdir(parents=True)
    for image in sorted((sample_data / "images").glob("*.jpg"))[:12]:
        shutil.copy(image, data / "images" / image.name)
        shutil.copy(sample_data / "masks" / f"{image.stem}_segmentation.png", data / "masks")
    return data


@pytest.mark.slow
def test_toy_job_trains_three_networks_and_writes_checked_results(twelve_pairs: Path, tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "out"
    env = {**os.environ, "DATA": str(twelve_pairs), "RUN": str(run), "OUT": str(out), "BUDGET": "300",
           "PYTHON": sys.executable, "WHEELS": str(tmp_path / "no_wheels"),
           "SKINNET_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_paper_fold0.sh"), *TOY], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["job.log", "paper_fold0_results.tar.gz", "results.json",
                                                      "results.md"]  # what a device run brings back
    assert "plan: skinnet, unet, nodilation at once, 1 epochs each" in (out / "job.log").read_text()
    with tarfile.open(out / "paper_fold0_results.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert not [name for name in names if name.endswith((".pt", ".safetensors"))]  # never the weights
    results = tmp_path / "unpacked" / "results"
    result = json.loads((out / "results.json").read_text())
    assert result["job"]["cuda"] is False and result["job"]["device"].startswith("CPU")

    # The networks trained what the issue asks for: the paper's recipe, each network's own change, the toy size.
    split = json.loads((run / "skinnet" / "splits.json").read_text())["folds"]
    per_image = {}
    for name in NETWORKS:
        config = json.loads((results / name / "config.json").read_text())
        assert config["train"]["channels_last"] and config["train"]["amp"] and config["train"]["epochs"] == 1
        train = config["train"]
        assert (train["lr"], train["batch_size"], train["schedule"], config["data"]["image_size"]) == (
            1e-4, 8, "plateau", 64)
        assert (run / name / "splits.json").read_bytes() == (run / "skinnet" / "splits.json").read_bytes()
        metrics = pd.read_csv(results / name / "val_metrics.csv")
        assert sorted(metrics["id"]) == sorted(split[0]) and len(metrics) == 3
        assert len(pd.read_csv(results / name / "log.csv")) == 1
        row = result["networks"][name]
        assert row["DC"] == pytest.approx(metrics["DC"].mean())
        assert row["JI"] == pytest.approx(metrics["JI"].mean())
        assert row["epochs_run"] == 1 and row["status"] == "finished"
        assert row["parameters"] == count_parameters(config_from_dict(config))
        per_image[name] = metrics.set_index("id")
        assert (results / f"fig2_{name}.png").stat().st_size > 0
    configs = {name: json.loads((results / name / "config.json").read_text())["model"] for name in NETWORKS}
    assert configs["unet"]["name"] == "unet" and configs["nodilation"]["dilations"] == [1]
    assert configs["skinnet"]["dilations"] == [1, 2, 4, 8, 16, 32] and configs["skinnet"]["width"] == 4
    unet = load_config(REPO / "configs" / "isic2017_paper.yaml", ["model.name=unet", "model.width=4",
                                                                    "data.image_size=64"])
    assert result["networks"]["unet"]["parameters"] == count_parameters(unet)
    assert result["networks"]["unet"]["gflops"] == pytest.approx(count_flops(unet) / 1e9)

    # Wilcoxon p-values recomputed from the per-image CSVs; at toy scale they may be undefined (null), and
    # then only because every paired difference is zero.
    for second in ("unet", "nodilation"):
        for metric in ("DC", "JI"):
            diff = per_image["skinnet"][metric] - per_image[second][metric].reindex(per_image["skinnet"].index)
            test = result["wilcoxon"][f"skinnet-{second}"][metric]
            assert test["n"] == 3
            if (diff == 0).all():
                assert test["p_value"] is None
            else:
                assert test["p_value"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    table = (out / "results.md").read_text()
    assert table.startswith("**Ran on the CPU: a toy-scale check of the script, not a result.**")
    assert "| SkinNet − U-Net | 3 |" in table and "| SkinNet − SkinNet without dilation | 3 |" in table
    merged = pd.read_csv(results / "per_image.csv").set_index("id")
    assert merged.loc[split[0], "DC_unet"].tolist() == per_image["unet"].loc[split[0], "DC"].tolist()

    # A network stopped at the deadline is predicted by the job with its best model: the same predictions.
    job = load_script("paper_fold0")
    folder = run / "unet" / "fold_0"
    before = pd.read_csv(folder / "val_metrics.csv")
    shutil.rmtree(folder / "val_predictions")
    (folder / "val_metrics.csv").unlink()
    assert job.predict_stopped(load_config(job.CONFIG, result["networks"]["unet"]["overrides"]), str(twelve_pairs),
                               run, "unet")
    pd.testing.assert_frame_equal(pd.read_csv(folder / "val_metrics.csv"), before)


def test_plan_fits_the_budget_and_drops_the_optional_network_first() -> None:
    job = load_script("paper_fold0")
    seconds = {"skinnet": 6.0, "unet": 3.0, "nodilation": 5.0}  # 14 s for an epoch of all three
    plan = job.choose_plan(seconds, budget=2000, nominal=100, min_epochs=25)
    assert (plan.networks, plan.epochs, plan.dropped) == (list(seconds), 100, [])  # 1400 s: all fit
    plan = job.choose_plan(seconds, budget=420, nominal=100, min_epochs=25)
    assert (plan.networks, plan.epochs, plan.dropped) == (list(seconds), 30, [])
    assert plan.estimated_seconds == pytest.approx(30 * 14)
    plan = job.choose_plan(seconds, budget=300, nominal=100, min_epochs=25)  # 21 < 25 epochs for three
    assert (plan.networks, plan.epochs, plan.dropped) == (["skinnet", "unet"], 33, ["nodilation"])
    plan = job.choose_plan(seconds, budget=5, nominal=100, min_epochs=25)
    assert (plan.networks, plan.epochs) == (["skinnet", "unet"], 1)  # always at least one epoch
    assert job.choose_plan(seconds, budget=300, nominal=10, min_epochs=25).networks == list(seconds)
    assert job.epoch_seconds(0.01, n_train=1600, n_val=300, safety=1.5) == pytest.approx(1.5 * 0.01 * 1700)


def test_deadline_stops_every_process_of_a_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = load_script("paper_fold0")
    started = []

    def sleeper(name: str, overrides: list[str], data: str, run: Path) -> subprocess.Popen:
        # a training stand-in with a child of its own, as DataLoader workers are
        process = subprocess.Popen(["bash", "-c", "sleep 60 & sleep 60"], start_new_session=True)
        started.append(process)
        return process

    monkeypatch.setattr(job, "start", sleeper)
    began = time.monotonic()
    status = job.train_all({"skinnet": [], "unet": []}, "data", tmp_path, time.monotonic() + 1, began)
    assert time.monotonic() - began < 20
    assert {row["status"] for row in status.values()} == {"stopped at the deadline"}
    for process in started:  # the whole group, the inner sleep too, has ended
        assert living_in_group(process.pid) == []


def living_in_group(group: int) -> list[int]:
    """Processes of a process group that are neither gone nor zombies (which an init that never reaps keeps)."""
    living = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # ended while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            living.append(int(stat.parent.name))
    return living


def test_usage_is_printed_with_help() -> None:
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_paper_fold0.sh"), "--help"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and "BUDGET=540" in done.stdout and "set -uo" not in done.stdout


def test_one_network_alone_is_never_dropped_and_is_tested_against_an_earlier_run(tmp_path: Path) -> None:
    """The no-dilation row alone (issue 25, item 6): the plan keeps it, and the results pair its per-image
    scores with the SkinNet of the earlier run's results (docs/paper_fold0), here stood in by that run's U-Net."""
    job = load_script("paper_fold0")
    plan = job.choose_plan({"nodilation": 8.0}, budget=100, nominal=29, min_epochs=25)  # 12 epochs fit
    assert (plan.networks, plan.epochs, plan.dropped) == (["nodilation"], 12, [])
    earlier = REPO / "docs" / "paper_fold0"
    run = tmp_path / "run"
    (run / "nodilation" / "fold_0").mkdir(parents=True)
    config = json.loads((earlier / "skinnet" / "config.json").read_text())
    config["model"]["dilations"] = [1]
    (run / "nodilation" / "config.json").write_text(json.dumps(config))
    for name in ("log.csv", "val_metrics.csv"):
        shutil.copy(earlier / "unet" / name, run / "nodilation" / "fold_0" / name)
    record = json.loads((earlier / "job.json").read_text())
    record.update(plan={"networks": ["nodilation"], "epochs": 29, "estimated_seconds": 150.0, "dropped": []},
                  overrides={"nodilation": [*record["overrides"]["skinnet"], "model.dilations=[1]"]},
                  status={"nodilation": {**record["status"]["unet"], "predicted_by_job": None}},
                  labels={"nodilation": "SkinNet without dilation"})
    (run / "job.json").write_text(json.dumps(record))
    results = load_script("paper_fold0_results")
    result = results.collect(run, tmp_path / "out", earlier)
    test = result["wilcoxon"]["skinnet-nodilation"]["DC"]
    skinnet = pd.read_csv(earlier / "skinnet" / "val_metrics.csv").set_index("id")["DC"]
    unet = pd.read_csv(earlier / "unet" / "val_metrics.csv").set_index("id")["DC"]
    assert test["n"] == 400
    assert test["p_value"] == pytest.approx(stats.wilcoxon(skinnet - unet[skinnet.index]).pvalue)
    assert "| skinnet (earlier run: " in (tmp_path / "out" / "results.md").read_text()
