"""The process executor: the bytes of one process, bad files as outcomes, the network in the main process or in
each worker, masks made on the device, and JPEG drafts (issue 25)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skinnet.batch.processes import ProcessExecutor
from skinnet.batch.run import predict_files
from skinnet.data.io import DraftImage, DraftReader, read_image, read_image_draft
from skinnet.inference.ensemble import Ensemble
from skinnet.inference.model_spec import ModelSpec
from skinnet.inference.segmenter import Segmenter, full_size
from skinnet.metrics import image_metrics


def outputs(folder: Path) -> dict[str, bytes]:
    """The images' outputs and the table (the journal names processes, so it differs)."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_workers_and_the_main_process_layouts_give_the_bytes_of_one_process(
        images: Path, tiny_model: Path, tmp_path: Path, one_thread: None) -> None:
    spec = ModelSpec(model=str(tiny_model), device="cpu", threads=1, batch_size=2, tta=True)
    segmenter = spec.load()
    runs, failed = {}, {}
    for name, engine in [("sequential", None), ("workers", ProcessExecutor(segmenter, spec, 2, "workers")),
                         ("main", ProcessExecutor(segmenter, spec, 2, "main"))]:
        report = predict_files(segmenter, [images], tmp_path / name, with_probability=True, with_overlay=True,
                               batch_size=2, executor=engine)
        assert len(report.written) == 7
        runs[name], failed[name] = outputs(tmp_path / name), report.failed
    assert len(runs["sequential"]) == 7 * 3 + 2  # masks, probabilities, overlays; manifest and table
    assert runs["workers"] == runs["sequential"] and runs["main"] == runs["sequential"]
    assert failed["workers"] == failed["main"] == failed["sequential"]  # one line per bad file, in order
    assert [line.split(": ")[1] for line in failed["sequential"]] == ["corrupt or truncated image (OSError",
                                                                      "empty file (0 bytes)"]


def test_masks_made_on_the_device_and_an_ensemble_in_the_main_process_give_the_same_masks(
        images: Path, tiny_model: Path, tmp_path: Path, one_thread: None) -> None:
    spec = ModelSpec(model=str(tiny_model), device="cpu", threads=1, batch_size=2)
    segmenter = spec.load()
    predict_files(segmenter, [images], tmp_path / "sequential", batch_size=2)
    engine = ProcessExecutor(segmenter, spec, 2, "main", device_masks=True)
    predict_files(segmenter, [images], tmp_path / "device", batch_size=2, executor=engine)
    assert outputs(tmp_path / "device") == outputs(tmp_path / "sequential")
    assert engine.network_seconds > 0  # the network ran here

    ensemble = Ensemble.from_files([tiny_model, tiny_model], device="cpu", batch_size=2)
    predict_files(ensemble, [images], tmp_path / "ensemble", batch_size=2)
    predict_files(ensemble, [images], tmp_path / "ensemble_main", batch_size=2,
                  executor=ProcessExecutor(ensemble, None, 2))  # no spec: the network stays here
    assert outputs(tmp_path / "ensemble_main") == outputs(tmp_path / "ensemble")


def test_small_runs_strict_runs_and_measurement_runs_use_threads(images: Path, tiny_model: Path,
                                                                tmp_path: Path) -> None:
    from skinnet.batch.store import OutputStore
    from skinnet.batch.writers import FindingsWriter, standard_writers
    from skinnet.data.io import InputError

    spec = ModelSpec(model=str(tiny_model), device="cpu", threads=1)
    segmenter = spec.load()
    engine = ProcessExecutor(segmenter, spec, 2, min_images=100)
    report = predict_files(segmenter, [images], tmp_path / "small", executor=engine)
    assert len(report.written) == 7 and engine.network_seconds == 0
    with pytest.raises(InputError):
        predict_files(segmenter, [images], tmp_path / "strict", executor=ProcessExecutor(segmenter, spec, 2),
                      strict=True)
    writers = [FindingsWriter(segmenter), *standard_writers()]  # what --measurements adds
    assert ProcessExecutor(segmenter, spec, 2).layout(OutputStore(tmp_path, writers, None)) is None


