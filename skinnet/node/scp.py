"""The node's DICOM Storage SCP (pynetdicom): who may call, what is accepted, what each C-STORE is answered.

* **Association**: the caller must address the node by its AE title (else A-ASSOCIATE-RJ "called AE title
  not recognised") and, where ``--allow-ae`` names callers, be one of them (else "calling AE title not
  recognised"). With ``--tls-cert/--tls-key`` the port speaks DICOM over TLS (TLS 1.2 or later); with
  ``--tls-ca`` callers must present a certificate that CA signed.
* **Presentation contexts**: the SOP classes of :data:`~skinnet.node.config.ACCEPTED_SOP_CLASSES` and
  Verification (C-ECHO), each in every transfer syntax the file reader decodes here (:func:`transfer_syntaxes`:
  the native ones, deflate, and the compressed ones whose pydicom decoder is installed). Another SOP class
  or syntax is refused in negotiation (result "abstract syntax not supported" / "transfer syntaxes not
  supported"), so the caller knows before sending.
* **C-STORE**: the object is inflated (bounded) and checked (:mod:`skinnet.node.receive`), written and fsynced
  into the queue, decoded once by the file reader (:func:`skinnet.data.dicom.read_dicom`) to catch truncated or
  corrupt pixel data, and only then moved into the inbox and answered 0x0000. Otherwise: 0xA700 (queue full,
  disk full, too big), 0xA900 (no pixel data, UIDs that differ from the request's), 0xC000 (monochrome,
  multi-frame, malformed, a deflate bomb, pixels that do not decode), with the one-line reason in the Error
  Comment (64 characters) and in the log.
* **Memory**: the bytes of one message are counted as they arrive; past ``max_object_bytes`` the association
  is aborted, so a caller cannot make the node hold more than that per association
  (``max_associations`` at once).
"""

from __future__ import annotations

import logging
import ssl
import threading
import warnings
from pathlib import Path
from typing import Any

from skinnet.data.dicom import read_dicom
from skinnet.data.io import InputError
from skinnet.node.config import ACCEPTED_SOP_CLASSES, NodeConfig
from skinnet.node.queue import NodeQueue, QueueFull
from skinnet.node.receive import (
    CANNOT_UNDERSTAND,
    NOT_THE_SOP_CLASS,
    OUT_OF_RESOURCES,
    Refused,
    check_frame_end,
    receive,
)

LOG = logging.getLogger("skinnet.node")
VERIFICATION = "1.2.840.10008.1.1"
ERROR_COMMENT_LENGTH = 64  # Error Comment (0000,0902) is LO


def transfer_syntaxes() -> list[str]:
    """The transfer syntaxes accepted: native ones, deflate (inflated here), and compressed ones whose
    pydicom decoder is installed (the file reader decodes exactly those)."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID, AllTransferSyntaxes

    accepted = []
    for text in AllTransferSyntaxes:
        uid = UID(text)
        if not uid.is_compressed:
            accepted.append(text)
            continue
        try:
            if get_decoder(uid).is_available:
                accepted.append(text)
        except NotImplementedError:  # no decoder in pydicom at all (video, JPIP)
            continue
    # Explicit VR Little Endian first: the syntax pynetdicom prefers when a caller proposes several
    return sorted(accepted, key=lambda uid: uid != "1.2.840.10008.1.2.1")


def server_ssl_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The TLS context of ``--tls-cert/--tls-key`` (and ``--tls-ca``), or ``None`` without TLS."""
    if config.tls_cert is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    if config.tls_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(config.tls_ca))
    return context


def status(code: int, reason: str | None = None) -> Any:
    from pydicom.dataset import Dataset

    answer = Dataset()
    answer.Status = code
    if reason:
        answer.ErrorComment = reason[:ERROR_COMMENT_LENGTH]
    return answer


