"""A positive control: synthetic click data whose answer lies in word meanings a PLM already knows.

    from clickprompt.data.control import ControlOptions, make_control_dataset, control_metrics
    path = make_control_dataset("data/processed/control", ControlOptions(item_mode="cold"))
    control_metrics(path, test_probs)     # AUC on all / cold test rows, next to the ceiling

Why it exists. On MovieLens-100K ClickPrompt does not beat its DCNv2 backbone on a CPU budget, and that
alone cannot say whether the method, the data, the PLM or the code is to blame. This dataset is built
so that the method *must* win if the code is right: the click depends on a relation that only the text
view shows and that the pretrained language model knows before it sees any click. If ClickPrompt with
the PLM does not clearly beat DCNv2 on the cold rows here, look at the code (or the training budget)
before blaming the method.

The world (all drawn from one seeded generator; the same options give byte-identical files):
  - `n_groups` semantic word groups (animals, food, sports, music, ...; WORD_GROUPS, strongest first),
    each 25-40 common English words that are single WordPiece tokens in MiniLM's uncased vocabulary.
    MiniLM's own embeddings separate them before any training: leave-one-out nearest-centroid accuracy
    (cosine) of the mean-pooled word embeddings is 1.00 over the default 6 groups and 0.997 over all 11
    (0.99 / 0.96 with [CLS] pooling); 97% of the default groups' words lie nearest their group's name
    word ("food" for "cheese"). `group_separation()` measures it for any PLM.
  - users (`n_users`) each with a favourite group, shown as the field "Interest is food ." (the group's
    name), plus two irrelevant fields, Gender and Age (noise);
  - items, each of one group, titled with `title_words` distinct words of that group
    ("Title is bread cheese honey ."); all titles are distinct, so the title, like the item id, is a
    categorical feature the CTR model knows only for items it saw in training (id 0 = OOV otherwise);
  - exposures: a user, then the user's favourite group with probability `match_share`, else one of the
    other groups uniformly, then an item of that group. The planted rule:
        logit = signal * (+1 if item group == user's interest else -1) + user bias + item bias
    (biases ~ N(0, bias_sd)), label ~ Bernoulli(sigmoid(logit)). Nothing else matters.
  - time: row i has timestamp T0 + 600 s * i, so `prepare`'s global-time 8:1:1 split is exactly the
    generation order (checked after preparing, row by row).

What the item mode plants in the validation and test periods (a share `target_share` of their rows
shows a "target" item; the others show the training period's warm items):
  - "cold": target items are NEW, never shown in training. Their id and title are out-of-vocabulary,
    so a CTR model sees only the user side and is at chance on them (AUC ~0.5: the user biases are
    small); the text view still says "Interest is food . Title is bread cheese honey .", and a PLM
    that knows bread and cheese are food can reach the ceiling. This is the positive control.
  - "rare": target items DO appear in training, 1..`rare_max` times each (a planted long tail), then
    in validation/test. The variant for asking whether text (and PA-MLM pretraining) makes the model
    better on rare items (Table 6's question), where ids carry a little but not much.
  - `heldout_words` > 0 reserves that share of each group's words for target items' titles, so their
    words never occur in a training-period title (in "rare" mode only in the rare items' 1..rare_max
    training rows). With the default 0, target titles reuse the training words in new combinations, and
    a text model could learn word -> group from the clicks alone; with held-out words only knowledge the
    PLM brought along can place the new words, which separates "text helps" from "pretraining helps".

Beside the prepared files (train/valid/test.parquet, vocab, schema.json, stats.json, written by the
normal `clickprompt.data.prepare.prepare` path through an in-memory Source), the directory holds the
ground truth the prepared format cannot:
  - control.json: the options, the word groups, and per split: rows, positive rate, share of target
    rows, share of rows by item status (warm / rare / cold, from the item's training-split count), and
    the CEILING: ROC AUC of the true click probabilities (sklearn), on all rows, target rows, the others;
  - oracle.parquet: split, row (position in that split's file), timestamp, p_click, target, item_status,
    item_group, user_group — row-aligned with the split files.
The whole directory is staged in a temporary folder beside `out_dir` and renamed into place, so a crash
never leaves a prepared dataset without its ground truth (or with an older one).

Default sizes suit a CPU: 10,000 rows (8,000 / 1,000 / 1,000), texts of about 30 tokens, so DCNv2
trains in seconds and MiniLM-L6 with prompts in minutes on 2 cores. Measured with the defaults (seed 0,
the `quick` profile as it is): test AUC on the cold rows 0.50 for DCNv2, 0.92 for ClickPrompt with the
frozen MiniLM (60 steps, ~1.5 min), ceiling 0.94; with heldout_words=0.5 and the PLM finetuned one epoch
0.92 against DCNv2's 0.45. Note that validation is mostly target rows, so early stopping on validation
AUC stops an ID-only model after a few epochs, before it learns the warm items' interaction either.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clickprompt.data.prepare import prepare, split_sizes
from clickprompt.data.sources.base import RawTable, Source, SourceSpec
from clickprompt.config import ConfigError
from clickprompt.errors import DataError

# Each list: common words that are one WordPiece token in MiniLM's uncased vocabulary, without words
# that also belong to another group or that MiniLM places nearer another group (checked with
# `group_separation`: e.g. jam, blues, navy, pilot, cap, sailing were dropped). Ordered strongest group first,
# so the default n_groups=6 uses the most cleanly separated ones.
WORD_GROUPS: dict[str, tuple[str, ...]] = {
    "animals": tuple("dog cat horse cow pig sheep goat lion tiger bear wolf fox rabbit deer mouse rat elephant "
                     "monkey zebra camel donkey kangaroo squirrel snake frog turtle whale dolphin shark owl eagle "
                     "duck goose parrot penguin otter beaver leopard rhino panda".split()),
    "food": tuple("bread cheese butter rice pasta pizza soup salad cake cookie pie sandwich burger steak bacon "
                  "sausage egg honey cereal toast potato beef pork fries chocolate candy dessert flour sugar cream "
                  "noodles onion garlic tomato".split()),
    "sports": tuple("football soccer tennis golf baseball basketball hockey cricket rugby boxing wrestling cycling "
                    "swimming skiing skating volleyball surfing rowing archery fencing karate judo marathon "
                    "polo badminton snooker bowling climbing diving gymnastics softball lacrosse handball".split()),
    "music": tuple("guitar piano violin drums flute trumpet saxophone cello harp melody rhythm song chorus concert "
                   "orchestra symphony jazz opera choir tune album lyrics harmony tempo banjo clarinet trombone "
                   "singer ballad".split()),
    "weather": tuple("rain snow wind storm thunder lightning fog clouds hail sunshine frost blizzard hurricane "
                     "tornado breeze humidity temperature forecast monsoon drought flood mist rainfall snowfall "
                     "cyclone".split()),
    "vehicles": tuple("car truck bus train bicycle motorcycle van taxi tractor ambulance jeep tram subway airplane "
                      "helicopter boat ship yacht ferry wagon limousine sedan trailer locomotive canoe "
                      "submarine".split()),
    "clothing": tuple("shirt jacket coat dress skirt trousers pants jeans sweater hat scarf gloves socks shoes "
                      "boots sandals belt vest blouse suit uniform pajamas shorts sneakers gown robe apron".split()),
    "body": tuple("head arm leg hand foot finger toe knee elbow shoulder neck chest stomach ear eye nose mouth lip "
                  "tooth tongue heart lung liver brain skin hair wrist ankle hip spine".split()),
    "countries": tuple("france germany italy spain china japan india brazil canada mexico russia egypt kenya "
                       "nigeria greece turkey poland sweden norway denmark finland ireland portugal chile peru "
                       "argentina australia vietnam thailand korea".split()),
    "colors": tuple("red blue green yellow orange purple pink brown black white gray violet crimson scarlet "
                    "turquoise beige maroon ivory indigo lavender gold silver amber emerald olive bronze copper "
                    "tan".split()),
    "jobs": tuple("doctor nurse teacher lawyer engineer farmer chef baker carpenter dentist police scientist painter "
                  "writer judge banker waiter barber accountant architect surgeon manager clerk professor "
                  "butcher detective journalist priest secretary photographer".split()),
}  # fmt: skip

FIELDS: tuple[tuple[str, str], ...] = (  # (column, display name in the text template), in template order
    ("user_id", "User ID"),
    ("gender", "Gender"),
    ("age", "Age"),
    ("interest", "Interest"),
    ("item_id", "Item ID"),
    ("title", "Title"),
)
FIELD_NAMES: tuple[str, ...] = tuple(c for c, _ in FIELDS)
ITEM_MODES = ("cold", "rare")
STATUSES = ("warm", "rare", "cold")
T0 = 1_600_000_000  # first timestamp (2020-09-13); rows are 600 s apart
STEP_S = 600
FORMAT = "clickprompt-control/1"


@dataclass(frozen=True)
class ControlOptions:
    """Everything that defines a control dataset; the same options give byte-identical files."""

    n: int = 10_000  # interactions (all kept: train/valid/test = n - 2 ceil(n/10), ceil(n/10), ceil(n/10))
    n_users: int = 300  # users, active over the whole period, so nearly all are warm in valid/test
    n_items: int | None = None  # items of the training period; None = n // 12 (~10 training rows each)
    n_groups: int = 6  # the first n_groups of WORD_GROUPS (at most 11)
    title_words: int = 3  # distinct words of the item's group per title
    signal: float = 2.5  # +-signal for a match / mismatch: ceiling AUC ~0.94 (p_click ~0.92 vs ~0.08)
    bias_sd: float = 0.3  # standard deviation of the user and the item logit biases
    match_share: float = 0.5  # share of exposures from the user's favourite group (positive rate ~0.5)
    item_mode: str = "cold"  # "cold": valid/test target items are new; "rare": seen 1..rare_max times in train
    target_share: float = 0.8  # share of valid/test rows showing a target item
    rare_max: int = 3  # "rare": each target item has 1..rare_max training rows (uniform)
    eval_exposures: int = 4  # valid+test rows per target item, on average (sets the number of target items)
    heldout_words: float = 0.0  # share of each group's words used only in target items' titles
    fields: tuple[str, ...] = FIELD_NAMES  # the fields to include (always in FIELDS order)
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "fields", tuple(self.fields))
        if self.n < 100:
            raise ConfigError(f"n must be at least 100 interactions, got {self.n}")
        if self.n_users < 1:
            raise ConfigError(f"n_users must be >= 1, got {self.n_users}")
        if not 2 <= self.n_groups <= len(WORD_GROUPS):
            raise ConfigError(f"n_groups must be in 2..{len(WORD_GROUPS)}, got {self.n_groups}")
        if self.n_items is not None and self.n_items < self.n_groups:
            raise ConfigError(f"n_items must be >= n_groups ({self.n_groups}), got {self.n_items}")
        if self.title_words < 1:
            raise ConfigError(f"title_words must be >= 1, got {self.title_words}")
        if self.item_mode not in ITEM_MODES:
            raise ConfigError(f"item_mode must be one of {ITEM_MODES}, got {self.item_mode!r}")
        for key in ("match_share", "target_share"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key} must be in [0, 1], got {getattr(self, key)}")
        if not 0.0 <= self.heldout_words < 1.0:
            raise ConfigError(f"heldout_words must be in [0, 1), got {self.heldout_words}")
        if self.rare_max < 1 or self.eval_exposures < 1:
            raise ConfigError("rare_max and eval_exposures must be >= 1")
        if self.bias_sd < 0:
            raise ConfigError(f"bias_sd must be >= 0, got {self.bias_sd}")
        unknown = [f for f in self.fields if f not in FIELD_NAMES]
        if unknown or not self.fields or len(set(self.fields)) != len(self.fields):
            raise ConfigError(f"fields must be distinct names from {list(FIELD_NAMES)}, got {list(self.fields)}")

    @property
    def items(self) -> int:
        return self.n_items if self.n_items is not None else max(self.n_groups, self.n // 12)

    @property
    def groups(self) -> list[str]:
        return list(WORD_GROUPS)[: self.n_groups]

    @property
    def spec_fields(self) -> tuple[tuple[str, str], ...]:
        return tuple((c, d) for c, d in FIELDS if c in self.fields)


DEFAULTS = ControlOptions()
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ControlOptions))  # CLI: one flag each


def _titles(rng, pools: list[list[str]], item_groups: np.ndarray, k: int, taken: set[str], names) -> list[str]:
    """A distinct title of k distinct words from its group's pool per item (resampled on a repeat)."""
    out = []
    for g in item_groups:
        pool = pools[g]
        n_items = int(np.count_nonzero(item_groups == g))
        if len(pool) < k or math.comb(len(pool), k) < 2 * n_items:  # room enough that resampling ends soon
            raise ConfigError(f"group {names[g]!r}: {len(pool)} words make too few distinct {k}-word titles for "
                             f"{n_items} items; change title_words, heldout_words or the number of items")
        while True:
            title = " ".join(pool[j] for j in rng.choice(len(pool), k, replace=False))
            if title not in taken:
                taken.add(title)
                out.append(title)
                break
    return out


