"""OpenCV, imported once without its loader's change to the environment.

opencv-python's loader prepends its own folder to ``LD_LIBRARY_PATH`` in ``os.environ``. The running process
never reads that variable again (the dynamic linker reads it at start-up; the wheel's libraries are found through
their RPATH), but every process started afterwards inherits it, and ``import skinnet`` would change the
environment. skinnet/__init__.py imports this module first, so that every later ``import cv2`` finds OpenCV
loaded and the variable as it was.
"""

from __future__ import annotations

import os

_VARIABLE = "LD_LIBRARY_PATH"
_before = os.environ.get(_VARIABLE)
try:
    import cv2  # noqa: F401 - imported for its side effect on sys.modules
finally:
    if _before is None:
        os.environ.pop(_VARIABLE, None)
    else:
        os.environ[_VARIABLE] = _before
