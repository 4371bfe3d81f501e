"""Raw table -> prepared dataset (Sec 4.1.1, Appendix A).

Steps, all column-wise (pandas/numpy, no per-row Python):
  1. read the raw files with the source's reader (bad input -> one-line DataError)
  2. missing field values -> "unknown" (counted); exact duplicate interactions dropped (counted);
     repeated (user, item) pairs with different ratings/times are kept and counted
  3. drop neutral ratings, binarise: label = rating >= threshold (Appendix A)
  4. optional k-core filter on (user, item), iterated to a fixed point
  5. split 8:1:1 — global timestamp order (stable), or seeded random where the data has no time
  6. vocabularies from the training split only: id 0 = out-of-vocabulary, values seen at least
     `min_count` times get ids 1.. by descending frequency
  7. write train/valid/test Parquet (field values, ids, label, timestamp), vocab.parquet,
     schema.json (feature spec + fingerprint), stats.json (Table 1 columns + positive rate) —
     into a temporary directory renamed into place, so a crash never leaves half a dataset.
Preparing twice gives byte-identical files.

Scale (tens of millions of rows): each field is held as integer codes into its distinct values
(readers may hand over pandas categoricals, which are used as they are); stripping and filling
touch the distinct values only; duplicates, neutral ratings and the k-core only shrink an array of
kept row positions; vocabularies are `np.bincount`s over training codes; each split is written in
row groups straight from the codes. Memory is a few bytes per row per field, and no step runs
Python per row. See benchmarks/prepare_goodreads.py for measured time and memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clickprompt.data.schema import OOV_INDEX, FeatureSpec, Field
from clickprompt.data.sources import RawTable, Source, SourceSpec, get_source
from clickprompt.data.text import TEMPLATE, sample_text
from clickprompt.errors import DataError

SPLITS = ("train", "valid", "test")
MISSING_VALUE = "unknown"
WRITE_CHUNK_ROWS = 1 << 18  # rows per Parquet row group (bounds the memory of writing a split)


def id_column(field: str) -> str:
    return f"{field}__id"


def split_sizes(n: int) -> tuple[int, int, int]:
    """8:1:1 with validation = test = ceil(n/10): reproduces Table 1's ML-1M counts exactly
    (739,012 samples -> 591,208 / 73,902 / 73,902)."""
    n_eval = math.ceil(n / 10)
    return n - 2 * n_eval, n_eval, n_eval


def kcore_filter(frame: pd.DataFrame, user_col: str, item_col: str, k: int) -> pd.DataFrame:
    """Keep interactions whose user and item both have >= k interactions, iterated to a fixed point."""
    if k <= 1:
        return frame
    users = pd.factorize(frame[user_col], use_na_sentinel=False)[0]
    items = pd.factorize(frame[item_col], use_na_sentinel=False)[0]
    return frame[kcore_mask(users, items, k)]


def kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """The k-core on integer codes (>= 0) as a boolean row mask.

    Each round counts users and items with `np.bincount` over the surviving rows only and drops rows
    whose user or item has fewer than k; the arrays shrink every round, and the loop stops at the
    fixed point (which may be empty).
    """
    n = len(users)
    alive = np.arange(n)
    n_users = int(users.max()) + 1 if n else 0
    n_items = int(items.max()) + 1 if n else 0
    while len(alive):
        ok = np.bincount(users, minlength=n_users)[users] >= k
        ok &= np.bincount(items, minlength=n_items)[items] >= k
        if ok.all():
            break
        alive, users, items = alive[ok], users[ok], items[ok]
    keep = np.zeros(n, dtype=bool)
    keep[alive] = True
    return keep


def _smallest_int(n: int):
    """The smallest signed integer dtype holding codes 0..n-1 (pandas' rule for categorical codes)."""
    for dtype in (np.int8, np.int16, np.int32):
        if n < np.iinfo(dtype).max:
            return dtype
    return np.int64


def field_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """One field as (codes, distinct values, number of missing values).

    Values are stripped; missing or empty ones become MISSING_VALUE. All string work happens on the
    distinct values only (a categorical's categories, or `pd.factorize`'s uniques), so a column of
    tens of millions of rows costs a few integer passes. Returns codes (the smallest integer dtype)
    into `distinct`, an object array of str.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        uniques = values.cat.categories
    else:
        codes, uniques = pd.factorize(values)  # missing -> -1
    text = np.asarray(pd.Index(uniques).astype(str).str.strip(), dtype=object)
    empty = text == ""
    text[empty] = MISSING_VALUE
    remap, distinct = pd.factorize(text)  # merges values equal after stripping
    distinct = np.asarray(distinct, dtype=object)
    has_na = bool(len(codes)) and int(codes.min()) < 0
    n_missing = int(np.count_nonzero(np.append(empty, True)[codes])) if (has_na or empty.any()) else 0
    if has_na:
        hit = np.flatnonzero(distinct == MISSING_VALUE)
        if len(hit):
            na_code = int(hit[0])
        else:
            na_code, distinct = len(distinct), np.append(distinct, MISSING_VALUE).astype(object)
        remap = np.append(remap, na_code)  # code -1 reads the last entry
    elif np.array_equal(remap, np.arange(len(remap))):
        return codes, distinct, n_missing  # nothing to change: no copy
    dtype = _smallest_int(len(distinct))
    return remap.astype(dtype)[codes], distinct, n_missing


def _combined_codes(columns: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Dense codes (0..k-1) of the distinct row-wise combinations of the columns, and k.

    Field codes are used as they are (small non-negative integers), other columns factorized; the
    running key is multiplied by each column's cardinality and re-factorized only when the product
    could overflow int64; one final factorize makes the codes dense."""
    key, n = None, 1
    for col in columns:
        if col.dtype.kind in "iu" and len(col) and col.min() >= 0:
            codes, n_col = col.astype(np.int64, copy=False), int(col.max()) + 1
        else:
            codes, uniques = pd.factorize(col, use_na_sentinel=False)
            n_col = max(len(uniques), 1)
        if key is None:
            key, n = codes, n_col
            continue
        if n * n_col >= 2**62:
            key, uniques = pd.factorize(key)
            n = len(uniques)
        key, n = key * n_col + codes, n * n_col
    key, uniques = pd.factorize(key)
    return key, len(uniques)


class CleanTable:
    """The cleaned interactions, column-wise.

    `codes[c]` holds field c's integer codes into `values[c]` for every row read; `label` (int8) and
    `timestamp` (int64 or None) are per row read as well; `rows` are the positions that survive
    de-duplication, neutral-rating removal and the k-core, in file order. Nothing is copied per row
    until a split is taken.
    """

    def __init__(self, codes, values, label, timestamp, rows):
        self.codes: dict[str, np.ndarray] = codes
        self.values: dict[str, np.ndarray] = values
        self.label: np.ndarray = label
        self.timestamp: np.ndarray | None = timestamp
        self.rows: np.ndarray = rows

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self, positions: np.ndarray | None = None) -> pd.DataFrame:
        """The given row positions (default: the kept rows) as a DataFrame of categoricals."""
        pos = self.rows if positions is None else positions
        out = {c: pd.Categorical.from_codes(self.codes[c][pos], self.values[c], validate=False) for c in self.codes}
        out["label"] = self.label[pos]
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp[pos]
        return pd.DataFrame(out)


