"""``skinnet dicom-node``: the DICOM node for the hospital network (docs/how-to/dicom_node.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skinnet.cli.arguments import add_backend_options, positive_float, positive_int
from skinnet.extras import require


def cmd_dicom_node(args: argparse.Namespace) -> int:
    for module in ("pynetdicom", "dicomweb_client"):
        require(module, "node", "the DICOM node")
    from skinnet.inference.model_spec import ModelSpec
    from skinnet.inference.segmenter import choose_runtime
    from skinnet.networks.files import model_path
    from skinnet.node.config import Caller, NodeConfig, Peer, read_token
    from skinnet.node.service import serve

    config = NodeConfig(
        queue=Path(args.queue), ae_title=args.ae_title, host=args.host, port=args.port,
        send_to=Peer.parse(args.send_to) if args.send_to else None, stow_to=args.stow_to,
        allow=tuple(Caller.parse(text) for text in args.allow_ae), tls_cert=args.tls_cert, tls_key=args.tls_key,
        tls_ca=args.tls_ca, token=read_token(args.token_file) if args.stow_to else None,
        queue_size=args.queue_size, max_object_bytes=round(args.max_object_mb * 1024 * 1024),
        retry_max_seconds=args.retry_max, max_attempts=args.max_attempts, drain_seconds=args.drain,
        max_associations=args.max_associations)
    # resolved once, as predict does: the shipped model on a CPU runs its packaged int8 copy
    runtime = choose_runtime(model_path(args.model), args.backend, args.precision, args.device)
    if runtime.note:
        print(f"note: {runtime.note}", file=sys.stderr)
    spec = ModelSpec(model=args.model, device=args.device, backend=runtime.backend, threads=args.threads,
                     precision=runtime.precision)
    return serve(config, spec.load)


def ae_title(text: str) -> str:
    from skinnet.config import ConfigError
    from skinnet.node.config import ae_title as checked

    try:
        return checked(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = sub.add_parser(
        "dicom-node", help="DICOM node: receive images by C-STORE, send back their SEG and SR measurement report",
        description="A DICOM Storage SCP for dermoscopic and other skin photographs (Dermoscopic Photography, "
                    "VL Photographic, VL Microscopic, Secondary Capture). Each image received is queued on disk, "
                    "segmented, and its DICOM Segmentation and TID 1500 measurement report (SR) are sent, in the "
                    "image's study, to --send-to (C-STORE) or --stow-to (DICOMweb STOW-RS). SIGTERM drains. "
                    "See docs/how-to/dicom.md.")
    node.add_argument("--ae-title", type=ae_title, default="SKINNET",
                      help="the node's AE title; callers must address it by this title (default SKINNET)")
    node.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only; another address needs "
                           "--allow-ae)")
    node.add_argument("--port", type=int, default=11112, help="DICOM port (default 11112)")
    node.add_argument("--queue", required=True, metavar="DIR",
                      help="queue folder: received objects wait here (fsynced before they are acknowledged), "
                           "then their results until delivered; refused objects in DIR/failed/ with the reason")
    node.add_argument("--queue-size", type=positive_int, default=1000, metavar="N",
                      help="most objects waiting (received or undelivered); more are refused with status A700, "
                           "out of resources, until the queue drains (default 1000)")
    node.add_argument("--max-object-mb", type=positive_float, default=512.0, metavar="MB",
                      help="largest object accepted, as sent and once inflated (default 512); a bigger one is "
                           "refused or its association aborted")
    destination = node.add_mutually_exclusive_group()
    destination.add_argument("--send-to", metavar="AET@HOST:PORT",
                             help="send results by C-STORE to this DICOM peer, e.g. ORTHANC@10.0.0.5:4242")
    destination.add_argument("--stow-to", metavar="URL",
                             help="send results by DICOMweb STOW-RS to this service, e.g. "
                                  "http://pacs:8042/dicom-web")
    node.add_argument("--token-file", metavar="FILE",
                      help="with --stow-to: a file holding a bearer token for the DICOMweb service "
                           "(default: $SKINNET_DICOMWEB_TOKEN, if set)")
    node.add_argument("--allow-ae", action="append", default=[], metavar="AET[@HOST]",
                      help="a caller allowed to connect, by AE title and optionally address (repeatable; '*' "
                           "any). Default: any caller, on a loopback --host only")
    node.add_argument("--tls-cert", type=Path, metavar="PEM",
                      help="DICOM over TLS: the node's certificate (with --tls-key)")
    node.add_argument("--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert")
    node.add_argument("--tls-ca", type=Path, metavar="PEM",
                      help="with TLS, accept only callers whose certificate this CA signed (mutual TLS)")
    node.add_argument("--retry-max", type=positive_float, default=60.0, metavar="SECONDS",
                      help="longest wait between tries of a destination that is down (default 60; the wait "
                           "doubles from 1 s)")
    node.add_argument("--max-attempts", type=positive_int, default=5, metavar="N",
                      help="tries of a result the destination refuses before it is set aside in "
                           "DIR/failed/ (default 5)")
    node.add_argument("--drain", type=positive_float, default=30.0, metavar="SECONDS",
                      help="on SIGTERM, how long to go on segmenting and delivering what is queued (default 30)")
    node.add_argument("--max-associations", type=positive_int, default=4, metavar="N",
                      help="callers served at once (default 4)")
    node.add_argument("--model", help="model file (.safetensors, .pt or .onnx); default: the shipped model")
    node.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (torch backend)")
    add_backend_options(node)
    node.add_argument("--threads", type=positive_int, help="CPU threads of the network (default: all cores)")
    node.set_defaults(func=cmd_dicom_node)
