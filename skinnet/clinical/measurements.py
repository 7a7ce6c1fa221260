"""Shape and colour measurements of a lesion mask: what a clinician reads off an outlined lesion.

The shape measurements are scikit-image's :func:`skimage.measure.regionprops` of the mask taken as one region
(every lesion pixel, however many connected pieces; the pieces are counted as ``components``, 8-connected).
The asymmetry score is this project's own (no library has one). Pixels are unit squares centred on integer
coordinates. Every length comes in pixels (``*_px``) and, where the pixel spacing is known (DICOM
``PixelSpacing``, ``--pixel-spacing``, the app's field), in millimetres (``*_mm``; areas in mm², ``area_mm2``);
where it is not, the ``*_mm`` fields are ``None``. Dermoscopy JPEGs carry no physical scale.

* **area**: number of lesion pixels; in mm², that times the area of one pixel (row × column spacing).
* **perimeter**: regionprops' ``perimeter_crofton`` (4 directions): the Cauchy-Crofton estimate of the
  boundary length from lesion/background transitions along 0°, 45°, 90° and 135°. Within about 1% for round
  outlines; straight edges along the pixel grid come out about 5% short. The image border counts as boundary
  where the lesion touches it. In mm only for square pixels (scikit-image supports isotropic spacing only).
* **equivalent diameter**: diameter of the disc of the same area, ``2·sqrt(area/π)``.
* **maximum diameter**: regionprops' ``feret_diameter_max``, the largest caliper (Feret) distance: the
  longest distance between two points of the outline of the lesion's convex hull, traced at half-pixel
  positions. The dermoscopy "D" criterion (diameter > 6 mm). Within about 2 pixels of the exact value for a
  disc, a square or an ellipse. Lesions more than ``FERET_SIZE`` pixels across are traced on a copy shrunk by
  a whole factor (the pairwise distances of a longer outline would take too much memory); the error then
  grows to about twice that factor in pixels (4 pixels too long for a disc 1400 pixels across).
* **major / minor axis**: regionprops' ``axis_major_length`` / ``axis_minor_length``: full axes of the ellipse
  with the same second central moments as the mask, ``4·sqrt(λ)`` for the eigenvalues ``λ`` of the
  inertia tensor of the pixel centres. Exact for an ellipse.
* **orientation**: angle of the major axis, in degrees counter-clockwise from the image x-axis (x to the
  right, y up as displayed), in ``(-90, 90]`` (regionprops' ``orientation`` turned to this convention).
* **eccentricity**: of that ellipse, ``sqrt(1 - λ₂/λ₁)``: 0 for a disc, towards 1 for elongated lesions.
* **solidity**: lesion area over the area of its convex hull: 1 for convex outlines, lower for notched or
  lobed ones. Like the maximum diameter, taken on the copy shrunk to ``FERET_SIZE`` pixels across for larger
  lesions (filling the hull of a 24-megapixel mask pixel by pixel takes seconds).
* **asymmetry**: the mask is mirrored about two perpendicular axes through its centroid; about each axis,
  the fraction of the lesion area that its mirror image does not cover; the score is the mean of the two,
  for the pair of axes that makes it smallest (the lesion's own axes of symmetry). The pairs searched are the
  principal axes and every 2° from them, on a copy of the mask shrunk to at most 128 pixels across; the
  winner and the principal axes are then scored at full size up to 1024 pixels across (larger masks are
  shrunk to that, by a whole factor, first). Searching matters for shapes whose two moment axes are
  (nearly) equal, such as a square, where the principal directions are arbitrary. 0 for a shape symmetric
  about two perpendicular axes (disc, ellipse, rectangle, square), towards 1 for lopsided ones. Also
  reported: the angle of the more symmetric axis of the pair (as for ``orientation``) and the fractions
  about it and about the perpendicular one.
* **compactness** (border irregularity): ``perimeter² / (4π·area)`` in pixels; 1 for a disc, larger for
  elongated or ragged outlines (4/π ≈ 1.27 for a square, before the perimeter estimate's bias).
* **colour variegation** (``colour_variegation_delta_e``; needs the image): the standard deviation of the
  lesion's colour in CIELAB (CIE 1976 L*a*b*, D65 white, the image taken as sRGB), ``sqrt(var L* + var a* +
  var b*)`` over the lesion pixels: the root-mean-square colour difference ΔE*ab (CIE76) of a lesion pixel
  from the lesion's mean colour. About 1 ΔE*ab is a just-noticeable difference; a lesion of one even colour
  scores near 0, one of several distinct colours (the "C" of the ABCD rule) scores high. Low-level colour
  statistics of this kind are surveyed by A. Madooei and M. S. Drew, "Incorporating colour information for
  computer-aided diagnosis of melanoma from dermoscopy images: a retrospective survey and critical
  analysis", Int. J. Biomed. Imaging 2016, 4868305 (doi:10.1155/2016/4868305). We do not count the six
  dermoscopic colours (black, dark brown, light brown, blue-grey, red, white; Seidenari, Pellacani & Grana,
  Br. J. Dermatol. 149:523-529, 2003): their palette was fitted to one group's camera and lighting, and no
  published thresholds carry over to other devices. Images of more than ``COLOUR_SAMPLE`` lesion pixels are
  sampled at a fixed stride (the same answer each time). It depends on the camera's colour rendering:
  compare figures from the same device.

Shape ratios (orientation, eccentricity, solidity, asymmetry, compactness) are taken on the pixel grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.measure import regionprops

from skinnet.data.spacing import SPACING_RANGE, spacing_in_range

# Asymmetry: axis pairs searched every ASYMMETRY_STEP_DEG degrees on the mask shrunk to SEARCH_SIZE pixels
# across, then scored on it shrunk to SCORE_SIZE (enough for a fraction; keeps 24-megapixel masks quick).
ASYMMETRY_STEP_DEG = 2
SEARCH_SIZE = 128
SCORE_SIZE = 1024
# The maximum diameter compares every pair of outline points: beyond this many pixels across, a shrunk copy.
FERET_SIZE = 1024
# Colour variegation: at most this many lesion pixels (a fixed stride through them).
COLOUR_SAMPLE = 1_000_000

PixelSpacing = float | Sequence[float]


@dataclass(frozen=True)
class Measurements:
    """The measurements of one mask; ``None`` where undefined (an empty mask, no spacing, no image)."""

    area_px: int
    area_percent: float
    perimeter_px: float
    equivalent_diameter_px: float
    max_diameter_px: float
    major_axis_px: float
    minor_axis_px: float
    pixel_spacing_mm: tuple[float, float] | None
    area_mm2: float | None
    perimeter_mm: float | None
    equivalent_diameter_mm: float | None
    max_diameter_mm: float | None
    major_axis_mm: float | None
    minor_axis_mm: float | None
    orientation_deg: float | None
    eccentricity: float | None
    solidity: float | None
    asymmetry: float | None
    asymmetry_axis_deg: float | None
    asymmetry_about_axis: float | None
    asymmetry_about_perpendicular: float | None
    compactness: float | None
    colour_variegation_delta_e: float | None
    components: int

    def to_dict(self) -> dict[str, float | int | list[float] | None]:
        out = asdict(self)
        if self.pixel_spacing_mm is not None:
            out["pixel_spacing_mm"] = list(self.pixel_spacing_mm)
        return out


def spacing_pair(spacing: PixelSpacing | None) -> tuple[float, float] | None:
    """``(row, column)`` spacing in mm from one number (square pixels) or two; ``None`` stays ``None``.

    Raises:
        ValueError: not one or two numbers within :data:`~skinnet.data.spacing.SPACING_RANGE` (the bounds a
            DICOM file's own spacing has too).
    """
    if spacing is None:
        return None
    try:
        values = [float(spacing)] * 2 if isinstance(spacing, int | float) else [float(v) for v in spacing]
    except (TypeError, ValueError):
        values = []
    if len(values) != 2 or not all(spacing_in_range(v) for v in values):
        raise ValueError(f"pixel spacing must be one or two numbers of mm from {SPACING_RANGE}, got {spacing!r}")
    return values[0], values[1]


def _mirror_uncovered(mask: np.ndarray, centroid: np.ndarray, axis: np.ndarray) -> float:
    """Fraction of the mask's pixels whose mirror image about the line ``centroid + t·axis`` is background."""
    # Reflection about a line through the centroid: p' = c + R (p - c), with R = 2 a aᵀ - I (an involution,
    # so the same matrix maps output pixels back to input pixels for affine_transform).
    reflection = 2 * np.outer(axis, axis) - np.eye(2)
    # Work on a square window around the centroid large enough to hold the mask and its mirror.
    rows, cols = np.nonzero(mask)
    radius = int(np.ceil(np.hypot(rows - centroid[0], cols - centroid[1]).max())) + 2
    origin = np.floor(centroid).astype(int) - radius
    size = 2 * radius + 2
    window = np.zeros((size, size), dtype=np.uint8)
    src_lo = np.maximum(origin, 0)
    src_hi = np.minimum(origin + size, mask.shape)
    window[src_lo[0] - origin[0] : src_hi[0] - origin[0], src_lo[1] - origin[1] : src_hi[1] - origin[1]] = (
        mask[src_lo[0] : src_hi[0], src_lo[1] : src_hi[1]]
    )
    local_centroid = centroid - origin
    mirrored = ndimage.affine_transform(window, reflection, offset=local_centroid - reflection @ local_centroid,
                                        order=0, mode="constant", cval=0)
    lesion = window.astype(bool)
    return float(np.count_nonzero(lesion & ~mirrored.astype(bool)) / np.count_nonzero(lesion))


def _display_angle(vector: np.ndarray) -> float:
    """Angle in degrees of a ``(row, col)`` direction, counter-clockwise from x with y up, in ``(-90, 90]``."""
    angle = math.degrees(math.atan2(-vector[0], vector[1]))  # rows grow downwards
    angle = angle - 180 if angle > 90 else angle + 180 if angle <= -90 else angle
    return angle + 0.0  # no "-0.0" in the JSON


def _direction(degrees: float) -> np.ndarray:
    """The ``(row, col)`` unit vector at a display angle (inverse of :func:`_display_angle`)."""
    t = math.radians(degrees)
    return np.array([-math.sin(t), math.cos(t)])


def _shrink(mask: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """The mask cropped to its bounding box and, if wider than ``size``, shrunk by a whole factor to fit.

    A shrunk pixel is lesion where most of its block is; a lesion too thin to survive that is kept as is.
    Returns the array and the factor it was shrunk by (1: not shrunk).
    """
    rows, cols = np.nonzero(mask)
    crop = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    factor = math.ceil(max(crop.shape) / size)
    if factor <= 1:
        return crop, 1
    padded = np.pad(crop, [(0, -n % factor) for n in crop.shape])
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    small = blocks.mean(axis=(1, 3)) >= 0.5
    return (small, factor) if small.any() else (crop, 1)


def _search_symmetry_axis(mask: np.ndarray, start_deg: float) -> float:
    """Display angle of the axis pair (from ``start_deg``, every 2°) of least mean mirror mismatch.

    Searched on a copy at most ``SEARCH_SIZE`` pixels across, by mirroring pixel coordinates.
    """
    small, _ = _shrink(mask, SEARCH_SIZE)
    points = np.argwhere(small).astype(np.float64)
    centroid = points.mean(axis=0)

    def uncovered(degrees: float) -> float:
        axis = _direction(degrees)
        mirrored = np.rint((points - centroid) @ (2 * np.outer(axis, axis) - np.eye(2)) + centroid).astype(int)
        inside = np.all((mirrored >= 0) & (mirrored < small.shape), axis=1)
        covered = np.zeros(len(points), dtype=bool)
        covered[inside] = small[mirrored[inside, 0], mirrored[inside, 1]]
        return 1.0 - covered.mean()

    angles = [start_deg + step for step in np.arange(0, 90, ASYMMETRY_STEP_DEG)]
    return min(angles, key=lambda deg: uncovered(deg) + uncovered(deg + 90))


def _asymmetry(mask: np.ndarray, principal_deg: float) -> tuple[float, float, float]:
    """``(angle of the more symmetric axis, mismatch about it, about the perpendicular)`` of the best pair."""
    work, _ = _shrink(mask, SCORE_SIZE)
    centroid = np.argwhere(work).mean(axis=0)
    best = None
    for degrees in {principal_deg, _search_symmetry_axis(work, principal_deg)}:
        pair = sorted([(_mirror_uncovered(work, centroid, _direction(d)), d) for d in (degrees, degrees + 90)])
        if best is None or pair[0][0] + pair[1][0] < best[0][0] + best[1][0]:
            best = pair
    (about_axis, axis_deg), (about_perpendicular, _) = best
    return _display_angle(_direction(axis_deg)), about_axis, about_perpendicular


def _skimage_angle(orientation: float) -> float:
    """regionprops' ``orientation`` (radians from the row axis) as a display angle (see ``orientation_deg``)."""
    angle = math.degrees(orientation) - 90
    return (angle + 180 if angle <= -90 else angle) + 0.0  # no "-0.0" in the JSON


def _hull(mask: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> Any:
    """regionprops of a non-empty mask for its convex-hull measures, shrunk to ``FERET_SIZE`` across at most."""
    work, factor = _shrink(mask, FERET_SIZE)
    return regionprops(work.astype(np.uint8), spacing=(spacing[0] * factor, spacing[1] * factor))[0]


def max_diameter(mask: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Maximum Feret diameter of a non-empty mask, in the units of ``spacing`` (see the module docstring)."""
    return float(_hull(mask, spacing).feret_diameter_max)


def colour_variegation(image: np.ndarray, mask: np.ndarray) -> float | None:
    """RMS CIELAB colour difference ΔE*ab of the lesion pixels from their mean (see the module docstring).

    Args:
        image: RGB ``uint8 (H, W, 3)``, taken as sRGB.
        mask: boolean ``(H, W)``.

    Returns:
        ``None`` for an empty mask.
    """
    pixels = np.asarray(image)[np.asarray(mask, dtype=bool)]
    if not len(pixels):
        return None
    pixels = pixels[:: math.ceil(len(pixels) / COLOUR_SAMPLE)]
    lab = rgb2lab(pixels.reshape(-1, 1, 3)).reshape(-1, 3)
    return float(math.sqrt(lab.var(axis=0).sum()))


def _mm(spacing: tuple[float, float] | None, region: Any, px: dict[str, float]) -> dict:
    """The lengths (mm) and area (mm²) of ``px`` for ``spacing``; ``None`` each where it is unknown."""
    keys = ("perimeter", "equivalent_diameter", "max_diameter", "major_axis", "minor_axis")
    if spacing is None:
        return {"area_mm2": None, **{f"{key}_mm": None for key in keys}}
    area = px["area"] * spacing[0] * spacing[1]
    if math.isclose(spacing[0], spacing[1], rel_tol=1e-6):
        out = {f"{key}_mm": px[key] * spacing[0] for key in keys}
    else:  # non-square pixels: the ellipse and the diameters in mm; scikit-image has no such perimeter
        scaled = regionprops(region.image.astype(np.uint8), spacing=spacing)[0]
        out = {"perimeter_mm": None, "equivalent_diameter_mm": 2 * math.sqrt(area / math.pi),
               "max_diameter_mm": max_diameter(region.image, spacing),
               "major_axis_mm": float(scaled.axis_major_length), "minor_axis_mm": float(scaled.axis_minor_length)}
    return {"area_mm2": area, **out}


def measure(mask: np.ndarray, image: np.ndarray | None = None,
            pixel_spacing: PixelSpacing | None = None) -> Measurements:
    """All measurements of a boolean ``(H, W)`` lesion mask (definitions in the module docstring).

    Args:
        mask: the lesion mask.
        image: the RGB ``uint8`` image it outlines, for the colour variegation (``None``: not measured).
        pixel_spacing: mm per pixel, one number for square pixels or ``(row, column)`` (DICOM
            ``PixelSpacing`` order); ``None`` where unknown, leaving the ``*_mm`` fields ``None``.

    Raises:
        ValueError: a mask that is not 2-D, an image of another size, or a spacing that is not positive.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    if image is not None and np.shape(image)[:2] != mask.shape:
        raise ValueError(f"image of shape {np.shape(image)} does not match the mask's {mask.shape}")
    spacing = spacing_pair(pixel_spacing)
    area = int(np.count_nonzero(mask))
    percent = 100.0 * area / mask.size if mask.size else 0.0
    if area == 0:
        zero = None if spacing is None else 0.0
        return Measurements(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, spacing, zero, zero, zero, zero, zero, zero,
                            None, None, None, None, None, None, None, None, None, 0)
    region = regionprops(mask.astype(np.uint8))[0]
    hull = _hull(region.image)
    px = {"area": float(area), "perimeter": float(region.perimeter_crofton),
          "equivalent_diameter": float(region.equivalent_diameter_area),
          "max_diameter": float(hull.feret_diameter_max), "major_axis": float(region.axis_major_length),
          "minor_axis": float(region.axis_minor_length)}
    orientation = _skimage_angle(region.orientation)
    axis_deg, about_axis, about_perpendicular = _asymmetry(mask, orientation)
    return Measurements(
        area_px=area,
        area_percent=percent,
        perimeter_px=px["perimeter"],
        equivalent_diameter_px=px["equivalent_diameter"],
        max_diameter_px=px["max_diameter"],
        major_axis_px=px["major_axis"],
        minor_axis_px=px["minor_axis"],
        pixel_spacing_mm=spacing,
        **_mm(spacing, region, px),
        orientation_deg=orientation,
        eccentricity=float(region.eccentricity),
        solidity=float(hull.solidity),
        asymmetry=(about_axis + about_perpendicular) / 2,
        asymmetry_axis_deg=axis_deg,
        asymmetry_about_axis=about_axis,
        asymmetry_about_perpendicular=about_perpendicular,
        compactness=px["perimeter"] ** 2 / (4 * math.pi * area),
        colour_variegation_delta_e=None if image is None else colour_variegation(image, mask),
        components=int(ndimage.label(mask, structure=np.ones((3, 3)))[1]),
    )