class ControlWorld:
    """The generated world: the raw table plus the truth behind every row (`truth`, in row order)."""

    def __init__(self, options: ControlOptions):
        o = self.options = options
        rng = np.random.default_rng(o.seed)
        G, U, n = o.n_groups, o.n_users, o.n
        n_train, n_valid, n_test = split_sizes(n)
        split = np.repeat(np.array(["train", "valid", "test"], dtype=object), [n_train, n_valid, n_test])
        row = np.concatenate([np.arange(n_train), np.arange(n_valid), np.arange(n_test)])

        # words: per group, the shared words and (with heldout_words) those only target titles use
        shared, heldout = [], []
        for g in o.groups:
            words = list(WORD_GROUPS[g])
            k = int(round(o.heldout_words * len(words)))
            order = rng.permutation(len(words)) if k else np.arange(len(words))
            shared.append([words[j] for j in sorted(order[: len(words) - k])])
            heldout.append([words[j] for j in sorted(order[len(words) - k :])] if k else shared[-1])
        self.shared_words, self.heldout_words = shared, heldout

        # users: a favourite group (balanced), irrelevant side fields, a bias
        fav = rng.permutation(np.arange(U) % G)
        gender = rng.choice(np.array(["male", "female"], dtype=object), U)
        age = rng.integers(18, 66, U)
        u_bias = rng.normal(0.0, o.bias_sd, U)

        # exposures: user, then group (favourite with probability match_share)
        user = rng.integers(0, U, n)
        match = rng.random(n) < o.match_share
        group = np.where(match, fav[user], (fav[user] + rng.integers(1, G, n)) % G)  # others uniformly
        target_row = (np.arange(n) >= n_train) & (rng.random(n) < o.target_share)

        # items: warm ones (ids 0..W-1), then target ones; groups balanced, in random order
        W = o.items
        warm_group = rng.permutation(np.arange(W) % G)
        n_target_g = [max(1, math.ceil(np.count_nonzero(target_row & (group == g)) / o.eval_exposures))
                      for g in range(G)]
        target_group = rng.permutation(np.repeat(np.arange(G), n_target_g))
        T = len(target_group)
        item = np.full(n, -1, dtype=np.int64)
        warm_of = [np.flatnonzero(warm_group == g) for g in range(G)]
        target_of = [W + np.flatnonzero(target_group == g) for g in range(G)]
        if o.item_mode == "rare":  # plant each target item in 1..rare_max training rows of its group
            train_rows_of = [rng.permutation(np.flatnonzero((np.arange(n) < n_train) & (group == g))) for g in range(G)]
            for g in range(G):
                counts = rng.integers(1, o.rare_max + 1, len(target_of[g]))
                if counts.sum() > len(train_rows_of[g]) // 2:
                    raise ConfigError(f"too few training rows of group {g} to plant {len(target_of[g])} rare items; "
                                     "raise n or lower target_share / rare_max")
                item[train_rows_of[g][: counts.sum()]] = np.repeat(target_of[g], counts)
        for g in range(G):
            free = (group == g) & (item < 0) & ~target_row
            item[free] = rng.choice(warm_of[g], int(free.sum()))
            tgt = (group == g) & target_row
            item[tgt] = rng.choice(target_of[g], int(tgt.sum()))
        taken: set[str] = set()
        titles = _titles(rng, shared, warm_group, o.title_words, taken, o.groups) + _titles(
            rng, heldout, target_group, o.title_words, taken, o.groups)
        i_bias = rng.normal(0.0, o.bias_sd, W + T)

        # the planted rule
        same = group == fav[user]
        logit = o.signal * np.where(same, 1.0, -1.0) + u_bias[user] + i_bias[item]
        p_click = 1.0 / (1.0 + np.exp(-logit))
        label = (rng.random(n) < p_click).astype(np.int64)

        train_count = np.bincount(item[:n_train], minlength=W + T)[item]
        status = np.where(train_count == 0, "cold", np.where(train_count <= o.rare_max, "rare", "warm")).astype(object)
        self.n_warm_items, self.n_target_items = W, T
        names = np.asarray(o.groups, dtype=object)
        values = {
            "user_id": (user + 1).astype(str).astype(object),
            "gender": gender[user],
            "age": age[user].astype(str).astype(object),
            "interest": names[fav[user]],
            "item_id": (item + 1).astype(str).astype(object),
            "title": np.asarray(titles, dtype=object)[item],
        }
        self.timestamp = T0 + STEP_S * np.arange(n, dtype=np.int64)
        self.frame = pd.DataFrame({**{c: values[c] for c in o.fields}, "label": label, "timestamp": self.timestamp})
        self.truth = pd.DataFrame({
            "split": split, "row": row.astype(np.int64), "timestamp": self.timestamp, "label": label.astype(np.int8),
            "p_click": p_click, "target": target_row, "item_status": status,
            "item_group": names[group], "user_group": names[fav[user]],
        })


