"""`clickprompt data list` (clickprompt.data.catalog): raw present?, prepared?, where to get it."""

from __future__ import annotations

import json
import os
from datetime import datetime

import pytest
from conftest import ML100K_INTER, ML100K_ITEMS, ML100K_USERS, write_ml100k_grouplens, write_ml100k_recbole

from clickprompt.data.catalog import dataset_status, format_status
from clickprompt.data.prepare import prepare
from clickprompt.data.sources import get_source, list_sources
from clickprompt.data.synthetic import make_tiny_dataset


def by_name(rows):
    return {r["name"]: r for r in rows}


@pytest.fixture
def roots(tmp_path):
    return tmp_path / "data" / "raw", tmp_path / "data" / "processed"


@pytest.mark.parametrize("create", [False, True], ids=["absent", "empty"])
def test_empty_data_folder_lists_every_source_as_missing_with_where_to_get_it(roots, create):
    raw_root, processed_root = roots
    if create:
        raw_root.mkdir(parents=True)
        processed_root.mkdir(parents=True)
    rows = dataset_status(raw_root, processed_root)
    assert [r["name"] for r in rows] == list_sources()  # no other rows
    for r in rows:
        assert (r["raw"], r["prepared"]) == ("missing", "no"), r
        assert r["raw_dir"] == str(raw_root / r["name"])
        src = get_source(r["name"])
        assert r["get"] == (f"clickprompt data fetch {r['name']}  ({src.download.url})" if src.download
                            else src.manual_instructions)  # fmt: skip
    rows = by_name(rows)
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in rows["ml-1m"]["get"]
    assert "BX-CSV-Dump.zip" in rows["bookcrossing"]["get"]
    assert rows["table"]["kind"] == "generic"

    text = format_status(list(rows.values()))
    for name in list_sources():
        assert f"{name}\n" in text or f"{name} (" in text
    assert text.count("prepared: no") == len(list_sources())
    assert f"raw: not in {raw_root / 'ml-1m'}" in text
    assert "get it: clickprompt data fetch ml-100k" in text
    assert "data/README.md" in text.splitlines()[-1]


def test_prepared_data_folder_shows_fingerprint_counts_and_when(roots):
    raw_root, processed_root = roots
    write_ml100k_recbole(raw_root)  # raw_root/ml-100k/ml-100k.{inter,user,item}
    prepare("ml-100k", raw_root / "ml-100k", processed_root / "ml-100k")
    make_tiny_dataset(processed_root / "tiny-ml", n=200)  # a prepared dataset of no registered source
    (processed_root / "notes").mkdir()  # an unrelated folder is not listed

    rows = dataset_status(raw_root, processed_root)
    assert [r["name"] for r in rows] == list_sources() + ["tiny-ml"]
    rows = by_name(rows)
    for name in ("ml-100k", "tiny-ml"):
        r = rows[name]
        out = processed_root / name
        schema = json.loads((out / "schema.json").read_text())
        stats = json.loads((out / "stats.json").read_text())
        assert r["prepared"] == "yes"
        assert r["fingerprint"] == schema["fingerprint"]
        assert (r["train"], r["valid"], r["test"]) == (stats["train"], stats["valid"], stats["test"])
        when = datetime.fromisoformat(r["prepared_at"])
        assert when.tzinfo is not None
        assert abs(when.timestamp() - os.path.getmtime(out / "schema.json")) < 1
    ml = rows["ml-100k"]
    assert (ml["raw"], ml["get"], ml["kind"]) == ("present", None, "source")
    assert (ml["train"], ml["valid"], ml["test"]) == (5, 1, 1)  # 8 ratings, one 3 dropped: ceil(7/10) = 1
    assert rows["tiny-ml"]["kind"] == "other" and rows["tiny-ml"]["raw"] is None
    assert rows["ml-1m"]["prepared"] == "no"

    text = format_status(list(rows.values()))
    assert f"raw: present in {raw_root / 'ml-100k'}" in text
    assert f"fingerprint {ml['fingerprint']}, train 5 / valid 1 / test 1, at {ml['prepared_at']}" in text
    assert "tiny-ml\n    raw: (not a registered source)\n    prepared: fingerprint" in text
    assert "get it: clickprompt data fetch ml-100k" not in text  # present: no hint
    assert "notes" not in text


def test_grouplens_layout_and_incomplete_raw_files(roots):
    raw_root, processed_root = roots
    write_ml100k_grouplens(raw_root, ML100K_INTER, ML100K_USERS, ML100K_ITEMS)
    assert by_name(dataset_status(raw_root, processed_root))["ml-100k"]["raw"] == "present"
    (raw_root / "ml-100k" / "u.item").unlink()
    r = by_name(dataset_status(raw_root, processed_root))["ml-100k"]
    assert (r["raw"], r["missing"]) == ("incomplete", ["u.item"])
    assert r["get"].startswith("clickprompt data fetch ml-100k")
    assert f"raw: incomplete in {raw_root / 'ml-100k'}; missing u.item" in format_status([r])


