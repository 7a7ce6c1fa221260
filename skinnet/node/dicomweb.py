"""DICOMweb for batch prediction: a study or series URL as ``skinnet predict``'s input, ``--stow-to`` for output.

``skinnet predict http://pacs/dicom-web/studies/1.2.3 --out OUT --stow-to http://pacs/dicom-web``:

1. QIDO-RS lists the instances of the study (or series) and keeps those of the SOP classes the node
   segments (:data:`~skinnet.node.config.ACCEPTED_SOP_CLASSES`; a study's SEGs and SRs are not inputs);
2. WADO-RS retrieves each in the transfer syntax it is stored in, into a temporary folder, named by its SOP
   Instance UID (the image ID of the run), where the file reader checks it like any other file;
3. the run writes, beside the usual masks, ``<uid>_seg.dcm`` and ``<uid>_sr.dcm``: the objects the DICOM
   node makes for the same image and model (:mod:`skinnet.node.results`), same UIDs included;
4. STOW-RS stores them (every image of the run that has them, including images a resumed run skipped: a
   result stored twice is the same object).

A bearer token (``--token-file``, or ``$SKINNET_DICOMWEB_TOKEN``) goes with every request. dicomweb-client
makes the requests; its own retrying is off, and a failed store is retried here with back-off.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinnet.batch.writers import DicomSegWriter, OutputWriter, standard_writers
from skinnet.data.io import read_dicom_only
from skinnet.inference.predictor import Predictor
from skinnet.node.config import ACCEPTED_SOP_CLASSES, DicomWebError
from skinnet.node.results import DicomResultsWriter, seg_name, sr_name
from skinnet.node.senders import client

LOG = logging.getLogger("skinnet.node")
URL = re.compile(r"^(?P<base>https?://.+?)/studies/(?P<study>[0-9.]+)(?:/series/(?P<series>[0-9.]+))?/?$")
STORE_BATCH = 16  # instances per STOW-RS request


def is_url(text: str | Path) -> bool:
    return isinstance(text, str) and text.startswith(("http://", "https://"))


@dataclass(frozen=True)
class DicomWebSource:
    """A study or series of a DICOMweb service, from its URL (``.../studies/UID[/series/UID]``)."""

    base: str
    study: str
    series: str | None = None

    @classmethod
    def parse(cls, url: str) -> DicomWebSource:
        match = URL.match(url)
        if not match:
            raise DicomWebError(f"{url}: expected a DICOMweb study or series URL, e.g. "
                                "http://pacs:8042/dicom-web/studies/1.2.3[/series/4.5.6]")
        return cls(match["base"], match["study"], match["series"])


def _value(item: dict[str, Any], tag: str) -> str | None:
    values = item.get(tag, {}).get("Value") or []
    return str(values[0]) if values else None


def list_instances(source: DicomWebSource, token: str | None = None) -> list[tuple[str, str, str]]:
    """``(series UID, SOP Instance UID, SOP Class UID)`` of every instance of the study or series (QIDO-RS).

    Raises:
        DicomWebError: the service cannot be reached or answers an error.
    """
    import requests

    web = client(source.base, token)
    try:
        found = web.search_for_instances(study_instance_uid=source.study, series_instance_uid=source.series,
                                         fields=["00080016"])
    except requests.RequestException as err:
        raise DicomWebError(f"{source.base}: QIDO-RS search of study {source.study} failed ({_why(err)})") from err
    out = []
    for item in found or []:
        series, instance, sop_class = (_value(item, tag) for tag in ("0020000E", "00080018", "00080016"))
        if series and instance:
            out.append((series, instance, sop_class or ""))
    return out


def _why(err: Exception) -> str:
    response = getattr(err, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(err).__name__


def fetch_images(urls: Sequence[str], folder: Path, token: str | None = None) -> tuple[list[Path], list[str]]:
    """Retrieve (WADO-RS) the images of DICOMweb study or series URLs into ``folder``.

    Returns:
        The files (``<SOP Instance UID>.dcm``), and one line per instance left out (another SOP class).

    Raises:
        DicomWebError: a bad URL, or a service that fails.
    """
    import requests

    files: list[Path] = []
    skipped: list[str] = []
    for url in urls:
        source = DicomWebSource.parse(url)
        web = client(source.base, token)
        instances = list_instances(source, token)
        if not instances:
            raise DicomWebError(f"{url}: no instances found")
        for series, instance, sop_class in instances:
            if sop_class and sop_class not in ACCEPTED_SOP_CLASSES:
                skipped.append(f"{instance}: SOP class {sop_class} is not segmented; skipped")
                continue
            try:
                dataset = web.retrieve_instance(source.study, series, instance,
                                                media_types=(("application/dicom", "*"),))
            except requests.RequestException as err:
                raise DicomWebError(f"{source.base}: WADO-RS retrieve of {instance} failed ({_why(err)})") from err
            path = folder / f"{instance}.dcm"
            dataset.save_as(path, enforce_file_format=True)
            files.append(path)
    return files, skipped


def results_writers(predictor: Predictor, writers: Sequence[OutputWriter] | None, with_overlay: bool,
                    with_probability: bool) -> tuple[list[OutputWriter], Any]:
    """A predict run's writers with the SEG and the SR of each image added (before the mask, written last),
    and the reader that takes DICOM only."""
    writers = list(writers) if writers is not None else standard_writers(with_overlay, with_probability)
    writers = [writer for writer in writers if not isinstance(writer, DicomSegWriter)]  # ours makes the SEG
    return [*writers[:-1], DicomResultsWriter(predictor), writers[-1]], read_dicom_only


def store_results(url: str, out_dir: Path, image_ids: Iterable[str], token: str | None = None,
                  attempts: int = 4) -> int:
    """STOW-RS the SEG and SR files of ``image_ids`` in ``out_dir``; returns how many instances were stored.

    Raises:
        DicomWebError: the service refused them, or failed ``attempts`` times (waiting 1, 2, 4 s between).
    """
    from skinnet.node.senders import StowSender, Unreachable

    files = [out_dir / name for image_id in image_ids for name in (seg_name(image_id), sr_name(image_id))
             if (out_dir / name).is_file()]
    sender = StowSender(url, token)
    stored = 0
    for start in range(0, len(files), STORE_BATCH):
        batch = files[start : start + STORE_BATCH]
        for attempt in range(attempts):
            try:
                sender.send(batch, lambda path: None)
                break
            except Unreachable as err:
                if attempt == attempts - 1:
                    raise DicomWebError(f"STOW-RS failed {attempts} times: {err}") from err
                time.sleep(2**attempt)
            except Exception as err:  # Rejected, or a file that cannot be read
                raise DicomWebError(f"STOW-RS: {err}") from err
        stored += len(batch)
    return stored


class DicomWebRun:
    """The DICOMweb side of one ``predict`` run: URL inputs retrieved into a temporary folder on entry
    (removed on exit), the SEG and SR writers, and the STOW-RS of the results.

    Args:
        inputs: the run's inputs: files, folders and DICOMweb study or series URLs.
        stow_to: the DICOMweb base URL to store the results at, or ``None``.
        token: the bearer token, or ``None``.
    """

    def __init__(self, inputs: Sequence[str], stow_to: str | None, token: str | None) -> None:
        self.urls = [text for text in inputs if is_url(text)]
        self.paths: list[str | Path] = [text for text in inputs if not is_url(text)]
        self.stow_to, self.token = stow_to, token
        self.inputs: list[str | Path] = list(self.paths)
        self.skipped: list[str] = []
        self._scratch: Any = None

    def __enter__(self) -> DicomWebRun:
        import tempfile

        if self.stow_to is not None and not is_url(self.stow_to):
            raise DicomWebError(f"--stow-to {self.stow_to!r}: expected an http(s):// URL of a DICOMweb service")
        if self.urls:
            self._scratch = tempfile.TemporaryDirectory(prefix="skinnet-dicomweb-")
            files, self.skipped = fetch_images(self.urls, Path(self._scratch.name), self.token)
            self.inputs = [*self.paths, *files]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()

    def outputs(self, predictor: Predictor, writers: Sequence[OutputWriter] | None, with_overlay: bool,
                with_probability: bool) -> tuple[list[OutputWriter], Any]:
        return results_writers(predictor, writers, with_overlay, with_probability)

    def store(self, out_dir: str | Path) -> int:
        """STOW-RS the results of every image of the run (see :func:`store_results`)."""
        from skinnet.data.layout import find_images

        ids = list(dict.fromkeys(path.stem for path in find_images(self.inputs)))
        return store_results(str(self.stow_to), Path(out_dir), ids, self.token)
