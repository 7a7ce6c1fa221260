"""Command-line options that contradict each other, batches whose files share an ID, and which backend and
precision run (and say so)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from skinnet.cli import main
from skinnet.data.io import read_mask
from skinnet.weights import default_model_path, packaged_int8_path

needs_shipped = pytest.mark.skipif(default_model_path() is None or packaged_int8_path() is None,
                                   reason="no shipped model and int8 copy in skinnet/weights/")

REPO = Path(__file__).resolve().parents[2]


def test_model_and_run_together_are_refused(tmp_path: Path, sample_data: Path, tiny_model: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--model", str(tiny_model),
                 "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("skinnet predict: error: --model and --run both given") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_a_pixel_spacing_without_a_measurement_table_is_refused(tmp_path: Path, sample_data: Path,
                                                                tiny_model: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--model", str(tiny_model),
                 "--pixel-spacing", "0.02"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("skinnet predict: error: --pixel-spacing only scales the measurement table: add "
                   "--measurements FILE.csv")
    assert not (tmp_path / "out").exists()


def test_dicomweb_with_dask_is_refused_before_a_model_loads(tmp_path: Path, tiny_model: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # a refused port: nothing is contacted, neither the server nor a scheduler
    assert main(["predict", "http://127.0.0.1:9/dicom-web/studies/1.2.3", "--out", str(tmp_path / "out"),
                 "--model", str(tiny_model), "--dask", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "skinnet predict: error: DICOMweb inputs and --stow-to run on this machine: drop --dask"
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
    monkeypatch.setenv("SKINNET_CACHE", str(tmp_path / "cache"))
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    out = tmp_path / "out"
    assert main(["predict", str(image), "--out", str(out), "--model", str(tiny_model), "--int8",
                 "--measurements", str(tmp_path / "m.csv")]) == 0
    assert json.loads((out / "manifest.json").read_text())["inference"]["precision"] == "int8"
    assert "s per image, onnx int8)" in capsys.readouterr().err
    with open(tmp_path / "m.csv", newline="") as handle:
        assert [row["model_runtime"] for row in csv.DictReader(handle)] == ["onnx int8"]
    assert main(["predict", str(image), "--out", str(tmp_path / "torch"), "--model", str(tiny_model), "--int8",
                 "--backend", "torch"]) == 2
    assert capsys.readouterr().err.strip().endswith("skinnet predict: error: int8 runs on ONNX Runtime: use the "
                                                    "onnx backend (--backend onnx)")


def test_precision_and_its_int8_alias_are_one_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skinnet.cli import build_parser

    args = build_parser().parse_args(["predict", "x.jpg", "--out", "o", "--int8"])
    assert (args.backend, args.precision) == ("auto", "int8")
    assert build_parser().parse_args(["serve"]).precision == "auto"
    with pytest.raises(SystemExit) as exited:
        main(["predict", "x.jpg", "--out", str(tmp_path), "--precision", "float32", "--int8"])
    assert exited.value.code == 2
    assert "argument --int8: not allowed with argument --precision" in capsys.readouterr().err


@needs_shipped
def test_without_the_onnx_extra_the_default_is_torch_float32_and_says_so(
        tmp_path: Path, sample_data: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import skinnet.inference.segmenter as segmenter

    monkeypatch.setattr(segmenter, "onnx_available", lambda: False)
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    assert main(["predict", str(image), "--out", str(tmp_path / "out"), "--device", "cpu", "--tta", "off"]) == 0
    err = capsys.readouterr().err
    assert "note: the 'onnx' extra is not installed, so the shipped model runs in torch float32 instead of its " \
           "int8 copy" in err and "pip install 'skinnet[onnx]'" in err and "s per image, torch float32)" in err
    inference = json.loads((tmp_path / "out" / "manifest.json").read_text())["inference"]
    assert (inference["engine"], inference["precision"]) == ("TorchEngine", "float32")


@needs_shipped
def test_a_folder_made_with_the_old_torch_default_says_why_it_is_predicted_again(
        tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    out = tmp_path / "out"
    # what `skinnet predict` ran by default before int8 did, on a CPU
    assert main(["predict", str(image), "--out", str(out), "--device", "cpu", "--backend", "torch"]) == 0
    capsys.readouterr()
    assert main(["predict", str(image), "--out", str(out), "--device", "cpu", "--backend", "torch"]) == 0
    assert "1 images already done by a run of the same model and options: skipped" in capsys.readouterr().err
    assert main(["predict", str(image), "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert (f"note: {out} was predicted with torch float32, this run uses onnx int8: its images are predicted "
            "again (to resume it as it was made, pass --backend torch)") in err
    assert "1 masks written" in err
    assert json.loads((out / "manifest.json").read_text())["inference"]["precision"] == "int8"


def test_calibration_options_need_int8(tiny_model: Path, tmp_path: Path, sample_data: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", str(tiny_model), "--onnx", str(tmp_path / "m.onnx"), "--calibration",
                 str(sample_data / "images"), "--calibration-images", "8"]) == 2
    assert capsys.readouterr().err == ("skinnet export: error: --calibration, --calibration-images: only with "
                                       "--int8 (calibration sets the int8 copy's ranges); add --int8, or leave it "
                                       "out for a float32 export\n")
    assert not (tmp_path / "m.onnx").exists()


def test_calibration_on_only_unusable_images_is_one_line(tiny_model: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (folder := tmp_path / "calibration").mkdir()
    (folder / "broken.jpg").write_bytes(b"not a JPEG")
    for index in range(5):
        Image.new("RGB", (256, 256)).save(folder / f"black{index}.png")
    assert main(["export", "--model", str(tiny_model), "--onnx", str(tmp_path / "m.onnx"), "--int8",
                 "--calibration", str(folder)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"skinnet export: error: no usable calibration image among the 6 drawn from {folder}: int8 "
                       "calibration needs a few dozen typical images")
    assert f"skipped calibration image {folder / 'black0.png'}: a nearly uniform image (pixel standard " \
           "deviation 0.0), nothing to calibrate on" in err
    assert not (tmp_path / "m.onnx").exists() and sorted(path.name for path in tmp_path.iterdir()) == [
        "calibration"]


def test_an_int8_export_that_disagrees_with_float32_is_reported(tiny_model: Path, tmp_path: Path,
                                                                sample_data: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import skinnet.inference.quantize as quantize

    monkeypatch.setattr(quantize, "mask_agreement", lambda *args: 0.8)
    (folder := tmp_path / "calibration").mkdir()
    for path in sorted((sample_data / "images").glob("*.jpg"))[:4]:
        Image.open(path).rotate(90).save(folder / path.name)
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(tiny_model), "--onnx", str(out), "--int8", "--calibration",
                 str(folder), "--calibration-seed", "3"]) == 0
    captured = capsys.readouterr()
    assert f"{out} (int8, calibrated on 4 images; masks agree with float32 at mean Dice 0.800" in captured.out
    assert captured.err == (f"warning: {out}: its masks agree with float32's only at mean Dice 0.800 on the "
                            "bundled samples (the shipped model's copy: 0.98): calibrate on more images "
                            "typical of the inputs\n")
    calibration = json.loads(quantize.int8_metadata(out)[quantize.CALIBRATION_KEY])
    assert calibration["seed"] == 3 and sorted(calibration["files"]) == sorted(p.name for p in folder.iterdir())


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
