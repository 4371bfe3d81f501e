"""`clickprompt data prepare` as a user meets it when something goes wrong: a killed prepare's leftovers,
a file or a busy folder as --out, files re-saved in another encoding, a header-only table, a schema's name."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from clickprompt.cli import main as cli
from clickprompt.rundir import RunLock
from conftest import ML1M_MOVIES, write_ml1m


def _errors(capsys) -> list[str]:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return [line for line in err if line.startswith("error: ")]


def test_leftovers_of_a_killed_prepare_are_removed_and_said(tmp_path, capsys):
    raw = write_ml1m(tmp_path / "raw")
    out = tmp_path / "processed" / "ml-1m"
    leftover = out.with_name("ml-1m.tmp-99999")  # what a prepare killed mid-write leaves
    leftover.mkdir(parents=True)
    (leftover / "train.parquet").write_bytes(b"PAR1 half a file")
    assert cli(["data", "prepare", "ml-1m", "--raw", str(raw), "--out", str(out)]) == 0
    assert f"removed {leftover}" in capsys.readouterr().err
    assert not leftover.exists() and (out / "schema.json").exists()


@pytest.mark.parametrize("force", [False, True])
def test_a_file_as_out_is_refused_and_left_alone(tmp_path, capsys, force):
    raw = write_ml1m(tmp_path / "raw")
    out = tmp_path / "notes.txt"
    out.write_text("my notes")
    assert cli(["data", "prepare", "ml-1m", "--raw", str(raw), "--out", str(out), *(["--force"] * force)]) == 2
    (line,) = _errors(capsys)
    assert str(out) in line and "is a file, not a directory" in line
    assert out.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["notes.txt", "raw"]


def test_a_second_prepare_into_a_busy_folder_is_refused(tmp_path, capsys):
    raw = write_ml1m(tmp_path / "raw")
    out = tmp_path / "processed" / "shared"
    out.parent.mkdir(parents=True)
    with RunLock(out.parent / ".shared.lock", str(out)):
        assert cli(["data", "prepare", "ml-1m", "--raw", str(raw), "--out", str(out)]) == 2
        (line,) = _errors(capsys)
        assert "another process" in line and "PID" in line
    assert not out.exists()
    assert cli(["data", "prepare", "ml-1m", "--raw", str(raw), "--out", str(out)]) == 0
    # another dataset into the same folder afterwards: refused, the first one kept
    raw100k = tmp_path / "raw100k"
    from conftest import write_ml100k_recbole

    write_ml100k_recbole(raw100k)
    assert cli(["data", "prepare", "ml-100k", "--raw", str(raw100k / "ml-100k"), "--out", str(out)]) == 2
    assert "holds prepared dataset 'ml-1m'" in _errors(capsys)[0]
    assert json.loads((out / "schema.json").read_text())["dataset"] == "ml-1m"


def test_ml1m_resaved_as_utf8_reads_as_utf8_and_says_so(tmp_path):
    raw = write_ml1m(tmp_path / "raw")
    text = (raw / "movies.dat").read_bytes().decode("latin-1")
    (raw / "movies.dat").write_bytes(text.encode("utf-8"))  # an editor re-saved it
    out = tmp_path / "out"
    assert cli(["data", "prepare", "ml-1m", "--raw", str(raw), "--out", str(out)]) == 0
    titles = set(pd.concat(pd.read_parquet(out / f"{s}.parquet") for s in ("train", "valid", "test"))["title"])
    assert "Misérables, Les (1995)" in titles and not any("Ã" in t for t in titles)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["encodings"] == {"ratings.dat": "ascii", "users.dat": "ascii", "movies.dat": "utf-8"}
    # the original ISO-8859-1 file says so too
    raw2 = write_ml1m(tmp_path / "raw2")
    assert cli(["data", "prepare", "ml-1m", "--raw", str(raw2), "--out", str(tmp_path / "out2")]) == 0
    assert json.loads((tmp_path / "out2" / "stats.json").read_text())["encodings"]["movies.dat"] == "latin-1"
    assert ML1M_MOVIES[1].split("::")[1] in titles


def _table_raw(tmp_path, rows: str):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "r.csv").write_text("user,item,rating,ts\n" + rows)
    (raw / "schema.yaml").write_text(yaml.safe_dump({
        "name": "my-table", "file": "r.csv", "label": "rating", "threshold": 4, "timestamp": "ts",
        "fields": {"user": "User", "item": "Item"}}))
    return raw


def test_header_only_csv_says_there_are_no_data_rows(tmp_path, capsys):
    raw = _table_raw(tmp_path, "")
    assert cli(["data", "prepare", "table", "--raw", str(raw), "--out", str(tmp_path / "out")]) == 2
    (line,) = _errors(capsys)
    assert "r.csv: holds no data rows (only a header line)" in line


def test_prepare_table_from_raw_uses_the_schemas_name(tmp_path, monkeypatch):
    rows = "".join(f"{u},{i},{1 + (u * i) % 5},{100 + 10 * k}\n" for k, (u, i) in
                   enumerate((u, i) for u in range(1, 9) for i in range(1, 6)))
    raw = _table_raw(tmp_path, rows)
    monkeypatch.chdir(tmp_path)
    assert cli(["data", "prepare", "table", "--raw", str(raw)]) == 0
    schema = json.loads((tmp_path / "data" / "processed" / "my-table" / "schema.json").read_text())
    assert schema["dataset"] == "my-table"
