"""MkDocs hooks: the parts of the site written from the code, so that they cannot drift from it.

- ``reference/cli.md``: every command and option of ``skinnet``, from the parser that ``skinnet --help`` prints;
- ``reference/config.md``: every config key with its type, default and allowed range or values, from
  ``skinnet/config.py`` (a key without a description in ``CONFIG_HELP`` below is a warning);
- ``model-card.md``: ``skinnet/weights/MODEL_CARD.md``, the card shipped beside the weights, with its links
  rewritten from the repository's layout to the site's.

The two reference pages keep their generated part in the file, between ``<!-- begin generated: NAME -->`` and
``<!-- end generated: NAME -->``, so that they read the same on a forge as on the site. ``python docs/hooks.py``
rewrites those parts; ``mkdocs build --strict`` (in ``make test``) fails when one is stale. The package is
imported from this checkout (the repository root goes first on ``sys.path``); neither the parser nor the
config loads torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.skinnet")
ROOT = Path(__file__).resolve().parent.parent
MODEL_CARD = "skinnet/weights/MODEL_CARD.md"

# What each config key does: the one place the reference page's descriptions are written.
CONFIG_HELP = {
    "model.name": "network: SkinNet (dense blocks, dilated bottleneck) or the plain U-Net baseline",
    "model.width": "channels of the first level; each level below doubles it",
    "model.depth": "how often the encoder halves the resolution; inputs must be divisible by `2**depth`",
    "model.growth": "channels each dense-block layer adds (null: the level's width)",
    "model.dilations": "dilation rates of the bottleneck's cascade (at most 16; the paper's 1..32)",
    "model.in_channels": "input channels (3 for RGB)",
    "model.num_classes": "output classes: must be 2 (background, lesion)",
    "model.encoder": "`none`: the paper's dense-block encoder; `efficientnet_lite0` (or the larger `_lite1`, "
                     "`_lite2`): an ImageNet-pretrained EfficientNet-Lite under SkinNet's bottleneck and decoder "
                     "(needs `model.depth: 5` and the encoder's input normalisation)",
    "model.encoder_weights": "where a pretrained encoder starts when training begins (`random`: an ablation)",
    "data.root": "data folder (the `--data` option overrides it)",
    "data.image_size": "side of the square network input, in pixels",
    "data.mean": "per-channel RGB mean on the 0-255 scale (default: the 2000 ISIC 2017 training images at 256 px)",
    "data.std": "per-channel RGB standard deviation on the 0-255 scale",
    "data.cache_dir": "resize cache (default `$SKINNET_CACHE`, else `~/.cache/skinnet`)",
    "data.color_constancy": "colour constancy before normalisation, in training and inference (Shades of Gray, "
                            "p = 6)",
    "data.num_workers": "DataLoader worker processes",
    "data.augment": "augment training images (rotation, flips, translation, scaling, colour shift)",
    "data.rotate_limit": "largest rotation, degrees",
    "data.shift_limit": "largest translation, as a fraction of the side",
    "data.scale_limit": "largest scaling, as a fraction",
    "data.color_shift": "largest brightness, contrast and colour shift, as a fraction",
    "train.epochs": "epochs per fold",
    "train.batch_size": "images per batch (per process under torchrun)",
    "train.loss": "`dice`: eq. 1 of the paper; `dice_ce`: eq. 1 plus the pixel cross-entropy, equal weights "
                  "(nnU-Net's loss)",
    "train.lr": "Adam learning rate (never scaled with the number of processes)",
    "train.weight_decay": "Adam weight decay",
    "train.schedule": "`plateau`: cut by `lr_factor` when the monitored loss stalls for `lr_patience` epochs; "
                      "`step`: cut at each epoch of `lr_milestones`; `poly`: nnU-Net's "
                      "`lr * (1 - epoch/epochs)**poly_power`. A run on all data (`--fold all`) has no "
                      "validation loss: use `step` or `poly`",
    "train.lr_factor": "factor of each learning-rate cut (`plateau`, `step`)",
    "train.lr_patience": "epochs without a better monitored loss before a cut (`plateau`)",
    "train.lr_milestones": "epochs after which the learning rate is cut (`step`)",
    "train.poly_power": "exponent of the `poly` schedule",
    "train.min_lr": "the learning rate never goes below this",
    "train.keep": "which epoch a fold keeps as `best.safetensors`: `best` (highest validation DC) or `last`",
    "train.n_folds": "folds of the cross-validation split",
    "train.seed": "seed of the split, the initialisation and the data order",
    "train.amp": "float16 autocast with gradient scaling on a GPU (the CPU always runs float32)",
    "train.channels_last": "NHWC tensors: faster convolutions on tensor-core GPUs under AMP, and on CPU",
    "train.device": "`auto`, `cpu`, `cuda`, `cuda:1`, ...",
    "train.threads": "CPU threads of torch (null: torch's default)",
    "inference.threshold": "lesion probability above which a pixel is lesion",
    "inference.empty_fallback": "when no pixel passes the threshold, keep the region around the most probable "
                                "pixel",
    "inference.postprocess": "post-processing steps, in order",
    "inference.tta": "flip test-time augmentation: the mean over the image and its three flips",
    "inference.confidence": "per-image confidence score: `tta` (agreement of the flip views) or `margin` "
                            "(probability margin along the outline)",
    "inference.confidence_threshold": "outlines scoring below it are flagged \"check this outline\"",
}
# key -> the name in skinnet.config of the tuple of values it accepts
CONFIG_CHOICES = {
    "model.name": "MODEL_NAMES", "model.encoder": "ENCODERS", "model.encoder_weights": "ENCODER_WEIGHTS",
    "data.color_constancy": "COLOR_CONSTANCY", "train.schedule": "LR_SCHEDULES", "train.keep": "KEEP_EPOCHS",
    "train.loss": "LOSSES",
    "inference.postprocess": "POSTPROCESS_STEPS", "inference.confidence": "CONFIDENCE_METHODS",
}


def on_config(config: Any) -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def _parts(text: str, name: str) -> tuple[str, str, str]:
    """``text`` as (up to and with the begin marker, the generated part, from the end marker on)."""
    begin, end = f"<!-- begin generated: {name} -->", f"<!-- end generated: {name} -->"
    if begin not in text or end not in text:
        raise ValueError(f"no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    body, tail = rest.split(end, 1)
    return head + begin + "\n", body.strip("\n"), "\n" + end + tail


def on_files(files: Any, config: Any) -> Any:
    """Add the model card, which lives beside the weights, as the page ``model-card.md``."""
    text = (ROOT / MODEL_CARD).read_text(encoding="utf-8")
    # The card's links are relative to skinnet/weights/: ../../docs/X is the site's X.
    text = text.replace("](../../docs/", "](")
    text = re.sub(r"\]\(\.\./\.\./README\.md[^)]*\)", "](index.md)", text)
    files.append(File.generated(config, "model-card.md", content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri not in GENERATED:
        return markdown
    name, make = GENERATED[page.file.src_uri]
    head, body, tail = _parts(markdown, name)
    fresh = make().strip("\n")
    if body != fresh:
        log.warning("docs/%s: the part written from the code is stale; run python docs/hooks.py",
                    page.file.src_uri)
    return head + fresh + tail


def _cell(text: str) -> str:
    """Text for a table cell, taken literally (help texts write ``<id>_segmentation.png``)."""
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("*", "\\*"), ("_", "\\_"), ("[", "\\["),
                          ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, escaped)
    return text.replace("\n", " ")


def _code(text: str) -> str:
    """A code span for a table cell (a pipe inside backticks does not split the cell)."""
    return f"`{text}`"


# Sphinx roles in docstrings (:class:`~skinnet.x.Y`), which Markdown renders as ":class:<code>~skinnet.x.Y</code>".
ROLE = re.compile(r":(?:class|meth|func|mod|data|attr|exc|obj):<code>(~?)([\w.]+)</code>")
ROLE_MD = re.compile(r":(?:class|meth|func|mod|data|attr|exc|obj):`(~?)([\w.]+)`")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return ROLE.sub(lambda m: f"<code>{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}</code>", html)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    invocation = formatter._format_action_invocation(action)
    help_text = formatter._expand_help(action) if action.help else ""
    default = action.default
    shown = "" if default in (None, False, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction) \
        else _code(str(default))
    if action.required and action.option_strings:
        shown = "required"
    return f"| {_code(invocation)} | {shown} | {_cell(help_text)} |"


def cli_reference() -> str:
    from skinnet.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps the usage lines to the terminal's width
    parser = build_parser()
    lines = []
    for name, summary, sub in _subcommands(parser):
        lines += [f"## skinnet {name}", "", _cell(summary[:1].upper() + summary[1:]) + ".", "", "```text",
                  sub.format_usage().strip(), "```", ""]
        if sub.description:
            lines += [_cell(sub.description), ""]
        lines += ["| argument | default | what |", "| --- | --- | --- |"]
        lines += [_option_row(sub, action) for action in sub._actions]
        lines.append("")
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    """``int | None`` as ``int or null``: a pipe would split the table cell on a forge."""
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    return text.replace("typing.", "").replace(" | None", " or null")


def config_reference() -> str:
    from skinnet import config as cfg

    lines = []
    for section in dataclasses.fields(cfg.Config):
        section_type = section.default_factory  # type: ignore[misc]
        hints = typing.get_type_hints(section_type)
        defaults = section_type()
        lines += [f"## `{section.name}`", "", ROLE_MD.sub(r"`\2`", (section_type.__doc__ or "").strip()), "",
                  "| key | type | default | allowed | what |", "| --- | --- | --- | --- | --- |"]
        for item in dataclasses.fields(section_type):
            key = f"{section.name}.{item.name}"
            allowed = cfg.RANGES.get(key, "")
            choices = getattr(cfg, CONFIG_CHOICES.get(key, ""), None)
            if choices:
                allowed = ", ".join(f"`{choice}`" for choice in choices)
            elif allowed:
                allowed = f"`{allowed}`" + (" each" if str(hints[item.name]).startswith("list") else "")
            if key == "model.dilations":
                allowed += f", at most {cfg.MAX_DILATIONS} rates"
            if key not in CONFIG_HELP:
                log.warning("config key %s has no description in docs/hooks.py (CONFIG_HELP)", key)
            value = getattr(defaults, item.name)
            default = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            lines.append(f"| `{key}` | {_code(_type_name(hints[item.name]))} | {_code(default)} | {allowed} | "
                         f"{CONFIG_HELP.get(key, '')} |")
        lines.append("")
    for key in sorted(set(CONFIG_HELP) - {f"{s.name}.{f.name}" for s in dataclasses.fields(cfg.Config)
                                          for f in dataclasses.fields(s.default_factory)}):  # type: ignore[misc]
        log.warning("docs/hooks.py describes %s, which is not a config key", key)
    return "\n".join(lines)


# page -> (marker name, what writes its generated part)
GENERATED = {"reference/cli.md": ("cli", cli_reference), "reference/config.md": ("config", config_reference)}


def main() -> None:
    """Rewrite the generated parts of the reference pages from this checkout's code."""
    on_config(None)
    for page, (name, make) in GENERATED.items():
        path = ROOT / "docs" / page
        head, _, tail = _parts(path.read_text(encoding="utf-8"), name)
        path.write_text(head + make().strip("\n") + tail, encoding="utf-8")
        print(f"wrote the generated part of {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
