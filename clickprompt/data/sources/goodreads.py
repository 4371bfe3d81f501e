"""GoodReads reader (UCSD Book Graph, Wan & McAuley 2018; https://mengtingwan.github.io/data/goodreads.html).

Files (JSON lines, plain or .gz), all in one directory:
  * interactions `goodreads_interactions_dedup.json` (`user_id, book_id, review_id, is_read, rating,
    date_added, ...`; about 229M lines); rating 0 means shelved but not rated: those rows are dropped
    and counted, as are rows whose `date_added` ("Sun Jul 30 07:44:10 -0700 2017") does not parse;
  * books `goodreads_books.json` (`book_id, title, average_rating, text_reviews_count,
    authors[{author_id, role}], num_pages, is_ebook, format, publisher, publication_year, work_id, ...`);
  * genres `goodreads_book_genres_initial.json` (`{book_id, genres: {name: count}}`);
  * authors `goodreads_book_authors.json` (`{author_id, name, ...}`).
`GoodReads(subset="poetry")` reads the per-genre files (`goodreads_interactions_poetry.json.gz`,
`goodreads_books_poetry.json.gz`) with the same genres and authors files.

Everything streams through Arrow in blocks with only the needed columns, user and book ids
dictionary-encoded as they arrive; the books and authors files are filtered to the books and
authors the interactions name while they stream. No Python runs per interaction.

The 15 fields are those of the authors' code (CHIANGEL/ClickPrompt, `dataset.py`); the paper's
appendix does not list them and the authors' preprocessing script is not public, so how each one is
derived from the raw files is our reading:
  User ID, Book ID; Book title (`title`); Book genres (up to three genres of
  goodreads_book_genres_initial.json by descending shelf count, ties by name, joined with ", ");
  Average rating (`average_rating` as written, e.g. "4.03"); Number of book reviews
  (`text_reviews_count`); Author ID and Author name (the first author of `authors`, named through the
  authors file); Number of pages (`num_pages`); eBook flag (`is_ebook`, "true"/"false"); Format
  (`format`, e.g. "Paperback"); Publisher; Publication year; Work ID (`work_id`); Media type (print,
  ebook or audiobook, from `format` and `is_ebook`).
Missing values (empty strings, books absent from the books file) become "unknown" in prepare.
Labels (Appendix A): 10-core filter on (user, book), label rating >= 4; split by date_added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from clickprompt.data.sources.base import RawTable, Source, SourceSpec
from clickprompt.data.sources.table import (
    Membership,
    arrow_error,
    first_unique,
    locate_any,
    lookup,
    map_categories,
    scan_json,
    take_categorical,
    to_categorical,
    unescape_html,
)
from clickprompt.errors import DataError

GOODREADS_FIELDS = (
    ("user_id", "User ID"),
    ("book_id", "Book ID"),
    ("title", "Book title"),
    ("genres", "Book genres"),
    ("average_rating", "Average rating"),
    ("text_reviews_count", "Number of book reviews"),
    ("author_id", "Author ID"),
    ("author_name", "Author name"),
    ("num_pages", "Number of pages"),
    ("is_ebook", "eBook flag"),
    ("format", "Format"),
    ("publisher", "Publisher"),
    ("publication_year", "Publication year"),
    ("work_id", "Work ID"),
    ("media_type", "Media type"),
)
GOODREADS_SPEC = SourceSpec(
    fields=GOODREADS_FIELDS, rating_range=(1, 5), label_threshold=4, split="time", kcore=10, item_col="book_id"
)
DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Sun Jul 30 07:44:10 -0700 2017"
INTERACTION_SCHEMA = pa.schema([("user_id", pa.string()), ("book_id", pa.string()), ("rating", pa.int64()),
                                ("date_added", pa.string())])  # fmt: skip
BOOK_TEXT = ("title", "average_rating", "text_reviews_count", "num_pages", "is_ebook", "format", "publisher",
             "publication_year", "work_id")  # fmt: skip
BOOK_SCHEMA = pa.schema(
    [("book_id", pa.string())]
    + [(c, pa.string()) for c in BOOK_TEXT]
    + [("authors", pa.list_(pa.struct([("author_id", pa.string()), ("role", pa.string())])))]
)
AUTHOR_SCHEMA = pa.schema([("author_id", pa.string()), ("name", pa.string())])
TOP_GENRES = 3


def _alternatives(stem: str) -> tuple[str, ...]:
    return (f"{stem}.json.gz", f"{stem}.json")


class GoodReads(Source):
    spec = GOODREADS_SPEC

    def __init__(self, subset: str | None = None, name: str | None = None):
        self.subset = subset
        self.name = name or ("goodreads" if subset is None else f"goodreads-{subset}")
        inter = "goodreads_interactions_dedup" if subset is None else f"goodreads_interactions_{subset}"
        books = "goodreads_books" if subset is None else f"goodreads_books_{subset}"
        self.groups = {
            "interactions": _alternatives(inter),
            "books": _alternatives(books),
            "genres": _alternatives("goodreads_book_genres_initial"),
            "authors": _alternatives("goodreads_book_authors"),
        }
        self.required_files = tuple(g[0] for g in self.groups.values())
        self.manual_instructions = (
            "request the UCSD Book Graph at https://mengtingwan.github.io/data/goodreads.html and put "
            + ", ".join(self.required_files)
            + " (gzipped or not) into the raw directory"
        )

    def read(self, raw_dir: Path) -> RawTable:
        paths = locate_any(self, raw_dir, self.groups)
        skipped: dict[str, int] = {}
        notes: list[str] = []

        inter = self._interactions(paths["interactions"], skipped)
        user = to_categorical(inter.column("user_id"))
        book = to_categorical(inter.column("book_id"))
        rating = inter.column("rating").to_numpy().astype("float64")
        timestamp = inter.column("timestamp").to_numpy().astype("int64")
        del inter

        books = self._books(paths["books"], Membership(book.categories))
        b_key = books.pop("book_id")
        b_index, b_rows, b_dup = first_unique(b_key)
        if b_dup:
            notes.append(f"{b_dup:,} duplicate book rows ignored after the first row of their book_id")
        side = {k: take_categorical(v, b_rows) for k, v in books.items()}
        side["genres"] = _genres(paths["genres"], b_index)
        side["author_name"] = _author_names(paths["authors"], side["author_id"])
        side["media_type"] = _media_type(side["format"], side["is_ebook"])
        for c in ("title", "publisher", "author_name"):
            side[c] = unescape_html(side[c])
        gathered, absent = lookup(book, b_index, side)
        if absent:
            notes.append(f"{absent:,} interactions name a book absent from {paths['books'].name}: kept, book fields 'unknown'")
        columns = {"user_id": user, "book_id": book, **gathered, "rating": rating, "timestamp": timestamp}
        order = [c for c, _ in GOODREADS_FIELDS] + ["rating", "timestamp"]
        frame = pd.DataFrame({c: columns.pop(c) for c in order}, copy=False)  # no copy of tens of millions of rows
        return RawTable(frame, skipped=skipped, notes=notes, source_files=[str(p) for p in paths.values()])

    def _interactions(self, path: Path, skipped: dict) -> pa.Table:
        counts = {"unrated": 0, "undated": 0, "no_ids": 0}
        lo, hi = self.spec.rating_range

        def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
            rated = pc.fill_null(pc.not_equal(batch.column("rating"), 0), True)  # 0: shelved, not rated
            counts["unrated"] += len(batch) - int(pc.sum(rated.cast(pa.int64())).as_py() or 0)
            batch = batch.filter(rated)
            rating = batch.column("rating")
            bad = pc.fill_null(pc.or_(pc.less(rating, int(lo)), pc.greater(rating, int(hi))), True)
            if len(batch) and pc.any(bad).as_py():
                first = rating.filter(bad)[0].as_py()
                raise DataError(f"rating {first} is not 0 (not rated) nor in [{lo:g}, {hi:g}]", path)
            ts = pc.strptime(batch.column("date_added"), format=DATE_FORMAT, unit="s", error_is_null=True)
            ok = pc.and_(pc.is_valid(ts), pc.and_(pc.is_valid(batch.column("user_id")), pc.is_valid(batch.column("book_id"))))
            n_ok = int(pc.sum(ok.cast(pa.int64())).as_py() or 0)
            counts["undated"] += int(pc.sum(pc.is_null(ts).cast(pa.int64())).as_py() or 0)
            counts["no_ids"] += len(batch) - n_ok - int(pc.sum(pc.is_null(ts).cast(pa.int64())).as_py() or 0)
            return pa.RecordBatch.from_arrays(
                [batch.column("user_id").filter(ok), batch.column("book_id").filter(ok),
                 batch.column("rating").filter(ok).cast(pa.int8()), ts.filter(ok).cast(pa.int64())],
                names=["user_id", "book_id", "rating", "timestamp"],
            )  # fmt: skip

        table = scan_json(path, INTERACTION_SCHEMA, keep=keep, encode=("user_id", "book_id"))
        if counts["unrated"]:
            skipped["rating 0 (shelved, not rated)"] = counts["unrated"]
        if counts["undated"]:
            skipped["date_added missing or not like 'Sun Jul 30 07:44:10 -0700 2017'"] = counts["undated"]
        if counts["no_ids"]:
            skipped["no user_id or book_id"] = counts["no_ids"]
        if len(table) == 0:
            raise DataError("holds no rated interactions (all ratings 0 or no dates)", path)
        return table

    @staticmethod
    def _books(path: Path, needed: Membership) -> dict:
        def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
            batch = batch.filter(needed(batch.column("book_id")))
            names = ["book_id", *BOOK_TEXT, "author_id"]
            arrays = [batch.column(c) for c in names[:-1]] + [_first_author(batch.column("authors"))]
            return pa.RecordBatch.from_arrays(arrays, names=names)

        table = scan_json(path, BOOK_SCHEMA, keep=keep, encode=("book_id", *BOOK_TEXT, "author_id"))
        return {c: to_categorical(table.column(c)) for c in table.column_names}


def _first_author(col: pa.Array) -> pa.Array:
    """authors[0].author_id per book (null where the list is missing or empty)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    ids = col.values.field("author_id")
    if len(ids) == 0:
        return pa.nulls(len(col), pa.string())
    starts = col.offsets.to_numpy()[:-1]
    taken = ids.take(pa.array(np.where(lengths > 0, starts, 0)))
    return pc.if_else(pa.array(lengths > 0), taken, pa.scalar(None, pa.string()))