def clean_table(raw: RawTable, spec: SourceSpec, name: str) -> tuple[CleanTable, dict]:
    """Steps 2-4 of the module docstring, column-wise; returns the table and the report."""
    frame = raw.frame
    cols = [c for c, _ in spec.fields]
    missing = [c for c in cols + (["rating"] if spec.label_col is None else [spec.label_col]) if c not in frame]
    if missing:
        raise DataError(f"reader for {name!r} produced no column(s) {missing}")
    report: dict = {"rows_read": int(len(frame)), "skipped_while_reading": dict(raw.skipped)}
    codes, values, n_missing = {}, {}, {}
    for c in cols:
        codes[c], values[c], n = field_codes(frame[c])
        if n:
            n_missing[c] = n
    report["missing_values_filled_with_unknown"] = n_missing

    def column(c):  # a field's codes, or any other column as it is
        return codes[c] if c in codes else frame[c].to_numpy()

    key = [spec.user_col, spec.item_col] if {spec.user_col, spec.item_col} <= set(frame) else cols
    exact = key + [c for c in ("rating", "timestamp", spec.label_col) if c and c in frame]
    # Exact duplicates repeat their (user, item) key, so only rows of repeated keys are compared in full.
    pair, n_pairs = _combined_codes([codes[c] if c in codes else column(c) for c in key])
    repeated = np.bincount(pair, minlength=n_pairs)[pair] > 1
    del pair
    dup = np.zeros(len(frame), dtype=bool)
    sub = np.flatnonzero(repeated)
    if len(sub):
        dup[sub] = pd.DataFrame({f"k{j}": column(c)[sub] for j, c in enumerate(exact)}, copy=False).duplicated().to_numpy()
    report["exact_duplicates_dropped"] = int(dup.sum())
    keep = ~dup
    report["repeated_user_item_pairs_kept"] = int(len(frame) - dup.sum() - n_pairs)

    if spec.label_col is not None:
        labels = pd.to_numeric(frame[spec.label_col], errors="coerce").to_numpy()
        if not np.isin(labels[keep], [0, 1]).all():
            raise DataError(f"label column {spec.label_col!r} must hold only 0/1")
        report["neutral_dropped"] = 0
    else:
        rating = frame["rating"].to_numpy()
        neutral = keep & np.isin(rating, spec.neutral_ratings) if spec.neutral_ratings else np.zeros(len(keep), bool)
        report["neutral_dropped"] = int(neutral.sum())
        keep &= ~neutral
        labels = rating >= spec.label_threshold
    labels = np.asarray(labels).astype("int8")
    rows = np.flatnonzero(keep)

    if spec.kcore > 1:
        def dense(c):  # field codes are already small non-negative integers; other columns are factorized
            return codes[c][rows] if c in codes else pd.factorize(column(c)[rows], use_na_sentinel=False)[0]

        kept = kcore_mask(dense(spec.user_col), dense(spec.item_col), spec.kcore)
        report["kcore"] = {"k": spec.kcore, "dropped": int(len(rows) - kept.sum())}
        rows = rows[kept]
    if len(rows) < 3:
        raise DataError(
            f"only {len(rows)} usable interactions after cleaning (of {len(frame)} read); "
            "cannot make train/valid/test splits",
            raw.source_files[0] if raw.source_files else None,
        )
    timestamp = frame["timestamp"].to_numpy().astype("int64", copy=False) if "timestamp" in frame else None
    return CleanTable(codes, values, labels, timestamp, rows), report


