"""Command-line options that contradict each other, and batches whose files share an ID."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from skinnet.cli import main
from skinnet.data.io import read_mask

REPO = Path(__file__).resolve().parents[2]


def test_model_and_run_together_are_refused(tmp_path: Path, sample_data: Path, tiny_model: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--model", str(tiny_model),
                 "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("skinnet predict: error: --model and --run both given") and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("first", "second"), [("JPEG", "PNG"), ("TIFF", "WEBP")])
def test_two_files_with_one_id_give_one_mask_and_a_failure(tmp_path: Path, sample_data: Path, tiny_model: Path,
                                                          first: str, second: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    images = sorted((sample_data / "images").glob("*.jpg"))[:2]
    (folder := tmp_path / "in").mkdir()
    # Two different lesions under one ID: whichever mask is written must be the first file's.
    for path, fmt in zip(images, (first, second), strict=True):
        Image.open(path).convert("RGB").save(folder / f"img.{fmt.lower()}", fmt)
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--model", str(tiny_model), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    kept, dropped = sorted(folder.iterdir())
    assert f"{dropped}: duplicate ID 'img' (also {kept}); skipped" in err and "1 file(s) failed" in err
    assert sorted(p.name for p in out.glob("*.png")) == ["img_segmentation.png"]
    (single := tmp_path / "single").mkdir()
    shutil.copy(kept, single)
    alone = tmp_path / "alone"
    assert main(["predict", str(single), "--out", str(alone), "--model", str(tiny_model)]) == 0
    assert (read_mask(out / "img_segmentation.png") == read_mask(alone / "img_segmentation.png")).all()


def test_predict_int8_runs_the_cached_int8_copy_and_says_so(tmp_path: Path, sample_data: Path, tiny_model: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import json

    monkeypatch.setenv("SKINNET_CACHE", str(tmp_path / "cache"))
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    out = tmp_path / "out"
    assert main(["predict", str(image), "--out", str(out), "--model", str(tiny_model), "--int8"]) == 0
    assert json.loads((out / "manifest.json").read_text())["inference"]["precision"] == "int8"
    assert main(["predict", str(image), "--out", str(tmp_path / "torch"), "--model", str(tiny_model), "--int8",
                 "--backend", "torch"]) == 2
    assert capsys.readouterr().err.strip().endswith("skinnet predict: error: int8 runs on ONNX Runtime: use the "
                                                    "onnx backend (--backend onnx)")


@pytest.mark.parametrize(("option", "message"), [
    (["--shard", ""], "--shard '': expected K/N, e.g. 1/4 (shard 1 of 4)"),
    (["--shard", "1/1000000000"], "shard 1/1000000000: N must be between 1 and 100,000"),
    (["--batch-size", "99999999999999999999"], "--batch-size 99999999999999999999: allowed 1 to 4,096 images"),
    (["--batch-size", "1000000"], "--batch-size 1000000: allowed 1 to 4,096 images per forward pass"),
])
def test_an_empty_shard_and_batch_sizes_out_of_bounds_are_one_line(option: list[str], message: str, tmp_path: Path,
                                                                   sample_data: Path, tiny_model: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--model", str(tiny_model), *option]) == 2
    err = capsys.readouterr().err
    assert err == f"skinnet predict: error: {message}\n" or err.startswith(f"skinnet predict: error: {message}")
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_the_batch_size_is_bounded_by_the_memory_of_one_forward_pass() -> None:
    from skinnet.batch.run import check_batch_size, max_batch_size
    from skinnet.config import ConfigError, load_config
    from skinnet.inference.segmenter import Segmenter

    config = load_config(REPO / "configs" / "isic2017_paper.yaml", [])  # width 32 at 512 px: 1.26 GB an image
    paper = Segmenter(lambda batch: batch[:, 0], config, tta=True)  # an engine that is never run
    assert max_batch_size(paper) == 12  # 64 GB / (4 flip views x 1.26 GB)
    check_batch_size(paper, 12)
    with pytest.raises(ConfigError, match=r"--batch-size 13: a forward pass of 13 images would need more than the "
                                          r"limit of 64 GB of activations; this model allows at most 12"):
        check_batch_size(paper, 13)
    assert max_batch_size(Segmenter(lambda batch: batch[:, 0], config, tta=False)) == 50
