"""A tiny MovieLens-like dataset, generated in memory and prepared by the normal `prepare()` path.

    from clickprompt.data.synthetic import make_tiny_dataset
    path = make_tiny_dataset("data/processed/tiny-ml", n=2000, seed=0)   # a prepared dataset directory
    ds = PreparedDataset(path)

Tests, notebooks and the tiny profile use it to run every stage end to end on CPU in seconds, with no
download. It goes through the same code as real data (`clickprompt.data.prepare.prepare` with an
in-memory `Source`): neutral ratings dropped, label = rating >= 4, global time split 8:1:1,
vocabularies from the training split, schema and fingerprint. Only the raw table is made up.

The raw table has MovieLens' eight fields with readable values (User ID, Gender, Age, Occupation,
Zipcode, Movie ID, Title "<words> (<year>)", Genre) and ratings 1-5 drawn from a small latent model:
user and item biases, a user x item dot product, and a genre x age-group and genre x gender effect,
so the label is learnable from both ids and side features (a CTR model reaches a test AUC well above
0.5). As in ML-100K, users arrive over time, so later splits hold users unseen in training. The same
(n, seed, sizes) give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clickprompt.data.sources.base import RawTable, Source
from clickprompt.data.sources.movielens import ML100K_GENRES, MOVIELENS_SPEC

OCCUPATIONS = [
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
    "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
    "scientist", "student", "technician", "writer",
]  # fmt: skip  (ML-100K's occupation words)
TITLE_WORDS = [
    "Silent", "River", "Night", "Return", "Lost", "City", "Star", "Summer", "Dark", "Love", "Last", "King",
    "Secret", "Winter", "Road", "Dream", "Ghost", "Island", "Blue", "Heart", "Storm", "Little", "Wild", "Home",
]  # fmt: skip
GENRES = ML100K_GENRES[1:]  # without "unknown"
T0 = 874_724_710  # ML-100K's first timestamp (1997-09-20)


class SyntheticMovieLens(Source):
    """In-memory source: `read()` ignores its directory and returns the generated raw table."""

    spec = MOVIELENS_SPEC  # 8 fields, ratings 1-5, rating 3 dropped, label >= 4, time split

    def __init__(self, n: int = 2000, seed: int = 0, n_users: int | None = None, n_items: int | None = None,
                 name: str = "tiny-ml", dim: int = 4):
        if n < 10:
            raise ValueError(f"n must be at least 10 interactions, got {n}")
        self.name = name
        self.n, self.seed, self.dim = n, seed, dim
        self.n_users = n_users or max(8, n // 20)
        self.n_items = n_items or max(8, n // 15)

    def read(self, raw_dir: Path | None = None) -> RawTable:
        rng = np.random.default_rng(self.seed)
        U, I, d = self.n_users, self.n_items, self.dim
        # users: side information and a latent taste; each user is active from an arrival time on
        gender = rng.choice(["male", "female"], U, p=[0.7, 0.3])
        age = rng.integers(15, 66, U)
        age_group = np.digitize(age, [25, 35, 50])  # 0..3
        occupation = rng.choice(OCCUPATIONS, U)
        zipcode = np.char.zfill(rng.integers(1000, 99999, U).astype(str), 5)
        u_vec = rng.normal(0, 1, (U, d))
        u_bias = rng.normal(0, 0.5, U)
        arrival = np.sort(rng.uniform(0, 0.85, U))  # fraction of the time span; later users are cold
        arrival[0] = 0.0
        # items: a title with a year, a genre, a latent profile, a popularity (Zipf-like)
        words = rng.choice(TITLE_WORDS, (I, 2))  # titles may repeat across items, as in MovieLens
        year = rng.integers(1930, 1999, I)
        title = np.char.add(np.char.add(np.char.add(np.char.add(words[:, 0], " "), words[:, 1]), " ("),
                            np.char.add(year.astype(str), ")"))
        genre_idx = rng.integers(0, len(GENRES), I)
        i_vec = rng.normal(0, 1, (I, d))
        i_bias = rng.normal(0, 0.5, I)
        popularity = 1.0 / np.arange(1, I + 1) ** 0.8
        popularity = rng.permutation(popularity / popularity.sum())
        genre_age = rng.normal(0, 0.6, (len(GENRES), 4))
        genre_gender = rng.normal(0, 0.4, (len(GENRES), 2))

        # interactions: a time, then a user who has arrived by then (half of them among the four newest,
        # so users are active soon after arriving), then an item by popularity
        t = np.sort(rng.uniform(0, 1, self.n))
        arrived = np.maximum(np.searchsorted(arrival, t, side="right"), 1)  # users 0..arrived-1 exist
        any_user = (rng.random(self.n) * arrived).astype(np.int64)
        new_user = np.maximum(arrived - 1 - rng.integers(0, 4, self.n), 0)
        user = np.where(rng.random(self.n) < 0.5, new_user, any_user)
        item = rng.choice(I, self.n, p=popularity)
        score = (
            u_bias[user] + i_bias[item] + (u_vec[user] * i_vec[item]).sum(1) / np.sqrt(d)
            + genre_age[genre_idx[item], age_group[user]]
            + genre_gender[genre_idx[item], (gender[user] == "female").astype(int)]
            + rng.normal(0, 0.6, self.n)
        )
        cuts = np.quantile(score, [0.06, 0.17, 0.40, 0.72])  # about ML-100K's rating shares
        rating = 1 + np.searchsorted(cuts, score)
        timestamp = T0 + (t * 200 * 86_400).astype(np.int64)

        frame = pd.DataFrame({
            "user_id": (user + 1).astype(str),
            "gender": gender[user],
            "age": age[user].astype(str),
            "occupation": occupation[user],
            "zipcode": zipcode[user],
            "item_id": (item + 1).astype(str),
            "title": title[item],
            "genre": np.asarray(GENRES, dtype=object)[genre_idx[item]],
            "rating": rating.astype(np.float64),
            "timestamp": timestamp,
        })
        return RawTable(frame, notes=[f"synthetic MovieLens-like data: n={self.n}, seed={self.seed}, "
                                      f"{U} users, {I} items"])


def make_tiny_dataset(out_dir: str | Path, n: int = 2000, seed: int = 0, *, n_users: int | None = None,
                      n_items: int | None = None, name: str | None = None, min_count: int = 1,
                      force: bool = True) -> Path:
    """Generate `n` raw interactions and prepare them into `out_dir` (a prepared dataset directory).

    The dataset's name defaults to the directory's name, so `PreparedDataset(out_dir)` and
    `--processed-dir <parent> --dataset <name>` both find it. About 20% of the ratings are 3 and are
    dropped by preparation, so the prepared splits hold roughly 0.8 n samples. Returns `out_dir`.
    """
    from clickprompt.data.prepare import prepare

    out_dir = Path(out_dir)
    name = name or out_dir.name
    source = SyntheticMovieLens(n=n, seed=seed, n_users=n_users, n_items=n_items, name=name)
    prepare(name, out_dir.parent, out_dir, min_count=min_count, seed=seed, force=force, source=source)
    return out_dir
