"""The DICOM node's parts without Orthanc: UIDs, the SR, bounded inflate, the queue, the SCP's gates, senders."""

from __future__ import annotations

import http.server
import io
import shutil
import ssl
import subprocess
import threading
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from node_harness import dicom_images, store
from relay import free_port

pytest.importorskip("pynetdicom", reason="the DICOM node needs pynetdicom (the 'node' extra)")


def source_of(tmp_path: Path, image_id: str = "ISIC_0000025", spacing: bool = True):
    from skinnet.data.dicom import read_dicom

    (path,) = dicom_images(tmp_path / "in", [(image_id, "native", "dermoscopic")])
    if not spacing:
        from pydicom import dcmread

        ds = dcmread(path)
        del ds.PixelSpacing
        ds.save_as(path)
    return read_dicom(path)


# --- result UIDs ----------------------------------------------------------------------------------------------

def test_result_uids_are_the_same_for_the_same_source_model_and_settings(tmp_path: Path) -> None:
    import re

    from skinnet.clinical.dicom_sr import derived_uid
    from skinnet.clinical.findings import ModelInfo
    from skinnet.node.results import result_uids

    dataset = source_of(tmp_path).dataset
    model = ModelInfo("m.safetensors", "ab" * 32)
    uids = result_uids(dataset, model, "{}")
    assert uids == result_uids(dataset, model, "{}")
    assert len(set(uids.values())) == 4
    assert uids != result_uids(dataset, ModelInfo("m.safetensors", "cd" * 32), "{}")
    assert uids != result_uids(dataset, model, '{"tta": false}')
    for uid in [*uids.values(), derived_uid("x" * 1000)]:
        assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64



# --- the receive path ------------------------------------------------------------------------------------------

def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def test_inflate_is_bounded() -> None:
    from skinnet.node.receive import Refused, inflate_bounded

    data = bytes(range(256)) * 4000
    assert inflate_bounded(deflate(data), len(data)) == data
    with pytest.raises(Refused, match="inflates past 1,000 bytes"):
        inflate_bounded(deflate(data), 1000)
    with pytest.raises(Refused, match="corrupt deflated data"):
        inflate_bounded(b"\xff" * 100, 10**6)


def encoded(ds) -> bytes:
    from crafted import encode

    return encode(ds)


def test_a_deflated_header_declaring_too_many_pixels_is_refused_before_its_pixels(tmp_path: Path) -> None:
    from pydicom import dcmread

    from skinnet.node.receive import DEFLATED, Refused, receive

    (path,) = dicom_images(tmp_path, [("ISIC_0000321", "native", "vl")])
    ds = dcmread(path)
    good = deflate(encoded(ds))
    received = receive(good, DEFLATED, ds.SOPClassUID, ds.SOPInstanceUID, "CAM", 1 << 30)
    assert received.syntax == "1.2.840.10008.1.2.1"  # queued inflated, never deflated
    assert dcmread(io.BytesIO(received.file)).pixel_array.shape == (256, 256, 3)
    ds.Rows = ds.Columns = 20000  # 400 megapixels declared
    with pytest.raises(Refused, match="exceeds the limit"):
        receive(deflate(encoded(ds)), DEFLATED, ds.SOPClassUID, ds.SOPInstanceUID, "CAM", 1 << 30)
    with pytest.raises(Refused, match=r"SOP class 1\.2\.3 is not segmented here"):
        receive(good, DEFLATED, "1.2.3", ds.SOPInstanceUID, "CAM", 1 << 30)
    ds.Rows = ds.Columns = 256
    del ds.StudyInstanceUID  # Type 1: without it, no study to put the results in
    with pytest.raises(Refused, match="no StudyInstanceUID") as refused:
        receive(deflate(encoded(ds)), DEFLATED, ds.SOPClassUID, ds.SOPInstanceUID, "CAM", 1 << 30)
    assert refused.value.status == 0xA900


# --- the queue -------------------------------------------------------------------------------------------------