def label_and_clean(raw: RawTable, spec: SourceSpec, name: str) -> tuple[pd.DataFrame, dict]:
    """`clean_table` materialised as one DataFrame (field columns as categoricals, label, timestamp)."""
    table, report = clean_table(raw, spec, name)
    return table.frame(), report


def split_positions(table: CleanTable, method: str, seed: int) -> dict[str, np.ndarray]:
    """Row positions of train/valid/test: global timestamp order (stable), or a seeded permutation."""
    n = len(table)
    if method == "time":
        if table.timestamp is None:
            raise DataError("split 'time' needs a timestamp column; use a random split for this source")
        order = np.argsort(table.timestamp[table.rows], kind="stable")  # ties keep file order
    elif method == "random":
        order = np.random.default_rng(seed).permutation(n)
    else:
        raise DataError(f"unknown split method {method!r} (time or random)")
    n_train, n_valid, _ = split_sizes(n)
    ordered = table.rows[order]
    parts = {
        "train": ordered[:n_train],
        "valid": ordered[n_train : n_train + n_valid],
        "test": ordered[n_train + n_valid :],
    }
    for name, part in parts.items():
        if len(part) == 0:
            raise DataError(f"the {name} split is empty ({n} interactions in all)")
    return parts


def split_frame(frame: pd.DataFrame, method: str, seed: int) -> dict[str, pd.DataFrame]:
    """`split_positions` for a DataFrame (field columns, label, optional timestamp)."""
    ts = frame["timestamp"].to_numpy() if "timestamp" in frame else None
    table = CleanTable({}, {}, None, ts, np.arange(len(frame)))
    return {k: frame.iloc[v].reset_index(drop=True) for k, v in split_positions(table, method, seed).items()}


