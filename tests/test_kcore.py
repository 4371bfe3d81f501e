"""The k-core filter against a brute-force reference, and prepare's column-wise path (categorical
input gives the same files as plain strings)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from clickprompt.data.prepare import MISSING_VALUE, field_codes, kcore_filter, kcore_mask, prepare
from clickprompt.data.sources import RawTable, Source, SourceSpec


def brute_kcore(pairs: list[tuple], k: int) -> list[int]:
    """Remove one offending row at a time until every user and item has >= k rows."""
    alive = list(range(len(pairs)))
    while True:
        users = Counter(pairs[r][0] for r in alive)
        items = Counter(pairs[r][1] for r in alive)
        bad = [r for r in alive if users[pairs[r][0]] < k or items[pairs[r][1]] < k]
        if not bad:
            return alive
        alive.remove(bad[0])


@pytest.mark.parametrize("seed", range(40))
def test_kcore_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 120))
    n_users, n_items = int(rng.integers(1, 15)), int(rng.integers(1, 15))
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    k = int(rng.integers(1, 6))
    expect = brute_kcore(list(zip(users.tolist(), items.tolist())), k)
    assert np.flatnonzero(kcore_mask(users, items, k)).tolist() == expect
    frame = pd.DataFrame({"u": [f"u{x}" for x in users], "i": items.astype(str), "r": np.arange(n)})
    assert kcore_filter(frame, "u", "i", k)["r"].tolist() == (expect if k > 1 else list(range(n)))
    kept = kcore_filter(frame, "u", "i", k)
    if len(kept):  # the result is a k-core
        assert kept.groupby("u").size().min() >= k and kept.groupby("i").size().min() >= k


def test_kcore_handles_missing_keys_and_empty():
    frame = pd.DataFrame({"u": ["a", None, None, "a"], "i": ["x", "x", "x", "x"]})
    assert len(kcore_filter(frame, "u", "i", 2)) == 4  # missing is one key of its own
    assert kcore_mask(np.array([], int), np.array([], int), 3).tolist() == []
    assert kcore_mask(np.array([0, 1]), np.array([0, 0]), 2).tolist() == [False, False]


def test_field_codes_strips_fills_and_merges():
    s = pd.Series([" a", "a", None, "", "b ", "unknown", "  "], dtype=object)
    for values in (s, s.astype("category"), s.astype("str")):
        codes, distinct, n_missing = field_codes(values)
        assert distinct[codes].tolist() == ["a", "a", MISSING_VALUE, MISSING_VALUE, "b", MISSING_VALUE, MISSING_VALUE]
        assert n_missing == 3  # None, "", "  "; a literal "unknown" is a value, not a missing one
    codes, distinct, _ = field_codes(pd.Series(["x", "y", "x"]).astype("category"))
    assert distinct[codes].tolist() == ["x", "y", "x"] and codes.dtype == np.int8
    codes, distinct, n_missing = field_codes(pd.Series([1.0, np.nan, 2.5]))
    assert distinct[codes].tolist() == ["1.0", MISSING_VALUE, "2.5"] and n_missing == 1


class FrameSource(Source):
    name = "frame"

    def __init__(self, frame, spec):
        self.frame, self.spec = frame, spec

    def read(self, raw_dir):
        return RawTable(self.frame.copy(), skipped={"bad line": 2}, notes=["synthetic"])


@pytest.mark.parametrize("split", ["time", "random"])
def test_categorical_input_gives_identical_files(tmp_path, split):
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 80, n).astype(str),
            "item_id": rng.integers(0, 60, n).astype(str),
            "tag": rng.choice(np.array(["x ", "x", "", None, "y", "zé"], dtype=object), n),
            "rating": rng.integers(1, 6, n).astype(float),
            "timestamp": rng.integers(0, 500, n),
        }
    )
    frame.loc[:9, "user_id"] = [f"rare{j}" for j in range(10)]  # users the 5-core drops
    frame = pd.concat([frame, frame.iloc[100:200]], ignore_index=True)  # exact duplicates
    spec = SourceSpec(fields=(("user_id", "User"), ("item_id", "Item"), ("tag", "Tag")), rating_range=(1, 5),
                      label_threshold=4, neutral_ratings=(3,), split=split, kcore=5)  # fmt: skip
    cat = frame.astype({c: "category" for c in ("user_id", "item_id", "tag")})
    s1 = prepare("frame", tmp_path, tmp_path / "plain", source=FrameSource(frame, spec), min_count=2, seed=1)
    s2 = prepare("frame", tmp_path, tmp_path / "cat", source=FrameSource(cat, spec), min_count=2, seed=1)
    assert s1 == s2
    assert s1["report"]["exact_duplicates_dropped"] >= 100 and s1["report"]["kcore"]["dropped"] > 0
    for name in ("train.parquet", "valid.parquet", "test.parquet", "vocab.parquet", "schema.json", "stats.json"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "cat" / name).read_bytes(), name
    train = pd.read_parquet(tmp_path / "plain" / "train.parquet")
    assert train["tag"].isin(["x", "y", "zé", MISSING_VALUE]).all()
    assert list(train.columns) == ["user_id", "item_id", "tag", "label", "timestamp", "user_id__id", "item_id__id", "tag__id"]
    assert str(train["label"].dtype) == "int8" and str(train["user_id__id"].dtype) == "int32"


def test_combined_codes_match_row_tuples():
    from clickprompt.data.prepare import _combined_codes

    rng = np.random.default_rng(0)
    cols = [rng.integers(0, 3, 500), rng.choice(np.array(["a", "b", None], dtype=object), 500),
            rng.integers(0, 2**40, 500) % 7, rng.random(500).round(1)]  # fmt: skip
    for k in range(1, len(cols) + 1):
        key, n = _combined_codes(cols[:k])
        tuples = list(zip(*[c.tolist() for c in cols[:k]]))
        assert n == len(set(tuples))
        first = {}
        assert [first.setdefault(t, len(first)) for t in tuples] == key.tolist()
    big = [np.arange(1000) * (2**20) for _ in range(4)]  # cardinalities whose product overflows int64
    key, n = _combined_codes(big)
    assert n == 1000 and key.tolist() == list(range(1000))
