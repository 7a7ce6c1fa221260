"""A real Orthanc (Debian's ``orthanc`` and ``orthanc-dicomweb``) for the DICOM node's tests, and helpers.

The ``orthanc`` fixture starts one Orthanc per session on free loopback ports, from a generated JSON config:
its own storage folder, the DicomWeb plugin, the node registered as modality ``skinnet`` (AE SKINNET on the
port of :attr:`Orthanc.node_port`), the routing rule of docs/how-to/orthanc-route-dermoscopy.lua, and
``OverwriteInstances`` on, so that an object stored twice shows as two ``NewInstance`` changes (how the
tests count deliveries). Tests using it skip where the binary or the plugin is missing (``.ci/dicom-deps.sh``
installs them).

Every SEG and SR a test makes goes through :func:`dciodvfy` (Debian ``dicom3tools``): an error fails the
test; the warnings are collected and listed at the end of the session (and in docs/how-to/dicom.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from node_harness import (
    CHECKED,
    PLUGIN_NAME,
    ROUTING_RULE,
    UNCHECKED,
    WARNINGS,
    NodeProcess,
    Orthanc,
    dicomweb_plugin,
)
from relay import free_port


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    binary = shutil.which("Orthanc")
    plugin = dicomweb_plugin()
    if binary is None:
        pytest.skip("Orthanc is not installed (Debian: apt-get install orthanc orthanc-dicomweb, as "
                    ".ci/dicom-deps.sh does)")
    if plugin is None:
        pytest.skip(f"the Orthanc DicomWeb plugin ({PLUGIN_NAME}) is not installed (Debian: orthanc-dicomweb)")
    pytest.importorskip("pynetdicom", reason="the DICOM node needs pynetdicom (the 'node' extra)")
    pytest.importorskip("dicomweb_client", reason="DICOMweb needs dicomweb-client (the 'node' extra)")
    root = tmp_path_factory.mktemp("orthanc")
    server = Orthanc(free_port(), free_port(), free_port(), root)
    config = {
        "Name": "skinnet-tests", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "HttpPort": server.http_port, "DicomPort": server.dicom_port, "DicomAet": server.aet,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "HttpsVerifyPeers": False,
        "Plugins": [str(plugin)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {"skinnet": ["SKINNET", "127.0.0.1", server.node_port]},
        "LuaScripts": [str(ROUTING_RULE)], "OverwriteInstances": True, "StableAge": 1,
        "DicomScuTimeout": 30, "ConcurrentJobs": 1,
    }
    (root / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = open(root / "orthanc.log", "wb")  # noqa: SIM115 - closed at the end of the session
    server.process = subprocess.Popen([binary, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.get("/system")
            break
        except Exception:
            if server.process.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail(f"Orthanc did not start: {(root / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield server
    try:
        import requests

        requests.post(server.url + "/tools/shutdown", timeout=10)
        server.process.wait(30)
    except Exception:
        server.process.kill()
        server.process.wait()
    log.close()


@pytest.fixture()
def start_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Starts ``skinnet dicom-node`` (shipped model, ONNX backend) with the given options; kills it after."""
    started: list[NodeProcess] = []

    def start(*args: str, port: int, queue: Path | None = None) -> NodeProcess:
        node = NodeProcess(["--queue", str(queue or tmp_path / "queue"), "--port", str(port), "--backend", "onnx",
                            "--retry-max", "1", *args], tmp_path / "node.log")
        started.append(node)
        return node.start()

    yield start
    for node in started:
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CHECKED:
        terminalreporter.write_sep("-", f"dciodvfy: {len(CHECKED)} SEG and SR objects, no errors; warnings")
        for line, count in sorted(WARNINGS.items()):
            terminalreporter.write_line(f"{count:4d} x {line}")
    if UNCHECKED:
        terminalreporter.write_sep("-", f"dciodvfy is not installed: {len(UNCHECKED)} SEG and SR objects not "
                                        "validated (Debian dicom3tools; .ci/dicom-deps.sh)")