class ControlSource(Source):
    """In-memory source: `read()` ignores its directory and returns the generated raw table."""

    def __init__(self, options: ControlOptions = DEFAULTS, name: str = "control"):
        self.name = name
        self.options = options
        self.spec = SourceSpec(fields=options.spec_fields, rating_range=(0.0, 1.0), label_threshold=1.0,
                               split="time", label_col="label")
        self._world: ControlWorld | None = None

    @property
    def world(self) -> ControlWorld:
        if self._world is None:
            self._world = ControlWorld(self.options)
        return self._world

    def read(self, raw_dir: Path | None = None) -> RawTable:
        o, w = self.options, self.world
        note = (f"synthetic positive control ({FORMAT}): n={o.n}, seed={o.seed}, item_mode={o.item_mode}, "
                f"signal={o.signal:g}, {o.n_groups} word groups, {o.n_users} users, "
                f"{w.n_warm_items} + {w.n_target_items} items; ground truth in control.json / oracle.parquet")
        return RawTable(w.frame.copy(), notes=[note])


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(labels) == 0 or labels.min() == labels.max():
        return None
    return round(float(roc_auc_score(labels, scores)), 6)


def _options_record(o: "ControlOptions") -> dict:
    """The options as control.json records them (JSON types; n_items resolved)."""
    return json.loads(json.dumps(dataclasses.asdict(o) | {"fields": list(o.fields), "n_items": o.items}))


