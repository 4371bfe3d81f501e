"""The positive-control dataset (clickprompt.data.control): deterministic, row-aligned ground truth, and a
planted signal that text recovers on cold items while ids cannot. No PLM weights needed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from clickprompt.data.control import DEFAULTS, ControlOptions, make_control_dataset, read_control
from clickprompt.data.dataset import PreparedDataset

N = 5000  # 4000 / 500 / 500 rows: a few tenths of a second per generation


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    return make_control_dataset(tmp_path_factory.mktemp("cold") / "control", n=N)


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_same_options_give_identical_files_and_another_seed_differs(tmp_path, cold):
    a = make_control_dataset(tmp_path / "a" / "control", n=N)
    assert _files(a) == _files(cold)
    assert {"train.parquet", "valid.parquet", "test.parquet", "vocab.parquet", "schema.json", "stats.json",
            "control.json", "oracle.parquet"} == set(_files(a))
    b = make_control_dataset(tmp_path / "b" / "control", n=N, seed=1)
    fa, fb = _files(a), _files(b)
    assert fa["train.parquet"] != fb["train.parquet"] and fa["control.json"] != fb["control.json"]
    assert not list(tmp_path.glob("*/.*"))  # no staging directory left behind


def _group_counts(titles: pd.Series, control: dict) -> np.ndarray:
    """(N, G): how many title words belong to each group -- a stand-in for a PLM that knows the words."""
    groups = list(control["groups"])
    word_group = {w: g for g, v in enumerate(control["groups"].values()) for w in v["words"] + v["heldout_words"]}
    out = np.zeros((len(titles), len(groups)))
    for r, title in enumerate(titles):
        for w in title.split():
            out[r, word_group[w]] += 1
    return out


def test_text_recovers_the_signal_on_cold_rows_and_ids_do_not(cold):
    control, oracle = read_control(cold)
    ds = PreparedDataset(cold)
    groups = list(control["groups"])
    train, test = ds.frames["train"], ds.frames["test"]

    def text_features(frame):  # interest one-hot crossed with the title words' group counts: (N, G*G)
        interest = (frame["interest"].to_numpy()[:, None] == np.array(groups)[None]).astype(float)
        return (interest[:, :, None] * _group_counts(frame["title"], control)[:, None, :]).reshape(len(frame), -1)

    id_cols = [f"{f}__id" for f in ds.spec.names]
    onehot = OneHotEncoder(handle_unknown="ignore").fit(train[id_cols])  # id 0 (OOV) never occurs in train
    y_train, y_test = train["label"].to_numpy(), test["label"].to_numpy()
    target = oracle[oracle["split"] == "test"].sort_values("row")["target"].to_numpy()
    assert (test["item_id__id"].to_numpy()[target] == 0).all() and (test["title__id"].to_numpy()[target] == 0).all()

    text_lr = LogisticRegression(max_iter=1000).fit(text_features(train), y_train)
    id_lr = LogisticRegression(max_iter=1000).fit(onehot.transform(train[id_cols]), y_train)
    auc_text = roc_auc_score(y_test[target], text_lr.predict_proba(text_features(test))[target, 1])
    auc_ids = roc_auc_score(y_test[target], id_lr.predict_proba(onehot.transform(test[id_cols]))[target, 1])
    ceiling = control["splits"]["test"]["ceiling_auc"]["target"]
    assert ceiling > 0.88
    assert auc_text > ceiling - 0.04, (auc_text, ceiling)
    assert abs(auc_ids - 0.5) < 0.08, auc_ids


def test_ceiling_is_the_oracle_auc_and_rows_align(cold):
    control, oracle = read_control(cold)
    for split in ("train", "valid", "test"):
        frame = pd.read_parquet(cold / f"{split}.parquet")
        part = oracle[oracle["split"] == split].sort_values("row")
        assert np.array_equal(part["timestamp"].to_numpy(), frame["timestamp"].to_numpy())
        assert (part["user_group"].to_numpy() == frame["interest"].to_numpy()).all()  # Interest shows it
        y, p, tgt = frame["label"].to_numpy(), part["p_click"].to_numpy(), part["target"].to_numpy()
        ceiling = control["splits"][split]["ceiling_auc"]
        assert control["splits"][split]["rows"] == len(frame)
        assert ceiling["all"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
        if split == "train":
            assert not tgt.any() and ceiling["target"] is None
        else:
            assert 0.7 < tgt.mean() < 0.9 and (part["item_status"][tgt] == "cold").all()
            assert ceiling["target"] == pytest.approx(roc_auc_score(y[tgt], p[tgt]), abs=1e-6)


def test_rare_mode_items_appear_one_to_max_times_in_train(tmp_path):
    path = make_control_dataset(tmp_path / "rare", n=N, item_mode="rare", rare_max=3)
    control, oracle = read_control(path)
    train, test = pd.read_parquet(path / "train.parquet"), pd.read_parquet(path / "test.parquet")
    target = oracle[oracle["split"] == "test"].sort_values("row")["target"].to_numpy()
    counts = train["item_id"].value_counts()
    seen = counts.reindex(test["item_id"][target]).fillna(0).to_numpy()
    assert target.sum() > 300 and seen.min() >= 1 and seen.max() <= 3
    assert (test["item_id__id"].to_numpy()[target] > 0).all()  # in the vocabulary, unlike cold items
    assert control["splits"]["test"]["status_share"]["rare"] >= target.mean()


def test_heldout_words_never_occur_in_training_titles(tmp_path):
    path = make_control_dataset(tmp_path / "held", n=N, heldout_words=0.4)
    control, oracle = read_control(path)
    train_words = {w for t in pd.read_parquet(path / "train.parquet")["title"] for w in t.split()}
    held = {w for g in control["groups"].values() for w in g["heldout_words"]}
    assert held and not (held & train_words)
    test = pd.read_parquet(path / "test.parquet")
    target = oracle[oracle["split"] == "test"].sort_values("row")["target"].to_numpy()
    assert all(set(t.split()) <= held for t in test["title"][target])


def test_options_fields_and_validation(tmp_path):
    path = make_control_dataset(tmp_path / "two", n=1000, fields=("title", "interest"))
    schema = json.loads((path / "schema.json").read_text())
    assert [f["name"] for f in schema["fields"]] == ["interest", "title"]  # always in FIELDS order
    assert schema["dataset"] == "two"
    with pytest.raises(TypeError):
        make_control_dataset(tmp_path / "x", bogus=1)
    with pytest.raises(ValueError, match="item_mode"):
        ControlOptions(item_mode="warm")
    with pytest.raises(ValueError, match="fields"):
        ControlOptions(fields=("user_id", "genre"))
    assert DEFAULTS.n == 10_000 and DEFAULTS.item_mode == "cold"
