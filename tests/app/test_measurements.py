"""Lesion measurements against shapes whose answers can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skinnet.evaluation.measurements import measure, perimeter


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


@pytest.mark.parametrize("radius", [10, 25, 60])
def test_disc(radius: int) -> None:
    m = measure(disc(radius))
    assert m.area_px == pytest.approx(math.pi * radius**2, rel=0.02)
    assert m.perimeter_px == pytest.approx(2 * math.pi * radius, rel=0.02)
    assert m.equivalent_diameter_px == pytest.approx(2 * radius, rel=0.01)
    assert m.major_axis_px == pytest.approx(2 * radius, rel=0.02)
    assert m.minor_axis_px == pytest.approx(2 * radius, rel=0.02)
    assert m.compactness == pytest.approx(1, abs=0.03)
    assert m.asymmetry < 0.03
    assert m.components == 1
    assert m.area_percent == pytest.approx(100 * m.area_px / 200**2)


@pytest.mark.parametrize("degrees", [0, 30, 45, -60, 80])
def test_ellipse_axes_and_orientation(degrees: float) -> None:
    m = measure(ellipse(60, 25, degrees))
    assert m.major_axis_px == pytest.approx(120, rel=0.01)
    assert m.minor_axis_px == pytest.approx(50, rel=0.02)
    assert m.orientation_deg == pytest.approx(degrees, abs=1)
    assert m.asymmetry < 0.02
    # Ramanujan's perimeter of an ellipse.
    a, b = 60, 25
    exact = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    assert m.perimeter_px == pytest.approx(exact, rel=0.02)


def test_rectangle() -> None:
    mask = np.zeros((200, 200), dtype=bool)
    mask[50:90, 30:150] = True  # 40 tall, 120 wide
    m = measure(mask)
    assert m.area_px == 4800 and m.area_percent == pytest.approx(12.0)
    # Pixels are unit squares, so the variance along a side of length s is exactly s²/12: axes 4·s/√12.
    assert m.major_axis_px == pytest.approx(4 * 120 / math.sqrt(12), rel=1e-9)
    assert m.minor_axis_px == pytest.approx(4 * 40 / math.sqrt(12), rel=1e-9)
    assert m.major_axis_px / m.minor_axis_px == pytest.approx(3, rel=1e-9)
    assert m.orientation_deg == 0
    assert m.asymmetry == 0
    # Straight edges along the grid are the Crofton estimate's worst case: about 5% short, as documented.
    assert 0.93 * 320 < m.perimeter_px < 320


def test_rotated_square_perimeter() -> None:
    rows, cols = np.mgrid[:200, :200]
    t = math.radians(30)
    x, y = cols - 100, rows - 100  # y downwards: shown turned by -30°
    mask = (np.abs(x * math.cos(t) + y * math.sin(t)) <= 40) & (np.abs(-x * math.sin(t) + y * math.cos(t)) <= 40)
    m = measure(mask)
    assert m.perimeter_px == pytest.approx(320, rel=0.03)
    assert m.compactness == pytest.approx(4 / math.pi, rel=0.06)  # a square: 16s²/(4π s²)
    # Its moment axes are equal, so the principal directions are arbitrary: the axis search finds the
    # square's own axes (-30° and 60°) or its diagonals (15°, -75°), all axes of symmetry.
    assert m.asymmetry < 0.02
    assert min(abs(m.asymmetry_axis_deg - angle) for angle in (-30, 60, 15, -75)) <= 2


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


def test_measurements_do_not_depend_on_position_or_quarter_turns() -> None:
    mask = np.zeros((120, 160), dtype=bool)
    mask[20:70, 30:60] = True
    mask[40:90, 55:105] |= ellipse(30, 20, 20, size=50)
    base = measure(mask).to_dict()
    moved = measure(np.roll(mask, (15, 20), axis=(0, 1))).to_dict()
    turned = measure(np.rot90(mask)).to_dict()
    for key in ("area_px", "perimeter_px", "major_axis_px", "minor_axis_px", "asymmetry", "compactness"):
        assert moved[key] == pytest.approx(base[key], rel=1e-9), key
        assert turned[key] == pytest.approx(base[key], rel=1e-6, abs=1e-6), key
    assert 0 < base["asymmetry"] < 1


def test_ragged_border_is_less_compact_than_a_disc() -> None:
    rows, cols = np.mgrid[:200, :200]
    angle = np.arctan2(rows - 100, cols - 100)
    star = np.hypot(rows - 100, cols - 100) <= 50 * (1 + 0.3 * np.cos(9 * angle))
    assert measure(star).compactness > 1.5 > measure(disc(50)).compactness


def test_lesion_touching_the_border_and_several_pieces() -> None:
    full = np.ones((30, 50), dtype=bool)
    # The image border is the lesion's boundary here: 2·(30 + 50), less the estimate's straight-edge bias.
    assert 0.93 * 160 < perimeter(full) < 160
    two = np.zeros((40, 40), dtype=bool)
    two[2:10, 2:10] = True
    two[20:30, 20:30] = True
    two[10, 10] = True  # touches the first square at a corner only: still the same piece (8-connected)
    assert measure(two).components == 2


def test_empty_mask() -> None:
    m = measure(np.zeros((10, 20), dtype=bool))
    assert (m.area_px, m.area_percent, m.perimeter_px, m.major_axis_px) == (0, 0.0, 0.0, 0.0)
    assert m.asymmetry is None and m.compactness is None and m.orientation_deg is None
    assert m.components == 0


def test_rejects_non_2d_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        measure(np.zeros((4, 4, 3), dtype=bool))
