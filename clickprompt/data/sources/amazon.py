"""Amazon-Toys reader (Amazon review data, 2018 release by Ni et al.; the 2014 files work too).

Interactions, the first found of:
  * reviews JSON lines `Toys_and_Games.json[.gz]` (`reviewerID, asin, overall, unixReviewTime, ...`),
  * ratings-only CSV `Toys_and_Games.csv` (`item,user,rating,timestamp`, no header),
  * the 5-core reviews `Toys_and_Games_5.json[.gz]`, or the 2014 `reviews_Toys_and_Games[_5].json.gz`
    / `ratings_Toys_and_Games.csv` (`user,item,rating,timestamp`: the 2014 CSV puts the user first).
Metadata JSON lines `meta_Toys_and_Games.json[.gz]` (`asin, title, brand, category[]`; the 2014
file's `categories[[...]]`). The 2018 files are strict JSON and are parsed by Arrow; the 2014
metadata (and some 2018 re-uploads) are Python dict literals (`{'asin': '...'}`): those lines are
read with `ast.literal_eval`, one metadata line each (the metadata is hundreds of thousands of items,
not the tens of millions of interactions), and counted in the notes. A line that is neither is skipped
and counted.

Fields (5, Table 1, names as in the authors' code): User ID, Item ID, Category, Title, Brand.
Category is the item's most specific category (the last of the `category` list; "Toys & Games", the
first, is shared by nearly all items). Items without metadata are kept with "unknown" and counted;
duplicate metadata rows for one asin keep the first. Titles and brands are HTML-unescaped.
Labels (Appendix A): 5-core filter on (user, item), label rating >= 4; split by unixReviewTime.
"""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clickprompt.data.sources.base import RawTable, Source, SourceSpec
from clickprompt.data.sources.table import (
    DICT,
    BadLines,
    arrow_error,
    first_unique,
    locate_any,
    lookup,
    read_csv,
    scan_json,
    take_categorical,
    to_categorical,
    undecodable_error,
    unescape_html,
)
from clickprompt.errors import DataError

AMAZON_FIELDS = (
    ("user_id", "User ID"),
    ("item_id", "Item ID"),
    ("category", "Category"),
    ("title", "Title"),
    ("brand", "Brand"),
)
AMAZON_SPEC = SourceSpec(fields=AMAZON_FIELDS, rating_range=(1, 5), label_threshold=4, split="time", kcore=5)


def _names(stem: str) -> tuple[str, ...]:
    out = []
    for base in (stem, f"{stem}_5", f"reviews_{stem}", f"reviews_{stem}_5"):
        out += [f"{base}.json.gz", f"{base}.json"]
        if base == stem:
            out += [f"{stem}.csv", f"{stem}.csv.gz", f"ratings_{stem}.csv", f"ratings_{stem}.csv.gz"]
    return tuple(out)


REVIEW_SCHEMA = pa.schema([("reviewerID", pa.string()), ("asin", pa.string()), ("overall", pa.float64()),
                           ("unixReviewTime", pa.int64())])  # fmt: skip
META_SCHEMA = pa.schema([("asin", pa.string()), ("title", pa.string()), ("brand", pa.string()),
                         ("category", pa.list_(pa.string()))])  # fmt: skip


