"""Property tests: metric identities on random masks, and a loader that only ever raises InputError."""

from __future__ import annotations

import io
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from skinnet.data.io import InputError, read_image, read_mask
from skinnet.metrics import METRIC_NAMES, TJI_THRESHOLD, image_metrics

SAMPLE_IMAGE = sorted((Path(__file__).parents[1] / "skinnet" / "sample_data" / "images").glob("*.jpg"))[0]
EXTENSIONS = [".jpg", ".jpeg", ".png", ".bmp", ".tif", ".webp", ".gif"]


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two boolean masks of one random shape, from all-empty to all-full."""
    shape = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    return draw(arrays(bool, shape)), draw(arrays(bool, shape))


@settings(max_examples=300, deadline=None)
@given(mask_pairs())
def test_metrics_stay_in_unit_interval_and_dice_follows_jaccard(pair: tuple[np.ndarray, np.ndarray]) -> None:
    truth, prediction = pair
    scores = image_metrics(truth, prediction)
    for name in METRIC_NAMES:
        assert 0.0 <= scores[name] <= 1.0, (name, scores)
    ji = scores["JI"]
    assert math.isclose(scores["DC"], 2 * ji / (1 + ji), rel_tol=1e-12, abs_tol=1e-12)
    assert scores["TJI"] == (ji if ji >= TJI_THRESHOLD else 0.0)
    # Symmetric in its arguments, and perfect exactly when the masks agree.
    assert image_metrics(prediction, truth)["DC"] == scores["DC"]
    assert (scores["DC"] == 1.0) == bool(np.array_equal(truth, prediction))


def _encoded_samples() -> list[tuple[str, bytes]]:
    """A small real image encoded in every accepted format: the seeds that mutations start from.

    GIF is not among them: it is refused before decoding (tests/data/test_formats.py).
    """
    image = Image.open(SAMPLE_IMAGE).convert("RGB").resize((24, 24))
    seeds = []
    for fmt, ext, mode in [("JPEG", ".jpg", "RGB"), ("PNG", ".png", "RGB"), ("PNG", ".png", "L"),
                           ("PNG", ".png", "P"), ("BMP", ".bmp", "RGB"), ("TIFF", ".tif", "RGB"),
                           ("WEBP", ".webp", "RGB")]:
        buffer = io.BytesIO()
        image.convert(mode).save(buffer, fmt)
        seeds.append((ext, buffer.getvalue()))
    return seeds


SEEDS = _encoded_samples()


def _assert_only_input_errors(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        for reader in (read_image, read_mask):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    reader(path)
            except InputError as err:
                assert err.path == path
                assert str(err).startswith(str(path)) and "\n" not in str(err)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(EXTENSIONS))
def test_loader_on_random_bytes_raises_only_input_error(data: bytes, suffix: str) -> None:
    _assert_only_input_errors(data, suffix)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), cut=st.floats(0.0, 1.0),
       edits=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=8))
def test_loader_on_damaged_real_images_raises_only_input_error(
        seed: tuple[str, bytes], cut: float, edits: list[tuple[float, int]]) -> None:
    suffix, original = seed
    data = bytearray(original[: max(1, int(len(original) * cut))] if cut < 0.5 else original)
    for where, value in edits:  # flip bytes anywhere: headers, chunk lengths, compressed data
        data[int(where * len(data))] = value
    _assert_only_input_errors(bytes(data), suffix)


@pytest.mark.parametrize(("suffix", "data"), SEEDS, ids=[ext + str(i) for i, (ext, _) in enumerate(SEEDS)])
def test_undamaged_seeds_are_readable(suffix: str, data: bytes, tmp_path: Path) -> None:
    # Guards the damaged-image test: its seeds must be real, decodable images.
    path = tmp_path / f"seed{suffix}"
    path.write_bytes(data)
    assert read_image(path).shape == (24, 24, 3)
