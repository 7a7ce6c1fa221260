"""The one range of pixel spacings skinnet measures with, whoever gives the spacing: a DICOM file's own
``PixelSpacing``, ``--pixel-spacing``, the app's ``pixel_spacing_mm`` field, or the Python API.

0.1 µm to 100 mm per pixel spans everything from a microscope to a photograph of a whole body; values beyond
are typing errors or hostile (1e308 mm gives an infinite area, 1e-300 mm an area of 0.0 mm²).
"""

from __future__ import annotations

import math

MIN_SPACING_MM = 1e-4
MAX_SPACING_MM = 100.0
SPACING_RANGE = f"{MIN_SPACING_MM:g} to {MAX_SPACING_MM:g} mm"


def spacing_in_range(value: float) -> bool:
    """Whether ``value`` (mm per pixel) is a finite number within :data:`SPACING_RANGE`."""
    return (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            and MIN_SPACING_MM <= value <= MAX_SPACING_MM)