def test_flips_and_masks_on_the_device_are_the_numpy_and_opencv_numbers(sample_data: Path) -> None:
    """TorchBackend.probabilities flips and averages on the device; TorchBackend.masks resizes and thresholds
    there: on the CPU both are bit for bit the path that does them in NumPy and OpenCV."""
    torch.set_num_threads(1)
    segmenter = Segmenter.from_file(None, device="cpu", batch_size=2, backend="torch")
    paths = sorted((sample_data / "images").glob("*.jpg"))[:2]
    chunk = [np.asarray(Image.open(path).convert("RGB").resize(size, Image.BICUBIC))
             for path, size in zip(paths, [(1024, 768), (333, 517)], strict=True)]
    batch = segmenter.network_inputs(chunk)
    shapes = [image.shape[:2] for image in chunk]
    for tta in (False, True):
        views = segmenter._flip_views(batch).mean(axis=0) if tta else segmenter.backend(batch)
        device = segmenter.backend.probabilities(torch.from_numpy(batch), tta).numpy()
        np.testing.assert_array_equal(device, views)
        masks = segmenter.backend.masks(batch, shapes, segmenter.threshold, tta)
        for mask, probability in zip(masks, full_size(views, chunk), strict=True):
            assert mask.dtype == np.uint8
            np.testing.assert_array_equal(mask.astype(bool), probability > segmenter.threshold)
    empty = segmenter.backend.masks(batch, shapes, 1.0, False, empty_fallback=True)  # nothing passes 1.0
    assert all(mask.dtype == np.float32 and mask.shape == shape for mask, shape in zip(empty, shapes, strict=True))


def test_a_jpeg_draft_knows_its_full_size_in_the_displayed_orientation(sample_data: Path, tmp_path: Path) -> None:
    source = Image.open(sorted((sample_data / "images").glob("*.jpg"))[0]).convert("RGB").resize((2048, 1536))
    plain, turned, png = tmp_path / "plain.jpg", tmp_path / "turned.jpg", tmp_path / "plain.png"
    source.save(plain, quality=92)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned by 90 degrees
    source.save(turned, quality=92, exif=exif)
    source.save(png)
    drafted = read_image_draft(plain, 256)
    assert isinstance(drafted, DraftImage) and drafted.shape == (384, 512, 3)  # 1/4 keeps both sides >= 256
    assert drafted.full_shape == read_image(plain).shape[:2] == (1536, 2048)
    drafted = read_image_draft(turned, 256)
    assert drafted.shape == (512, 384, 3) and drafted.full_shape == read_image(turned).shape[:2] == (2048, 1536)
    assert not isinstance(read_image_draft(png, 256), DraftImage)  # other formats are read in full
    assert not isinstance(read_image_draft(plain, 1024), DraftImage)  # 1/2 would be smaller than asked


def test_jpeg_drafts_give_masks_of_the_full_size_that_agree_with_full_decoding(
        sample_data: Path, tmp_path: Path) -> None:
    """The issue's bar for keeping drafts: mean DC >= 0.995 against full decoding, on large JPEGs."""
    torch.set_num_threads(1)
    segmenter = Segmenter.from_file(None, device="cpu", batch_size=1)
    folder = tmp_path / "large"
    folder.mkdir()
    for path in sorted((sample_data / "images").glob("*.jpg"))[:3]:
        Image.open(path).convert("RGB").resize((2048, 1536), Image.BICUBIC).save(folder / path.name, quality=92)
    full = predict_files(segmenter, [folder], tmp_path / "full")
    draft = predict_files(segmenter, [folder], tmp_path / "draft", reader=DraftReader(256))
    dcs = []
    for a, b in zip(full.written, draft.written, strict=True):
        mask_a, mask_b = np.asarray(Image.open(a)) > 128, np.asarray(Image.open(b)) > 128
        assert mask_a.shape == mask_b.shape == (1536, 2048)
        dcs.append(image_metrics(mask_a, mask_b)["DC"])
    assert np.mean(dcs) >= 0.995, dcs
    manifests = [json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("full", "draft")]
    assert manifests[1]["input"] == {"decode": "jpeg_draft", "side": 256} and "input" not in manifests[0]
    assert manifests[0]["key"] != manifests[1]["key"]  # a resumed run never mixes the two
