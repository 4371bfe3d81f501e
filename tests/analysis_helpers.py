"""Tiny data and runs shared by test_analysis.py and test_report.py (not a test module itself).

`SkewedTinySource`: 600 MovieLens-like interactions with a skewed (Zipf-like) user and item
popularity, so the training split has long-tail users/items, and with users/items in the last tenth
(the test split of the time split) that never occur before, so the test split has cold-start rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clickprompt.config import load_stage_config
from clickprompt.data.prepare import prepare
from clickprompt.data.sources.base import RawTable, Source, SourceSpec

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]
OCCUPATIONS = ["student", "engineer", "writer", "artist", "doctor"]
TINY_FIELDS = (("user_id", "User ID"), ("occupation", "Occupation"), ("item_id", "Movie ID"),
               ("title", "Title"), ("genre", "Genre"))  # the tiny MovieLens-like sources' fields


class SkewedTinySource(Source):
    name = "tiny"
    spec = SourceSpec(
        fields=TINY_FIELDS, rating_range=(1, 5), label_threshold=4, neutral_ratings=(), split="time",
    )

    def read(self, raw_dir) -> RawTable:
        rng = np.random.default_rng(0)
        n = 600
        pu = 1.0 / np.arange(1, 41)
        pi = 1.0 / np.arange(1, 31) ** 0.7
        users = rng.choice(40, n, p=pu / pu.sum())
        items = rng.choice(30, n, p=pi / pi.sum())
        late = np.arange(n) >= 540  # the test tenth: some new users and items (cold start)
        new_user = late & (rng.random(n) < 0.3)
        new_item = late & (rng.random(n) < 0.2)
        users = np.where(new_user, 40 + rng.integers(0, 10, n), users)
        items = np.where(new_item, 30 + rng.integers(0, 5, n), items)
        like = ((users % 5) == (items % 5)) | (items % 7 == 0)
        like ^= rng.random(n) < 0.15  # label noise: both classes everywhere
        rating = np.where(like, rng.choice([4, 5], n), rng.choice([1, 2], n)).astype(float)
        frame = pd.DataFrame({
            "user_id": users.astype(str), "occupation": np.array(OCCUPATIONS)[users % 5],
            "item_id": items.astype(str), "title": [f"Film number {i} ({1990 + i % 10})" for i in items],
            "genre": np.array(GENRES)[items % 5], "rating": rating,
            "timestamp": np.arange(n, dtype=np.int64) * 10,
        })
        return RawTable(frame)


def prepare_tiny(root):
    prepare("tiny", root, root / "tiny", source=SkewedTinySource())
    return root


def tiny_cfg(stage, data_root, plm, **over):
    cfg = load_stage_config("tiny", stage)
    cfg.data.dataset = "tiny"
    cfg.data.processed_dir = str(data_root)
    cfg.plm.name = str(plm)
    for k, v in over.items():
        section, key = k.split("__")
        setattr(getattr(cfg, section), key, v)
    return cfg


_RUNS: dict = {}


def tiny_runs(tmp_path_factory) -> dict:
    """Prepared tiny data, a tiny random BERT and three finished runs (DCNv2 from scratch, PA-MLM,
    finetuning with PLM), built once per test session and shared by the analysis and report tests."""
    if "root" not in _RUNS:
        from clickprompt.pipeline import finetune, pretrain, train_ctr
        from clickprompt.plm.tiny import make_tiny_plm

        root = tmp_path_factory.mktemp("tiny_runs")
        data = prepare_tiny(root / "data")
        plm = make_tiny_plm(root / "bert", "bert")
        runs = root / "runs"
        train_ctr(tiny_cfg("train-ctr", data, plm), runs / "dcnv2", progress=False)
        pretrain(tiny_cfg("pretrain", data, plm), runs / "pretrain", progress=False)
        finetune(tiny_cfg("finetune-with-plm", data, plm), runs / "with-plm", pretrained=runs / "pretrain",
                 with_plm=True, progress=False)
        _RUNS.update(root=root, data=data, plm=plm, runs=runs)
    return dict(_RUNS)