class StorageSCP:
    """The listening side of the node; objects it accepts go into ``queue``'s inbox.

    Args:
        config: the node's config.
        queue: the queue.
    """

    def __init__(self, config: NodeConfig, queue: NodeQueue) -> None:
        self.config = config
        self.queue = queue
        self.server: Any = None
        self._bytes: dict[int, int] = {}
        self._lock = threading.Lock()
        self.accepted = 0
        self.refused = 0

    def application_entity(self) -> Any:
        from pynetdicom import AE

        ae = AE(ae_title=self.config.ae_title)
        ae.require_called_aet = True
        ae.maximum_associations = self.config.max_associations
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = 30, 120, 120
        syntaxes = transfer_syntaxes()
        for sop_class in ACCEPTED_SOP_CLASSES:
            ae.add_supported_context(sop_class, syntaxes)
        ae.add_supported_context(VERIFICATION, ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
        return ae

    def start(self) -> None:
        from pynetdicom import evt

        handlers = [(evt.EVT_REQUESTED, self.on_requested), (evt.EVT_C_STORE, self.on_store),
                    (evt.EVT_C_ECHO, lambda event: 0x0000), (evt.EVT_DATA_RECV, self.on_data),
                    (evt.EVT_DIMSE_RECV, self.on_message), (evt.EVT_RELEASED, self.on_closed),
                    (evt.EVT_ABORTED, self.on_closed)]
        self.server = self.application_entity().start_server(
            (self.config.host, self.config.port), block=False, ssl_context=server_ssl_context(self.config),
            evt_handlers=handlers)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop_listening(self) -> None:
        """Close the port; associations under way go on to their end."""
        if self.server is not None:
            self.server.shutdown()

    def active(self) -> int:
        """Associations under way."""
        ae = getattr(self.server, "ae", None)
        return len(ae.active_associations) if ae is not None else 0

    # --- events ----------------------------------------------------------------------------------------------

    def on_requested(self, event: Any) -> None:
        """Refuse a caller the allow-list does not name (A-ASSOCIATE-RJ, calling AE title not recognised)."""
        title = str(event.assoc.requestor.primitive.calling_ae_title).strip()
        address = str(event.assoc.requestor.address)
        if self.config.allow and not any(caller.admits(title, address) for caller in self.config.allow):
            LOG.warning("refused an association from %s at %s: not in --allow-ae", title, address)
            event.assoc.acse.send_reject(0x01, 0x01, 0x03)  # rejected-permanent, service user, calling AE
            event.assoc.kill()  # as pynetdicom does after its own rejections: the A-ASSOCIATE-RJ goes out first

    def on_data(self, event: Any) -> None:
        """Count the bytes of the message being received; abort past the object limit."""
        key = id(event.assoc)
        with self._lock:
            total = self._bytes.get(key, 0) + len(event.data)
            self._bytes[key] = total
        if total > self.config.max_object_bytes + (1 << 20):
            LOG.warning("aborted the association of %s: an object of more than %s bytes",
                        event.assoc.requestor.ae_title, f"{self.config.max_object_bytes:,}")
            with self._lock:
                self._bytes[key] = -(1 << 62)  # abort once
            event.assoc.abort(block=False)

    def on_message(self, event: Any) -> None:
        with self._lock:
            self._bytes[id(event.assoc)] = 0

    def on_closed(self, event: Any) -> None:
        with self._lock:
            self._bytes.pop(id(event.assoc), None)

    def on_store(self, event: Any) -> Any:
        request = event.request
        sop_class, sop_instance = str(request.AffectedSOPClassUID), str(request.AffectedSOPInstanceUID)
        caller = str(event.assoc.requestor.ae_title).strip()
        syntax = str(event.context.transfer_syntax)
        try:
            received = receive(request.DataSet.getvalue(), syntax, sop_class, sop_instance, caller,
                               self.config.max_object_bytes)
            staged = self.queue.stage(received.file)
            del received
            try:
                _decodes(staged)
                seq = self.queue.commit(staged)
            except BaseException:
                self.queue.discard(staged)
                raise
        except Refused as err:
            return self._refuse(sop_instance, caller, err.status, err.reason)
        except QueueFull as err:
            return self._refuse(sop_instance, caller, OUT_OF_RESOURCES, str(err))
        except OSError as err:
            return self._refuse(sop_instance, caller, OUT_OF_RESOURCES,
                                f"cannot write the queue ({err.strerror or err})")
        self.accepted += 1
        LOG.info("received %s (%s) from %s: queued as %s", sop_instance, ACCEPTED_SOP_CLASSES[sop_class],
                 caller, seq)
        return 0x0000

    def _refuse(self, sop_instance: str, caller: str, code: int, reason: str) -> Any:
        self.refused += 1
        LOG.warning("refused %s from %s: %s (status 0x%04X)", sop_instance, caller, reason, code)
        return status(code, reason)


def _decodes(path: Path) -> None:
    """Decode the staged file once with the file reader: pixel data that is cut or corrupt is refused now.

    Raises:
        Refused: with the reader's reason, or a compressed frame without its end marker.
    """
    from pydicom import dcmread

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path)
            check_frame_end(ds, str(ds.file_meta.TransferSyntaxUID))
            del ds
            read_dicom(path)
    except InputError as err:
        code = NOT_THE_SOP_CLASS if "no pixel data" in err.reason else CANNOT_UNDERSTAND
        raise Refused(code, err.reason) from err
