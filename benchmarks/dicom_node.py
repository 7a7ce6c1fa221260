"""Images per second through the DICOM node against ``skinnet predict`` on the same files, in one run.

The images are the bundled ISIC samples resized to ``--size`` (default 1024x768) and stored as a dermoscopy
camera stores them: Dermoscopic Photography Image Storage, JPEG baseline (the JPEG bytes encapsulated as
they are). Both sides run the same model with the same backend and make the same clinical outputs, a SEG and
the measurements of each image:

* **node**: ``skinnet dicom-node`` (a subprocess, already listening) receives the images by C-STORE over one
  association, queues, segments and measures them and sends each image's SEG and SR by C-STORE to a Storage
  SCP in this process. Timed from the first C-STORE to the arrival of the last SR: receiving, fsyncs,
  decoding twice (once to check, once to segment), segmenting and delivering, one image after another.
* **predict**: ``skinnet predict FILES --dicom-seg --measurements`` (a subprocess) on the same files, timed by
  its own report (``N masks written in S s``: reading, segmenting, writing, without starting and loading).

The ratio is node / predict images per second. Each side takes turns ``--repeats`` times; the median counts.

    python benchmarks/dicom_node.py [--images 20] [--backend onnx] [--repeats 3] [--size 1024x768]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from skinnet.data.samples import SAMPLE_IMAGES

DERMOSCOPIC = "1.2.840.10008.5.1.4.1.1.77.1.7"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_dicom_images(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` single-frame JPEG baseline Dermoscopic Photography files of the samples (cycled), one study."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(SAMPLE_IMAGES.glob("*.jpg"))
    study, series = generate_uid(), generate_uid()
    paths = []
    for index in range(count):
        buffer = io.BytesIO()
        image = Image.open(sources[index % len(sources)]).convert("RGB").resize(size, Image.BICUBIC)
        image.save(buffer, "JPEG", quality=92, subsampling=1)  # 4:2:2, as YBR_FULL_422 says
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = DERMOSCOPIC
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PatientID, ds.PatientName = "BENCH", "Bench^Mark"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.InstanceNumber, ds.PixelSpacing = "XC", index + 1, ["0.02", "0.02"]
        ds.Columns, ds.Rows = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.LossyImageCompression = "01"
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        paths.append(folder / f"img{index:04d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


class Sink:
    """A Storage SCP for SEG and SR that counts what arrives and when the last one did."""

    def __init__(self) -> None:
        from pynetdicom import AE, evt

        self.port, self.count, self.last = free_port(), 0, 0.0
        self.lock = threading.Lock()
        ae = AE(ae_title="SINK")
        for sop_class in ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.33"):
            ae.add_supported_context(sop_class)
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self.on_store)])

    def on_store(self, event: Any) -> int:
        with self.lock:
            self.count += 1
            self.last = time.perf_counter()
        return 0x0000

    def wait_for(self, count: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.count >= count:
                    return self.last
            time.sleep(0.02)
        raise TimeoutError(f"{self.count} of {count} results arrived in {timeout:.0f} s")


def start_node(queue: Path, port: int, sink: Sink, backend: str, log: Path, timeout: float = 300) -> Any:
    command = [sys.executable, "-m", "skinnet", "dicom-node", "--queue", str(queue), "--port", str(port),
               "--send-to", f"SINK@127.0.0.1:{sink.port}", "--backend", backend]
    with open(log, "ab") as handle:
        node = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while "listening on" not in log.read_text(errors="replace"):
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the node did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    return node


def through_node(files: list[Path], port: int, sink: Sink) -> float:
    """Seconds from the first C-STORE to the last result's arrival."""
    from pydicom import dcmread
    from pynetdicom import AE

    datasets = [dcmread(path) for path in files]
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(DERMOSCOPIC, ["1.2.840.10008.1.2.4.50"])
    before = sink.count
    started = time.perf_counter()
    assoc = ae.associate("127.0.0.1", port, ae_title="SKINNET")
    for ds in datasets:
        status = assoc.send_c_store(ds)
        if status.Status != 0:
            raise RuntimeError(f"the node refused an image: {status}")
    assoc.release()
    return sink.wait_for(before + 2 * len(files), 60 + 30 * len(files)) - started


def through_predict(files: list[Path], out: Path, backend: str) -> float:
    """The seconds ``skinnet predict`` reports for segmenting the files with a SEG and measurements each."""
    done = subprocess.run([sys.executable, "-m", "skinnet", "predict", *map(str, files), "--out", str(out),
                           "--backend", backend, "--dicom-seg", "--measurements", str(out / "measurements.csv"),
                           "--overwrite", "--progress", "off"], capture_output=True, text=True, check=True)
    return float(re.search(r"masks written to .* in ([0-9.]+) s", done.stderr).group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--backend", choices=["torch", "onnx"], default="onnx")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the images (default 1024x768)")
    args = parser.parse_args(argv)
    size = tuple(int(part) for part in args.size.split("x"))
    node_seconds: list[float] = []
    predict_seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        files = make_dicom_images(Path(tmp) / "images", args.images, size)
        sink, port = Sink(), free_port()
        node = start_node(Path(tmp) / "queue", port, sink, args.backend, Path(tmp) / "node.log")
        try:
            for _ in range(args.repeats):  # the two take turns: a change of the machine's load hits both
                node_seconds.append(through_node(files, port, sink))
                predict_seconds.append(through_predict(files, Path(tmp) / "predict", args.backend))
        except Exception:
            print((Path(tmp) / "node.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(120)
            sink.server.shutdown()
    node_rate = args.images / statistics.median(node_seconds)
    predict_rate = args.images / statistics.median(predict_seconds)
    print(f"{args.images} images {size[0]}x{size[1]} (JPEG Dermoscopic Photography), backend {args.backend}, "
          f"{os.cpu_count()} cores, median of {args.repeats}")
    print("| images | backend | node (C-STORE in, SEG + SR out) images/s | predict --dicom-seg --measurements "
          "images/s | node / predict |")
    print("|---|---|---|---|---|")
    print(f"| {args.images} | {args.backend} | {node_rate:.2f} | {predict_rate:.2f} | "
          f"{node_rate / predict_rate:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