def _summary(world: ControlWorld, name: str) -> dict:
    o, t = world.options, world.truth
    splits = {}
    for s in ("train", "valid", "test"):
        part = t[t["split"] == s]
        y, p, tgt = part["label"].to_numpy(), part["p_click"].to_numpy(), part["target"].to_numpy()
        splits[s] = {
            "rows": int(len(part)),
            "positive_rate": round(float(y.mean()), 6),
            "target_share": round(float(tgt.mean()), 6),
            "status_share": {k: round(float((part["item_status"] == k).mean()), 6) for k in STATUSES},
            "ceiling_auc": {"all": _auc(y, p), "target": _auc(y[tgt], p[tgt]), "non_target": _auc(y[~tgt], p[~tgt])},
        }
    return {
        "format": FORMAT,
        "dataset": name,
        "options": _options_record(o),
        "fields": [list(f) for f in o.spec_fields],
        "rule": "logit = signal * (+1 if item group == user's interest else -1) + user bias + item bias; "
                "label ~ Bernoulli(sigmoid(logit))",
        "target_items": ("new items, never in the training split" if o.item_mode == "cold"
                         else f"items with 1..{o.rare_max} training rows"),
        "items": {"warm": world.n_warm_items, "target": world.n_target_items},
        "groups": {g: {"words": list(world.shared_words[i]),
                       "heldout_words": list(world.heldout_words[i]) if o.heldout_words else []}
                   for i, g in enumerate(o.groups)},
        "splits": splits,
        "ceiling": "ROC AUC of the true click probabilities (oracle.parquet p_click) on that split's rows",
    }


