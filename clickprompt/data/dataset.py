"""Reading a prepared dataset back: the feature spec, id arrays, labels and the text view.

Only pandas/pyarrow are needed to read the files; this module turns them into the arrays the models
eat. The text view keeps the real value even where the id is out-of-vocabulary (a cold-start user's
age and occupation, a new movie's title): that is where the language model can help.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from clickprompt.data.prepare import SPLITS, id_column
from clickprompt.data.schema import FeatureSpec
from clickprompt.errors import DataError


@dataclass
class Split:
    name: str
    ids: np.ndarray  # (N, F) int64 per-field local ids, 0 = out-of-vocabulary
    labels: np.ndarray  # (N,) float32 in {0, 1}
    text_index: np.ndarray  # (N, F) int32 index into PreparedDataset.text_values[field]
    frame: pd.DataFrame  # the field values as strings, label, timestamp

    def __len__(self) -> int:
        return len(self.labels)


class PreparedDataset:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        schema_path = self.path / "schema.json"
        if not schema_path.exists():
            raise DataError("no prepared dataset here (schema.json missing); run `clickprompt data prepare`", self.path)
        self.schema = json.loads(schema_path.read_text())
        self.spec = FeatureSpec.from_dict(self.schema)
        if self.schema.get("fingerprint") != self.spec.fingerprint:
            raise DataError("schema.json fingerprint does not match its fields; the file was edited", schema_path)
        self._splits: dict[str, Split] = {}

    @property
    def name(self) -> str:
        return self.spec.dataset

    @property
    def fingerprint(self) -> str:
        return self.spec.fingerprint

    @cached_property
    def stats(self) -> dict:
        return json.loads((self.path / "stats.json").read_text())

    @cached_property
    def frames(self) -> dict[str, pd.DataFrame]:
        out = {}
        for s in SPLITS:
            p = self.path / f"{s}.parquet"
            if not p.exists():
                raise DataError(f"missing split file {p.name}", self.path)
            out[s] = pd.read_parquet(p)
        return out

    @cached_property
    def vocab(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "vocab.parquet")

    @cached_property
    def text_values(self) -> list[np.ndarray]:
        """Per field, the sorted distinct values over all splits (the token cache's rows)."""
        return [
            np.unique(np.concatenate([self.frames[s][f].to_numpy(dtype=str) for s in SPLITS])) for f in self.spec.names
        ]

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r} (train, valid, test)")
        if name not in self._splits:
            frame = self.frames[name]
            ids = np.stack([frame[id_column(f)].to_numpy(dtype=np.int64) for f in self.spec.names], axis=1)
            text_index = np.stack(
                [np.searchsorted(vals, frame[f].to_numpy(dtype=str)) for f, vals in zip(self.spec.names, self.text_values)],
                axis=1,
            ).astype(np.int32)
            labels = frame["label"].to_numpy(dtype=np.float32)
            self._splits[name] = Split(name, ids, labels, text_index, frame)
        return self._splits[name]

    def texts(self, split: str, rows=None) -> list[str]:
        """The sample sentences of Eq. 4, e.g. "User ID is 196 . Gender is male . ..."."""
        from clickprompt.data.text import sample_text

        frame = self.frames[split] if rows is None else self.frames[split].iloc[rows]
        columns = [frame[f].astype(str).tolist() for f in self.spec.names]
        return [sample_text(self.spec.displays, values) for values in zip(*columns)]