def _genres(path: Path, books: pd.Index) -> pd.Categorical:
    """Per book of `books`, its top genres by shelf count ("fiction, romance"); missing if none."""
    try:
        table = pj.read_json(str(path), read_options=pj.ReadOptions(block_size=1 << 24))
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError) as e:
        raise arrow_error(e, path) from None
    if "book_id" not in table.column_names or "genres" not in table.column_names:
        raise DataError(f"expected keys book_id and genres, found {table.column_names}", path)
    ids = to_categorical(table.column("book_id").cast(pa.string()))
    g_index, g_rows, _ = first_unique(ids)
    genres = table.column("genres").combine_chunks()
    if not pa.types.is_struct(genres.type) or genres.type.num_fields == 0:
        return pd.Categorical.from_codes(np.full(len(books), -1), pd.Index([], dtype=object))
    names = sorted(genres.type.field(i).name for i in range(genres.type.num_fields))
    counts = np.column_stack(
        [pc.fill_null(genres.field(n).cast(pa.float64()), 0).to_numpy(zero_copy_only=False) for n in names]
    )[g_rows]  # (n_books_in_file, n_genres)
    order = np.argsort(-counts, axis=1, kind="stable")[:, :TOP_GENRES]  # ties keep name order
    top = np.take_along_axis(counts, order, axis=1)
    order = np.where(top > 0, order, -1)
    combos, inverse = np.unique(order, axis=0, return_inverse=True)
    labels = [", ".join(names[j] for j in row if j >= 0) or None for row in combos]
    per_book = pd.Categorical.from_codes(inverse.reshape(-1), pd.Index([x or "" for x in labels], dtype=object), validate=False)
    per_book = map_categories(per_book, lambda v: v or None)
    gathered, _ = lookup(pd.Categorical(pd.Series(books, dtype=object)), g_index, {"g": per_book})
    return gathered["g"]


