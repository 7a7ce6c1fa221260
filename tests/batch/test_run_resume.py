"""Resuming a batch run: finished images are skipped, and outputs of another model or options never reused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from skinnet.batch import writers
from skinnet.batch.run import predict_files
from skinnet.batch.store import JOURNALS
from skinnet.inference.segmenter import Segmenter
from skinnet.networks.files import load_model, save_weights


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """Six small JPEGs made from real samples."""
    folder = tmp_path_factory.mktemp("images")
    for path in sorted((sample_data / "images").glob("*.jpg"))[:6]:
        Image.open(path).resize((96, 72)).save(folder / path.name, quality=95)
    return folder


def pngs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}


def inodes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_ino for path in folder.glob("*.png")}


def test_a_rerun_skips_finished_images_and_redoes_only_missing_outputs(images: Path, tiny_model: Path,
                                                                        tmp_path: Path) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    first = predict_files(segmenter, [images], tmp_path, with_probability=True, resume=True)
    assert len(first.written) == 6 and not first.skipped
    before, nodes = pngs(tmp_path), inodes(tmp_path)
    ids = sorted(path.stem for path in images.iterdir())
    (tmp_path / f"{ids[1]}_segmentation.png").unlink()
    (tmp_path / f"{ids[4]}_probability.png").unlink()
    again = predict_files(segmenter, [images], tmp_path, with_probability=True, resume=True)
    assert sorted(path.name for path in again.written) == sorted(f"{key}_segmentation.png" for key in
                                                                 (ids[1], ids[4]))
    assert sorted(again.skipped) == sorted(set(ids) - {ids[1], ids[4]})
    assert pngs(tmp_path) == before  # the same bytes again
    untouched = {name for name in nodes if not name.startswith((ids[1], ids[4]))}
    assert {name: inodes(tmp_path)[name] for name in untouched} == {name: nodes[name] for name in untouched}
    overwrite = predict_files(segmenter, [images], tmp_path, with_probability=True)  # resume off: all again
    assert len(overwrite.written) == 6 and pngs(tmp_path) == before


def test_changed_options_or_model_recompute_and_never_reuse_stale_outputs(images: Path, tiny_model: Path,
                                                                          tmp_path: Path) -> None:
    plain = Segmenter.from_file(tiny_model, device="cpu", tta=False)
    tta = Segmenter.from_file(tiny_model, device="cpu", tta=True)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    predict_files(plain, [images], out, with_probability=True, resume=True)
    plain_outputs = pngs(out)
    key_plain = json.loads((out / "manifest.json").read_text())["key"]
    report = predict_files(tta, [images], out, with_probability=True, resume=True)
    assert len(report.written) == 6 and not report.skipped
    predict_files(tta, [images], fresh, with_probability=True)
    assert pngs(out) == pngs(fresh) != plain_outputs  # TTA changes the probabilities
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["key"] != key_plain and manifest["inference"]["tta"] is True
    assert not (out / JOURNALS / key_plain).exists()  # the old key's records are void
    back = predict_files(plain, [images], out, with_probability=True, resume=True)
    assert len(back.written) == 6 and pngs(out) == plain_outputs  # TTA outputs were not taken for plain ones

    model, config = load_model(tiny_model)  # another model file: the same network stored in float16
    save_weights(tmp_path / "half.safetensors", model, config, half=True)
    other = Segmenter.from_file(tmp_path / "half.safetensors", device="cpu", tta=False)
    assert len(predict_files(other, [images], out, with_probability=True, resume=True).written) == 6
    assert json.loads((out / "manifest.json").read_text())["models"][0]["file"].endswith("half.safetensors")


class Killed(BaseException):
    """Stands for a kill in the middle of writing an image's outputs: a BaseException, like a real kill caught
    by no handler of ordinary errors (a writer's error is the image's outcome, and the batch goes on)."""


def test_an_image_cut_off_after_its_record_is_recomputed(images: Path, tiny_model: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Segmenter.from_file(tiny_model, device="cpu", tta=False)
    tta = Segmenter.from_file(tiny_model, device="cpu", tta=True)
    predict_files(tta, [images], tmp_path / "ref", with_probability=True)
    predict_files(plain, [images], tmp_path, with_probability=True)  # another key's outputs in the folder
    ids = sorted(path.stem for path in images.iterdir())
    real_write_mask = writers.write_mask

    def write_mask(path: Path, mask: object) -> None:
        if path.name.startswith(ids[2]):
            raise Killed  # after the journal record and the probability file, before the mask
        real_write_mask(path, mask)

    monkeypatch.setattr(writers, "write_mask", write_mask)
    with pytest.raises(Killed):
        predict_files(tta, [images], tmp_path, with_probability=True, resume=True)
    monkeypatch.undo()
    assert not (tmp_path / f"{ids[2]}_segmentation.png").exists()
    report = predict_files(tta, [images], tmp_path, with_probability=True, resume=True)
    assert sorted(report.skipped) == ids[:2]  # done before the cut; the plain model's files were not taken
    assert pngs(tmp_path) == pngs(tmp_path / "ref")


def test_a_model_held_in_memory_keeps_no_records_and_voids_earlier_ones(images: Path, tiny_model: Path,
                                                                        tmp_path: Path) -> None:
    from_file = Segmenter.from_file(tiny_model, device="cpu")
    predict_files(from_file, [images], tmp_path, resume=True)
    model, config = load_model(tiny_model)
    config.inference.threshold = 0.3  # other masks, from a model no file records
    report = predict_files(Segmenter(model, config, batch_size=1), [images], tmp_path, resume=True)
    assert len(report.written) == 6 and report.table is None
    assert not (tmp_path / "manifest.json").exists() and not list((tmp_path / JOURNALS).iterdir())
    assert len(predict_files(from_file, [images], tmp_path, resume=True).written) == 6


def test_a_torn_journal_line_and_left_temporaries_are_handled(images: Path, tiny_model: Path,
                                                             tmp_path: Path) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    predict_files(segmenter, [images], tmp_path, resume=True)
    [journal] = list((tmp_path / JOURNALS).glob("*/*.jsonl"))
    with open(journal, "a") as handle:
        handle.write('{"id": "ISIC_9999999", "files": [')  # a kill in the middle of a line
    ours = tmp_path / f".{sorted(images.iterdir())[0].stem}_segmentation.png.x1y2z3ab.tmp"
    theirs = tmp_path / ".notes.txt.x1y2z3ab.tmp"
    ours.write_bytes(b"half a png")
    theirs.write_bytes(b"someone else's")
    report = predict_files(segmenter, [images], tmp_path, resume=True)
    assert len(report.skipped) == 6 and not report.written
    assert not ours.exists() and theirs.exists()


def test_files_with_the_same_id_are_reported_not_overwritten(images: Path, tiny_model: Path,
                                                            tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    first = sorted(images.iterdir())[0]
    Image.open(first).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(twin / first.name)
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    report = predict_files(segmenter, [images, twin], tmp_path / "out", resume=True)
    assert len(report.written) == 6
    assert report.failed == [f"{twin / first.name}: duplicate ID {first.stem!r} (also {first}); skipped"]


class NoteWriter(writers.OutputWriter):
    """A writer added later (the 'future writer' of the docs): ``<id>_note.txt``."""

    def files(self, image_id: str) -> list[str]:
        return [f"{image_id}_note.txt"]

    def write(self, result: writers.ImageResult, out_dir: Path) -> None:
        (out_dir / self.files(result.id)[0]).write_text("note")


def test_a_new_key_deletes_every_output_the_old_journals_record_and_its_writers_do_not_write(
        images: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Segmenter.from_file(tiny_model, device="cpu", tta=False)
    tta = Segmenter.from_file(tiny_model, device="cpu", tta=True)
    ids = sorted(path.stem for path in images.iterdir())
    old = [NoteWriter(), *writers.standard_writers(with_overlay=True, with_probability=True)]
    predict_files(plain, [images], tmp_path, writers=old, resume=True)
    assert len(list(tmp_path.glob("*_overlay.png"))) == len(list(tmp_path.glob("*_note.txt"))) == 6
    real_write_mask = writers.write_mask

    def write_mask(path: Path, mask: object) -> None:
        if path.name.startswith(ids[0]):
            raise Killed  # at the first image of the new key: the folder is claimed, nothing else is done
        real_write_mask(path, mask)

    monkeypatch.setattr(writers, "write_mask", write_mask)
    with pytest.raises(Killed):
        predict_files(tta, [images], tmp_path, resume=True, workers=1)  # masks only, another key
    monkeypatch.undo()
    # The old key's overlays, probabilities and notes are gone for all six images, not only the one begun:
    # the new key's writers would never replace them, and the old journal that named them is void.
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == \
        [*sorted(f"{key}_segmentation.png" for key in ids[1:]), "manifest.json", "predictions.csv"]
    assert len((tmp_path / "predictions.csv").read_text().splitlines()) == 1  # the image cut off is not done
    report = predict_files(tta, [images], tmp_path, resume=True)
    assert len(report.written) == 6  # the old key's masks were not taken
    predict_files(tta, [images], tmp_path / "fresh")
    assert pngs(tmp_path) == pngs(tmp_path / "fresh")


def test_the_journal_is_compacted_and_does_not_grow_with_every_overwrite(images: Path, tiny_model: Path,
                                                                          tmp_path: Path) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu")

    def journal() -> tuple[int, int]:
        files = list((tmp_path / JOURNALS).glob("*/*.jsonl"))
        return len(files), sum(len(path.read_text().splitlines()) for path in files)

    predict_files(segmenter, [images], tmp_path, resume=True)
    for _ in range(4):
        predict_files(segmenter, [images], tmp_path)  # --overwrite: every image again
    assert journal() == (2, 12)  # the merged records (6) and the last run's (6), not 5 x 6
    report = predict_files(segmenter, [images], tmp_path, resume=True)
    assert len(report.skipped) == 6 and journal() == (1, 6)
    [folder] = (tmp_path / JOURNALS).iterdir()
    running = folder / "node7-4242-0a1b2c3d.jsonl"  # another process's, still open: never touched
    running.write_text(json.dumps({"id": "ISIC_9999999", "files": [], "fields": {}}) + "\n")
    predict_files(segmenter, [images], tmp_path)
    predict_files(segmenter, [images], tmp_path)
    assert running.is_file() and journal() == (3, 13)


def test_outputs_in_an_input_folder_are_never_taken_as_inputs(images: Path, tiny_model: Path,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(images, folder)
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    for options in ({"with_overlay": True}, {"with_overlay": True}, {"with_probability": True}, {}):
        report = predict_files(segmenter, [folder], folder, **options, resume=True)
        assert not report.failed and len(report.written) + len(report.skipped) == 6, report
        rows = (folder / "predictions.csv").read_text().splitlines()
        assert len(rows) == 7 and not list(folder.glob("*_overlay_*")) and not list(folder.glob("*_probability_*"))
    explicit = sorted(folder.glob("*.*g"))  # named one by one (a shell glob: in/*.*g), the masks included
    assert len(explicit) == 12
    report = predict_files(Segmenter(*load_model(tiny_model), batch_size=1), explicit, folder)  # no journal
    assert len(report.written) == 6 and not report.failed
    assert not list(folder.glob("*_segmentation_segmentation*"))


def test_every_journal_record_is_synced_before_the_files_it_claims(images: Path, tiny_model: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        events.append("journal" if path.suffix == ".jsonl" else "folder" if path.is_dir() else path.name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    predict_files(Segmenter.from_file(tiny_model, device="cpu"), [images], tmp_path, resume=True)
    records = [index for index, event in enumerate(events) if event == "journal"]
    assert len(records) == 6
    for index in records:  # each record synced before its image's first file is
        assert events[index + 1].startswith(".ISIC_") and events[index + 1].endswith(".tmp"), events
    assert events[records[0] - 4: records[0]] == ["folder"] * 4  # the journal's new name and its folders
