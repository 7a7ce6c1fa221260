"""``--shard K/N``: every image in exactly one shard, chosen by its ID alone, so adding files moves none."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skinnet.batch.shard import MAX_SHARDS, Shard, shard_number, shard_table
from skinnet.config import ConfigError

IDS = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=60, unique=True)


@given(ids=IDS, count=st.integers(1, 9))
def test_every_id_belongs_to_exactly_one_shard(ids: list[str], count: int) -> None:
    shards = [Shard(index, count) for index in range(1, count + 1)]
    for image_id in ids:
        assert [shard.index for shard in shards if shard.owns(image_id)] == [shard_number(image_id, count)]


@given(ids=IDS, added=IDS, count=st.integers(2, 6))
def test_adding_files_never_moves_an_image_to_another_shard(ids: list[str], added: list[str], count: int) -> None:
    for shard in (Shard(index, count) for index in range(1, count + 1)):
        before = [image_id for image_id in ids if shard.owns(image_id)]
        after = [image_id for image_id in ids + [new for new in added if new not in ids] if shard.owns(image_id)]
        assert [image_id for image_id in after if image_id in ids] == before


def test_shards_are_roughly_even_on_isic_like_ids() -> None:
    ids = [f"ISIC_{number:07d}" for number in range(4000)]
    sizes = [sum(Shard(index, 4).owns(image_id) for image_id in ids) for index in range(1, 5)]
    assert sum(sizes) == 4000 and min(sizes) > 900  # a hash, not e.g. the last digit


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "a/b", "1/0", ""])
def test_a_bad_shard_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(text)


def test_shard_tables_are_named_after_the_shard() -> None:
    assert Shard.parse(" 2 / 8 ") == Shard(2, 8)
    assert shard_table(Path("out/predictions.csv"), Shard(2, 8)) == Path("out/predictions.shard-2-of-8.csv")
    assert shard_table(Path("out/predictions.csv"), None) == Path("out/predictions.csv")


@pytest.mark.parametrize("text", ["1/100001", "1/1000000000", "1/" + "9" * 26, "1/" + "9" * 5000,
                                  "9" * 5000 + "/2"])
def test_n_is_bounded_and_huge_numbers_are_refused_at_once(text: str) -> None:
    with pytest.raises(ConfigError, match=r"(N must be between 1 and 100,000|K must be between 1 and N)"):
        Shard.parse(text)
    assert Shard.parse("100000/100000") == Shard(100000, MAX_SHARDS)