def vocab_ids(train_codes: np.ndarray, values: np.ndarray, min_count: int) -> tuple[np.ndarray, pd.DataFrame]:
    """One field's vocabulary from its training codes: values seen >= min_count times get ids 1..
    by descending frequency, then value (UTF-8 byte order = code point order). Returns the lookup
    code -> id (OOV_INDEX for the rest) and the (value, id, count) rows."""
    counts = np.bincount(train_codes, minlength=len(values)) if len(train_codes) else np.zeros(len(values), np.int64)
    sel = np.flatnonzero(counts >= min_count)
    order = pc.sort_indices(
        pa.table({"n": pa.array(counts[sel]), "v": pa.array(values[sel], type=pa.string())}),
        sort_keys=[("n", "descending"), ("v", "ascending")],
    ).to_numpy()
    sel = sel[order]
    lookup = np.full(len(values), OOV_INDEX, dtype="int32")
    lookup[sel] = np.arange(1, len(sel) + 1, dtype="int32")
    rows = pd.DataFrame(
        {
            "value": pd.Series(values[sel], dtype=object).astype(str),
            "id": np.arange(1, len(sel) + 1, dtype="int32"),
            "count": counts[sel].astype("int64"),
        }
    )
    return lookup, rows


def _dense_unique(codes: np.ndarray, n_values: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(codes, return_inverse=True) for codes in [0, n_values), by counting when that is
    cheaper than sorting. Returns (used codes ascending, int32 positions of each code in them)."""
    if n_values > 4 * len(codes):
        used, inverse = np.unique(codes, return_inverse=True)
        return used, inverse.reshape(-1).astype("int32")
    used = np.flatnonzero(np.bincount(codes, minlength=n_values))
    position = np.zeros(n_values, dtype="int32")
    position[used] = np.arange(len(used), dtype="int32")
    return used, position[codes]


def _write_split(path: Path, table: CleanTable, pos: np.ndarray, cols, lookups, sorted_values, chunk: int):
    """Write one split in row groups of `chunk` rows: field strings, label, timestamp, ids.

    Field columns go to Parquet as dictionary pages built from the codes (each row group's
    dictionary holds only the values it uses, in value order, so the bytes do not depend on how the
    reader ordered its categories), and no per-row string is ever materialised; the Arrow schema is
    not stored, so readers see plain string columns. `sorted_values[c]` is (values in sorted order
    as Arrow, rank of each code). Returns the number of out-of-vocabulary ids per field."""
    oov = dict.fromkeys(cols, 0)
    writer = None
    try:
        for start in range(0, max(len(pos), 1), chunk):
            p = pos[start : start + chunk]
            data = {}
            for c in cols:
                ordered, rank = sorted_values[c]
                used, inverse = _dense_unique(rank[table.codes[c][p]], len(rank))
                data[c] = pa.DictionaryArray.from_arrays(pa.array(inverse), ordered.take(pa.array(used)))
            data["label"] = pa.array(table.label[p], type=pa.int8())
            if table.timestamp is not None:
                data["timestamp"] = pa.array(table.timestamp[p], type=pa.int64())
            for c in cols:
                ids = lookups[c][table.codes[c][p]]
                oov[c] += int(np.count_nonzero(ids == OOV_INDEX))
                data[id_column(c)] = pa.array(ids, type=pa.int32())
            batch = pa.table(data)
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema, store_schema=False)
            writer.write_table(batch, row_group_size=chunk)
    finally:
        if writer is not None:
            writer.close()
    return oov


def _atomic_replace(tmp: Path, out: Path) -> None:
    trash = out.with_name(out.name + f".old-{os.getpid()}")
    if out.exists():
        out.rename(trash)
    tmp.rename(out)
    if trash.exists():
        shutil.rmtree(trash)


def _remove_leftovers(out: Path) -> None:
    """Temporary folders of a prepare that was killed (`<out>.tmp-PID`, `<out>.old-PID`): removed, and said
    so. Called under the output's lock, so no live prepare owns them."""
    for leftover in sorted(out.parent.glob(f"{out.name}.tmp-*")) + sorted(out.parent.glob(f"{out.name}.old-*")):
        if leftover.is_dir():
            shutil.rmtree(leftover)
            print(f"note: removed {leftover}, left by an interrupted prepare", file=sys.stderr)


def _check_out_dir(out: Path, name: str, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError("is a file, not a directory; choose another --out", out)
    if not out.exists() or force:
        return
    schema = out / "schema.json"
    if schema.exists():
        other = json.loads(schema.read_text()).get("dataset")
        if other != name:
            raise DataError(f"holds prepared dataset {other!r}, not {name!r}; pass --force to replace it", out)
    elif any(out.iterdir()):
        raise DataError("is not empty and holds no prepared dataset; pass --force to replace it", out)


def prepare(
    name: str,
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    min_count: int = 1,
    seed: int = 0,
    force: bool = False,
    source: Source | None = None,
) -> dict:
    """Prepare dataset `name` from `raw_dir` into `out_dir`; returns the statistics dict. One prepare at a
    time per output folder (a lock beside it); `name` "table" takes the name its schema gives."""
    from clickprompt.rundir import RunLock

    source = (source or get_source(name)).bind(Path(raw_dir))
    if name == "table":
        name = source.name
    out = Path(out_dir)
    if min_count < 1:
        raise DataError(f"min_count must be >= 1, got {min_count}")
    _check_out_dir(out, name, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(out.parent / f".{out.name}.lock", str(out)):
        _remove_leftovers(out)
        _check_out_dir(out, name, force)  # again, now that no other prepare can be writing it
        return _prepare(name, source, Path(raw_dir), out, min_count=min_count, seed=seed)


def prepare_table(schema: str | Path, raw_dir: str | Path, out_dir: str | Path, **kwargs) -> dict:
    """Prepare the table a schema file describes; `kwargs` go to `prepare` (min_count, seed, force)."""
    from clickprompt.data.sources import source_for

    source = source_for("table", schema)
    return prepare(source.name, raw_dir, out_dir, source=source, **kwargs)


def _prepare(name: str, source: Source, raw_dir: Path, out: Path, *, min_count: int, seed: int) -> dict:
    spec = source.spec
    raw = source.read(raw_dir)
    table, report = clean_table(raw, spec, name)
    notes = list(raw.notes)
    encodings = dict(raw.encodings)
    del raw  # the reader's frame: only the codes, labels and timestamps are needed from here on
    parts = split_positions(table, spec.split, seed)
    cols = [c for c, _ in spec.fields]
    lookups, vocab_rows = {}, []
    for c in cols:
        lookups[c], rows = vocab_ids(table.codes[c][parts["train"]], table.values[c], min_count)
        vocab_rows.append(rows.assign(field=c)[["field", "value", "id", "count"]])
    vocab = pd.concat(vocab_rows, ignore_index=True)

    vocab_hash = hashlib.sha256(pd.util.hash_pandas_object(vocab, index=False).to_numpy().tobytes()).hexdigest()[:16]
    feature_spec = FeatureSpec(
        name, tuple(Field(c, d, len(r) + 1) for (c, d), r in zip(spec.fields, vocab_rows)), vocab_hash=vocab_hash
    )

    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    stats = {
        "dataset": name,
        "train": len(parts["train"]),
        "valid": len(parts["valid"]),
        "test": len(parts["test"]),
        "fields": feature_spec.num_fields,
        "features": feature_spec.num_features,
        "positive_rate": {k: round(float(table.label[v].mean()), 6) for k, v in parts.items()},
        "oov_rate": {},
        "split": (
            "global timestamp order, 8:1:1 (valid = test = ceil(n/10))"
            if spec.split == "time"
            else f"random permutation with seed {seed}, 8:1:1 (the data has no timestamps)"
        ),
        "label": (
            f"column {spec.label_col!r}"
            if spec.label_col
            else f"rating >= {spec.label_threshold:g}" + (f", ratings {list(spec.neutral_ratings)} dropped" if spec.neutral_ratings else "")
        ),
        "min_count": min_count,
        "report": report,
        "encodings": encodings,  # how each raw text file was decoded
        "notes": notes,
    }
    sorted_values = {}
    for c in cols:
        values = pa.array(table.values[c], type=pa.string())
        order = pc.sort_indices(values).to_numpy()
        rank = np.empty(len(order), dtype=_smallest_int(len(order) + 1))
        rank[order] = np.arange(len(order))
        sorted_values[c] = (values.take(pa.array(order)), rank)
    for split, pos in parts.items():
        oov = _write_split(tmp / f"{split}.parquet", table, pos, cols, lookups, sorted_values, WRITE_CHUNK_ROWS)
        stats["oov_rate"][split] = {c: round(oov[c] / len(pos), 6) for c in cols}
    vocab.to_parquet(tmp / "vocab.parquet", index=False)
    first = parts["train"][0]
    schema = {
        **feature_spec.to_dict(),
        "fingerprint": feature_spec.fingerprint,
        "template": TEMPLATE,
        "example_text": sample_text([d for _, d in spec.fields], [table.values[c][table.codes[c][first]] for c, _ in spec.fields]),
        "split": spec.split,
        "min_count": min_count,
        "seed": seed,
    }
    (tmp / "schema.json").write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    (tmp / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    _atomic_replace(tmp, out)
    return stats
