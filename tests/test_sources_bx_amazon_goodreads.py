"""BookCrossing, Amazon-Toys and GoodReads readers on small fixtures written in the raw formats,
with the real files' quirks: `;`-separated ISO-8859-1 with malformed lines and `NULL` ages (BX),
gzip and dict-literal metadata lines (Amazon), shelved-not-rated rows and nested JSON (GoodReads)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.prepare import prepare, split_sizes
from clickprompt.data.sources import get_source
from clickprompt.data.sources.amazon import AmazonReviews
from clickprompt.data.sources.bookcrossing import BookCrossing
from clickprompt.data.sources.goodreads import GoodReads
from clickprompt.errors import DataError


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


def all_rows(out: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(out / f"{s}.parquet") for s in ("train", "valid", "test")], ignore_index=True)


# --------------------------------------------------------------------------------------------- BookCrossing

BX_USERS = """\
"User-ID";"Location";"Age"
"1";"nyc, new york, usa";NULL
"2";"stockton, california, usa";"18"
"3";"zürich, zürich, switzerland";NULL
"4";"porto, v.n.gaia, portugal";"17"
"5";"bad "quoted" town, usa";"30"
"6";"santa monica, california, usa";"61"
"""
BX_BOOKS = """\
"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";"Image-URL-S";"Image-URL-M";"Image-URL-L"
"0195153448";"Classical Mythology";"Mark P. O. Morford";"2002";"Oxford University Press";"http://s";"http://m";"http://l"
"000000000X";"Tom &amp; Jerry";"Hanna Barbera";"0";"Ed. Zürich";"http://s";"http://m";"http://l"
"0002005018";"Clara Callan";"Richard Bruce Wright";"2001";"HarperFlamingo Canada";"http://s";"http://m";"http://l";"extra"
"0060973129";"Decision in Normandy";"Carlo D'Este";"1991";"HarperPerennial";"http://s";"http://m";"http://l"
"0374157065";"Flu: the story";"Gina Bari Kolata";"1999";"Farrar Straus Giroux"
"0393045218";"The Mummies of Urumchi";"E. J. W. Barber";"1999";"W. W. Norton &amp; Company";"http://s";"http://m";"http://l"
"""
# user, isbn, rating: 0195153448 x4, 000000000x (lower-case x) x3, 0393045218 x2, 9999999999 (absent) x2,
# user 77 absent from BX-Users, user 5's line is malformed so user 5 is unknown too.
BX_RATINGS = [
    ("1", "0195153448", 0), ("2", "0195153448", 5), ("3", "0195153448", 8), ("4", "0195153448", 4),
    ("1", "000000000x", 10), ("2", "000000000X", 3), ("6", "000000000X", 7),
    ("3", "0393045218", 9), ("4", "0393045218", 0),
    ("1", "9999999999", 6), ("77", "9999999999", 2), ("5", "0060973129", 5),
]  # fmt: skip


def write_bx(root: Path, ratings=BX_RATINGS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "BX-Users.csv").write_bytes(BX_USERS.encode("latin-1"))
    (root / "BX-Books.csv").write_bytes(BX_BOOKS.encode("latin-1"))
    lines = ['"User-ID";"ISBN";"Book-Rating"'] + [f'"{u}";"{i}";"{r}"' for u, i, r in ratings]
    lines.insert(3, '"9";"0195153448";"7";"oops"')  # wrong column count
    (root / "BX-Book-Ratings.csv").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return root


def test_bookcrossing_reads_quirks(tmp_path):
    raw = BookCrossing().read(write_bx(tmp_path / "raw"))
    f = raw.frame
    assert len(f) == len(BX_RATINGS)
    assert raw.skipped == {
        "BX-Book-Ratings.csv: wrong number of columns": 1,
        "BX-Users.csv: unescaped quote inside a value": 1,
        "BX-Books.csv: wrong number of columns": 2,
    }
    by = {(u, i): row for u, i, row in zip(f.user_id.astype(str), f.isbn.astype(str), f.itertuples())}
    tom = by[("1", "000000000X")]  # lower-case x matched, entity decoded, latin-1 decoded, year 0 missing
    assert (tom.title, tom.publisher, tom.location) == ("Tom & Jerry", "Ed. Zürich", "nyc, new york, usa")
    assert pd.isna(tom.age) and pd.isna(tom.year) and tom.rating == 10
    assert by[("3", "0195153448")].location == "zürich, zürich, switzerland"
    assert pd.isna(by[("1", "9999999999")].title)  # ISBN absent from BX-Books: kept
    assert pd.isna(by[("5", "0060973129")].location)  # malformed user line
    assert by[("5", "0060973129")].author == "Carlo D'Este"
    assert any("absent from BX-Books.csv" in n for n in raw.notes)


def test_bookcrossing_prepares_random_split(tmp_path):
    out = tmp_path / "out"
    stats = prepare("bookcrossing", write_bx(tmp_path / "raw"), out, seed=3)
    n = len(BX_RATINGS)
    assert (stats["train"], stats["valid"], stats["test"]) == split_sizes(n)
    assert "random" in stats["split"] and "seed 3" in stats["split"] and "no timestamps" in stats["split"]
    assert stats["fields"] == 8 and stats["label"] == "rating >= 5"
    assert any("no timestamps" in note for note in stats["notes"])
    rows = all_rows(out)
    assert "timestamp" not in rows
    assert sorted(rows.label) == sorted(int(r >= 5) for *_, r in BX_RATINGS)
    ds = PreparedDataset(out)
    assert ds.spec.displays == ["User ID", "Location", "Age", "ISBN", "Book title", "Author", "Publication year", "Publisher"]
    texts = [t for s in ("train", "valid", "test") for t in ds.texts(s)]
    assert (
        "User ID is 1 . Location is nyc, new york, usa . Age is unknown . ISBN is 000000000X . "
        "Book title is Tom & Jerry . Author is Hanna Barbera . Publication year is unknown . Publisher is Ed. Zürich ."
    ) in texts
    # deterministic: the same seed gives the same files
    prepare("bookcrossing", tmp_path / "raw", tmp_path / "again", seed=3)
    for name in ("train.parquet", "valid.parquet", "test.parquet", "vocab.parquet", "schema.json"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_bookcrossing_drop_missing_books(tmp_path):
    raw = BookCrossing(missing_books="drop").read(write_bx(tmp_path / "raw"))
    assert len(raw.frame) == len(BX_RATINGS) - 2
    assert raw.skipped["ISBN absent from BX-Books.csv"] == 2


def test_bookcrossing_bad_input(tmp_path):
    root = write_bx(tmp_path / "raw")
    (root / "BX-Users.csv").unlink()
    with pytest.raises(DataError) as e:
        BookCrossing().read(root)
    assert "BX-Users.csv" in one_line_error(e)
    write_bx(root, ratings=[("1", "0195153448", "ten")])
    with pytest.raises(DataError) as e:
        BookCrossing().read(root)
    assert "'ten' is not a whole number" in one_line_error(e) and "BX-Book-Ratings.csv" in str(e.value)
    write_bx(root, ratings=[("1", "0195153448", 11)])
    with pytest.raises(DataError) as e:
        BookCrossing().read(root)
    assert "out of range" in one_line_error(e)
    (root / "BX-Books.csv").write_bytes(b"ISBN,Title\n1,x\n")
    with pytest.raises(DataError) as e:
        BookCrossing().read(root)
    assert "expected the header" in one_line_error(e)


# --------------------------------------------------------------------------------------------- Amazon-Toys

USERS6 = [f"A{u}XYZ" for u in range(6)]
ITEMS6 = [f"B00{i}" for i in range(6)]


def amazon_reviews():
    rows = []
    t = 1_300_000_000
    for u in USERS6:
        for k, i in enumerate(ITEMS6):
            t += 3600
            rows.append({"overall": float(1 + (len(rows) * 7) % 5), "verified": True, "reviewerID": u, "asin": i,
                         "style": {"Color:": " Red"}, "reviewerName": "x", "reviewText": "fun \"toy\"\nline",
                         "summary": "ok", "unixReviewTime": t, "reviewTime": "01 1, 2011", "vote": "2"})  # fmt: skip
    rows.append({"overall": 5.0, "reviewerID": "LONELY", "asin": "B000", "unixReviewTime": t + 1})  # 5-core drops
    rows.append({"overall": 4.0, "reviewerID": USERS6[0], "asin": "RARE", "unixReviewTime": t + 2})  # 5-core drops
    return rows


def amazon_meta_lines():
    return [
        json.dumps({"asin": "B000", "title": "Lego &amp; Bricks", "brand": "LEGO",
                    "category": ["Toys & Games", "Building Toys", "Building Sets"], "also_buy": ["B001"]}),
        json.dumps({"asin": "B001", "title": "Puzzle", "brand": "", "category": []}),
        # a Python dict literal line, as in the 2014 metadata and some re-uploads
        str({"asin": "B002", "title": "Doll's House", "brand": "Barbie", "categories": [["Toys & Games", "Dolls"]]}),
        json.dumps({"asin": "B003", "title": "Kite", "brand": "Wind", "category": ["Toys & Games", "Outdoor"]}),
        json.dumps({"asin": "B003", "title": "Kite duplicate", "brand": "Other", "category": ["X"]}),
        "this line is neither",
        json.dumps({"asin": "B005", "title": "Train", "brand": "Brio", "category": ["Toys & Games", "Trains"]}),
    ]  # B004 has no metadata


def write_amazon(root: Path, csv: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    reviews = amazon_reviews()
    if csv == "2018":  # item,user,rating,timestamp
        text = "".join(f"{r['asin']},{r['reviewerID']},{r['overall']},{r['unixReviewTime']}\n" for r in reviews)
        (root / "Toys_and_Games.csv").write_text(text)
    elif csv == "2014":  # user,item,rating,timestamp
        text = "".join(f"{r['reviewerID']},{r['asin']},{r['overall']},{r['unixReviewTime']}\n" for r in reviews)
        (root / "ratings_Toys_and_Games.csv").write_text(text)
    else:
        with gzip.open(root / "Toys_and_Games.json.gz", "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in reviews)
    (root / "meta_Toys_and_Games.json").write_text("\n".join(amazon_meta_lines()) + "\n")
    return root


@pytest.mark.parametrize("csv", ["", "2018", "2014"], ids=["reviews-json-gz", "ratings-csv-2018", "ratings-csv-2014"])
def test_amazon_toys_prepares(tmp_path, csv):
    out = tmp_path / "out"
    stats = prepare("amazon-toys", write_amazon(tmp_path / "raw", csv=csv), out)
    assert stats["report"]["kcore"] == {"k": 5, "dropped": 2}
    assert (stats["train"], stats["valid"], stats["test"]) == split_sizes(36) == (28, 4, 4)
    assert stats["report"]["skipped_while_reading"] == {
        "meta_Toys_and_Games.json: metadata line neither JSON nor a dict literal with an asin": 1
    }
    notes = " ".join(stats["notes"])
    assert "dict literals" in notes and "without metadata" in notes and "duplicate metadata" in notes
    reviews = amazon_reviews()[:36]
    rows = all_rows(out)
    assert list(rows.timestamp) == sorted(r["unixReviewTime"] for r in reviews)  # global time order
    assert list(rows.label) == [int(r["overall"] >= 4) for r in reviews]
    first = rows.iloc[0]
    assert (first.user_id, first.item_id, first.category, first.title, first.brand) == (
        "A0XYZ", "B000", "Building Sets", "Lego & Bricks", "LEGO")  # fmt: skip
    by_item = rows.drop_duplicates("item_id").set_index("item_id")
    assert by_item.loc["B001", "brand"] == "unknown" and by_item.loc["B001", "category"] == "unknown"
    assert by_item.loc["B002", "category"] == "Dolls" and by_item.loc["B002", "title"] == "Doll's House"
    assert by_item.loc["B003", "title"] == "Kite"
    assert (by_item.loc["B004", ["category", "title", "brand"]] == "unknown").all()
    assert PreparedDataset(out).spec.displays == ["User ID", "Item ID", "Category", "Title", "Brand"]


def test_amazon_bad_input(tmp_path):
    root = write_amazon(tmp_path / "raw")
    (root / "meta_Toys_and_Games.json").unlink()
    with pytest.raises(DataError) as e:
        AmazonReviews().read(root)
    assert "meta_Toys_and_Games.json" in one_line_error(e)
    (root / "meta_Toys_and_Games.json").write_bytes(b'{"asin": "B000", "title": "caf\xe9"}\n')
    with pytest.raises(DataError) as e:
        AmazonReviews().read(root)
    assert "cannot decode byte 0xe9" in one_line_error(e) and "line 1" in str(e.value)
    (root / "Toys_and_Games.json.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError) as e:
        AmazonReviews().read(root)
    assert "Toys_and_Games.json.gz" in one_line_error(e)


# --------------------------------------------------------------------------------------------- GoodReads

GR_USERS = [f"{u:032x}" for u in range(1, 13)]  # 12 users, hex ids like the real ones
GR_BOOKS = [str(1000 + b) for b in range(11)]  # 11 books; book 1010 is absent from the books file


def gr_date(t: int) -> str:
    return pd.Timestamp(t, unit="s", tz="UTC").tz_convert("US/Pacific").strftime("%a %b %d %H:%M:%S %z %Y")


def goodreads_interactions():
    rows, t = [], 1_400_000_000
    for u in GR_USERS:
        for b in GR_BOOKS:
            t += 977
            rows.append({"user_id": u, "book_id": b, "review_id": "r", "is_read": True,
                         "rating": 1 + (t // 977) % 5, "review_text_incomplete": "", "date_added": gr_date(t),
                         "date_updated": gr_date(t), "read_at": "", "started_at": ""})  # fmt: skip
    rows.insert(5, {"user_id": GR_USERS[0], "book_id": "1003", "rating": 0, "date_added": gr_date(t)})  # shelved
    rows.insert(9, {"user_id": GR_USERS[1], "book_id": "1004", "rating": 0, "date_added": gr_date(t)})
    rows.append({"user_id": "f" * 32, "book_id": "1000", "rating": 5, "date_added": gr_date(t + 5)})  # < 10: k-core
    rows.append({"user_id": GR_USERS[2], "book_id": "1001", "rating": 4, "date_added": ""})  # no date
    return rows


def goodreads_books():
    out = []
    for k, b in enumerate(GR_BOOKS[:-1]):
        out.append({
            "isbn": "", "text_reviews_count": str(10 * k), "series": [], "country_code": "US", "language_code": "eng",
            "popular_shelves": [{"count": "3", "name": "to-read"}], "asin": "", "is_ebook": "true" if k == 2 else "false",
            "average_rating": f"{3.5 + k / 10:.2f}", "kindle_asin": "", "similar_books": [], "description": "A \"book\".",
            "format": ["Paperback", "Hardcover", "Kindle Edition", "Audio CD", ""][k % 5], "link": "", "url": "",
            "authors": [{"author_id": str(50 + k % 3), "role": ""}, {"author_id": "99", "role": "Illustrator"}] if k != 4 else [],
            "publisher": "Penguin &amp; Co" if k == 0 else "", "num_pages": str(100 + k), "publication_day": "",
            "isbn13": "", "publication_month": "", "edition_information": "", "publication_year": "2001" if k else "",
            "image_url": "", "book_id": b, "ratings_count": "5", "work_id": str(7000 + k), "title": f"Book {k}",
            "title_without_series": f"Book {k}",
        })  # fmt: skip
    out.append({**out[0], "book_id": "55555", "title": "Not read by anyone"})
    return out


def write_goodreads(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "goodreads_interactions_dedup.json.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in goodreads_interactions())
    with gzip.open(root / "goodreads_books.json.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in goodreads_books())
    genres = [{"book_id": "1000", "genres": {"fiction": 10, "romance": 3, "history, historical fiction, biography": 3}},
              {"book_id": "1001", "genres": {}},
              {"book_id": "1002", "genres": {"poetry": 2}}]  # fmt: skip
    (root / "goodreads_book_genres_initial.json").write_text("".join(json.dumps(g) + "\n" for g in genres))
    authors = [{"average_rating": "4", "author_id": str(a), "text_reviews_count": "1", "name": f"Author {a}",
                "ratings_count": "1"} for a in (50, 51, 52, 99)]  # fmt: skip
    (root / "goodreads_book_authors.json").write_text("".join(json.dumps(a) + "\n" for a in authors))
    return root


def test_goodreads_reader(tmp_path):
    raw = GoodReads().read(write_goodreads(tmp_path / "raw"))
    assert raw.skipped == {"rating 0 (shelved, not rated)": 2,
                           "date_added missing or not like 'Sun Jul 30 07:44:10 -0700 2017'": 1}  # fmt: skip
    f = raw.frame
    assert len(f) == 12 * 11 + 1
    assert list(f.columns[:15]) == [c for c, _ in get_source("goodreads").spec.fields]
    row = f[(f.user_id == GR_USERS[0]) & (f.book_id == "1000")].iloc[0]
    assert row.genres == "fiction, history, historical fiction, biography, romance"  # ties by name
    assert (row.author_id, row.author_name, row.publisher, row.media_type) == ("50", "Author 50", "Penguin & Co", "print")
    assert pd.isna(row.publication_year) or row.publication_year == ""  # "unknown" after prepare
    ts = f.timestamp.to_numpy()
    assert ts[0] == 1_400_000_000 + 977 and np.all(np.diff(ts[:-1]) > 0)


def test_goodreads_prepares(tmp_path):
    out = tmp_path / "out"
    stats = prepare("goodreads", write_goodreads(tmp_path / "raw"), out)
    assert stats["report"]["kcore"] == {"k": 10, "dropped": 1}
    assert (stats["train"], stats["valid"], stats["test"]) == split_sizes(132)
    assert stats["fields"] == 15
    rows = all_rows(out)
    assert rows.timestamp.is_monotonic_increasing
    by_book = rows.drop_duplicates("book_id").set_index("book_id")
    assert by_book.loc["1001", "genres"] == "unknown" and by_book.loc["1002", "genres"] == "poetry"
    assert by_book.loc["1002", "media_type"] == "ebook" and by_book.loc["1003", "media_type"] == "audiobook"
    assert by_book.loc["1004", "author_id"] == "unknown" and by_book.loc["1004", "media_type"] == "unknown"
    assert (by_book.loc["1010", ["title", "genres", "work_id"]] == "unknown").all()  # absent from books file
    ds = PreparedDataset(out)
    text = ds.texts("train", rows=[0])[0]
    assert text.startswith(f"User ID is {GR_USERS[0]} . Book ID is 1000 . Book title is Book 0 . Book genres is fiction")
    assert "Number of book reviews is 0 . Author ID is 50 . Author name is Author 50 . Number of pages is 100 ." in text
    assert text.endswith("Publisher is Penguin & Co . Publication year is unknown . Work ID is 7000 . Media type is print .")
    assert stats["label"] == "rating >= 4"


def test_goodreads_bad_input(tmp_path):
    root = write_goodreads(tmp_path / "raw")
    (root / "goodreads_book_authors.json").unlink()
    with pytest.raises(DataError) as e:
        GoodReads().read(root)
    assert "goodreads_book_authors.json" in one_line_error(e)
    write_goodreads(root)
    with gzip.open(root / "goodreads_interactions_dedup.json.gz", "wb") as f:
        f.write(b'{"user_id": "u", "book_id": "1", "rating": 4, "date_added": "x"}\n')
        f.write(b'{"user_id": "\xff\xfe", "book_id": "1", "rating": 4, "date_added": "x"}\n')
    with pytest.raises(DataError) as e:
        GoodReads().read(root)
    assert "cannot decode byte 0xff" in one_line_error(e) and "line 2" in str(e.value)
    with gzip.open(root / "goodreads_interactions_dedup.json.gz", "wt") as f:
        f.write('{"user_id": "u", "book_id": "1", "rating": 4, "date_added": "x"}\n{"user_id": \n')
    with pytest.raises(DataError) as e:
        GoodReads().read(root)
    assert "goodreads_interactions_dedup.json.gz" in one_line_error(e)
    with gzip.open(root / "goodreads_interactions_dedup.json.gz", "wt") as f:
        f.write('{"user_id": "u", "book_id": "1", "rating": 9, "date_added": "x"}\n')
    with pytest.raises(DataError) as e:
        GoodReads().read(root)
    assert "rating 9 is not 0 (not rated) nor in [1, 5]" in one_line_error(e)


def test_scan_json_small_blocks_match_one_block(tmp_path):
    """Many blocks, several dictionary merges: the same values as reading in one block."""
    from clickprompt.data.sources.goodreads import INTERACTION_SCHEMA
    from clickprompt.data.sources.table import GrowingDictionary, scan_json

    root = write_goodreads(tmp_path / "raw")
    path = root / "goodreads_interactions_dedup.json.gz"
    one = scan_json(path, INTERACTION_SCHEMA, encode=("user_id", "book_id"))
    many = scan_json(path, INTERACTION_SCHEMA, encode=("user_id", "book_id"), block_size=700)
    assert one.num_rows == many.num_rows == len(goodreads_interactions())
    for c in ("user_id", "book_id", "rating", "date_added"):
        assert one.column(c).to_pylist() == many.column(c).to_pylist()
    g = GrowingDictionary(flush_every=2)
    import pyarrow as pa

    for chunk in (["a", "b", None], ["b", "c"], ["d"], ["a", "e", "c"], []):
        g.add(pa.array(chunk, type=pa.string()))
    assert g.finish().to_pylist() == ["a", "b", None, "b", "c", "d", "a", "e", "c"]
