"""Lesion measurements against shapes whose answers are known: discs, squares, rectangles, ellipses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skinnet.clinical.measurements import FERET_SIZE, colour_variegation, measure, spacing_pair


def disc(radius: float, size: int = 200, centre: tuple[float, float] = (100.3, 99.6)) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def ellipse(a: float, b: float, degrees: float, size: int = 200) -> np.ndarray:
    """Semi-axes ``a`` along ``degrees`` (counter-clockwise from x, y up) and ``b`` across it."""
    rows, cols = np.mgrid[:size, :size]
    x, y = cols - size / 2, -(rows - size / 2)
    t = math.radians(degrees)
    u, v = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def rotated_square(side: float, degrees: float, size: int = 200) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    t = math.radians(degrees)
    x, y = cols - (size - 1) / 2, rows - (size - 1) / 2  # centred between pixels: 80 wide at 0°
    u, v = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    return (np.abs(u) <= side / 2) & (np.abs(v) <= side / 2)


@pytest.mark.parametrize("radius", [10, 25, 60])
def test_disc(radius: int) -> None:
    m = measure(disc(radius))
    assert m.area_px == pytest.approx(math.pi * radius**2, rel=0.02)
    assert m.perimeter_px == pytest.approx(2 * math.pi * radius, rel=0.02)
    assert m.equivalent_diameter_px == pytest.approx(2 * radius, rel=0.01)
    # The largest caliper distance of a disc is its diameter; the outline is traced at half-pixel positions.
    assert m.max_diameter_px == pytest.approx(2 * radius, abs=2)
    assert m.major_axis_px == pytest.approx(2 * radius, rel=0.02)
    assert m.minor_axis_px == pytest.approx(2 * radius, rel=0.02)
    assert m.eccentricity < 0.15 and m.solidity > 0.95
    assert m.compactness == pytest.approx(1, abs=0.03)
    assert m.asymmetry < 0.03
    assert m.components == 1
    assert m.area_percent == pytest.approx(100 * m.area_px / 200**2)
    assert m.pixel_spacing_mm is None and m.area_mm2 is None and m.max_diameter_mm is None


@pytest.mark.parametrize("degrees", [0, 30, 45, -60, 80])
def test_ellipse_axes_orientation_and_diameter(degrees: float) -> None:
    m = measure(ellipse(60, 25, degrees))
    assert m.major_axis_px == pytest.approx(120, rel=0.01)
    assert m.minor_axis_px == pytest.approx(50, rel=0.02)
    assert m.max_diameter_px == pytest.approx(120, abs=2)  # the major axis is the longest chord
    assert m.orientation_deg == pytest.approx(degrees, abs=1)
    assert m.eccentricity == pytest.approx(math.sqrt(1 - (25 / 60) ** 2), abs=0.01)
    assert m.solidity > 0.97
    assert m.asymmetry < 0.02
    a, b = 60, 25  # Ramanujan's perimeter of an ellipse
    exact = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    assert m.perimeter_px == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("degrees", [0, 30, 45])
def test_square_diameter_is_its_diagonal(degrees: float) -> None:
    m = measure(rotated_square(80, degrees))
    assert m.area_px == pytest.approx(6400, rel=0.02)
    assert m.max_diameter_px == pytest.approx(80 * math.sqrt(2), abs=2)
    assert m.major_axis_px == pytest.approx(m.minor_axis_px, rel=0.01)  # equal moments
    assert m.solidity > 0.97
    assert m.perimeter_px == pytest.approx(320, rel=0.06)
    assert m.compactness == pytest.approx(4 / math.pi, rel=0.12)  # a square: 16s²/(4π s²)
    # Its moment axes are equal, so the principal directions are arbitrary: the axis search finds the
    # square's own axes or its diagonals, all axes of symmetry.
    assert m.asymmetry < 0.02


def test_rectangle() -> None:
    mask = np.zeros((200, 200), dtype=bool)
    mask[50:90, 30:150] = True  # 40 tall, 120 wide
    m = measure(mask)
    assert m.area_px == 4800 and m.area_percent == pytest.approx(12.0)
    # Pixel centres along a side of s pixels have variance (s² - 1)/12: axes 4·sqrt((s² - 1)/12).
    assert m.major_axis_px == pytest.approx(4 * math.sqrt((120**2 - 1) / 12), rel=1e-9)
    assert m.minor_axis_px == pytest.approx(4 * math.sqrt((40**2 - 1) / 12), rel=1e-9)
    assert m.max_diameter_px == pytest.approx(math.hypot(120, 40), abs=2)
    assert m.orientation_deg == 0
    assert m.solidity == pytest.approx(1.0)
    assert m.asymmetry == 0
    # Straight edges along the grid are the Crofton estimate's worst case: about 5% short, as documented.
    assert 0.93 * 320 < m.perimeter_px < 320


def test_millimetres_scale_with_a_known_spacing() -> None:
    """A disc of radius 50 px at 0.02 mm/px is a disc of radius 1 mm: every length and area follows."""
    px = measure(disc(50))
    mm = measure(disc(50), pixel_spacing=0.02)
    assert mm.pixel_spacing_mm == (0.02, 0.02)
    assert mm.area_mm2 == pytest.approx(px.area_px * 0.02**2) == pytest.approx(math.pi, rel=0.02)
    assert mm.max_diameter_mm == pytest.approx(2.0, abs=2 * 0.02)
    for key in ("perimeter", "equivalent_diameter", "max_diameter", "major_axis", "minor_axis"):
        assert getattr(mm, f"{key}_mm") == pytest.approx(getattr(px, f"{key}_px") * 0.02, rel=1e-12), key
        assert getattr(mm, f"{key}_px") == getattr(px, f"{key}_px"), key
    assert mm.perimeter_mm == pytest.approx(2 * math.pi, rel=0.02)


def test_non_square_pixels() -> None:
    """Rows 0.1 mm apart, columns 0.05 mm: an ellipse twice as wide as tall in pixels is a 6 mm disc."""
    rows, cols = np.mgrid[:100, :160]
    mask = ((rows - 50) * 0.1) ** 2 + ((cols - 80) * 0.05) ** 2 <= 3.0**2
    m = measure(mask, pixel_spacing=(0.1, 0.05))
    assert m.area_mm2 == pytest.approx(math.pi * 9, rel=0.02)
    assert m.equivalent_diameter_mm == pytest.approx(6, rel=0.01)
    assert m.max_diameter_mm == pytest.approx(6, abs=0.2)
    assert m.major_axis_mm == pytest.approx(6, rel=0.02) and m.minor_axis_mm == pytest.approx(6, rel=0.02)
    assert m.perimeter_mm is None  # scikit-image's Crofton perimeter needs square pixels
    assert m.max_diameter_px == pytest.approx(120, abs=2)  # in pixels it is still 120 wide


def test_large_lesion_diameter_on_a_shrunk_copy() -> None:
    radius = 700
    mask = disc(radius, size=1500, centre=(750.2, 749.7))
    assert 2 * radius > FERET_SIZE  # the shrunk path
    m = measure(mask, pixel_spacing=0.01)
    factor = math.ceil((2 * radius + 1) / FERET_SIZE)  # 2: the outline is traced on the shrunk grid
    assert m.max_diameter_px == pytest.approx(2 * radius, abs=2 * factor + 1)
    assert m.max_diameter_mm == pytest.approx(m.max_diameter_px * 0.01, rel=1e-12)
    assert m.solidity == pytest.approx(1.0, abs=0.01)  # a disc is convex, also on the shrunk copy


def test_colour_variegation_known_answers() -> None:
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 10:30] = True
    image = np.full((40, 40, 3), (150, 90, 60), np.uint8)
    image[~mask] = (250, 200, 190)  # the skin around it does not count
    assert colour_variegation(image, mask) == pytest.approx(0.0, abs=1e-9)
    # Half black (L* = 0) and half white (L* = 100, a* = b* = 0): every pixel lies 50 ΔE from the mean.
    image[10:20, 10:30] = 0
    image[20:30, 10:30] = 255
    assert colour_variegation(image, mask) == pytest.approx(50.0, abs=0.01)
    m = measure(mask, image=image)
    assert m.colour_variegation_delta_e == pytest.approx(50.0, abs=0.01)
    assert measure(mask).colour_variegation_delta_e is None
    assert colour_variegation(image, np.zeros_like(mask)) is None


def test_measurements_do_not_depend_on_position_or_quarter_turns() -> None:
    mask = np.zeros((120, 160), dtype=bool)
    mask[20:70, 30:60] = True
    mask[40:90, 55:105] |= ellipse(30, 20, 20, size=50)
    base = measure(mask).to_dict()
    moved = measure(np.roll(mask, (15, 20), axis=(0, 1))).to_dict()
    turned = measure(np.rot90(mask)).to_dict()
    for key in ("area_px", "perimeter_px", "major_axis_px", "minor_axis_px", "max_diameter_px", "asymmetry",
                "compactness", "solidity", "eccentricity"):
        assert moved[key] == pytest.approx(base[key], rel=1e-9), key
        assert turned[key] == pytest.approx(base[key], rel=1e-6, abs=1e-6), key
    assert 0 < base["asymmetry"] < 1


def test_asymmetry_of_a_square_with_a_tab() -> None:
    """A 40x40 square with a 20x20 tab on its right side, centred vertically.

    Symmetric about the horizontal axis (y = 19.5), which with the vertical one is the best pair: the
    horizontal one covers itself exactly. The centroid's x is (1600·19.5 + 400·49.5)/2000 = 25.5; the
    mirror about x = 25.5 maps x to 51 - x. In the 20 rows with the tab (x = 0..59) the pixels x = 52..59
    have no mirror inside: 8 per row, 160 in all; in the 20 rows without it (x = 0..39) x = 0..11 have none:
    240 in all. So 400 of 2000 pixels, 0.2, about that axis; the score is (0 + 0.2) / 2 = 0.1.
    """
    mask = np.zeros((60, 80), dtype=bool)
    mask[0:40, 0:40] = True
    mask[10:30, 40:60] = True
    m = measure(mask)
    assert m.area_px == 2000
    assert m.orientation_deg == 0  # wider than tall: the major axis is horizontal
    assert m.asymmetry_axis_deg == 0  # the axis of symmetry
    assert m.asymmetry_about_axis == pytest.approx(0.0, abs=1e-12)
    assert m.asymmetry_about_perpendicular == pytest.approx(0.2, abs=1e-12)
    assert m.asymmetry == pytest.approx(0.1, abs=1e-12)
    assert m.solidity == pytest.approx(2000 / (2000 + 2 * 10 * 20 / 2), rel=0.02)  # hull adds two triangles


def test_ragged_border_is_less_compact_and_less_solid_than_a_disc() -> None:
    rows, cols = np.mgrid[:200, :200]
    angle = np.arctan2(rows - 100, cols - 100)
    star = np.hypot(rows - 100, cols - 100) <= 50 * (1 + 0.3 * np.cos(9 * angle))
    assert measure(star).compactness > 1.5 > measure(disc(50)).compactness
    assert measure(star).solidity < 0.9 < measure(disc(50)).solidity


def test_lesion_touching_the_border_and_several_pieces() -> None:
    full = np.ones((30, 50), dtype=bool)
    # The image border is the lesion's boundary here: 2·(30 + 50), less the estimate's straight-edge bias.
    assert 0.93 * 160 < measure(full).perimeter_px < 160
    two = np.zeros((40, 40), dtype=bool)
    two[2:10, 2:10] = True
    two[20:30, 20:30] = True
    two[10, 10] = True  # touches the first square at a corner only: still the same piece (8-connected)
    m = measure(two)
    assert m.components == 2
    assert m.max_diameter_px == pytest.approx(math.hypot(28, 28), abs=2)  # corner to corner, over both pieces


def test_empty_mask() -> None:
    m = measure(np.zeros((10, 20), dtype=bool), pixel_spacing=0.1)
    assert (m.area_px, m.area_percent, m.perimeter_px, m.max_diameter_px, m.area_mm2) == (0, 0.0, 0.0, 0.0, 0.0)
    assert m.asymmetry is None and m.compactness is None and m.orientation_deg is None and m.solidity is None
    assert m.components == 0
    assert measure(np.zeros((10, 20), dtype=bool)).max_diameter_mm is None


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        measure(np.zeros((4, 4, 3), dtype=bool))
    with pytest.raises(ValueError, match="does not match"):
        measure(np.zeros((4, 4), dtype=bool), image=np.zeros((5, 4, 3), np.uint8))
    # 1e308 mm would give an infinite area, 1e-300 mm one of 0.0 mm²: the bounds a DICOM file's spacing has too.
    for bad in (0, -0.1, float("nan"), (0.1, 0.1, 0.1), "abc", (0.1, None), 1e308, 1e-300, (0.1, 101)):
        with pytest.raises(ValueError, match=r"from 0.0001 to 100 mm"):
            spacing_pair(bad)
    assert spacing_pair([0.1, 0.2]) == (0.1, 0.2) and spacing_pair(None) is None
    assert spacing_pair(1e-4) == (1e-4, 1e-4) and spacing_pair(100) == (100.0, 100.0)