def test_the_queue_resumes_what_a_kill_left_at_each_step(tmp_path: Path) -> None:
    from skinnet.config import ConfigError
    from skinnet.node.queue import NodeQueue, QueueFull

    queue = NodeQueue(tmp_path / "q", size=3)
    first, second = queue.commit(queue.stage(b"one")), queue.commit(queue.stage(b"two"))
    assert (first, second) == ("000000000001", "000000000002")
    queue.stage(b"never acknowledged")  # killed before the answer
    done = queue.store_results(queue.next_received(0), {"1-seg.dcm": b"S", "2-sr.dcm": b"R"}, {"source": "1.2"})
    queue.mark_sent(done.files()[0])  # the SEG went out, then the node was killed
    queue.commit(queue.stage(b"three"))
    with pytest.raises(QueueFull, match="queue full"):
        queue.stage(b"four")
    with pytest.raises(ConfigError, match="another skinnet dicom-node"):
        NodeQueue(tmp_path / "q", size=3)
    queue.close()
    # a kill while the second object's results were being written, and one between outbox and inbox
    (tmp_path / "q" / "outbox" / "000000000002.part").mkdir()
    shutil.copytree(tmp_path / "q" / "outbox" / first, tmp_path / "q" / "outbox" / "000000000003")

    again = NodeQueue(tmp_path / "q", size=4)
    assert again.recovered == {"inbox": 1, "outbox": 2}
    assert not list((tmp_path / "q" / "incoming").iterdir())
    assert [path.name for path in (tmp_path / "q" / "inbox").iterdir()] == ["000000000002.dcm"]
    results = again.results()
    assert [r.seq for r in results] == [first, "000000000003"]
    assert [path.name for path in results[0].pending()] == ["2-sr.dcm"]  # the SEG is not sent twice
    assert again.commit(again.stage(b"x")) == "000000000004"  # numbering goes on after the highest
    again.delivered(results[0])
    assert (tmp_path / "q" / "delivered.log").read_text().startswith(f"{first} 1.2 ")
    again.close()


# --- the SCP's gates -------------------------------------------------------------------------------------------

@pytest.fixture()
def scp(tmp_path: Path):
    """An in-process Storage SCP (no model: objects stay in its inbox); ``scp(**config)`` starts one."""
    from skinnet.node.config import NodeConfig, Peer
    from skinnet.node.queue import NodeQueue
    from skinnet.node.scp import StorageSCP

    started = []

    def start(**options):
        config = NodeConfig(queue=tmp_path / f"q{len(started)}", port=free_port(),
                            send_to=Peer.parse("X@127.0.0.1:1"), **options).check()
        server = StorageSCP(config, NodeQueue(config.queue, config.queue_size))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop_listening()
        server.queue.close()


def echo(port: int, calling: str = "TESTSCU", called: str = "SKINNET", tls=None):
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title=called, tls_args=tls)
    if not assoc.is_established:
        return assoc
    status = assoc.send_c_echo()
    assoc.release()
    return status


def test_callers_not_allowed_and_a_wrong_called_title_are_rejected(scp) -> None:
    from skinnet.node.config import Caller

    server = scp(allow=(Caller.parse("CAMERA"), Caller.parse("PACS@127.0.0.1")))
    assert echo(server.port, "CAMERA").Status == 0
    assert echo(server.port, "PACS").Status == 0
    rejected = echo(server.port, "INTRUDER")
    assert rejected.is_rejected
    assert (rejected.acceptor.primitive.result_source, rejected.acceptor.primitive.diagnostic) == (1, 3)
    wrong = echo(server.port, "CAMERA", called="OTHER")
    assert wrong.is_rejected and wrong.acceptor.primitive.diagnostic == 7  # called AE title not recognised
    assert not Caller.parse("PACS@10.0.0.9").admits("PACS", "127.0.0.1")


def test_a_full_queue_answers_out_of_resources(scp, tmp_path: Path) -> None:
    server = scp(queue_size=1)
    files = dicom_images(tmp_path / "in", [("ISIC_0000344", "native", "vl"), ("ISIC_0000395", "rle", "vl")])
    first, second = store(server.port, files)
    assert first.Status == 0
    assert second.Status == 0xA700 and second.ErrorComment.startswith("queue full (1 of 1")


def test_dicom_over_tls(scp, tmp_path: Path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert), "-days", "1"], check=True, capture_output=True)
    server = scp(tls_cert=cert, tls_key=key)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    client.check_hostname = False
    assert echo(server.port, tls=(client, "localhost")).Status == 0
    assert not echo(server.port).is_established  # plain DICOM to a TLS port


