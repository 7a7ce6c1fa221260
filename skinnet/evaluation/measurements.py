"""Shape measurements of a lesion mask, in pixels: what a clinician reads off an outlined lesion.

Dermoscopy images carry no physical scale, so every length is in pixels and every area in square pixels.
All functions measure the whole mask: every lesion pixel, however many connected pieces (reported as
``components``, 8-connected). Pixels are unit squares centred on integer coordinates. Definitions:

* **area**: number of lesion pixels.
* **perimeter**: Cauchy-Crofton estimate of the boundary length. The number of lesion/background transitions
  is counted along lines in 4 directions (0°, 45°, 90°, 135°), each weighted by the spacing of its lines
  (1 or 1/√2); the boundary length is ``π/8`` times the sum. Unlike counting boundary pixels or pixel edges
  (which overestimates a circle by 4/π), it is close for curved outlines: within about 1% for a disc of
  radius 20 or more. Its error depends on the edge direction: straight edges along the pixel grid come out
  about 5% short. The image border counts as boundary where the lesion touches it.
* **equivalent diameter**: diameter of the disc of the same area, ``2·sqrt(area/π)``.
* **major / minor axis**: full axis lengths of the ellipse with the same second moments as the mask,
  ``4·sqrt(λ)`` for the eigenvalues ``λ`` of the pixel-coordinate covariance (each pixel counted as a unit
  square, hence the ``+1/12`` term). Exact for an ellipse; ``2/√3`` times the sides for a rectangle.
* **orientation**: angle of the major axis, in degrees counter-clockwise from the image x-axis (x to the
  right, y up as displayed), in ``(-90, 90]``.
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
* **compactness** (border irregularity): ``perimeter² / (4π·area)``; 1 for a disc, larger for elongated or
  ragged outlines (4/π ≈ 1.27 for a square, before the perimeter estimate's bias).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

# Asymmetry: axis pairs searched every ASYMMETRY_STEP_DEG degrees on the mask shrunk to SEARCH_SIZE pixels
# across, then scored on it shrunk to SCORE_SIZE (enough for a fraction; keeps 24-megapixel masks quick).
ASYMMETRY_STEP_DEG = 2
SEARCH_SIZE = 128
SCORE_SIZE = 1024


@dataclass(frozen=True)
class Measurements:
    """The measurements of one mask; ``None`` where undefined (an empty mask)."""

    area_px: int
    area_percent: float
    perimeter_px: float
    equivalent_diameter_px: float
    major_axis_px: float
    minor_axis_px: float
    orientation_deg: float | None
    asymmetry: float | None
    asymmetry_axis_deg: float | None
    asymmetry_about_axis: float | None
    asymmetry_about_perpendicular: float | None
    compactness: float | None
    components: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def perimeter(mask: np.ndarray) -> float:
    """Boundary length of a boolean mask in pixels (Cauchy-Crofton estimate, see the module docstring)."""
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    horizontal = np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    vertical = np.count_nonzero(padded[1:, :] != padded[:-1, :])
    diagonal = np.count_nonzero(padded[1:, 1:] != padded[:-1, :-1])
    antidiagonal = np.count_nonzero(padded[1:, :-1] != padded[:-1, 1:])
    # Diagonal lines through pixel centres lie 1/√2 apart, rows and columns 1 apart.
    return float(math.pi / 8 * (horizontal + vertical + (diagonal + antidiagonal) / math.sqrt(2)))


def equivalent_diameter(area: float) -> float:
    """Diameter of the disc whose area is ``area``."""
    return 2 * math.sqrt(area / math.pi)


def principal_axes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid ``(row, col)``, eigenvalues (descending) and eigenvectors (columns, ``(row, col)``) of a mask.

    Args:
        mask: a non-empty boolean mask.
    """
    rows, cols = np.nonzero(mask)
    coords = np.stack([rows, cols]).astype(np.float64)
    centroid = coords.mean(axis=1)
    # A pixel is a unit square: its own spread adds 1/12 to each variance.
    covariance = np.cov(coords, bias=True) + np.eye(2) / 12
    values, vectors = np.linalg.eigh(covariance)
    return centroid, values[::-1].clip(min=0), vectors[:, ::-1]


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


def _shrink(mask: np.ndarray, size: int) -> np.ndarray:
    """The mask cropped to its bounding box and, if wider than ``size``, shrunk by a whole factor to fit.

    A shrunk pixel is lesion where most of its block is; a lesion too thin to survive that is kept as is.
    """
    rows, cols = np.nonzero(mask)
    crop = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    factor = math.ceil(max(crop.shape) / size)
    if factor <= 1:
        return crop
    padded = np.pad(crop, [(0, -n % factor) for n in crop.shape])
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    small = blocks.mean(axis=(1, 3)) >= 0.5
    return small if small.any() else crop


def _search_symmetry_axis(mask: np.ndarray, start_deg: float) -> float:
    """Display angle of the axis pair (from ``start_deg``, every 2°) of least mean mirror mismatch.

    Searched on a copy at most ``SEARCH_SIZE`` pixels across, by mirroring pixel coordinates.
    """
    small = _shrink(mask, SEARCH_SIZE)
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
    work = _shrink(mask, SCORE_SIZE)
    centroid = np.argwhere(work).mean(axis=0)
    best = None
    for degrees in {principal_deg, _search_symmetry_axis(work, principal_deg)}:
        pair = sorted([(_mirror_uncovered(work, centroid, _direction(d)), d) for d in (degrees, degrees + 90)])
        if best is None or pair[0][0] + pair[1][0] < best[0][0] + best[1][0]:
            best = pair
    (about_axis, axis_deg), (about_perpendicular, _) = best
    return _display_angle(_direction(axis_deg)), about_axis, about_perpendicular


def measure(mask: np.ndarray) -> Measurements:
    """All measurements of a boolean ``(H, W)`` lesion mask (definitions in the module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    area = int(np.count_nonzero(mask))
    percent = 100.0 * area / mask.size if mask.size else 0.0
    if area == 0:
        return Measurements(0, 0.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None, None, None, 0)
    length = perimeter(mask)
    _, values, vectors = principal_axes(mask)
    orientation = _display_angle(vectors[:, 0])
    axis_deg, about_axis, about_perpendicular = _asymmetry(mask, orientation)
    return Measurements(
        area_px=area,
        area_percent=percent,
        perimeter_px=length,
        equivalent_diameter_px=equivalent_diameter(area),
        major_axis_px=4 * math.sqrt(values[0]),
        minor_axis_px=4 * math.sqrt(values[1]),
        orientation_deg=orientation,
        asymmetry=(about_axis + about_perpendicular) / 2,
        asymmetry_axis_deg=axis_deg,
        asymmetry_about_axis=about_axis,
        asymmetry_about_perpendicular=about_perpendicular,
        compactness=length**2 / (4 * math.pi * area),
        components=int(ndimage.label(mask, structure=np.ones((3, 3)))[1]),
    )
