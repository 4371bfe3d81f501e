"""prepare(): labels, the 8:1:1 time split, train-only vocabularies, determinism, and bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ML1M_RATINGS, write_ml1m

from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.prepare import SPLITS, prepare, split_sizes
from clickprompt.data.schema import OOV_INDEX
from clickprompt.errors import DataError


def test_split_sizes_reproduce_table1_ml1m():
    assert split_sizes(739_012) == (591_208, 73_902, 73_902)  # Table 1, ML-1M
    assert split_sizes(72_855) == (58_283, 7_286, 7_286)  # ML-100K without its 27,145 rating-3 rows
    assert split_sizes(3) == (1, 1, 1)
    assert split_sizes(20) == (16, 2, 2)


# ---- real ML-100K against an independent pandas computation -----------------------------------


@pytest.mark.real
def test_real_ml100k_matches_independent_pandas(real_raw_ml100k, real_prepared_ml100k):
    inter = pd.read_csv(real_raw_ml100k / "ml-100k.inter", sep="\t")
    inter.columns = ["user", "item", "rating", "timestamp"]
    kept = inter[inter.rating != 3].sort_values("timestamp", kind="stable").reset_index(drop=True)
    n = len(kept)
    n_eval = math.ceil(n / 10)
    n_train = n - 2 * n_eval
    expected = {"train": kept.iloc[:n_train], "valid": kept.iloc[n_train : n - n_eval], "test": kept.iloc[n - n_eval :]}

    stats = json.loads((real_prepared_ml100k / "stats.json").read_text())
    assert n == 72_855
    assert (stats["train"], stats["valid"], stats["test"]) == (58_283, 7_286, 7_286)
    assert stats["report"]["neutral_dropped"] == 27_145
    for s in SPLITS:
        want = expected[s]
        got = pd.read_parquet(real_prepared_ml100k / f"{s}.parquet")
        assert stats[s] == len(want) == len(got)
        rate = float((want.rating >= 4).mean())
        assert stats["positive_rate"][s] == pytest.approx(rate, abs=1e-6)
        # row by row: same interactions in the same order with the same labels
        np.testing.assert_array_equal(got.user_id.astype(int).to_numpy(), want.user.to_numpy())
        np.testing.assert_array_equal(got.item_id.astype(int).to_numpy(), want.item.to_numpy())
        np.testing.assert_array_equal(got.timestamp.to_numpy(), want.timestamp.to_numpy())
        np.testing.assert_array_equal(got.label.to_numpy(), (want.rating >= 4).astype(int).to_numpy())
    assert stats["positive_rate"]["train"] == pytest.approx(0.75667, abs=1e-5)

    # vocabularies: every distinct training value, nothing from valid/test
    schema = json.loads((real_prepared_ml100k / "schema.json").read_text())
    sizes = {f["name"]: f["vocab_size"] for f in schema["fields"]}
    assert sizes["user_id"] == expected["train"].user.nunique() + 1
    assert sizes["item_id"] == expected["train"].item.nunique() + 1
    assert sizes["gender"] == 3 and sizes["genre"] == 20  # male/female + OOV; 19 genres + OOV
    # the cold start DESIGN.md describes: most valid/test users never appear in training
    cold = ~expected["test"].user.isin(expected["train"].user)
    assert stats["oov_rate"]["test"]["user_id"] == pytest.approx(cold.mean(), abs=1e-6)
    assert 0.8 < cold.mean() < 0.9


@pytest.mark.real
def test_prepare_twice_is_byte_identical(real_raw_ml100k, real_prepared_ml100k, tmp_path):
    out = tmp_path / "again"
    prepare("ml-100k", real_raw_ml100k, out)
    names = sorted(p.name for p in real_prepared_ml100k.iterdir())
    assert names == sorted(p.name for p in out.iterdir())
    assert names == ["schema.json", "stats.json", "test.parquet", "train.parquet", "valid.parquet", "vocab.parquet"]
    for name in names:
        assert (out / name).read_bytes() == (real_prepared_ml100k / name).read_bytes(), name
    # and once more in place (force): still identical, no temporary directories left behind
    prepare("ml-100k", real_raw_ml100k, out, force=True)
    for name in names:
        assert (out / name).read_bytes() == (real_prepared_ml100k / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == [".again.lock", "again"]  # the lock file stays, released


# ---- vocabularies from the training split only ---------------------------------------------------


def test_vocab_from_train_only_and_min_count(ml1m_raw, tmp_path):
    prepare("ml-1m", ml1m_raw, tmp_path / "mc1")
    ds = PreparedDataset(tmp_path / "mc1")
    vocab = ds.vocab
    train = ds.frames["train"]
    for f in ds.spec.fields:
        v = vocab[vocab.field == f.name]
        assert set(v.value) == set(train[f.name])  # exactly the training values
        assert f.vocab_size == len(v) + 1  # + OOV
        assert v.id.tolist() == list(range(1, len(v) + 1))
        assert (np.diff(v["count"].to_numpy()) <= 0).all()  # most frequent first
    sizes = {f["name"]: f["vocab_size"] for f in json.loads((tmp_path / "mc1" / "schema.json").read_text())["fields"]}
    # train users 1,2,3,4 (user 5 only in test); movies 1..4; ages 25-34, 56+, 45-49, Under 18
    assert sizes == {
        "user_id": 5, "gender": 3, "age": 5, "occupation": 5, "zipcode": 5, "item_id": 5, "title": 5, "genre": 5,
    }  # fmt: skip
    # train counts: user 2 x3, user 3 x3 -> ids 1, 2 (ties by value); users 1, 4 once -> 3, 4
    users = vocab[vocab.field == "user_id"]
    assert users.value.tolist() == ["2", "3", "1", "4"] and users["count"].tolist() == [3, 3, 1, 1]
    uid = ds.split("train").ids[:, ds.spec.names.index("user_id")]
    assert uid.tolist() == [1, 1, 2, 2, 4, 3, 1, 2]  # users 2 2 3 3 4 1 2 3
    # valid: users 1, 4 (seen); test: user 5 twice (unseen) -> OOV
    assert ds.split("valid").ids[:, 0].tolist() == [3, 4]
    assert ds.split("test").ids[:, 0].tolist() == [OOV_INDEX, OOV_INDEX]
    assert json.loads((tmp_path / "mc1" / "stats.json").read_text())["oov_rate"]["test"]["user_id"] == 1.0

    prepare("ml-1m", ml1m_raw, tmp_path / "mc2", min_count=2)
    ds2 = PreparedDataset(tmp_path / "mc2")
    assert ds2.vocab[ds2.vocab.field == "user_id"].value.tolist() == ["2", "3"]
    assert ds2.spec.vocab_sizes[0] == 3
    assert ds2.split("train").ids[:, 0].tolist() == [1, 1, 2, 2, 0, 0, 1, 2]  # users 4 and 1: rare -> OOV
    assert ds2.split("valid").ids[:, 0].tolist() == [0, 0]
    assert ds2.fingerprint != ds.fingerprint
    assert ds2.texts("valid")[0].startswith("User ID is 1 .")  # the text keeps the real value
    with pytest.raises(DataError, match="min_count must be >= 1, got 0"):
        prepare("ml-1m", ml1m_raw, tmp_path / "mc0", min_count=0)


# ---- bad input and reports ---------------------------------------------------------------------


def test_too_few_rows_for_three_splits(tmp_path):
    d = write_ml1m(tmp_path / "raw", ratings=["1::1::5::978300760", "1::2::3::978300761", "2::2::4::978300100"])
    with pytest.raises(DataError) as e:
        prepare("ml-1m", d, tmp_path / "out")
    assert str(e.value) == (
        f"{d / 'ratings.dat'}: only 2 usable interactions after cleaning (of 3 read); "
        "cannot make train/valid/test splits"
    )
    assert not (tmp_path / "out").exists()


def test_duplicate_interactions_are_counted_in_the_report(tmp_path):
    ratings = list(ML1M_RATINGS)
    ratings += [ratings[0], ratings[2], ratings[2]]  # three exact duplicates
    ratings += ["1::1::4::978301100"]  # same user and movie again, new rating and time: kept
    d = write_ml1m(tmp_path / "raw", ratings=ratings)
    stats = prepare("ml-1m", d, tmp_path / "out")
    report = stats["report"]
    assert report["rows_read"] == 20
    assert report["exact_duplicates_dropped"] == 3
    assert report["repeated_user_item_pairs_kept"] == 1
    assert stats["train"] + stats["valid"] + stats["test"] == 13  # 12 + the re-rating
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert saved["report"]["exact_duplicates_dropped"] == 3


def test_output_dir_with_another_dataset_is_refused_unless_forced(tmp_path, ml1m_raw):
    from conftest import write_ml100k_recbole

    out = tmp_path / "out"
    prepare("ml-1m", ml1m_raw, out)
    before = (out / "train.parquet").read_bytes()
    rb = write_ml100k_recbole(tmp_path / "rb")
    with pytest.raises(DataError) as e:
        prepare("ml-100k", rb, out)
    assert str(e.value) == f"{out}: holds prepared dataset 'ml-1m', not 'ml-100k'; pass --force to replace it"
    assert (out / "train.parquet").read_bytes() == before  # untouched
    stats = prepare("ml-100k", rb, out, force=True)
    assert json.loads((out / "schema.json").read_text())["dataset"] == "ml-100k" == stats["dataset"]
    prepare("ml-100k", rb, out)  # the same dataset again: no force needed


def test_non_empty_output_dir_without_dataset_is_refused(tmp_path, ml1m_raw):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="is not empty and holds no prepared dataset; pass --force"):
        prepare("ml-1m", ml1m_raw, out)
    assert (out / "notes.txt").read_text() == "mine"


def _cli_module():
    try:
        import clickprompt.cli  # noqa: F401
    except ImportError:
        pytest.skip("clickprompt/cli.py does not exist yet; prepare() is tested directly above")


def test_cli_prints_one_line_error_and_exits_2(tmp_path):
    _cli_module()
    d = write_ml1m(tmp_path / "raw")
    (d / "ratings.dat").write_text("1\t1\t5\t978300760\n")
    proc = subprocess.run(
        [sys.executable, "-m", "clickprompt.cli", "data", "prepare", "ml-1m"]
        + ["--raw", str(d), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert lines[-1] == f"error: {d / 'ratings.dat'}, line 1: expected 4 columns separated by '::', found no separator"


def test_cli_unknown_dataset_and_missing_raw_dir(tmp_path, capsys):
    _cli_module()
    from clickprompt.cli import main

    assert main(["data", "prepare", "no-such-data", "--raw", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr()
    assert (err.out + err.err).strip().splitlines()[-1].startswith("error: unknown dataset 'no-such-data'; known: ")
    assert main(["data", "prepare", "ml-1m", "--raw", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr()
    last = (err.out + err.err).strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'nothing'}: missing raw file(s) ratings.dat, users.dat, movies.dat")
