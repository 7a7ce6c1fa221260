"""What a DICOM node is told: its AE title and address, its queue, who may call it, where results go.

Parsed and checked before anything starts, so that every bad value is one line from ``skinnet dicom-node``
(a :class:`~skinnet.config.ConfigError`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from skinnet.config import ConfigError

# AE titles: at most 16 characters of the default character repertoire, no backslash, not all spaces (PS3.5 6.2).
AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
TOKEN_VARIABLE = "SKINNET_DICOMWEB_TOKEN"
# The SOP classes the node segments (PS3.4 B.5): photographs of skin, in colour.
ACCEPTED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.77.1.7": "Dermoscopic Photography Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.2": "VL Microscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}


class DicomWebError(Exception):
    """A DICOMweb URL that cannot be used, or a service that failed: one line for the user."""


def ae_title(text: str, what: str = "AE title") -> str:
    """An AE title, checked; surrounding spaces are not significant (PS3.5 6.2)."""
    title = text.strip()
    if not AE_TITLE.match(title):
        raise ConfigError(f"{what} {text!r}: 1 to 16 printable ASCII characters, no backslash")
    return title


def port_number(text: str | int, what: str = "port") -> int:
    try:
        port = int(text)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise ConfigError(f"{what} {text!r}: a TCP port from 1 to 65535")
    return port


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity on the network: ``AET@HOST:PORT``."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Peer:
        """``ORTHANC@10.0.0.5:4242`` (an IPv6 host in brackets: ``PACS@[::1]:104``)."""
        match = re.match(r"^(?P<aet>[^@]+)@(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d+)$", text.strip())
        if not match:
            raise ConfigError(f"--send-to {text!r}: expected AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
        host = match["host"].strip("[]")
        return cls(ae_title(match["aet"], "--send-to AE title"), host,
                   port_number(match["port"], "--send-to port"))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


@dataclass(frozen=True)
class Caller:
    """An allowed caller: an AE title, optionally only from one address (``AET@HOST``); ``*`` is any title."""

    ae_title: str
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> Caller:
        title, _, host = text.strip().partition("@")
        if title == "*" and not host:
            return cls("*")
        return cls(title if title == "*" else ae_title(title, "--allow-ae AE title"), host or None)

    def admits(self, title: str, address: str) -> bool:
        return self.ae_title in ("*", title.strip()) and (self.host is None or self.host == address)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class NodeConfig:
    """Everything ``skinnet dicom-node`` runs with.

    Attributes:
        queue: the queue folder (received objects, results waiting to be sent, refused objects).
        ae_title: the node's own AE title (callers must address it by this title).
        host: the address to listen on (default loopback: this machine only).
        port: the DICOM port.
        send_to: the C-STORE destination of the results, or ``None``.
        stow_to: the DICOMweb (STOW-RS) base URL of the results, or ``None``.
        allow: callers allowed; empty: any caller (allowed only on a loopback address).
        tls_cert: PEM certificate of the node's TLS (DICOM over TLS, PS3.15 B.1), or ``None``.
        tls_key: its private key.
        tls_ca: with TLS, only callers with a certificate signed by this CA are accepted (mutual TLS).
        token: bearer token of the DICOMweb destination, or ``None``.
        queue_size: most objects waiting (received, or results not yet delivered); more are refused with
            status A700 (out of resources) until the queue drains.
        max_object_bytes: the largest object accepted, as sent and inflated; a bigger one ends the association.
        retry_max_seconds: the longest wait between two tries of a destination that is down.
        max_attempts: tries of a result the destination refuses (a DIMSE failure status, an HTTP 4xx) before
            it is set aside in ``failed/``; a destination that cannot be reached is retried without limit.
        drain_seconds: on SIGTERM, how long to go on processing and delivering what is queued.
        max_associations: callers served at once.
    """

    queue: Path
    ae_title: str = "SKINNET"
    host: str = "127.0.0.1"
    port: int = 11112
    send_to: Peer | None = None
    stow_to: str | None = None
    allow: tuple[Caller, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    token: str | None = field(default=None, repr=False)
    queue_size: int = 1000
    max_object_bytes: int = 512 * 1024 * 1024
    retry_max_seconds: float = 60.0
    max_attempts: int = 5
    drain_seconds: float = 30.0
    max_associations: int = 4

    def check(self) -> NodeConfig:
        """This config, after refusing what cannot work or would be unsafe.

        Raises:
            ConfigError: no destination or two, a bad URL, TLS half configured, or any caller allowed on a
                network address.
        """
        port_number(self.port, "--port")
        if (self.send_to is None) == (self.stow_to is None):
            raise ConfigError("give one destination for the results: --send-to AET@HOST:PORT (C-STORE) or "
                              "--stow-to URL (DICOMweb STOW-RS)")
        if self.stow_to is not None and not re.match(r"^https?://[^/]+", self.stow_to):
            raise ConfigError(f"--stow-to {self.stow_to!r}: expected an http(s):// URL of a DICOMweb service")
        if self.token is not None and self.stow_to is None:
            raise ConfigError("a bearer token is for DICOMweb: it needs --stow-to URL")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-ca (verify callers' certificates) needs --tls-cert and --tls-key")
        for path in (self.tls_cert, self.tls_key, self.tls_ca):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{path}: no such file")
        if not self.allow and not is_loopback(self.host):
            raise ConfigError(f"listening on {self.host}, which other machines reach: name the callers allowed "
                              "(--allow-ae AET or AET@HOST, repeatable; '*' for any caller)")
        return self


def read_token(path: str | None) -> str | None:
    """The DICOMweb bearer token: from a file (``--token-file``), else ``$SKINNET_DICOMWEB_TOKEN``, else none.

    A file, not an option value, so that the token is not shown by ``ps``.
    """
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"--token-file {path}: {err.strerror or err}") from err
        if not token:
            raise ConfigError(f"--token-file {path}: the file is empty")
        return token
    return os.environ.get(TOKEN_VARIABLE) or None
