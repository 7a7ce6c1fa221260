"""Malformed DICOM files in a batch, and anything unexpected a reader or writer raises: each is the image's
own one-line failure; the batch, its table and every resume of it go on."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from dicom_factory import edit_dicom, set_raw, with_transfer_syntax

from skinnet.batch.run import predict_files
from skinnet.batch.writers import (
    DicomSegWriter,
    FindingsWriter,
    MaskWriter,
    OutputWriter,
    read_seg_source,
    standard_writers,
)
from skinnet.clinical.findings import ModelInfo
from skinnet.config import load_config
from skinnet.data.io import InputError, read_image
from skinnet.inference.segmenter import Segmenter
from skinnet.networks import build_model
from skinnet.networks.files import save_weights

SAMPLES = Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images"


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> Segmenter:
    """A random SkinNet (width 4, 64 px) loaded from a real model file, so that runs keep a journal."""
    torch.manual_seed(0)
    config = load_config(None, ["model.width=4", "data.image_size=64"])
    path = tmp_path_factory.mktemp("bad_dicom_model") / "random.safetensors"
    save_weights(path, build_model(config.model).eval(), config)
    return Segmenter.from_file(path, device="cpu")


def table_of(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def journal_ids(out: Path) -> set[str]:
    return {json.loads(line)["id"] for path in (out / ".skinnet" / "journal").rglob("*.jsonl")
            for line in path.read_text().splitlines()}


# name: (how the good file is damaged, a word of its one-line failure)
BAD = {
    "frames_abc": (lambda path: edit_dicom(path, lambda ds: set_raw(ds, "NumberOfFrames", b"abc ")),
                   "NumberOfFrames (0028,0008) is 'abc'"),
    "no_bits": (lambda path: edit_dicom(path, lambda ds: delattr(ds, "BitsAllocated")), "without BitsAllocated"),
    "jpeg_xl": (lambda path: with_transfer_syntax(path, "1.2.840.10008.1.2.4.112"), "JPEG XL"),
    "unknown_uid": (lambda path: with_transfer_syntax(path, "1.2.3.4.5"), "not a transfer syntax pydicom knows"),
    # (no PatientID is no error: it is Type 2, and the SEG then has it empty, as a camera's file may)
    "no_study": (lambda path: edit_dicom(path, lambda ds: delattr(ds, "StudyInstanceUID")),
                 "lacks StudyInstanceUID"),
    "no_sop": (lambda path: edit_dicom(path, lambda ds: delattr(ds, "SOPInstanceUID")), "lacks SOPInstanceUID"),
}


def test_malformed_dicoms_fail_one_line_each_and_every_resume_goes_on(segmenter: Segmenter, make_dicom: Callable,
                                                                      tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    rgb = read_image(SAMPLES / "ISIC_0000025.jpg")
    make_dicom(inputs / "good.dcm", rgb)
    for name, (damage, _) in BAD.items():
        damage(make_dicom(inputs / f"{name}.dcm", rgb))
    # what `skinnet predict --measurements T --dicom-seg` runs (skinnet.cli.prediction.predict_writers)
    writers = [FindingsWriter(segmenter), DicomSegWriter(ModelInfo.of(segmenter)), *standard_writers()]
    reader = read_seg_source
    for attempt in range(2):  # the run, then a resume: neither stops at a bad file
        report = predict_files(segmenter, [inputs], out, writers=writers, reader=reader, resume=True)
        assert report.skipped == ([] if attempt == 0 else ["good"])
        assert len(report.failed) == len(BAD)
        rows = table_of(report.table)
        assert rows["good"]["status"] == "ok" and (out / "good_seg.dcm").is_file()
        for name, (_, word) in BAD.items():
            assert rows[name]["status"] == "failed" and word in rows[name]["reason"], rows[name]
            assert rows[name]["reason"].startswith(str(inputs / f"{name}.dcm") + ": ")
            assert not list(out.glob(f"{name}_*"))  # nothing of a failed image was written
        # Nothing of a failed image was recorded as done either: a SEG refused by its source is checked first.
        assert journal_ids(out) == {"good"}


class Exploding:
    """A reader for which one file raises what no reader should: a bug, or a decoder's surprise."""

    def __call__(self, path: Path) -> Any:
        if path.stem == "ISIC_0000025":
            raise RuntimeError("decoder state\nbroken")
        return read_image(path)


class RefusingWriter(OutputWriter):
    """Refuses one image while building its table row, as highdicom may refuse a SEG."""

    def fields(self, result: Any) -> dict[str, Any]:
        if result.id == "ISIC_0000321":
            raise KeyError("no such attribute")
        return {}


def test_anything_unexpected_is_the_images_failure(segmenter: Segmenter, tmp_path: Path) -> None:
    images = sorted(SAMPLES.glob("*.jpg"))[:4]
    assert {path.stem for path in images} >= {"ISIC_0000025", "ISIC_0000321"}
    report = predict_files(segmenter, images, tmp_path / "out", writers=[RefusingWriter(), MaskWriter()],
                           reader=Exploding(), batch_size=2)
    failures = {line.split(":")[0]: line for line in report.failed}
    assert set(failures) == {str(SAMPLES / "ISIC_0000025.jpg"), str(SAMPLES / "ISIC_0000321.jpg")}
    assert "unexpected error, image skipped (RuntimeError: decoder state broken)" in failures[
        str(SAMPLES / "ISIC_0000025.jpg")]
    assert "(KeyError: 'no such attribute')" in failures[str(SAMPLES / "ISIC_0000321.jpg")]
    assert len(report.written) == 2 and all("\n" not in line for line in report.failed)
    assert journal_ids(tmp_path / "out") == {path.stem for path in images} - {"ISIC_0000025", "ISIC_0000321"}
    with pytest.raises(InputError, match="RuntimeError"):  # strict stops there, in one line too
        predict_files(segmenter, images, tmp_path / "strict", reader=Exploding(), strict=True)
