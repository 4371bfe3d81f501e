"""The feature spec: what a CTR model needs to know about a prepared dataset's fields.

Built once by `clickprompt.data.prepare` and passed to every model (never re-parsed inside a model).
Each field is one categorical column (Sec 2.1: "each field taking one single value"). Its local ids
run from 0 to `vocab_size - 1`, where 0 is the out-of-vocabulary index: values unseen in the
training split, or rarer than the prepare command's `--min-count`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

OOV_INDEX = 0


@dataclass(frozen=True)
class Field:
    name: str  # column name in the prepared Parquet files, e.g. "user_id"
    display: str  # the field name f_j^name in the text template (Eq. 4), e.g. "User ID"
    vocab_size: int  # number of ids including OOV_INDEX

    def __post_init__(self):
        if self.vocab_size < 1:
            raise ValueError(f"field {self.name!r}: vocab_size must be >= 1, got {self.vocab_size}")


@dataclass(frozen=True)
class FeatureSpec:
    dataset: str
    fields: tuple[Field, ...]
    vocab_hash: str = ""  # hash of the vocabularies' values, set by prepare; part of the fingerprint

    @property
    def num_fields(self) -> int:
        return len(self.fields)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def displays(self) -> list[str]:
        return [f.display for f in self.fields]

    @property
    def vocab_sizes(self) -> list[int]:
        return [f.vocab_size for f in self.fields]

    @property
    def num_features(self) -> int:
        """Total number of distinct ids over all fields (Table 1's #Features, OOV rows included)."""
        return sum(self.vocab_sizes)

    @property
    def fingerprint(self) -> str:
        """Identifies the id space: a checkpoint only fits data whose fingerprint matches."""
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "fields": [asdict(f) for f in self.fields], "vocab_hash": self.vocab_hash}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        return cls(d["dataset"], tuple(Field(**f) for f in d["fields"]), d.get("vocab_hash", ""))

    @classmethod
    def synthetic(cls, vocab_sizes: list[int], dataset: str = "synthetic") -> "FeatureSpec":
        """A spec for tests and examples: fields f0, f1, ... with the given vocabulary sizes."""
        return cls(dataset, tuple(Field(f"f{i}", f"Field {i}", v) for i, v in enumerate(vocab_sizes)))
