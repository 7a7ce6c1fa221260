"""The package's layering, written down once: each unit imports only itself and the layers below it.

Lazy imports inside functions count too. Units of one layer never import each other, which is how
``skinnet.training`` and ``skinnet.evaluation`` stay apart: what both need (the run folder's layout, scoring
masks) lives below them. Also: only :mod:`skinnet.runs` spells a run-folder file name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skinnet"
LAYERS: tuple[tuple[str, ...], ...] = (  # lowest first
    ("skinnet.config",),
    ("skinnet.metrics", "skinnet.losses", "skinnet.devices", "skinnet.extras", "skinnet.version",
     "skinnet.weights", "skinnet._opencv"),
    ("skinnet.data",),
    ("skinnet.networks",),
    ("skinnet.runs", "skinnet.scoring"),
    ("skinnet.inference",),
    ("skinnet.clinical",),
    ("skinnet.batch",),
    ("skinnet.training", "skinnet.evaluation", "skinnet.selection"),
    ("skinnet.app", "skinnet.demo", "skinnet.node"),
    ("skinnet.cli",),
    ("skinnet.__main__", "skinnet"),
)
RUN_FILE_NAMES = re.compile(
    r"""["'/](fold_\{|fold_\d|splits\.json|config\.json|cv_metrics\.csv|cv_summary\.json|best\.safetensors|"""
    r"""best\.pt|last\.pt|log\.csv|val_metrics\.csv|val_summary\.json|val_predictions)""")


def module_name(path: Path) -> str:
    parts = ["skinnet", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> tuple[int, str]:
    """(layer, unit) of a module: the longest unit name that is the module or a package above it."""
    best: tuple[int, str] | None = None
    for layer, units in enumerate(LAYERS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (layer, unit)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def imported(path: Path) -> set[str]:
    """Every skinnet module ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "skinnet"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "skinnet":
            # from skinnet.batch import writers: the module writers; from skinnet.batch.run import X: run
            folder = PACKAGE.joinpath(*node.module.split(".")[1:])
            names |= {f"{node.module}.{alias.name}" if (folder / f"{alias.name}.py").exists()
                      or (folder / alias.name).is_dir() else node.module for alias in node.names}
    return names


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert SOURCES
    for path in SOURCES:
        unit_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_own_unit_and_lower_layers(path: Path) -> None:
    layer, unit = unit_of(module_name(path))
    for target in imported(path):
        target_layer, target_unit = unit_of(target)
        assert target_unit == unit or target_layer < layer, (
            f"{module_name(path)} (layer {layer}, {unit}) imports {target} (layer {target_layer}, {target_unit})")


def test_no_two_modules_import_each_other() -> None:
    """Within a unit too: of two modules that need each other, one holds what both need (lazy imports count)."""
    graph = {module_name(path): imported(path) for path in SOURCES}
    pairs = sorted({tuple(sorted((module, target))) for module, targets in graph.items() for target in targets
                    if target != module and module in graph.get(target, set())})
    assert not pairs, f"modules that import each other: {pairs}"


def test_training_and_evaluation_do_not_import_each_other() -> None:
    for side, other in (("training", "evaluation"), ("evaluation", "training")):
        for path in (PACKAGE / side).rglob("*.py"):
            assert not any(name.startswith(f"skinnet.{other}") for name in imported(path)), path


def test_the_checks_catch_a_violation(tmp_path: Path) -> None:
    """The test can fail: a lazy import upwards is found."""
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from skinnet.evaluation.report import write_report\n")
    assert imported(source) == {"skinnet.evaluation.report"}
    assert unit_of("skinnet.evaluation.report")[0] > unit_of("skinnet.training.trainer")[0] - 1


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "runs.py"], ids=lambda p: p.name)
def test_only_the_run_layout_module_spells_a_run_folder_file_name(path: Path) -> None:
    found = [line.strip() for line in path.read_text().splitlines() if RUN_FILE_NAMES.search(line)]
    assert not found, f"{path}: {found}"
