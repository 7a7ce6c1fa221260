"""The ``skinnet`` command: parses arguments and calls the library; no logic lives here.

One module per group of commands (:mod:`.training`, :mod:`.evaluation`, :mod:`.prediction`, :mod:`.app`,
:mod:`.node`), each registering its subcommands with ``add_commands``. The library is imported inside the
command functions, so ``skinnet --help`` and a mistyped option answer without loading torch
(tests/test_package.py). Every user error leaves through :func:`main`'s one error-to-exit-code path.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from skinnet.cli import app, evaluation, node, prediction, training


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that are the user's to fix (a bad file, option, config or run folder): one line, exit 2.

    Imported when an error is raised, not with the CLI, so that ``skinnet --help`` does not load torch.
    """
    from skinnet.config import ConfigError
    from skinnet.data.io import InputError
    from skinnet.data.layout import LayoutError
    from skinnet.data.splits import SplitError
    from skinnet.extras import MissingExtraError
    from skinnet.networks.files import ModelFileError
    from skinnet.node.config import DicomWebError
    from skinnet.runs import RunError
    from skinnet.training.epoch import TrainingError

    return (ConfigError, InputError, LayoutError, SplitError, ModelFileError, TrainingError, RunError,
            MissingExtraError, DicomWebError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skinnet", description="SkinNet skin lesion segmentation")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (training, evaluation, prediction, app, node):  # the order of `skinnet --help`
        group.add_commands(sub)
    return parser


def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     line: str | None = None) -> str:
    """Warnings as ``warning: <message>`` lines: they are for users, not for debugging our source."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    default_format, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return args.func(args)
    except Exception as err:
        if isinstance(err, user_errors()):
            print(f"skinnet {args.command}: error: {err}", file=sys.stderr)
            return 2
        if isinstance(err, OSError):  # an unwritable output folder, a full disk: the file and the reason suffice
            where = f"{err.filename}: " if err.filename else ""
            print(f"skinnet {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = default_format


__all__ = ["build_parser", "main", "user_errors"]