def _check_alignment(stage: Path, truth: pd.DataFrame) -> None:
    """The prepared split files must be the generated rows in generation order (timestamps and labels)."""
    for s in ("train", "valid", "test"):
        got = pd.read_parquet(stage / f"{s}.parquet", columns=["timestamp", "label"])
        want = truth[truth["split"] == s]
        if len(got) != len(want) or not (np.array_equal(got["timestamp"].to_numpy(), want["timestamp"].to_numpy())
                                         and np.array_equal(got["label"].to_numpy(), want["label"].to_numpy())):
            raise DataError(f"the prepared {s} split is not aligned with the generated rows", stage)


def make_control_dataset(out_dir: str | Path, options: ControlOptions | None = None, *, name: str | None = None,
                         force: bool = True, **changes) -> Path:
    """Generate a control dataset and prepare it into `out_dir`, with control.json and oracle.parquet.

    `options` defaults to DEFAULTS; keyword `changes` replace single options (`n=4000, item_mode="rare"`;
    an unknown one raises TypeError). The dataset's name defaults to the directory's name, so
    `PreparedDataset(out_dir)` and `--processed-dir <parent> --dataset <name>` both find it. Without
    `force`, an existing non-empty `out_dir` is refused. Returns `out_dir`.
    """
    options = dataclasses.replace(options or DEFAULTS, **changes)
    out = Path(out_dir)
    name = name or out.name
    if out.exists() and not force and any(out.iterdir()):
        raise DataError("exists and is not empty; pass force=True (--force) to replace it", out)
    if out.exists() and not out.is_dir():
        raise DataError("is a file, not a directory", out)
    source = ControlSource(options, name)
    work = out.with_name(f".{out.name}.control-{os.getpid()}")  # all temporary files (prepare's too) live here
    stage = work / out.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        prepare(name, work, stage, min_count=1, seed=options.seed, force=True, source=source)
        truth = source.world.truth
        _check_alignment(stage, truth)
        _write_atomic(stage / "control.json",
                      (json.dumps(_summary(source.world, name), indent=2, ensure_ascii=False) + "\n").encode())
        tmp = stage / ".oracle.parquet.tmp"
        truth.drop(columns=["label"]).reset_index(drop=True).to_parquet(tmp, index=False)
        os.replace(tmp, stage / "oracle.parquet")
        if out.exists():
            out.rename(work / ".replaced")
        stage.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def ensure_control_dataset(out_dir: str | Path, options: "ControlOptions") -> Path:
    """The control dataset with these options in `out_dir`: kept when control.json records the same
    options (generation is deterministic, so it would be rewritten byte for byte), generated otherwise."""
    path = Path(out_dir) / "control.json"
    if path.exists():
        try:
            if json.loads(path.read_text()).get("options") == _options_record(options):
                return Path(out_dir)
        except ValueError:
            pass
    return make_control_dataset(out_dir, options, force=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_control(dataset_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """(control.json, oracle.parquet) of a control dataset directory."""
    d = Path(dataset_dir)
    if not (d / "control.json").exists():
        raise DataError("not a control dataset (control.json missing); make one with make_control_dataset", d)
    return json.loads((d / "control.json").read_text()), pd.read_parquet(d / "oracle.parquet")


def control_metrics(dataset_dir: str | Path, probs, split: str = "test") -> dict:
    """AUC of a model's probabilities on a split's rows (in the split file's order: e.g. a run's
    predictions_test.parquet) on all, target and non-target rows, each next to the ceiling."""
    control, oracle = read_control(dataset_dir)
    part = oracle[oracle["split"] == split].sort_values("row")
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(probs) != len(part):
        raise ValueError(f"{len(probs)} probabilities for the {len(part)} rows of the {split} split")
    labels = pd.read_parquet(Path(dataset_dir) / f"{split}.parquet", columns=["label"])["label"].to_numpy()
    tgt = part["target"].to_numpy()
    return {
        "auc": {"all": _auc(labels, probs), "target": _auc(labels[tgt], probs[tgt]),
                "non_target": _auc(labels[~tgt], probs[~tgt])},
        "ceiling_auc": control["splits"][split]["ceiling_auc"],
        "target_rows": int(tgt.sum()),
        "item_mode": control["options"]["item_mode"],
    }


def group_separation(plm: str = "minilm-l6", n_groups: int | None = None, pooling: str = "mean",
                     template: str = "{}") -> dict:
    """How well a PLM's own embeddings separate the word groups, before any training: leave-one-out
    nearest-centroid accuracy (cosine) of each word's pooled last hidden state ("mean" over all tokens,
    or "cls"), overall and per group, the share of words nearest their group's name word, and the words
    the tokenizer splits into several tokens (none for MiniLM). Needs the PLM's weights.
    all-MiniLM-L6-v2: 1.00 (6 groups) / 0.997 (11) with mean pooling, 0.99 / 0.96 with cls."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from clickprompt.plm import resolve_plm

    path = resolve_plm(plm)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    names = list(WORD_GROUPS)[: n_groups or len(WORD_GROUPS)]
    words = [w for g in names for w in WORD_GROUPS[g]]
    labels = np.repeat(np.arange(len(names)), [len(WORD_GROUPS[g]) for g in names])

    def embed(texts):
        enc = tok([template.format(t) for t in texts], padding=True, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state  # (N, T, H)
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)  # (N, T, 1)
        e = (h * m).sum(1) / m.sum(1) if pooling == "mean" else h[:, 0]  # (N, H)
        return torch.nn.functional.normalize(e, dim=-1).numpy()

    E, N = embed(words), embed(names)
    sums = np.stack([E[labels == g].sum(0) for g in range(len(names))])  # (G, H)
    own = labels[:, None] == np.arange(len(names))[None]  # (N, G): each word's own group
    C = sums[None] - own[..., None] * E[:, None]  # (N, G, H): group sums without the word (leave-one-out)
    C /= np.linalg.norm(C, axis=-1, keepdims=True)  # the centroids' directions (cosine: the scale is moot)
    ok = np.einsum("ngh,nh->ng", C, E).argmax(1) == labels
    return {
        "plm": plm, "pooling": pooling, "template": template, "words": len(words),
        "loo_centroid_accuracy": round(float(ok.mean()), 4),
        "per_group": {g: round(float(ok[labels == i].mean()), 4) for i, g in enumerate(names)},
        "misplaced": [words[i] for i in np.flatnonzero(~ok)],
        "nearest_name_accuracy": round(float(((E @ N.T).argmax(1) == labels).mean()), 4),
        "multi_token_words": [w for w in words + names if len(tok.tokenize(w)) != 1],
    }
