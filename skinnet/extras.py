"""Optional dependencies: import one, or say in one line which extra of skinnet installs it.

``pip install skinnet`` trains, predicts and evaluates; the extras in pyproject.toml add the rest (``serve``:
the web app, ``onnx``: ONNX export and the onnx backend, ``report``: the plots of ``skinnet report``,
``cluster``: prediction on a Dask cluster, ``node``: the DICOM node and DICOMweb).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional module is not installed; the message names the feature and the pip command that adds it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, which ``feature`` needs and the extra ``extra`` installs.

    Args:
        module: the module to import, e.g. ``"fastapi"`` or ``"onnxruntime"``.
        extra: the skinnet extra that installs it, e.g. ``"serve"``.
        feature: what needs it, the subject of the message, e.g. ``"the web app"``.

    Returns:
        The imported module.

    Raises:
        MissingExtraError: ``module``, or a module it imports, is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        # err.name may be a dependency of `module` (starlette for fastapi): the same extra brings it.
        raise MissingExtraError(f"{feature} needs the '{extra}' extra: pip install 'skinnet[{extra}]' "
                                f"(no module named {err.name or module!r})") from err