def test_readers_alternative_file_names_and_unpacked_subfolders_count_as_present(roots):
    raw_root, processed_root = roots
    amazon = raw_root / "amazon-toys"
    amazon.mkdir(parents=True)
    (amazon / "Toys_and_Games.csv").write_text("")  # ratings-only CSV instead of the reviews JSON
    (amazon / "meta_Toys_and_Games.json").write_text("")  # not gzipped
    bx = raw_root / "bookcrossing" / "BX-CSV-Dump"  # one level below: an unpacked archive
    bx.mkdir(parents=True)
    for f in ("BX-Users.csv", "BX-Books.csv", "BX-Book-Ratings.csv"):
        (bx / f).write_text("")
    rows = by_name(dataset_status(raw_root, processed_root))
    assert rows["amazon-toys"]["raw"] == "present"
    assert rows["bookcrossing"]["raw"] == "present"
    assert rows["goodreads"]["raw"] == "missing"


def test_table_source_needs_its_schema_and_the_file_it_names(roots):
    raw_root, processed_root = roots
    d = raw_root / "table"
    d.mkdir(parents=True)
    (d / "schema.yaml").write_text("file: ratings.csv\nlabel: rating\nthreshold: 4\nfields: {user: User}\n")
    r = by_name(dataset_status(raw_root, processed_root))["table"]
    assert r["raw"] == "incomplete" and "'ratings.csv' not found" in r["raw_note"]
    (d / "ratings.csv").write_text("user,rating\n1,5\n")
    assert by_name(dataset_status(raw_root, processed_root))["table"]["raw"] == "present"


def _damage(out, how):
    if how == "bad schema json":
        (out / "schema.json").write_text('{"dataset": "tiny", "fingerprint": ')
    elif how == "no stats":
        (out / "stats.json").unlink()
    elif how == "schema not an object":
        (out / "schema.json").write_text("[1, 2]")
    elif how == "no fingerprint":
        schema = json.loads((out / "schema.json").read_text())
        del schema["fingerprint"]
        (out / "schema.json").write_text(json.dumps(schema))
    elif how == "counts not numbers":
        stats = json.loads((out / "stats.json").read_text())
        stats["train"] = "many"
        (out / "stats.json").write_text(json.dumps(stats))
    elif how == "split missing":
        (out / "test.parquet").unlink()
    elif how == "undecodable":
        (out / "stats.json").write_bytes(b"\xff\xfe\x00garbage")


DAMAGES = ["bad schema json", "no stats", "schema not an object", "no fingerprint", "counts not numbers",
           "split missing", "undecodable"]  # fmt: skip
EXPECTED = {
    "bad schema json": "schema.json is not valid JSON (line 1, column",
    "no stats": "stats.json is missing",
    "schema not an object": "schema.json is not a JSON object",
    "no fingerprint": "schema.json has no fingerprint",
    "counts not numbers": "stats.json lacks whole row counts",
    "split missing": "test.parquet missing",
    "undecodable": "stats.json cannot be read",
}


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_prepared_folder_is_one_line_not_a_traceback(roots, how):
    raw_root, processed_root = roots
    for name in ("ml-1m", "tiny"):  # a registered name and an unregistered one
        out = make_tiny_dataset(processed_root / name, n=100, name="tiny")
        _damage(out, how)
    rows = by_name(dataset_status(raw_root, processed_root))
    for name in ("ml-1m", "tiny"):
        r = rows[name]
        assert r["prepared"] == "damaged"
        assert EXPECTED[how] in r["error"] and "\n" not in r["error"]
        lines = [line for line in format_status([r]).splitlines() if "prepared:" in line]
        assert len(lines) == 1 and lines[0].strip().startswith("prepared: DAMAGED (")
        assert "--force" in lines[0]


def test_prepared_folder_of_another_dataset_and_interrupted_prepare(roots):
    raw_root, processed_root = roots
    make_tiny_dataset(processed_root / "ml-1m", n=100, name="tiny")  # holds dataset 'tiny', not ml-1m
    leftover = make_tiny_dataset(processed_root / "tiny", n=100)
    leftover.rename(processed_root / "tiny.tmp-1234")
    rows = by_name(dataset_status(raw_root, processed_root))
    assert rows["ml-1m"]["prepared"] == "yes" and rows["ml-1m"]["dataset"] == "tiny"
    assert "prepared: dataset 'tiny', fingerprint" in format_status([rows["ml-1m"]])
    r = rows["tiny.tmp-1234"]
    assert r["prepared"] == "damaged" and "interrupted" in r["error"]
