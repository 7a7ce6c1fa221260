"""The DICOM node tests' harness: a client for a real Orthanc, the node as a subprocess, C-STORE, dciodvfy.

The fixtures that start them are in conftest.py.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "skinnet" / "sample_data" / "images"
ROUTING_RULE = REPO / "docs" / "how-to" / "orthanc-route-dermoscopy.lua"
PLUGIN_NAME = "libOrthancDicomWeb.so"
WARNINGS: dict[str, int] = {}  # dciodvfy warnings of the session: line -> count
CHECKED: list[str] = []
UNCHECKED: list[str] = []  # objects not validated: dciodvfy is not installed


def dicomweb_plugin() -> Path | None:
    """The DicomWeb plugin's .so, as the Debian package lists it (else its usual place)."""
    try:
        listed = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True,
                                timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        listed = []
    candidates = [Path(line) for line in listed if line.endswith(PLUGIN_NAME)]
    candidates.append(Path("/usr/share/orthanc/plugins") / PLUGIN_NAME)
    return next((path for path in candidates if path.is_file()), None)


@dataclass
class Orthanc:
    """A running Orthanc and a small REST client for it."""

    http_port: int
    dicom_port: int
    node_port: int
    root: Path
    process: subprocess.Popen | None = None
    aet: str = "ORTHANC"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str) -> Any:
        import requests

        response = requests.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json() if "json" in response.headers.get("content-type", "") else response.content

    def upload(self, path: Path) -> str:
        """Store a file by REST (origin RestApi: the routing rule leaves it alone); its Orthanc ID."""
        import requests

        response = requests.post(self.url + "/instances", data=path.read_bytes(), timeout=30)
        response.raise_for_status()
        return str(response.json()["ID"])

    def lookup(self, uid: str) -> list[str]:
        """Orthanc IDs of the instances with this SOP Instance UID."""
        import requests

        response = requests.post(self.url + "/tools/lookup", data=uid, timeout=30)
        response.raise_for_status()
        return [item["ID"] for item in response.json() if item["Type"] == "Instance"]

    def instance_file(self, uid: str) -> bytes:
        (orthanc_id,) = self.lookup(uid)
        return self.get(f"/instances/{orthanc_id}/file")

    def new_instance_changes(self) -> dict[str, int]:
        """How many times each instance (Orthanc ID) was stored: its ``NewInstance`` changes."""
        counts: dict[str, int] = {}
        since, done = 0, False
        while not done:
            page = self.get(f"/changes?since={since}&limit=1000")
            for change in page["Changes"]:
                if change["ChangeType"] == "NewInstance":
                    counts[change["ID"]] = counts.get(change["ID"], 0) + 1
            since, done = page["Last"], page["Done"]
        return counts

    def study_instances(self, study_uid: str) -> list[dict[str, Any]]:
        """QIDO-RS: the study's instances (DICOM JSON) with their SOP class and series."""
        return self.get(f"/dicom-web/studies/{study_uid}/instances?includefield=00080016&includefield=0020000E")


@dataclass
class NodeProcess:
    """``skinnet dicom-node`` in a subprocess, its log in a file."""

    args: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> NodeProcess:
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        handle = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it
        env = {**os.environ, "OMP_NUM_THREADS": "1", **self.env}
        self.process = subprocess.Popen([sys.executable, "-m", "skinnet", "dicom-node", *self.args],
                                        stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        handle.close()
        self.wait_for("listening on")
        return self

    offset: int = 0

    @property
    def log(self) -> str:
        """What this run of the node logged (the file may hold earlier runs' lines too)."""
        with open(self.log_path, "rb") as handle:
            handle.seek(self.offset)
            return handle.read().decode(errors="replace")

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 120) -> str:
        """Wait until this run's log has ``count`` matches of ``pattern``; that log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log
            if len(re.findall(pattern, log)) >= count:
                return log
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the node exited ({self.process.returncode}) before {pattern!r}:\n"
                                     f"{log[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} x {pattern!r} in {timeout} s:\n{log[-3000:]}")
            time.sleep(0.1)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def vm_hwm_kb(self) -> int:
        """The node's peak resident memory so far (VmHWM), in kB."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def store(port: int, datasets: Sequence[Any], syntax: str | None = None, calling: str = "TESTSCU",
          called: str = "SKINNET", tls: Any = None, raw: bool = False) -> list[Any]:
    """C-STORE datasets (or files) to ``port`` with pynetdicom; the status dataset of each.

    With ``raw``, files are sent byte for byte as they are stored (pynetdicom's chunked sending, nothing
    parsed but the meta information): how to send what pydicom would not encode, or would inflate first.
    """
    from pydicom import dcmread
    from pydicom.filereader import read_file_meta_info
    from pynetdicom import AE, _config

    ae = AE(ae_title=calling)
    if raw:
        for path in datasets:
            meta = read_file_meta_info(path)
            ae.add_requested_context(meta.MediaStorageSOPClassUID, [meta.TransferSyntaxUID])
    else:
        datasets = [dcmread(item) if isinstance(item, (str, Path)) else item for item in datasets]
        for ds in datasets:
            ae.add_requested_context(ds.SOPClassUID, [syntax or ds.file_meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", port, ae_title=called, tls_args=tls)
    assert assoc.is_established, "no association"
    _config.STORE_SEND_CHUNKED_DATASET = raw
    try:
        return [assoc.send_c_store(item) for item in datasets]
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()


def dicom_images(folder: Path, specs: Sequence[tuple[str, str, str]], study_uid: str | None = None) -> list[Path]:
    """DICOM files of sample images: ``(image ID, transfer syntax name, SOP class)`` each (tests/dicom_factory)."""
    import numpy as np
    from dicom_factory import build_dicom
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for image_id, syntax, sop_class in specs:
        rgb = np.asarray(Image.open(SAMPLES / f"{image_id}.jpg").convert("RGB"))
        out.append(build_dicom(folder / f"{image_id}.dcm", rgb, syntax=syntax, sop_class=sop_class,
                               spacing=(0.02, 0.02), study_uid=study_uid))
    return out


def dciodvfy(data: bytes | Path, label: str, folder: Path) -> list[str]:
    """Validate a DICOM object with dciodvfy: no error allowed; returns (and collects) its warnings.

    Where dciodvfy (Debian dicom3tools) is not installed the object is listed as not validated instead.
    """
    binary = shutil.which("dciodvfy")
    if binary is None:  # the node's own checks still run; the summary says what was not validated
        UNCHECKED.append(label)
        return []
    path = data if isinstance(data, Path) else folder / f"{label}.dcm"
    if not isinstance(data, Path):
        path.write_bytes(data)
    result = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    assert not errors, f"dciodvfy errors in {label}:\n" + "\n".join(lines)
    CHECKED.append(label)
    for line in warnings:
        WARNINGS[line] = WARNINGS.get(line, 0) + 1
    return warnings
