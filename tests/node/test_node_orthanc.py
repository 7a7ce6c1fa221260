"""``skinnet dicom-node`` and DICOMweb ``predict`` against a real Orthanc (see conftest.py).

Images are real ISIC samples wrapped as DICOM (tests/dicom_factory.py). The node runs as a subprocess with
the shipped model on ONNX Runtime, as an operator would start it; what it sends is read back from Orthanc by
QIDO-RS and REST and checked against ``skinnet predict`` on the same files, and validated by dciodvfy.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from crafted import deflate_bomb, malformed, variant
from node_harness import Orthanc, dciodvfy, dicom_images, store
from relay import Relay, free_port
from sr_content import sr_content

pytestmark = pytest.mark.slow
SEG_CLASS, SR_CLASS = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.33"
PHI = ("Test^Lesion", "SKN-0042", "ACC-20240101")  # tests/dicom_factory.py's patient, ID and accession


def shipped_model() -> tuple[str, str]:
    from skinnet.data.atomic import file_sha256
    from skinnet.weights import default_model_path

    path = default_model_path()
    return str(path), file_sha256(path)


def predicted(files: list[Path], out: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, str]]]:
    """``skinnet predict`` (shipped model, ONNX backend) on the files: masks and measurement rows by ID."""
    from skinnet.cli import main
    from skinnet.data.io import read_mask

    assert main(["predict", *map(str, files), "--out", str(out), "--backend", "onnx", "--measurements",
                 str(out / "m.csv"), "--progress", "off"]) == 0
    with open(out / "m.csv", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    return {path.stem: read_mask(out / f"{path.stem}_segmentation.png") for path in files}, rows


def results_of(orthanc: Orthanc, study: str) -> dict[str, dict[str, object]]:
    """The SEGs and SRs of a study by the SOP Instance UID of the image they reference (QIDO-RS, then REST)."""
    import pydicom

    found: dict[str, dict[str, object]] = {}
    for item in orthanc.study_instances(study):
        sop_class = item["00080016"]["Value"][0]
        if sop_class not in (SEG_CLASS, SR_CLASS):
            continue
        ds = pydicom.dcmread(io.BytesIO(orthanc.instance_file(item["00080018"]["Value"][0])))
        if sop_class == SEG_CLASS:
            source = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
            found.setdefault(str(source), {})["seg"] = ds
        else:
            evidence = [ref.ReferencedSOPInstanceUID for study_item in ds.CurrentRequestedProcedureEvidenceSequence
                        for series in study_item.ReferencedSeriesSequence for ref in series.ReferencedSOPSequence]
            source = next(uid for uid in evidence if not str(uid).startswith("2.25."))
            found.setdefault(str(source), {})["sr"] = ds
    return found


def seg_mask(seg, source_uid: str) -> np.ndarray:
    import highdicom as hd

    pixels = hd.seg.Segmentation.from_dataset(seg).get_pixels_by_source_instance(
        source_sop_instance_uids=[source_uid], segment_numbers=[1])
    return pixels[0, ..., 0].astype(bool)


def test_images_sent_by_cstore_come_back_as_seg_and_sr_in_their_study(orthanc: Orthanc, start_node,
                                                                       tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    from skinnet.clinical.findings import ModelInfo
    from skinnet.node.results import result_uids

    study = generate_uid()
    files = dicom_images(tmp_path / "in", [("ISIC_0000025", "native", "dermoscopic"),
                                           ("ISIC_0010607", "jpeg", "vl"),
                                           ("ISIC_0000321", "native", "sc")], study)
    for path in files:
        orthanc.upload(path)
    (token := tmp_path / "token").write_text("secret-token\n")
    port = free_port()
    node = start_node("--stow-to", orthanc.dicomweb, "--token-file", str(token), port=port)
    statuses = store(port, files[:2]) + store(port, files[2:], syntax=DeflatedExplicitVRLittleEndian)
    assert [status.Status for status in statuses] == [0, 0, 0]
    log = node.wait_for("delivered SEG", count=3)
    masks, rows = predicted(files, tmp_path / "predict")

    found = results_of(orthanc, study)
    model_file, sha256 = shipped_model()
    for path in files:
        source = dcmread(path)
        seg, sr = found[source.SOPInstanceUID]["seg"], found[source.SOPInstanceUID]["sr"]
        # the segmentation is, pixel for pixel, the mask `skinnet predict` writes for the same image
        np.testing.assert_array_equal(seg_mask(seg, source.SOPInstanceUID), masks[path.stem])
        # in the source's study, series of their own, with UIDs derived from the source and the model
        assert seg.StudyInstanceUID == sr.StudyInstanceUID == study
        assert seg.PatientID == sr.PatientID == source.PatientID
        assert seg.SeriesInstanceUID != source.SeriesInstanceUID != sr.SeriesInstanceUID
        uids = result_uids(source, ModelInfo(model_file, sha256), node_settings(node.log))
        assert (seg.SOPInstanceUID, sr.SOPInstanceUID) == (uids["seg"], uids["sr"])
        # the report: TID 1500, its measurements those of predict --measurements
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        values, row = sr_content(sr), rows[path.stem]
        assert values["Area"][1] == "mm2" and values["Area"][0] == pytest.approx(float(row["area_mm2"]))
        assert values["Diameter"][1] == "mm"
        assert values["Diameter"][0] == pytest.approx(float(row["max_diameter_mm"]))
        assert values["Derivation"] == "Maximum"
        assert values["Outline confidence score"][0] == pytest.approx(float(row["confidence"]))
        assert values["Check this outline"] == ("Yes" if row["flagged"] == "True" else "No")
        assert values["Algorithm Version"] == sha256
        assert f"model file: {Path(model_file).name}" in values["texts"]
        assert f"model SHA-256: {sha256}" in values["texts"]
        dciodvfy(orthanc.instance_file(seg.SOPInstanceUID), f"seg-{path.stem}", tmp_path)
        dciodvfy(orthanc.instance_file(sr.SOPInstanceUID), f"sr-{path.stem}", tmp_path)
    # the log names objects by UID only
    assert not [word for word in PHI if word in log]
    assert node.terminate() == 0
    assert "stopped: 0 received objects and 0 results left" in node.log


def node_settings(log: str) -> str:
    """The settings key the node logged when it loaded the model (part of the result UIDs)."""
    import json

    line = next(line for line in log.splitlines() if " loaded in " in line)
    return json.dumps(json.loads(line[line.index("(") + 1 : line.rindex(")")]), sort_keys=True)


def test_predict_reads_a_dicomweb_study_and_stores_the_same_objects_again(orthanc: Orthanc,
                                                                          tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    from skinnet.cli import main
    from skinnet.data.io import read_mask

    study = generate_uid()
    files = dicom_images(tmp_path / "in", [("ISIC_0009938", "jpeg-ls", "dermoscopic"),
                                           ("ISIC_0012268", "jpeg2000", "vl")], study)
    for path in files:
        orthanc.upload(path)
    url = f"{orthanc.dicomweb}/studies/{study}"
    out = tmp_path / "out"
    assert main(["predict", url, "--out", str(out), "--backend", "onnx", "--stow-to", orthanc.dicomweb,
                 "--progress", "off"]) == 0
    found = results_of(orthanc, study)
    sources = [dcmread(path) for path in files]
    for source in sources:
        uid = source.SOPInstanceUID
        assert set(found[uid]) == {"seg", "sr"}
        # the run's mask, its SEG and the SEG stored are the same
        mask = read_mask(out / f"{uid}_segmentation.png")
        np.testing.assert_array_equal(seg_mask(found[uid]["seg"], uid), mask)
        assert dcmread(out / f"{uid}_seg.dcm").SOPInstanceUID == found[uid]["seg"].SOPInstanceUID
        dciodvfy(out / f"{uid}_sr.dcm", f"predict-sr-{uid}", tmp_path)
        dciodvfy(out / f"{uid}_seg.dcm", f"predict-seg-{uid}", tmp_path)
    # again, from one series's URL: the same objects (same UIDs) are stored once more, not new ones
    series_url = f"{url}/series/{sources[0].SeriesInstanceUID}"
    assert main(["predict", series_url, "--out", str(tmp_path / "again"), "--backend", "onnx", "--stow-to",
                 orthanc.dicomweb, "--progress", "off"]) == 0
    again = results_of(orthanc, study)
    assert {uid: {kind: ds.SOPInstanceUID for kind, ds in kinds.items()} for uid, kinds in again.items()} == \
        {uid: {kind: ds.SOPInstanceUID for kind, ds in kinds.items()} for uid, kinds in found.items()}
    assert len(orthanc.study_instances(study)) == 2 + 4  # the images, one SEG and one SR each
    assert len(orthanc.lookup(found[sources[0].SOPInstanceUID]["seg"].SOPInstanceUID)) == 1


def test_destination_down_then_up_and_kill_9_deliver_each_result_once(orthanc: Orthanc, start_node,
                                                                      tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    from skinnet.clinical.findings import ModelInfo
    from skinnet.node.results import result_uids

    study = generate_uid()
    files = dicom_images(tmp_path / "in", [("ISIC_0010227", "native", "dermoscopic"),
                                           ("ISIC_0010360", "jpeg", "dermoscopic"),
                                           ("ISIC_0010475", "native", "vl")], study)
    relay = Relay(orthanc.dicom_port)  # the destination, down for now
    port = free_port()
    node = start_node("--send-to", f"ORTHANC@127.0.0.1:{relay.port}", port=port)
    assert [status.Status for status in store(port, files)] == [0, 0, 0]
    node.wait_for("segmented", count=2)
    node.wait_for("destination unreachable")
    node.kill9()  # with results waiting in the outbox, and maybe an image in the inbox
    waiting = sum(1 for folder in ("inbox", "outbox") for _ in (tmp_path / "queue" / folder).iterdir())
    assert waiting == 3

    node = start_node("--send-to", f"ORTHANC@127.0.0.1:{relay.port}", port=port)
    line = next(line for line in node.log.splitlines()[::-1] if "listening on" in line)
    received, results = (int(word) for word in line.split(": ")[-1].replace(" received and ", " ").split()[:2])
    assert received + results == 3
    node.wait_for("destination unreachable")
    relay.up()
    try:
        log = node.wait_for("delivered SEG", count=3)
    finally:
        relay.down()
    assert "reachable again" in log
    model_file, sha256 = shipped_model()
    stored = orthanc.new_instance_changes()
    for path in files:
        uids = result_uids(dcmread(path), ModelInfo(model_file, sha256), node_settings(log))
        for kind in ("seg", "sr"):
            (orthanc_id,) = orthanc.lookup(uids[kind])
            assert stored[orthanc_id] == 1, f"{kind} of {path.name} stored {stored[orthanc_id]} times"
    assert not list((tmp_path / "queue" / "outbox").iterdir())
    assert len((tmp_path / "queue" / "delivered.log").read_text().splitlines()) == 3
    assert node.terminate() == 0


def test_orthanc_routes_dermoscopy_to_the_node_and_gets_the_results(orthanc: Orthanc, start_node,
                                                                     tmp_path: Path) -> None:
    """The routing rule of docs/how-to/orthanc-route-dermoscopy.lua: camera -> Orthanc -> node -> Orthanc."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    study = generate_uid()
    (image,) = dicom_images(tmp_path / "in", [("ISIC_0011225", "native", "dermoscopic")], study)
    node = start_node("--send-to", f"ORTHANC@127.0.0.1:{orthanc.dicom_port}", "--allow-ae", "ORTHANC",
                      port=orthanc.node_port)
    if shutil.which("storescu"):  # dcmtk's storescu as the camera
        done = subprocess.run(["storescu", "-R", "-aet", "DERMCAM", "-aec", orthanc.aet, "127.0.0.1",
                               str(orthanc.dicom_port), str(image)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    else:
        assert store(orthanc.dicom_port, [image], calling="DERMCAM", called=orthanc.aet)[0].Status == 0
    node.wait_for("from ORTHANC: queued as")
    assert node.terminate() == 0  # SIGTERM as soon as the image is queued: the node drains, then stops
    assert "delivered SEG" in node.log
    assert "stopped: 0 received objects and 0 results left" in node.log
    assert set(results_of(orthanc, study)[dcmread(image).SOPInstanceUID]) == {"seg", "sr"}


def test_bad_objects_are_refused_with_a_reason_and_the_node_goes_on(orthanc: Orthanc, start_node,
                                                                     tmp_path: Path) -> None:
    from pydicom import dcmread
    from pydicom.filereader import read_file_meta_info
    from pydicom.uid import generate_uid
    from pynetdicom import AE

    study = generate_uid()
    native, jpeg, good = dicom_images(tmp_path / "in", [("ISIC_0012318", "native", "dermoscopic"),
                                                        ("ISIC_0012334", "jpeg", "vl"),
                                                        ("ISIC_0012455", "native", "microscopic")], study)
    port = free_port()
    node = start_node("--send-to", f"ORTHANC@127.0.0.1:{orthanc.dicom_port}", "--max-object-mb", "64", port=port)
    before = node.vm_hwm_kb()

    # A deflate bomb (256 MiB of pixels in 0.25 MB) and a malformed header, sent as they are (not re-encoded).
    bomb = deflate_bomb(tmp_path / "bomb.dcm", native, inflated_bytes=256 << 20)
    assert bomb.stat().st_size < 1 << 20
    garbage = malformed(tmp_path / "malformed.dcm", native)
    (bomb_status,), (garbage_status,) = store(port, [bomb], raw=True), store(port, [garbage], raw=True)
    assert bomb_status.Status == 0xC000 and "inflates past" in bomb_status.ErrorComment
    assert node.vm_hwm_kb() - before < 48 * 1024, "the bomb was inflated in memory"
    assert garbage_status.Status == 0xC000

    cases = {"monochrome": (native, 0xC000, "MONOCHROME2"), "multi-frame": (native, 0xC000, "multi-frame"),
             "no-pixels": (native, 0xA900, "no pixel data"), "truncated": (native, 0xC000, "truncated"),
             "truncated-jpeg": (jpeg, 0xC000, "truncated frame"), "huge": (native, 0xC000, "exceeds")}
    bad = {name: variant(template, tmp_path / f"{name}.dcm", name) for name, (template, _, _) in cases.items()}
    for name, status in zip(cases, store(port, list(bad.values())), strict=True):
        assert status.Status == cases[name][1], name
        assert cases[name][2] in status.ErrorComment, (name, status.ErrorComment)
    # Another SOP class, and a transfer syntax no decoder here reads: refused in negotiation
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    ae.add_requested_context(dcmread(native).SOPClassUID, ["1.2.840.10008.1.2.4.110"])  # JPEG XL Lossless
    assoc = ae.associate("127.0.0.1", port, ae_title="SKINNET")
    assert not assoc.is_established and not assoc.accepted_contexts  # pynetdicom aborts: nothing to send
    # results 0x03 "abstract syntax not supported" and 0x04 "transfer syntaxes not supported" (PS3.8 9.3.3.2)
    assert sorted(context.result for context in assoc.rejected_contexts) == [0x03, 0x04]

    # ... and the node goes on: the good image's results arrive
    assert store(port, [good])[0].Status == 0
    log = node.wait_for("delivered SEG")
    for path in [bomb, garbage, *bad.values()]:
        uid = read_file_meta_info(path).MediaStorageSOPInstanceUID
        refusal = next(line for line in log.splitlines() if uid in line)
        assert "refused" in refusal and "status 0x" in refusal
    assert set(results_of(orthanc, study)[dcmread(good).SOPInstanceUID]) == {"seg", "sr"}
    assert not list((tmp_path / "queue" / "failed").iterdir())  # all refused before they were queued
    assert node.terminate() == 0
