"""Delivering result files: by C-STORE to a DICOM peer, or by STOW-RS to a DICOMweb service.

A sender sends files in order and calls ``on_sent`` after each one the destination accepted. It raises
:class:`Unreachable` where the destination cannot be reached or answers "try later" (the node retries with
back-off, without limit) and :class:`Rejected` where it refuses an object (the node retries a few times, then
sets the result aside). Messages are one line and name UIDs only.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from skinnet.node.config import Peer

LOG = logging.getLogger("skinnet.node")
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"
RESULT_SOP_CLASSES = (SEGMENTATION_STORAGE, COMPREHENSIVE_SR_STORAGE)
# HTTP statuses that mean "later": timeouts, rate limits, a service restarting.
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


def client(url: str, token: str | None = None, timeout: float = 60.0) -> Any:
    """A dicomweb-client ``DICOMwebClient`` for a base URL, with the bearer token and without its retries."""
    import requests
    from dicomweb_client import DICOMwebClient

    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    web = DICOMwebClient(url, session=session, timeout=timeout)
    web.set_http_retry_params(retry=False)
    return web


class Unreachable(Exception):
    """The destination cannot be reached now (connection refused, timeout, busy): retry later."""


class Rejected(Exception):
    """The destination refused an object (a DIMSE failure status, an HTTP 4xx, a STOW failure)."""


OnSent = Callable[[Path], None]


class DimseSender:
    """C-STORE SCU: one association per batch of files.

    Args:
        peer: the destination.
        ae_title: the node's AE title (the calling AE title).
        ssl_context: a client TLS context, for a destination that speaks DICOM over TLS.
        timeout: seconds for the connection, the association and each answer.
    """

    def __init__(self, peer: Peer, ae_title: str, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 30.0) -> None:
        self.peer, self.ae_title, self.ssl_context, self.timeout = peer, ae_title, ssl_context, timeout

    def __str__(self) -> str:
        return str(self.peer)

    def send(self, files: Sequence[Path], on_sent: OnSent) -> None:
        from pydicom import dcmread
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
        from pynetdicom import AE

        ae = AE(ae_title=self.ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = self.timeout
        for sop_class in RESULT_SOP_CLASSES:
            ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        tls = (self.ssl_context, self.peer.host) if self.ssl_context is not None else None
        try:
            assoc = ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.ae_title, tls_args=tls)
        except OSError as err:  # a TLS handshake that fails, a bad host name
            raise Unreachable(f"{self.peer}: {err}") from err
        if not assoc.is_established:
            reason = "association rejected" if assoc.is_rejected else "no association (connection refused, " \
                     "timed out or aborted)"
            raise Unreachable(f"{self.peer}: {reason}")
        try:
            for path in files:
                ds = dcmread(path)
                status = assoc.send_c_store(ds)
                code = status.get("Status") if status else None
                if code is None:
                    raise Unreachable(f"{self.peer}: no answer to the C-STORE of {ds.SOPInstanceUID} "
                                      "(association lost)")
                if code in (0x0000, 0xB000, 0xB006, 0xB007):
                    if code:
                        LOG.warning("%s stored %s with warning status 0x%04X", self.peer, ds.SOPInstanceUID, code)
                    on_sent(path)
                    continue
                comment = str(status.get("ErrorComment", "")).strip()
                message = f"{self.peer} refused {ds.SOPInstanceUID}: status 0x{code:04X}" + \
                    (f" ({comment})" if comment else "")
                if 0xA700 <= code <= 0xA7FF:  # out of resources: the peer may have room later
                    raise Unreachable(message)
                raise Rejected(message)
        finally:
            if assoc.is_established:
                assoc.release()


class StowSender:
    """STOW-RS: one request per batch of files (dicomweb-client).

    Args:
        url: the DICOMweb service's base URL (the part before ``/studies``).
        token: a bearer token sent as ``Authorization: Bearer ...``, or ``None``.
        timeout: seconds per request.
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def __str__(self) -> str:
        return self.url

    def client(self) -> Any:
        return client(self.url, self.token, self.timeout)

    def send(self, files: Sequence[Path], on_sent: OnSent) -> None:
        import requests
        from pydicom import dcmread

        datasets = [dcmread(path) for path in files]
        try:
            answer = self.client().store_instances(datasets)
        except requests.HTTPError as err:
            code = err.response.status_code if err.response is not None else 0
            message = f"{self.url}: HTTP {code} storing {', '.join(str(ds.SOPInstanceUID) for ds in datasets)}"
            raise (Unreachable if code in TRANSIENT_HTTP else Rejected)(message) from err
        except requests.RequestException as err:
            raise Unreachable(f"{self.url}: {type(err).__name__}") from err
        failed = {str(item.get("ReferencedSOPInstanceUID", "")): item.get("FailureReason")
                  for item in (answer.get("FailedSOPSequence") or [])} if answer is not None else {}
        for path, ds in zip(files, datasets, strict=True):
            if str(ds.SOPInstanceUID) in failed:
                reason = failed[str(ds.SOPInstanceUID)]
                raise Rejected(f"{self.url} refused {ds.SOPInstanceUID}: failure reason "
                               f"{f'0x{reason:04X}' if isinstance(reason, int) else reason}")
            on_sent(path)
