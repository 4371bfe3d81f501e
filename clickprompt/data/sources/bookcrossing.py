"""BookCrossing reader (Ziegler et al. 2005; `BX-CSV-Dump.zip`).

Files: `BX-Users.csv` (`User-ID;Location;Age`, Age may be `NULL`), `BX-Books.csv`
(`ISBN;Book-Title;Book-Author;Year-Of-Publication;Publisher;Image-URL-S;Image-URL-M;Image-URL-L`),
`BX-Book-Ratings.csv` (`User-ID;ISBN;Book-Rating`, 0-10): `;`-separated, double-quoted, ISO-8859-1.

Known quirks, handled column-wise by Arrow and counted in the statistics file:
  * malformed lines with the wrong number of columns (a stray `;` or a quote that swallows one) are
    skipped;
  * lines whose quoting broke inside a value (an unescaped `"` left in a parsed value; the files
    never double their quotes, they write `&quot;`) are skipped, as their columns cannot be trusted;
  * HTML entities in titles, authors and publishers (`&amp;`) are decoded;
  * ISBNs are stripped and upper-cased in both files (`034545104x` and `034545104X` are one book);
  * Age `NULL` (and empty) and Year-Of-Publication `0` become "unknown";
  * ratings whose ISBN is absent from BX-Books.csv (about a tenth of them) are kept with "unknown"
    book fields by default, and counted; `BookCrossing(missing_books="drop")` drops them instead,
    which is what the paper's 1,031,171 samples (Table 1) correspond to (an inner join keeps about
    1,031,136 of the 1,149,780 ratings);
  * ratings by users absent from BX-Users.csv are kept with "unknown" user fields, and counted.

Fields (8, Table 1; names as in the authors' code): User ID, Location, Age, ISBN, Book title, Author,
Publication year, Publisher. Label (Appendix A): rating >= 5; 0 ("implicit") counts as negative.
The files have no timestamps: the split is a random permutation with a fixed seed (stats.json says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clickprompt.data.sources.base import RawTable, Source, SourceSpec
from clickprompt.data.sources.table import (
    DICT,
    STRING,
    first_unique,
    locate_any,
    lookup,
    map_categories,
    read_csv,
    take_categorical,
    to_categorical,
    unescape_html,
)
from clickprompt.errors import DataError

BX_FIELDS = (
    ("user_id", "User ID"),
    ("location", "Location"),
    ("age", "Age"),
    ("isbn", "ISBN"),
    ("title", "Book title"),
    ("author", "Author"),
    ("year", "Publication year"),
    ("publisher", "Publisher"),
)
BX_SPEC = SourceSpec(
    fields=BX_FIELDS, rating_range=(0, 10), label_threshold=5, split="random", user_col="user_id", item_col="isbn"
)
USERS, BOOKS, RATINGS = "BX-Users.csv", "BX-Books.csv", "BX-Book-Ratings.csv"
USER_COLS = ["User-ID", "Location", "Age"]
BOOK_COLS = ["ISBN", "Book-Title", "Book-Author", "Year-Of-Publication", "Publisher",
             "Image-URL-S", "Image-URL-M", "Image-URL-L"]  # fmt: skip
RATING_COLS = ["User-ID", "ISBN", "Book-Rating"]


class BookCrossing(Source):
    name = "bookcrossing"
    spec = BX_SPEC
    required_files = (USERS, BOOKS, RATINGS)
    manual_instructions = (
        "download BX-CSV-Dump.zip (Ziegler et al., originally www2.informatik.uni-freiburg.de/~cziegler/BX/, "
        "now on mirrors) and unpack BX-Users.csv, BX-Books.csv and BX-Book-Ratings.csv into the raw directory"
    )

    def __init__(self, missing_books: str = "keep"):
        if missing_books not in ("keep", "drop"):
            raise ValueError(f"missing_books must be 'keep' or 'drop', not {missing_books!r}")
        self.missing_books = missing_books

    def read(self, raw_dir: Path) -> RawTable:
        paths = locate_any(self, raw_dir, {"users": (USERS,), "books": (BOOKS,), "ratings": (RATINGS,)})
        skipped: dict[str, int] = {}
        notes: list[str] = ["BookCrossing has no timestamps: train/valid/test are a seeded random 8:1:1 split"]

        ratings = _read(paths["ratings"], RATING_COLS, skipped, notes)
        users = _read(paths["users"], USER_COLS, skipped, notes)
        books = _read(paths["books"], BOOK_COLS, skipped, notes)

        # ratings: integers 0..10; anything else is an error naming the first bad value
        text = pc.utf8_trim_whitespace(ratings.column("Book-Rating"))
        try:
            rating = text.cast(pa.int64())
        except pa.ArrowInvalid:
            ok = pc.match_substring_regex(text, r"^\d+$")
            first = text.filter(pc.invert(ok))[0].as_py()
            raise DataError(f"rating {first!r} is not a whole number", paths["ratings"]) from None
        rating = rating.to_numpy().astype("float64")
        lo, hi = self.spec.rating_range
        bad = (rating < lo) | (rating > hi)
        if bad.any():
            raise DataError(
                f"rating {rating[bad][0]:g} out of range [{lo:g}, {hi:g}] ({int(bad.sum())} such rows)", paths["ratings"]
            )
        user = _ids(ratings.column("User-ID"))
        isbn = _isbn(ratings.column("ISBN"))

        # users: first row per id; Age NULL -> missing ("unknown" after prepare)
        u_key = _ids(users.column("User-ID"))
        u_index, u_rows, u_dup = first_unique(u_key)
        age = map_categories(to_categorical(users.column("Age")), _age)
        u_cols = {"location": to_categorical(users.column("Location")), "age": age}
        u_side, u_absent = lookup(user, u_index, {k: take_categorical(v, u_rows) for k, v in u_cols.items()})

        b_key = _isbn(books.column("ISBN"))
        b_index, b_rows, b_dup = first_unique(b_key)
        b_cols = {
            "title": unescape_html(to_categorical(books.column("Book-Title"))),
            "author": unescape_html(to_categorical(books.column("Book-Author"))),
            "year": map_categories(to_categorical(books.column("Year-Of-Publication")), _year),
            "publisher": unescape_html(to_categorical(books.column("Publisher"))),
        }
        b_side, b_absent = lookup(isbn, b_index, {k: take_categorical(v, b_rows) for k, v in b_cols.items()})

        frame = pd.DataFrame({"user_id": user, **u_side, "isbn": isbn, **b_side, "rating": rating}, copy=False)
        if u_dup or b_dup:
            notes.append(f"duplicate ids ignored after their first row: {u_dup} in {USERS}, {b_dup} in {BOOKS}")
        if u_absent:
            notes.append(f"{u_absent:,} ratings by users absent from {USERS}: kept, user fields 'unknown'")
        if b_absent:
            if self.missing_books == "drop":
                present = b_index.get_indexer(pd.Index(isbn.categories, dtype=object)) >= 0
                keep = np.append(present, False)[isbn.codes]
                frame = frame[keep].reset_index(drop=True)
                skipped[f"ISBN absent from {BOOKS}"] = b_absent
            else:
                notes.append(f"{b_absent:,} ratings name an ISBN absent from {BOOKS}: kept, book fields 'unknown'")
        return RawTable(frame, skipped=skipped, notes=notes, source_files=[str(p) for p in paths.values()])


def _read(path: Path, columns: list[str], skipped: dict, notes: list) -> pa.Table:
    """One BX file as string columns; malformed lines skipped and counted."""
    with open(path, "rb") as f:
        first = f.readline().decode("latin-1").strip()
    if [v.strip().strip('"') for v in first.split(";")] != columns:
        raise DataError(f"expected the header {';'.join(columns)}, found {first[:120]!r}", path, 1)
    table, bad = read_csv(path, columns, {c: STRING for c in columns}, sep=";", encoding="latin-1")
    if bad:
        skipped[f"{path.name}: wrong number of columns"] = len(bad)
        notes.append(bad.note(path, "wrong number of columns"))
    stray = None
    for c in columns:
        hit = pc.fill_null(pc.match_substring(table.column(c), '"'), False)
        stray = hit if stray is None else pc.or_(stray, hit)
    n_stray = int(pc.sum(stray.cast(pa.int64())).as_py() or 0) if len(table) else 0
    if n_stray:
        skipped[f"{path.name}: unescaped quote inside a value"] = n_stray
        notes.append(f"{path.name}: skipped {n_stray:,} line(s) whose quoting broke inside a value")
        table = table.filter(pc.invert(stray))
    if len(table) == 0:
        raise DataError("holds no usable data lines", path)
    return table


def _ids(col) -> pd.Categorical:
    return to_categorical(pc.utf8_trim_whitespace(col).cast(DICT))


def _isbn(col) -> pd.Categorical:
    return to_categorical(pc.utf8_upper(pc.utf8_trim_whitespace(col)).cast(DICT))


def _age(v: str) -> str | None:
    v = v.strip()
    return None if v.upper() in ("NULL", "NAN", "") else v


def _year(v: str) -> str | None:
    v = v.strip()
    return None if v in ("", "0", "NULL") else v
