"""The generic `table` source: CSV/Parquet plus a YAML schema, and its one-line refusals."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.prepare import prepare, prepare_table, split_sizes
from clickprompt.data.sources import source_for
from clickprompt.data.sources.table import TableSchema, TableSource
from clickprompt.errors import DataError

N = 240


def ratings_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    users = rng.integers(1, 13, N)
    items = rng.integers(1, 9, N)
    return pd.DataFrame(
        {
            "userId": users,
            "movieId": items,
            "rating": rng.choice([1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0], N),
            "timestamp": 1_000_000 + rng.permutation(N) * 60,
            "title": [f"Movie {i} (19{90 + i})" for i in items],
            "genre": np.where(items % 2 == 0, "Comedy", " Drama "),
            "city": np.where(users % 5 == 0, "", "Zürich"),
            "comment": np.where(items % 3 == 0, "great", "meh"),
        }
    )


SCHEMA = {
    "name": "tiny-movies",
    "file": "ratings.csv",
    "label": "rating",
    "threshold": 4,
    "neutral": [3],
    "timestamp": "timestamp",
    "fields": {"userId": "User ID", "movieId": "Movie ID", "title": "Title", "genre": "Genre", "city": "City"},
}


def write(tmp_path: Path, schema: dict, frame: pd.DataFrame | None = None, name: str = "ratings.csv") -> Path:
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    frame = ratings_frame() if frame is None else frame
    if name.endswith(".parquet"):
        frame.to_parquet(raw / name, index=False)
    elif name.endswith(".gz"):
        with gzip.open(raw / name, "wt", encoding="utf-8") as f:
            frame.to_csv(f, index=False)
    else:
        frame.to_csv(raw / name, index=False)
    (raw / "schema.yaml").write_text(yaml.safe_dump(schema, allow_unicode=True, sort_keys=False))
    return raw


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


def test_csv_with_threshold_neutral_and_time_split(tmp_path):
    frame = ratings_frame()
    raw = write(tmp_path, SCHEMA, frame)
    out = tmp_path / "out"
    stats = prepare("table", raw, out, source=TableSource.from_yaml(raw / "schema.yaml"))
    kept = frame[frame.rating != 3]
    assert (stats["train"], stats["valid"], stats["test"]) == split_sizes(len(kept))
    assert stats["report"]["neutral_dropped"] == int((frame.rating == 3).sum())
    assert stats["label"] == "rating >= 4, ratings [3.0] dropped"
    assert stats["split"].startswith("global timestamp order")
    assert stats["report"]["missing_values_filled_with_unknown"] == {"city": int((frame.city == "").sum())}
    rows = pd.concat([pd.read_parquet(out / f"{s}.parquet") for s in ("train", "valid", "test")], ignore_index=True)
    expect = kept.sort_values("timestamp", kind="stable")
    assert rows.timestamp.tolist() == expect.timestamp.tolist()
    assert rows.label.tolist() == (expect.rating >= 4).astype(int).tolist()
    assert rows.userId.tolist() == expect.userId.astype(str).tolist()  # integer ids stay "7", not "7.0"
    assert set(rows.genre) == {"Comedy", "Drama"}  # stripped
    ds = PreparedDataset(out)
    assert ds.name == "tiny-movies" and ds.spec.displays  # "table" takes the schema's name == ["User ID", "Movie ID", "Title", "Genre", "City"]
    e = expect.iloc[0]
    city = e.city or "unknown"
    assert ds.texts("train", rows=[0])[0] == (
        f"User ID is {e.userId} . Movie ID is {e.movieId} . Title is {e.title} . Genre is {e.genre.strip()} . City is {city} ."
    )


def test_registered_source_reads_schema_next_to_data_parquet_binary_label_kcore(tmp_path):
    frame = ratings_frame()
    frame["clicked"] = (frame.rating >= 4).astype("int64")
    frame.loc[frame.index[:3], "userId"] = 99  # a user with 3 interactions: the 4-core drops them
    schema = {"file": "clicks.parquet", "label": "clicked", "fields": ["userId", "movieId", "genre"],
              "user": "userId", "item": "movieId", "kcore": 4}  # fmt: skip
    raw = write(tmp_path, schema, frame, name="clicks.parquet")
    stats = prepare("table", raw, tmp_path / "out", seed=5)
    assert stats["split"].startswith("random permutation with seed 5")
    assert stats["report"]["kcore"]["k"] == 4 and stats["report"]["kcore"]["dropped"] >= 3
    assert stats["label"] == "column 'clicked'"
    rows = pd.concat([pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "valid", "test")])
    assert "99" not in set(rows.userId)
    assert rows.groupby("userId").size().min() >= 4 and rows.groupby("movieId").size().min() >= 4
    assert PreparedDataset(tmp_path / "out").spec.displays == ["userId", "movieId", "genre"]


def test_prepare_table_gzip_csv_and_schema_name(tmp_path):
    schema = {**SCHEMA, "file": "ratings.csv.gz"}
    raw = write(tmp_path, schema, name="ratings.csv.gz")
    stats = prepare_table(raw / "schema.yaml", raw, tmp_path / "out")
    assert stats["dataset"] == "tiny-movies"
    assert isinstance(source_for("anything", raw / "schema.yaml"), TableSource)
    assert source_for("bookcrossing").name == "bookcrossing"


def test_string_timestamps_and_numeric_text_label(tmp_path):
    frame = ratings_frame()
    frame["timestamp"] = pd.to_datetime(frame.timestamp, unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["rating"] = frame.rating.astype(str)
    raw = write(tmp_path, SCHEMA, frame)
    stats = prepare_table(raw / "schema.yaml", raw, tmp_path / "out")
    rows = pd.read_parquet(tmp_path / "out" / "train.parquet")
    assert rows.timestamp.is_monotonic_increasing and rows.timestamp.iloc[0] >= 1_000_000
    assert stats["train"] > 0


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"fields": {"userId": "User", "nope": "Nope"}}, "'fields'", "'nope' is not in ratings.csv"),
        ({"label": "missing_col"}, "'label'", "'missing_col' is not in"),
        ({"timestamp": "when"}, "'timestamp'", "'when' is not in"),
        ({"label": "comment"}, "'label'", "is not numeric (e.g. '"),
        ({"threshold": 9}, "'threshold'", "label 0"),
        ({"threshold": 0}, "'threshold'", "label 1"),
        ({"threshold": "high"}, "'threshold'", "not a number"),
        ({"threshold": None, "neutral": []}, "'label'", "not 0/1"),
        ({"fieldz": {}}, "'fieldz'", "unknown key"),
        ({"file": "other.csv"}, "'file'", "not found"),
        ({"fields": {"rating": "Rating"}}, "'fields'", "cannot be a field"),
        ({"kcore": 5}, "'kcore'", "needs the keys 'user' and 'item'"),
        ({"fields": {"userId": "User", "rating": "Stars"}, "label": "rating"}, "'fields'", "cannot be a field"),
        ({"fields": {"userId": "User", "title": "Title"}, "label": "title"}, "'label'", "also a field"),
        ({"timestamp": "comment"}, "'timestamp'", "comment"),
        ({"format": "xlsx"}, "'format'", "csv or parquet"),
    ],
)
def test_schema_refusals_name_file_and_key(tmp_path, change, key, words):
    raw = write(tmp_path, {**SCHEMA, **change})
    with pytest.raises(DataError) as e:
        prepare_table(raw / "schema.yaml", raw, tmp_path / "out")
    msg = one_line(e)
    assert "schema.yaml" in msg and key in msg and words in msg, msg
    assert not (tmp_path / "out").exists()


def test_missing_schema_yaml_and_bad_yaml(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(DataError) as e:
        prepare("table", tmp_path / "raw", tmp_path / "out")
    assert "schema.yaml" in one_line(e)
    (tmp_path / "raw" / "schema.yaml").write_text("file: [unclosed\n")
    with pytest.raises(DataError) as e:
        prepare("table", tmp_path / "raw", tmp_path / "out")
    assert "not valid YAML" in one_line(e)
    with pytest.raises(DataError) as e:
        TableSchema(["not", "a", "mapping"])
    assert "mapping" in one_line(e)


def test_undecodable_csv_names_the_line(tmp_path):
    raw = write(tmp_path, SCHEMA)
    data = (raw / "ratings.csv").read_bytes().splitlines(keepends=True)
    data[5] = data[5].replace(b"Movie", b"M\xffvie")
    (raw / "ratings.csv").write_bytes(b"".join(data))
    with pytest.raises(DataError) as e:
        prepare_table(raw / "schema.yaml", raw, tmp_path / "out")
    msg = one_line(e)
    assert "ratings.csv, line 6" in msg and "0xff" in msg
    # the same file declared as latin-1 reads
    (raw / "schema.yaml").write_text(yaml.safe_dump({**SCHEMA, "encoding": "latin-1"}))
    assert prepare_table(raw / "schema.yaml", raw, tmp_path / "out")["train"] > 0


def test_csv_quirks_counted(tmp_path):
    """Quoted values with commas and newlines are values; a row with too many columns is skipped and counted."""
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = ["\ufeffuser,item,stars,note"] + [f"u{i % 4},i{i % 3},{1 + i % 5},plain" for i in range(30)]
    lines.insert(3, 'u1,i1,5,"quoted, with comma\nand a newline"')
    lines.insert(7, "u2,i2,4,too,many,columns")
    (raw / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    schema = {"file": "t.csv", "label": "stars", "threshold": 4, "fields": {"user": "User", "note": "Note"}}
    (raw / "schema.yaml").write_text(yaml.safe_dump(schema))
    stats = prepare("table", raw, tmp_path / "out")
    assert stats["report"]["skipped_while_reading"] == {"t.csv: wrong number of columns": 1}
    assert stats["report"]["rows_read"] == 31
    rows = pd.concat([pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "valid", "test")])
    assert "quoted, with comma\nand a newline" in set(rows.note)
