"""`clickprompt data list`: what is in `data/` — per dataset, raw files present?, prepared?, where from.

    from clickprompt.data.catalog import dataset_status, format_status
    print(format_status(dataset_status("data/raw", "data/processed")))

For every registered source (`clickprompt.data.sources.list_sources()`) one row says whether its raw
files are in `<raw_root>/<name>/` (found the way the reader finds them, one level of unpacked
archive included), whether `<processed_root>/<name>/` holds a prepared dataset (its fingerprint,
train/valid/test row counts and when it was prepared: schema.json's modification time), and, when
the raw files are absent, where to get them. Prepared directories under `processed_root` whose name
is not a registered source (a `table` dataset prepared with `--out`, a synthetic one) are listed too.
A damaged prepared directory is reported in one line, never with a traceback. Nothing is written.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

from clickprompt.data.sources import Source, get_source, list_sources
from clickprompt.data.sources.table import DEFAULT_SCHEMA_NAMES, TableSource, locate_any
from clickprompt.errors import DataError

SPLITS = ("train", "valid", "test")
PREPARED_FILES = ("schema.json", "stats.json", "vocab.parquet") + tuple(f"{s}.parquet" for s in SPLITS)
LEFTOVER = re.compile(r"\.(tmp|old)-\d+$")  # what an interrupted `prepare` leaves beside the output


def _file_groups(source: Source) -> dict[str, tuple[str, ...]] | None:
    """Role -> accepted file names, for readers that accept alternatives (GoodReads: plain or .gz;
    Amazon: reviews JSON, ratings CSV or 5-core); None where `source.locate` is the whole story."""
    groups = getattr(source, "groups", None)
    if groups is None and hasattr(source, "interaction_names") and hasattr(source, "meta_names"):
        groups = {"interactions": source.interaction_names, "meta": source.meta_names}
    return groups


def raw_status(source: Source, raw_dir: Path) -> dict[str, Any]:
    """{"raw": "present" | "missing" | "incomplete", "missing": [file names], "note": str}."""
    wanted = list(source.required_files) or [DEFAULT_SCHEMA_NAMES[0]]  # `table`: its schema file
    if not raw_dir.is_dir():
        return {"raw": "missing", "missing": wanted, "note": ""}
    try:
        bound = source.bind(raw_dir)  # `table` reads the schema.yaml found here
        groups = _file_groups(bound)
        if groups:
            locate_any(bound, raw_dir, groups)
        else:
            bound.locate(raw_dir)
        if isinstance(bound, TableSource) and bound.schema is not None:
            bound._data_path(bound.schema, raw_dir)  # the table file the schema names must be there too
        return {"raw": "present", "missing": [], "note": ""}
    except DataError as e:
        reason = str(e).splitlines()[0]
    except OSError as e:  # an unreadable directory or file
        return {"raw": "incomplete", "missing": [], "note": f"cannot read it ({type(e).__name__})"}
    try:
        dirs = [raw_dir] + sorted(p for p in raw_dir.iterdir() if p.is_dir())
        present = any(p.is_file() for d in dirs for p in d.iterdir())
    except OSError as e:
        return {"raw": "incomplete", "missing": [], "note": f"cannot read it ({type(e).__name__})"}
    missing = [f for f in wanted if not any((d / f).exists() for d in dirs)]
    note = "" if missing else reason  # the files are there but unusable (a bad schema.yaml, ...)
    return {"raw": "incomplete" if present else "missing", "missing": missing, "note": note}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path.name} cannot be read ({type(e).__name__})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path.name} is not valid JSON (line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return data


def prepared_status(out_dir: Path) -> dict[str, Any]:
    """{"prepared": "yes" | "no" | "damaged", ...}: fingerprint, dataset, train/valid/test, features,
    prepared_at (ISO date-time of schema.json), or "error" (one line) when damaged."""
    try:
        if not out_dir.is_dir() or not any(out_dir.iterdir()):
            return {"prepared": "no"}
        if LEFTOVER.search(out_dir.name):
            raise ValueError("left by an interrupted `clickprompt data prepare`; delete it")
        schema = _read_json(out_dir / "schema.json")
        stats = _read_json(out_dir / "stats.json")
        fingerprint = schema.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            raise ValueError("schema.json has no fingerprint")
        counts = {s: stats.get(s) for s in SPLITS}
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
            raise ValueError(f"stats.json lacks whole row counts for {', '.join(SPLITS)}")
        absent = [f for f in PREPARED_FILES if not (out_dir / f).is_file()]
        if absent:
            raise ValueError(f"{', '.join(absent)} missing")
        when = datetime.fromtimestamp((out_dir / "schema.json").stat().st_mtime).astimezone()
    except ValueError as e:
        return {"prepared": "damaged", "error": str(e)}
    except OSError as e:  # an unreadable directory
        return {"prepared": "damaged", "error": f"cannot be read ({type(e).__name__})"}
    return {
        "prepared": "yes",
        "dataset": schema.get("dataset", stats.get("dataset")),
        "fingerprint": fingerprint,
        **counts,
        "features": stats.get("features"),
        "prepared_at": when.isoformat(timespec="seconds"),
    }


def where_to_get(source: Source) -> str:
    """The command, or the manual step, that puts the raw files into `<raw_root>/<name>/`."""
    if source.download is not None:
        return f"clickprompt data fetch {source.name}  ({source.download.url})"
    return source.manual_instructions


def dataset_status(raw_root: str | Path = "data/raw", processed_root: str | Path = "data/processed") -> list[dict]:
    """One dict per registered source, then per other prepared directory under `processed_root`.

    Keys: name, kind ("source", "generic" for the `table` source, "other" for unregistered
    directories), raw_dir, raw ("present" | "missing" | "incomplete" | None for "other"),
    missing (file names), raw_note, get (where to get the raw files, when not present),
    processed_dir, prepared ("yes" | "no" | "damaged"), and when prepared: dataset, fingerprint,
    train, valid, test, features, prepared_at; when damaged: error.
    """
    raw_root, processed_root = Path(raw_root), Path(processed_root)
    rows = []
    names = list_sources()
    for name in names:
        source = get_source(name)
        raw_dir, out_dir = raw_root / name, processed_root / name
        raw = raw_status(source, raw_dir)
        rows.append({
            "name": name,
            "kind": "generic" if isinstance(source, TableSource) else "source",
            "raw_dir": str(raw_dir),
            "raw": raw["raw"],
            "missing": raw["missing"],
            "raw_note": raw["note"],
            "get": None if raw["raw"] == "present" else where_to_get(source),
            "processed_dir": str(out_dir),
            **prepared_status(out_dir),
        })  # fmt: skip
    others = sorted(p for p in processed_root.iterdir() if p.is_dir()) if processed_root.is_dir() else []
    for out_dir in others:
        if out_dir.name in names or not any((out_dir / f).exists() for f in PREPARED_FILES):
            continue
        rows.append({"name": out_dir.name, "kind": "other", "raw_dir": None, "raw": None, "missing": [],
                     "raw_note": "", "get": None, "processed_dir": str(out_dir), **prepared_status(out_dir)})  # fmt: skip
    return rows


def _prepared_text(row: dict) -> str:
    if row["prepared"] == "yes":
        other = f"dataset {row['dataset']!r}, " if row.get("dataset") not in (None, row["name"]) else ""
        return (
            f"prepared: {other}fingerprint {row['fingerprint']}, train {row['train']:,} / valid "
            f"{row['valid']:,} / test {row['test']:,}, at {row['prepared_at']}"
        )
    if row["prepared"] == "damaged":
        return f"prepared: DAMAGED ({row['error']}); prepare it again with --force"
    return "prepared: no"


def format_status(rows: list[dict], width: int = 100) -> str:
    """The rows of `dataset_status` as text: two lines per dataset, plus where to get absent raw files."""
    out = []
    for row in rows:
        if row["kind"] == "other":
            raw = "raw: (not a registered source)"
        elif row["raw"] == "present":
            raw = f"raw: present in {row['raw_dir']}"
        elif row["raw"] == "missing":
            raw = f"raw: not in {row['raw_dir']}"
        else:
            missing = f"; missing {', '.join(row['missing'])}" if row["missing"] else ""
            note = f"; {row['raw_note']}" if row["raw_note"] else ""
            raw = f"raw: incomplete in {row['raw_dir']}{missing}{note}"
        label = row["name"] + (" (your own table)" if row["kind"] == "generic" else "")
        out.append(f"{label}\n    {raw}\n    {_prepared_text(row)}")
        if row["get"]:
            text = f"get it: {row['get']}"
            out.append(textwrap.fill(text, width, initial_indent="    ", subsequent_indent="      ",
                                     break_long_words=False, break_on_hyphens=False))  # fmt: skip
    out.append("Where each dataset comes from, its terms of use and the citation to give: data/README.md")
    return "\n".join(out)
