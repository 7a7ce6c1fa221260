"""The writers of a batch run's findings: measurements in mm, confidence, model identity, uncertainty maps."""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.measure import regionprops

from skinnet.batch.run import predict_files
from skinnet.batch.writers import DicomSegWriter, FindingsWriter, MaskWriter, write_measurements
from skinnet.clinical.findings import TABLE_FIELDS, ModelInfo
from skinnet.config import load_config
from skinnet.data.io import read_dicom_only, read_image, read_mask, read_source
from skinnet.inference.segmenter import Segmenter
from skinnet.networks import build_model
from skinnet.networks.files import save_weights

SAMPLES = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random SkinNet (width 4, 64 px) whose threshold is the median probability: partial, ragged masks."""
    torch.manual_seed(0)
    config = load_config(None, ["model.width=4", "data.image_size=64"])
    model = build_model(config.model).eval()
    probability = Segmenter(model, config, torch.device("cpu")).predict_proba(read_image(SAMPLES /
                                                                                           "ISIC_0000025.jpg"))
    config.inference.threshold = float(np.median(probability))
    path = tmp_path_factory.mktemp("findings_model") / "random.safetensors"
    save_weights(path, model, config)
    return path


def rows_of(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def test_table_rows_in_mm_with_confidence_and_model(model_file: Path, make_dicom: Callable,
                                                    tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("ISIC_0000025.jpg", "ISIC_0000321.jpg"):
        (inputs / name).write_bytes((SAMPLES / name).read_bytes())
    make_dicom(inputs / "case.dcm", read_image(SAMPLES / "ISIC_0000344.jpg"), spacing=(0.02, 0.025))
    segmenter = Segmenter.from_file(model_file, device="cpu")
    writers = [FindingsWriter(segmenter, 0.05, uncertainty=True), MaskWriter()]
    out = tmp_path / "out"
    report = predict_files(segmenter, [inputs], out, writers=writers, reader=read_source)
    assert not report.failed
    table = tmp_path / "m.csv"
    assert write_measurements(report.table, table) == 3
    with open(table, newline="") as handle:
        assert next(csv.reader(handle)) == TABLE_FIELDS
    rows = rows_of(table)
    sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    for image_id, spacing, source in (("ISIC_0000025", (0.05, 0.05), "user"),
                                      ("case", (0.02, 0.025), "PixelSpacing")):
        row = rows[image_id]
        mask = read_mask(out / f"{image_id}_segmentation.png")
        # scikit-image on the written mask, with the spacing, is the oracle for the mm figures.
        region = regionprops(mask.astype(np.uint8), spacing=spacing)[0]
        assert row["spacing_source"] == source
        assert (float(row["pixel_spacing_row_mm"]), float(row["pixel_spacing_column_mm"])) == spacing
        assert int(row["area_px"]) == mask.sum()
        assert float(row["area_mm2"]) == pytest.approx(mask.sum() * spacing[0] * spacing[1])
        assert float(row["max_diameter_mm"]) == pytest.approx(region.feret_diameter_max, rel=1e-9)
        assert float(row["major_axis_mm"]) == pytest.approx(region.axis_major_length, rel=1e-9)
        assert row["model_sha256"] == sha and row["model_file"] == str(model_file)
        score = float(row["confidence"])
        assert 0 <= score <= 1 and row["confidence_method"] == segmenter.config.inference.confidence
        assert row["flagged"] == str(score < float(row["confidence_threshold"]) or not mask.any() or mask.all())
        uncertainty = np.asarray(Image.open(out / f"{image_id}_uncertainty.png"))
        assert uncertainty.dtype == np.uint8 and uncertainty.shape == mask.shape
    # Non-square pixels: the perimeter has no mm value (scikit-image's is for square pixels only).
    assert rows["case"]["perimeter_mm"] == ""
    assert float(rows["ISIC_0000025"]["perimeter_mm"]) == pytest.approx(
        float(rows["ISIC_0000025"]["perimeter_px"]) * 0.05)


def test_without_spacing_millimetres_stay_empty_and_resume_keeps_rows(model_file: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_file(model_file, device="cpu")
    writers = [FindingsWriter(segmenter), MaskWriter()]
    image = SAMPLES / "ISIC_0000463.jpg"
    first = predict_files(segmenter, [image], tmp_path / "out", writers=writers, reader=read_source, resume=True)
    again = predict_files(segmenter, [image], tmp_path / "out", writers=writers, reader=read_source, resume=True)
    assert again.skipped == ["ISIC_0000463"] and not again.written
    write_measurements(first.table, tmp_path / "a.csv")
    write_measurements(again.table, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    row = rows_of(tmp_path / "b.csv")["ISIC_0000463"]
    assert row["spacing_source"] == "" and row["area_mm2"] == "" and row["max_diameter_mm"] == ""
    assert float(row["max_diameter_px"]) > 0 and not math.isnan(float(row["confidence"]))


def test_a_bad_pixel_spacing_is_refused(model_file: Path) -> None:
    with pytest.raises(ValueError, match=r"from 0\.0001 to 100 mm"):
        FindingsWriter(Segmenter.from_file(model_file, device="cpu"), pixel_spacing=-1)


@pytest.mark.slow
def test_a_cluster_run_gives_the_same_table_and_segs(model_file: Path, make_dicom: Callable,
                                                     tmp_path: Path) -> None:
    """Writers travel to Dask workers without the model; each worker's own copy computes the same rows."""
    pytest.importorskip("distributed")
    import highdicom as hd
    import pydicom
    from distributed import Client, LocalCluster

    from skinnet.batch.dask import DaskExecutor
    from skinnet.inference.model_spec import ModelSpec

    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in sorted(SAMPLES.glob("*.jpg"))[:4]:
        make_dicom(inputs / f"{path.stem}.dcm", read_image(path), spacing=(0.02, 0.02))
    spec = ModelSpec(model=str(model_file), device="cpu", threads=1)
    segmenter = spec.load()
    tables = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for name, executor in (("local", None), ("dask", DaskExecutor(spec, client, chunk_size=2))):
            writers = [FindingsWriter(segmenter), DicomSegWriter(ModelInfo.of(segmenter)), MaskWriter()]
            report = predict_files(segmenter, [inputs], tmp_path / name, writers=writers, reader=read_dicom_only,
                                   executor=executor)
            assert len(report.written) == 4 and not report.failed
            write_measurements(report.table, tmp_path / f"{name}.csv")
            tables[name] = rows_of(tmp_path / f"{name}.csv")
    assert tables["dask"] == tables["local"]
    for image_id, row in tables["dask"].items():
        mask = read_mask(tmp_path / "dask" / f"{image_id}_segmentation.png")
        seg = hd.seg.segread(tmp_path / "dask" / f"{image_id}_seg.dcm")
        source = pydicom.dcmread(inputs / f"{image_id}.dcm")
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[source.SOPInstanceUID],
                                                   segment_numbers=[1])
        np.testing.assert_array_equal(pixels[0, ..., 0].astype(bool), mask)
        assert float(row["area_mm2"]) == pytest.approx(mask.sum() * 0.02**2)