class AmazonReviews(Source):
    """One category of the Amazon review data; registered as `amazon-toys` (Toys_and_Games)."""

    spec = AMAZON_SPEC

    def __init__(self, name: str = "amazon-toys", stem: str = "Toys_and_Games"):
        self.name = name
        self.stem = stem
        self.interaction_names = _names(stem)
        self.meta_names = (f"meta_{stem}.json.gz", f"meta_{stem}.json")
        self.required_files = (f"{stem}.json.gz", f"meta_{stem}.json.gz")
        self.manual_instructions = (
            f"request the Amazon review data (2018) at https://nijianmo.github.io/amazon/ and put {stem}.json.gz "
            f"(or {stem}.csv, or {stem}_5.json.gz) and meta_{stem}.json.gz into the raw directory"
        )

    def read(self, raw_dir: Path) -> RawTable:
        paths = locate_any(self, raw_dir, {"reviews": self.interaction_names, "meta": self.meta_names})
        skipped: dict[str, int] = {}
        notes: list[str] = [f"interactions from {paths['reviews'].name}, metadata from {paths['meta'].name}"]
        frame = self._interactions(paths["reviews"], skipped)
        meta = self._metadata(paths["meta"], skipped, notes)

        key = meta.pop("asin")
        index, rows, dup = first_unique(key)
        if dup:
            notes.append(f"{dup:,} duplicate metadata rows ignored after the first row of their asin")
        side, absent = lookup(frame["item_id"].array, index, {k: take_categorical(v, rows) for k, v in meta.items()})
        if absent:
            notes.append(f"{absent:,} interactions name an item without metadata: kept, category/title/brand 'unknown'")
        out = pd.DataFrame({"user_id": frame["user_id"], "item_id": frame["item_id"], **side,
                            "rating": frame["rating"], "timestamp": frame["timestamp"]}, copy=False)  # fmt: skip
        return RawTable(out, skipped=skipped, notes=notes, source_files=[str(p) for p in paths.values()])

    def _interactions(self, path: Path, skipped: dict) -> pd.DataFrame:
        if ".csv" in path.name:  # 2018: item,user,rating,timestamp; 2014 (ratings_*.csv): user,item,...
            cols = ["user", "item"] if path.name.startswith("ratings_") else ["item", "user"]
            cols += ["rating", "timestamp"]
            types = {"item": DICT, "user": DICT, "rating": pa.string(), "timestamp": pa.string()}
            table, bad = read_csv(path, cols, types, header=False, names=cols)
            if bad:
                skipped[f"{path.name}: wrong number of columns"] = len(bad)
            user, item = table.column("user"), table.column("item")
            rating = _numbers(table.column("rating"), path, "rating", pa.float64())
            ts = _numbers(table.column("timestamp"), path, "timestamp", pa.int64())
        else:
            table = scan_json(path, REVIEW_SCHEMA, encode=("reviewerID", "asin"))
            user, item = table.column("reviewerID"), table.column("asin")
            rating, ts = table.column("overall"), table.column("unixReviewTime")
        if len(table) == 0:
            raise DataError("holds no interactions", path)
        n_missing = max(user.null_count, item.null_count, rating.null_count, ts.null_count)
        if n_missing:
            raise DataError(f"{n_missing} interaction(s) lack a user, item, rating or time", path)
        rating = rating.to_numpy().astype("float64")
        lo, hi = self.spec.rating_range
        bad = (rating < lo) | (rating > hi)
        if bad.any():
            n_bad = int(bad.sum())
            raise DataError(f"rating {rating[bad][0]:g} out of range [{lo:g}, {hi:g}] ({n_bad} such rows)", path)
        return pd.DataFrame({
            "user_id": to_categorical(user), "item_id": to_categorical(item),
            "rating": rating, "timestamp": ts.to_numpy().astype("int64"),
        }, copy=False)  # fmt: skip

    def _metadata(self, path: Path, skipped: dict, notes: list) -> dict[str, pd.Categorical]:
        try:
            table = scan_json(path, META_SCHEMA, encode=("asin", "title", "brand"))
            asin, title, brand = table.column("asin"), table.column("title"), table.column("brand")
            last = _last_category(table.column("category"))
            meta = {"asin": to_categorical(asin), "title": to_categorical(title), "brand": to_categorical(brand),
                    "category": to_categorical(last)}  # fmt: skip
        except DataError as e:
            if "parse error" not in str(e).lower() and "missing a name" not in str(e).lower():
                raise
            meta = _metadata_lines(path, skipped, notes)
        meta["title"] = unescape_html(meta["title"])
        meta["brand"] = unescape_html(meta["brand"])
        meta["category"] = unescape_html(meta["category"])
        return meta


def _last_category(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """The last element of each category list (null where the list is missing or empty)."""
    out = []
    for chunk in col.chunks:
        lengths = pc.fill_null(pc.list_value_length(chunk), 0).to_numpy(zero_copy_only=False)
        offsets = chunk.offsets.to_numpy()[:-1]
        values = chunk.values
        idx = np.where(lengths > 0, offsets + lengths - 1, 0)
        taken = values.take(pa.array(idx)) if len(values) else pa.nulls(len(chunk), pa.string())
        out.append(pc.if_else(pa.array(lengths > 0), taken, pa.scalar(None, pa.string())))
    return pa.chunked_array(out, type=pa.string())


def _numbers(col, path: Path, what: str, typ) -> pa.ChunkedArray:
    text = pc.utf8_trim_whitespace(col)
    try:
        return text.cast(pa.float64()).cast(typ) if typ == pa.int64() else text.cast(typ)
    except pa.ArrowInvalid:
        s = pd.to_numeric(pd.Series(text.to_numpy(zero_copy_only=False)), errors="coerce")
        first = text[int(np.flatnonzero(s.isna().to_numpy())[0])].as_py()
        raise DataError(f"{what} {first!r} is not a number", path) from None


def _metadata_lines(path: Path, skipped: dict, notes: list) -> dict[str, pd.Categorical]:
    """Metadata that is not strict JSON: each line as JSON, else as a Python dict literal."""
    asin, title, brand, category = [], [], [], []
    n_literal = 0
    bad = BadLines()
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    d = json.loads(line)
                except ValueError:
                    try:
                        d = ast.literal_eval(line)
                        n_literal += 1
                    except (ValueError, SyntaxError, MemoryError, RecursionError):
                        d = None
                if not isinstance(d, dict) or not d.get("asin"):
                    bad.add(line)
                    continue
                cats = d.get("category", d.get("categories"))
                if isinstance(cats, list) and cats and isinstance(cats[0], list):  # 2014: [["Toys & Games", ...], ...]
                    cats = cats[0]
                asin.append(str(d["asin"]))
                title.append(_text(d.get("title")))
                brand.append(_text(d.get("brand")))
                category.append(_text(cats[-1]) if isinstance(cats, list) and cats else None)
    except UnicodeDecodeError:
        raise undecodable_error(path, "utf-8") from None
    except (OSError, EOFError) as e:
        raise arrow_error(e, path) from None
    if not asin:
        raise DataError("holds no metadata line with an asin", path)
    if n_literal:
        notes.append(f"{path.name}: {n_literal:,} metadata line(s) are Python dict literals, read with ast.literal_eval")
    if bad:
        skipped[f"{path.name}: metadata line neither JSON nor a dict literal with an asin"] = len(bad)
        notes.append(bad.note(path, "neither JSON nor a dict literal with an asin"))
    cat = lambda xs: pd.Categorical(pd.Series(xs, dtype=object))  # noqa: E731
    return {"asin": cat(asin), "title": cat(title), "brand": cat(brand), "category": cat(category)}


def _text(v) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)