def test_bad_node_options_are_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from skinnet.cli import main

    queue = str(tmp_path / "q")
    assert main(["dicom-node", "--queue", queue]) == 2
    assert "give one destination" in capsys.readouterr().err
    assert main(["dicom-node", "--queue", queue, "--host", "0.0.0.0", "--send-to", "PACS@10.0.0.5:104"]) == 2
    assert "--allow-ae" in capsys.readouterr().err
    assert main(["dicom-node", "--queue", queue, "--send-to", "PACS:104"]) == 2
    assert "expected AET@HOST:PORT" in capsys.readouterr().err
    assert main(["dicom-node", "--queue", queue, "--send-to", "P@h:1", "--tls-cert", "c.pem"]) == 2
    assert "both --tls-cert and --tls-key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dicom-node", "--queue", queue, "--ae-title", "MUCH-TOO-LONG-AE-TITLE"])


# --- senders and the worker ------------------------------------------------------------------------------------

class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers each STOW-RS POST with the next status of ``answers``; keeps the request headers."""

    answers: ClassVar[list[int]] = []
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(dict(self.headers))
        code = type(self).answers.pop(0)
        self.send_response(code)
        self.send_header("Content-Type", "application/dicom+json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def test_stow_sends_the_bearer_token_and_tells_later_from_never(tmp_path: Path) -> None:
    from pydicom.uid import generate_uid

    from skinnet.clinical.dicom_seg import build_dicom_seg
    from skinnet.node.senders import Rejected, StowSender, Unreachable

    source = source_of(tmp_path)
    seg = build_dicom_seg(source.dataset, np.ones((256, 256), bool), "m", "v", generate_uid(), generate_uid())
    seg.save_as(path := tmp_path / "seg.dcm")
    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.answers, Recorder.seen = [200, 503, 400], []
    sender = StowSender(f"http://127.0.0.1:{server.server_address[1]}/dicom-web", token="s3cret")
    sent: list[Path] = []
    sender.send([path], sent.append)
    assert sent == [path]
    assert Recorder.seen[0]["Authorization"] == "Bearer s3cret"
    assert Recorder.seen[0]["Content-Type"].startswith("multipart/related")
    with pytest.raises(Unreachable, match="HTTP 503"):
        sender.send([path], sent.append)
    with pytest.raises(Rejected, match="HTTP 400"):
        sender.send([path], sent.append)
    server.shutdown()
    server.server_close()
    with pytest.raises(Unreachable):
        sender.send([path], sent.append)


def test_c_store_to_nothing_is_unreachable(tmp_path: Path) -> None:
    from skinnet.node.config import Peer
    from skinnet.node.senders import DimseSender, Unreachable

    with pytest.raises(Unreachable, match="no association"):
        DimseSender(Peer.parse(f"PACS@127.0.0.1:{free_port()}"), "SKINNET", timeout=5).send([tmp_path], print)


class StubPredictor:
    model_files: ClassVar[list[Path]] = []

    def describe(self) -> dict[str, str]:
        return {"predictor": "stub"}


def test_an_object_the_worker_cannot_read_is_set_aside_with_its_uid_and_reason(tmp_path: Path) -> None:
    from pydicom import dcmread

    from skinnet.node.config import NodeConfig, Peer
    from skinnet.node.service import Node

    node = Node(NodeConfig(queue=tmp_path / "q", send_to=Peer.parse("X@127.0.0.1:1")), StubPredictor(),
                sender=object())
    (path,) = dicom_images(tmp_path / "in", [("ISIC_0000449", "native", "vl")])
    ds = dcmread(path)
    ds.PixelData = ds.PixelData[:1000]  # cut: as if the disk had lost the end of it
    ds.save_as(path)
    queued = node.queue.inbox / f"{node.queue.commit(node.queue.stage(path.read_bytes()))}.dcm"
    assert node.process(queued) is None
    (reason,) = (tmp_path / "q" / "failed").glob("*.txt")
    assert reason.read_text().startswith(f"{ds.SOPInstanceUID}: truncated DICOM file")
    assert not list(node.queue.inbox.iterdir())
    node.queue.close()
