"""``skinnet serve`` and ``demo``: the web app, and the shipped model on the bundled samples."""

from __future__ import annotations

import argparse

from skinnet.cli.arguments import add_backend_options, positive_float
from skinnet.extras import require


def cmd_serve(args: argparse.Namespace) -> int:
    for module in ("fastapi", "uvicorn", "python_multipart"):  # all three, before the server is half built
        require(module, "serve", "the web app")
    from skinnet.app.server import serve

    return serve(args.model, host=args.host, port=args.port, device=args.device, backend=args.backend,
                 max_upload_bytes=round(args.max_upload_mb * 1e6), workers=args.workers, queue_size=args.queue,
                 allow_hosts=args.allow_host, precision=args.precision)


def cmd_demo(args: argparse.Namespace) -> int:
    from skinnet.demo import run_demo

    run_demo(args.out, epochs=args.epochs, train=args.train, model=args.model)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="web app and JSON API: upload an image, see the lesion outlined")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--model", help="model file (.safetensors, .pt or .onnx); default: the shipped model")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (torch backend)")
    add_backend_options(serve)
    serve.add_argument("--max-upload-mb", type=positive_float, default=20.0,
                       help="largest image accepted (default 20)")
    serve.add_argument("--workers", type=int, default=1, help="images segmented at the same time (default 1)")
    serve.add_argument("--queue", type=int, default=32,
                       help="requests admitted at once; more are answered 503 with Retry-After (default 32)")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also answer requests addressed to this host name (repeatable; * for any). By default "
                            "only localhost, 127.0.0.1, ::1 and --host are answered, against DNS rebinding")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="segment and score the bundled ISIC sample pairs with the shipped model")
    demo.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    demo.add_argument("--model", help="model file instead of the shipped one")
    demo.add_argument("--train", action="store_true",
                      help="train a small model on 30 sample pairs for a few minutes, score the 10 held out")
    demo.add_argument("--epochs", type=int, help="epochs of --train (default 40)")
    demo.set_defaults(func=cmd_demo)