def _author_names(path: Path, author_id: pd.Categorical) -> pd.Categorical:
    needed = Membership(author_id.categories)

    def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.filter(needed(batch.column("author_id")))

    table = scan_json(path, AUTHOR_SCHEMA, keep=keep, encode=("author_id", "name"))
    keys = to_categorical(table.column("author_id"))
    index, rows, _ = first_unique(keys)
    names = take_categorical(to_categorical(table.column("name")), rows)
    return lookup(author_id, index, {"name": names})[0]["name"]


AUDIO = ("audio", "audible", "mp3", "cd", "cassette")
EBOOK = ("kindle", "ebook", "e-book", "nook", "epub", "pdf", "digital", "online")


def _media_type(fmt: pd.Categorical, is_ebook: pd.Categorical) -> pd.Categorical:
    """print / ebook / audiobook, decided once per distinct (format, is_ebook) pair."""
    pairs = np.stack([fmt.codes.astype(np.int64), is_ebook.codes.astype(np.int64)], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True) if len(pairs) else (np.zeros((0, 2), int), np.zeros(0, int))
    fcats, ecats = list(fmt.categories), list(is_ebook.categories)
    out = []
    for f, e in uniq:
        f_text = fcats[f].strip().lower() if f >= 0 else ""
        e_text = ecats[e].strip().lower() if e >= 0 else ""
        if any(w in f_text for w in AUDIO):
            out.append("audiobook")
        elif e_text == "true" or any(w in f_text for w in EBOOK):
            out.append("ebook")
        elif f_text:
            out.append("print")
        else:
            out.append("")
    remap, uniques = pd.factorize(pd.Series(out, dtype=object))
    cat = pd.Categorical.from_codes(remap[np.asarray(inverse).reshape(-1)], pd.Index(uniques, dtype=object), validate=False)
    return map_categories(cat, lambda v: v or None)
