"""The generic `table` source: any CSV or Parquet file plus a small YAML schema.

Example schema (`schema.yaml`, next to the data or passed as `--schema FILE`)::

    name: ml-latest-small          # dataset name written to schema.json (default: the file's stem)
    file: ratings.csv              # CSV (.csv/.tsv/.txt, optionally .gz) or Parquet, relative to the
                                   # raw directory (or to the schema file), or absolute
    sep: ","                       # CSV only (default "," or tab for .tsv); encoding: utf-8 (default)
    label: rating                  # the column labels come from
    threshold: 4                   # label = value >= threshold; omit when the column is already 0/1
    neutral: [3]                   # values dropped before labelling (optional)
    timestamp: timestamp           # optional: global time split 8:1:1; without it, a random split
                                   # seeded by prepare's --seed
    fields:                        # column: display name, in template order ("Title is Heat (1995) .")
      userId: User ID
      movieId: Movie ID
      title: Title
    user: userId                   # optional: user and item columns (duplicate check, k-core)
    item: movieId
    kcore: 5                       # optional: k-core filter on (user, item), needs user and item

A schema naming a missing column, or a label that is not numeric or whose threshold leaves one class,
is refused with a one-line `DataError` naming the schema file and key.

The bottom half of this module holds the column-wise reading helpers the BookCrossing, Amazon and
GoodReads readers share: Arrow CSV/JSON readers that stream, keep only the needed columns and
dictionary-encode strings, so no reader runs Python per row.
"""

from __future__ import annotations

import codecs
import gzip
import html
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pj
import pyarrow.parquet as pq
import yaml

from clickprompt.data.sources.base import RawTable, Source, SourceSpec
from clickprompt.errors import DataError

SCHEMA_KEYS = ("name", "file", "format", "sep", "encoding", "label", "threshold", "neutral", "timestamp",
               "fields", "user", "item", "kcore")  # fmt: skip
DEFAULT_SCHEMA_NAMES = ("schema.yaml", "schema.yml", "table.yaml", "table.yml")
RESERVED = ("label", "rating", "timestamp")  # column names the prepared files (or prepare) use
STRING = pa.string()
DICT = pa.dictionary(pa.int32(), pa.string())


class TableSchema:
    """A parsed, checked table schema (see the module docstring for the keys)."""

    def __init__(self, raw: dict, path: Path | None = None):
        self.path = path
        where = path if path is not None else "schema"
        if not isinstance(raw, dict):
            raise DataError("a table schema must be a YAML mapping of keys (file, label, fields, ...)", where)
        unknown = [k for k in raw if k not in SCHEMA_KEYS]
        if unknown:
            raise DataError(f"unknown key {unknown[0]!r} (known: {', '.join(SCHEMA_KEYS)})", where)
        for key in ("file", "label", "fields"):
            if raw.get(key) in (None, ""):
                raise DataError(f"key {key!r} is required", where)
        self.file = str(raw["file"])
        self.name = str(raw.get("name") or Path(self.file).name.split(".")[0])
        lower = self.file.lower()
        self.format = raw.get("format") or ("parquet" if ".parquet" in lower or lower.endswith(".pq") else "csv")
        if self.format not in ("csv", "parquet"):
            raise self.error("format", f"must be csv or parquet, not {self.format!r}")
        self.sep = str(raw.get("sep") or ("\t" if ".tsv" in self.file.lower() else ","))
        self.encoding = str(raw.get("encoding") or "utf-8")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise self.error("encoding", f"unknown encoding {self.encoding!r}") from None
        self.label = str(raw["label"])
        self.threshold = self._number(raw, "threshold") if raw.get("threshold") is not None else None
        neutral = raw.get("neutral") or []
        if not isinstance(neutral, list):
            neutral = [neutral]
        self.neutral = tuple(self._number({"neutral": v}, "neutral") for v in neutral)
        if self.neutral and self.threshold is None:
            raise self.error("neutral", "needs a threshold (neutral values are dropped before thresholding)")
        self.timestamp = raw.get("timestamp")
        fields = raw["fields"]
        if isinstance(fields, dict):
            pairs = [(str(c), str(d if d is not None else c)) for c, d in fields.items()]
        elif isinstance(fields, list):
            pairs = []
            for f in fields:
                if isinstance(f, dict) and "column" in f:
                    pairs.append((str(f["column"]), str(f.get("display", f["column"]))))
                elif isinstance(f, (str, int)):
                    pairs.append((str(f), str(f)))
                else:
                    raise self.error("fields", f"entry {f!r} is neither a column name nor {{column, display}}")
        else:
            raise self.error("fields", "must map column names to display names")
        if not pairs:
            raise self.error("fields", "names no column")
        names = [c for c, _ in pairs]
        if len(set(names)) != len(names):
            raise self.error("fields", "names a column twice")
        for c in names:
            if c in RESERVED or c.endswith("__id"):
                raise self.error("fields", f"column {c!r} cannot be a field: the prepared files use that name; rename it")
        if self.label in names:
            raise self.error("label", f"column {self.label!r} is also a field: the label would leak into the input")
        self.fields = tuple(pairs)
        self.user = raw.get("user")
        self.item = raw.get("item")
        kcore = raw.get("kcore") or 0
        if not isinstance(kcore, int) or kcore < 0:
            raise self.error("kcore", f"must be a whole number >= 0, not {kcore!r}")
        if kcore > 1 and not (self.user and self.item):
            raise self.error("kcore", "needs the keys 'user' and 'item' (the columns to count)")
        self.kcore = kcore

    def error(self, key: str, message: str) -> DataError:
        return DataError(f"key {key!r}: {message}", self.path if self.path is not None else "schema")

    def _number(self, raw: dict, key: str) -> float:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"{value!r} is not a number")
        return float(value)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TableSchema":
        path = Path(path)
        if not path.is_file():
            raise DataError("schema file not found", path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"not valid YAML ({first})", path) from None
        return cls(raw, path)

    def columns(self) -> list[str]:
        """Every column the table must have, each once."""
        cols = [c for c, _ in self.fields] + [self.label]
        cols += [c for c in (self.timestamp, self.user, self.item) if c]
        return list(dict.fromkeys(str(c) for c in cols))


class TableSource(Source):
    """A CSV or Parquet table described by a `TableSchema` (see the module docstring).

    Registered as `table` without a schema: `read` then looks for `schema.yaml` in the raw
    directory. `TableSource.from_yaml(path)` binds a schema file, for
    `prepare("table", raw_dir, out_dir, source=TableSource.from_yaml(path))` or `--schema FILE`.
    """

    name = "table"
    required_files = ()
    manual_instructions = (
        "put a CSV or Parquet file and a schema.yaml describing it (file, label, threshold, fields, "
        "optional timestamp/user/item/kcore) in the raw directory, or pass --schema FILE"
    )

    def __init__(self, schema: TableSchema | None = None):
        self.schema = schema
        if schema is not None:
            self.name = schema.name
            self.spec = _spec_of(schema)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TableSource":
        return cls(TableSchema.from_yaml(path))

    @property
    def spec(self) -> SourceSpec:  # type: ignore[override]
        if self.schema is None:
            raise DataError(f"the table source needs a schema: {self.manual_instructions}")
        return self._spec

    @spec.setter
    def spec(self, value: SourceSpec) -> None:
        self._spec = value

    def bind(self, raw_dir: Path) -> "TableSource":
        """This source if it has a schema, else one bound to the schema.yaml in `raw_dir`."""
        if self.schema is not None:
            return self
        found = find_first([Path(raw_dir)], DEFAULT_SCHEMA_NAMES)
        if found is None:
            raise DataError(f"no {DEFAULT_SCHEMA_NAMES[0]} here; {self.manual_instructions}", raw_dir)
        return TableSource.from_yaml(found)

    def read(self, raw_dir: Path) -> RawTable:
        if self.schema is None:
            return self.bind(raw_dir).read(raw_dir)
        schema = self.schema
        path = self._data_path(schema, Path(raw_dir))
        header = self._header(schema, path)
        for key, cols in (("fields", [c for c, _ in schema.fields]), ("label", [schema.label]),
                          ("timestamp", [schema.timestamp]), ("user", [schema.user]), ("item", [schema.item])):  # fmt: skip
            for c in cols:
                if c and str(c) not in header:
                    found = ", ".join(header[:20]) + (", ..." if len(header) > 20 else "")
                    raise schema.error(key, f"column {c!r} is not in {path.name} (columns: {found})")
        table, skipped, notes = self._load(schema, path)
        raw = self._to_raw(schema, table, path)
        raw.skipped.update(skipped)
        raw.notes += notes
        return raw

    @staticmethod
    def _data_path(schema: TableSchema, raw_dir: Path) -> Path:
        f = Path(schema.file)
        candidates = [f] if f.is_absolute() else [raw_dir / f] + ([schema.path.parent / f] if schema.path else [])
        for c in candidates:
            if c.is_file():
                return c
        looked = ", ".join(str(c.parent) for c in candidates)
        raise schema.error("file", f"{schema.file!r} not found (looked in {looked})")

    @staticmethod
    def _header(schema: TableSchema, path: Path) -> list[str]:
        if schema.format == "parquet":
            try:
                return list(pq.read_schema(path).names)
            except (pa.ArrowException, OSError) as e:
                raise DataError(f"not a readable Parquet file ({_first_line(e)})", path) from None
        try:
            with _open_text(path, schema.encoding) as f:
                first = f.readline().rstrip("\r\n").lstrip("\ufeff")
        except UnicodeDecodeError:
            raise undecodable_error(path, schema.encoding) from None
        except (OSError, EOFError) as e:
            raise DataError(f"cannot read ({_first_line(e)})", path) from None
        if not first:
            raise DataError("empty file: expected a header line naming the columns", path)
        return [c.strip().strip('"') for c in first.split(schema.sep)]

    @staticmethod
    def _load(schema: TableSchema, path: Path) -> tuple[pa.Table, dict, list]:
        """The needed columns, and (skipped counts, notes) for malformed CSV rows."""
        fields = [c for c, _ in schema.fields]
        cols = schema.columns()
        if schema.format == "parquet":
            try:
                types = pq.read_schema(path)
                text = [c for c in fields + [str(x) for x in (schema.user, schema.item) if x]
                        if pa.types.is_string(types.field(c).type) or pa.types.is_large_string(types.field(c).type)]  # fmt: skip
                # string columns decode straight into dictionaries: memory ~ codes + distinct values
                table = pq.read_table(path, columns=cols, read_dictionary=list(dict.fromkeys(text)))
            except (pa.ArrowException, OSError) as e:
                raise DataError(f"cannot read Parquet ({_first_line(e)})", path) from None
        else:
            types = {c: DICT for c in fields}
            for c in (schema.user, schema.item):
                if c:
                    types[str(c)] = DICT
            table, bad = read_csv(path, cols, types, sep=schema.sep, encoding=schema.encoding, newlines_in_values=True)
            if bad:
                return table, {f"{path.name}: wrong number of columns": len(bad)}, [bad.note(path, "wrong number of columns")]
        return table, {}, []

    @staticmethod
    def _to_raw(schema: TableSchema, table: pa.Table, path: Path) -> RawTable:
        skipped: dict[str, int] = {}
        notes = [f"generic table {path.name} described by {schema.path.name if schema.path else 'a schema'}"]
        if len(table) == 0:
            raise DataError("holds no data rows" + ("" if schema.format == "parquet" else " (only a header line)"), path)
        label = _numeric(table.column(schema.label), schema, "label", path)
        valid = pc.is_valid(label)
        ts = None
        if schema.timestamp:
            ts = _timestamps(table.column(str(schema.timestamp)), schema, path)
            valid = pc.and_(valid, pc.is_valid(ts))
        n_invalid = len(table) - pc.sum(valid.cast(pa.int64())).as_py() if len(table) else 0
        if n_invalid:
            table, label = table.filter(valid), label.filter(valid)
            ts = ts.filter(valid) if ts is not None else None
            skipped[f"no {schema.label!r}" + (f" or {schema.timestamp!r}" if schema.timestamp else "")] = int(n_invalid)
        values = label.to_numpy(zero_copy_only=False).astype("float64")
        if len(values) == 0:
            raise DataError("holds no data rows", path)
        if schema.threshold is None:
            bad = ~np.isin(values, [0.0, 1.0])
            if bad.any():
                raise schema.error(
                    "label",
                    f"column {schema.label!r} holds {values[bad][0]:g}, not 0/1; give a 'threshold' to binarise it",
                )
            kept = values
        else:
            kept = values[~np.isin(values, schema.neutral)] if schema.neutral else values
            pos = int(np.count_nonzero(kept >= schema.threshold))
            if pos == 0 or pos == len(kept):
                only = "1" if pos else "0"
                raise schema.error(
                    "threshold",
                    f"{schema.threshold:g} gives every usable row of {schema.label!r} label {only} "
                    f"(values {kept.min():g}..{kept.max():g}); pick a threshold inside the range",
                )
        if schema.threshold is None and len(np.unique(kept)) < 2:
            raise schema.error("label", f"column {schema.label!r} holds one class only ({kept[0]:g})")
        frame = {}
        keyed = [c for c, _ in schema.fields] + [str(c) for c in (schema.user, schema.item) if c]
        for c in dict.fromkeys(keyed):
            frame[c] = to_categorical(table.column(c))
        out = pd.DataFrame(frame, copy=False)
        if schema.threshold is None:
            out[schema.label] = values.astype("int8")
        else:
            out["rating"] = values
        if ts is not None:
            out["timestamp"] = ts.to_numpy(zero_copy_only=False).astype("int64")
        return RawTable(out, skipped=skipped, notes=notes, source_files=[str(path)])


def _spec_of(schema: TableSchema) -> SourceSpec:
    return SourceSpec(
        fields=schema.fields,
        rating_range=(-np.inf, np.inf),
        label_threshold=schema.threshold if schema.threshold is not None else 1.0,
        neutral_ratings=schema.neutral,
        split="time" if schema.timestamp else "random",
        kcore=schema.kcore,
        user_col=str(schema.user or "user_id"),
        item_col=str(schema.item or "item_id"),
        label_col=schema.label if schema.threshold is None else None,
    )


def _numeric(col: pa.ChunkedArray, schema: TableSchema, key: str, path: Path) -> pa.ChunkedArray:
    """A label column as float64 (nulls where empty); text that is not a number is refused."""
    what = f"column {str(getattr(schema, key))!r} of {path.name}"
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type):
        return col.cast(pa.float64())
    if pa.types.is_boolean(col.type):
        return col.cast(pa.int8()).cast(pa.float64())
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = pc.utf8_trim_whitespace(col)
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
        try:
            return text.cast(pa.float64())
        except pa.ArrowInvalid:
            ok = pc.fill_null(pc.match_substring_regex(text, r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"), True)
            first = text.filter(pc.invert(ok))[0].as_py()
            raise schema.error(key, f"{what} is not numeric (e.g. {first!r})") from None
    raise schema.error(key, f"{what} has type {col.type}, not a number")


def _timestamps(col: pa.ChunkedArray, schema: TableSchema, path: Path) -> pa.ChunkedArray:
    """Unix seconds from integer/float seconds, dates/datetimes (typed, or text pandas can parse)."""
    what = f"column {schema.timestamp!r} of {path.name}"
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    t = col.type
    if pa.types.is_date(t):
        col, t = col.cast(pa.timestamp("s")), pa.timestamp("s")
    if pa.types.is_timestamp(t):  # the stored integer is UTC-based in the column's unit
        per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[t.unit]
        return pc.divide(col.cast(pa.int64()), per_second)
    if pa.types.is_integer(t):
        return col.cast(pa.int64())
    if pa.types.is_floating(t):
        return pc.floor(col).cast(pa.int64())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        text = pc.utf8_trim_whitespace(col)
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
        try:
            return pc.floor(text.cast(pa.float64())).cast(pa.int64())
        except pa.ArrowInvalid:
            pass
        values = pd.Series(text.to_pandas())
        with warnings.catch_warnings():  # "could not infer format": parsed per value, which is fine
            warnings.simplefilter("ignore", UserWarning)
            try:  # one format inferred from the first value and applied to all (fast); else per value
                dt = pd.to_datetime(values, utc=True)
            except (ValueError, TypeError, OverflowError):
                try:
                    dt = pd.to_datetime(values, utc=True, format="mixed")
                except (ValueError, TypeError, OverflowError) as e:
                    raise schema.error("timestamp", f"{what}: {_first_line(e)}") from None
        secs = (dt - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)  # NaN where missing
        return pa.chunked_array([pa.array(secs.to_numpy(dtype="float64"), from_pandas=True).cast(pa.int64())])
    raise schema.error("timestamp", f"{what} has type {t}, not a time")


# ---------------------------------------------------------------------------------------------------
# Column-wise reading helpers shared by the readers (Arrow does the per-row work in C++).


def find_first(dirs: Iterable[Path], names: Iterable[str]) -> Path | None:
    """The first `dir/name` that exists, names in order of preference."""
    names = list(names)
    for d in dirs:
        for n in names:
            if (d / n).is_file():
                return d / n
    return None


def locate_any(source: Source, raw_dir: Path, groups: dict[str, tuple[str, ...]]) -> dict[str, Path]:
    """For each role, the first existing file among its alternative names, all in one directory:
    `raw_dir` or one level below it (an unpacked archive)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError(f"raw directory not found for dataset {source.name!r} ({source.manual_instructions})", raw_dir)
    candidates = [raw_dir] + sorted(p for p in raw_dir.iterdir() if p.is_dir())
    for d in candidates:
        found = {role: find_first([d], names) for role, names in groups.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    found = {role: find_first(candidates, names) for role, names in groups.items()}
    missing = [" or ".join(groups[r][:3]) for r, p in found.items() if p is None]
    raise DataError(
        f"missing raw file(s) {'; '.join(missing)} for dataset {source.name!r} ({source.manual_instructions})", raw_dir
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _open_text(path: Path, encoding: str):
    opener = gzip.open if str(path).endswith(".gz") else open
    return opener(path, "rt", encoding=encoding, newline="")


def first_undecodable(path: Path, encoding: str = "utf-8") -> tuple[int, int] | None:
    """(line, byte) of the first byte that does not decode, streaming in 1 MiB chunks; None if clean."""
    decoder = codecs.getincrementaldecoder(encoding)()
    opener = gzip.open if str(path).endswith(".gz") else open
    line = 1
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                return line + chunk[: e.start].count(b"\n"), chunk[e.start]
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line, -1
    return None


def undecodable_error(path: Path, encoding: str) -> DataError:
    where = first_undecodable(path, encoding)
    if where is None:
        return DataError(f"cannot decode as {encoding}", path)
    line, byte = where
    what = f"byte 0x{byte:02x}" if byte >= 0 else "a truncated character at the end"
    return DataError(f"cannot decode {what} as {encoding}", path, line)


def arrow_error(e: BaseException, path: Path, encoding: str = "utf-8") -> DataError:
    """A one-line DataError for an Arrow/gzip/OS failure while reading `path`."""
    msg = _first_line(e)
    if "utf8" in msg.lower().replace("-", "") or "encoding" in msg.lower() or isinstance(e, UnicodeDecodeError):
        return undecodable_error(path, encoding)
    if "gzip" in msg.lower() or "compressed" in msg.lower() or isinstance(e, (EOFError, gzip.BadGzipFile)):
        return DataError(f"damaged or truncated gzip data ({msg})", path)
    return DataError(msg, path)


def read_csv(
    path: Path,
    columns: list[str],
    types: dict[str, pa.DataType],
    *,
    sep: str = ",",
    encoding: str = "utf-8",
    header: bool = True,
    names: list[str] | None = None,
    quote: bool = True,
    newlines_in_values: bool = False,
) -> tuple[pa.Table, "BadLines"]:
    """Read `columns` of a delimited file with Arrow; rows with the wrong number of columns are
    skipped. Returns the table and the skipped rows (a count and a few samples)."""
    bad = BadLines()

    def on_bad(row) -> str:
        bad.add(row.text)
        return "skip"

    read = pcsv.ReadOptions(encoding=encoding, column_names=None if header else names, block_size=1 << 24)
    parse = pcsv.ParseOptions(delimiter=sep, quote_char='"' if quote else False, newlines_in_values=newlines_in_values,
                              invalid_row_handler=on_bad)  # fmt: skip
    convert = pcsv.ConvertOptions(column_types=types, include_columns=columns, strings_can_be_null=False,
                                  quoted_strings_can_be_null=False)  # fmt: skip
    try:
        table = pcsv.read_csv(str(path), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError, EOFError) as e:
        msg = _first_line(e)
        if "conversion error" in msg.lower() and "utf8" not in msg.lower():
            raise DataError(msg.replace("CSV conversion error", "bad value"), path) from None
        raise arrow_error(e, path, encoding) from None
    for c in columns:  # text columns that Arrow could not decode come back as binary
        if pa.types.is_binary(table.column(c).type):
            raise undecodable_error(path, encoding)
    return table, bad


def scan_json(
    path: Path,
    schema: pa.Schema,
    *,
    keep: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
    encode: Iterable[str] = (),
    block_size: int = 1 << 24,
) -> pa.Table:
    """Stream a JSON-lines file (plain or .gz) keeping only `schema`'s columns.

    Each block is parsed by Arrow, validated as UTF-8 and filtered by `keep`; its `encode` columns
    are dictionary-encoded and folded into one growing dictionary per column (`GrowingDictionary`),
    so memory stays near one int32 per row per encoded column plus the distinct values.
    """
    encode = list(encode)
    read = pj.ReadOptions(block_size=block_size, use_threads=True)
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False)
    names: list[str] | None = None
    plain: dict[str, list] = {}
    growing = {c: GrowingDictionary() for c in encode}
    try:
        with pa.input_stream(str(path)) as stream:
            reader = pj.open_json(stream, read_options=read, parse_options=parse)
            for batch in reader:
                batch.validate(full=True)  # invalid UTF-8 in strings surfaces here
                if keep is not None:
                    batch = keep(batch)
                if names is None:
                    names = list(batch.schema.names)
                    plain = {c: [] for c in names if c not in growing}
                for c in names:
                    if c in growing:
                        growing[c].add(batch.column(c))
                    else:
                        plain[c].append(batch.column(c))
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError) as e:
        if isinstance(e, pa.ArrowInvalid) and "empty" in str(e).lower() and names is None:
            raise DataError("holds no JSON lines", path) from None
        raise arrow_error(e, path) from None
    if names is None:
        raise DataError("holds no JSON lines", path)
    columns = [growing[c].finish() if c in growing else pa.chunked_array(plain.pop(c), type=None) for c in names]
    return pa.table(columns, names=names)


class GrowingDictionary:
    """Dictionary-encodes a string column arriving in batches, without per-row Python.

    Each batch is encoded on its own (Arrow hashing); every `flush_every` batches the batch
    dictionaries are appended to the global one and the result re-encoded: its first occurrences
    keep their ids, so the global ids are stable, and each batch's indices are remapped once.
    """

    def __init__(self, flush_every: int = 32):
        self.values = pa.array([], type=pa.string())
        self.pending: list[tuple[np.ndarray, pa.Array]] = []
        self.codes: list[np.ndarray] = []
        self.flush_every = flush_every

    def add(self, column: pa.Array) -> None:
        enc = pc.dictionary_encode(column)
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks()
        indices = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        dictionary = enc.dictionary
        if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
            dictionary = dictionary.cast(pa.string())
        self.pending.append((indices, dictionary.cast(pa.string())))
        if len(self.pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        merged = pc.dictionary_encode(pa.concat_arrays([self.values] + [d for _, d in self.pending]))
        ids = merged.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        offset = len(self.values)
        for indices, dictionary in self.pending:
            remap = np.append(ids[offset : offset + len(dictionary)], np.int32(-1))  # index -1 stays null
            self.codes.append(remap[indices])
            offset += len(dictionary)
        self.values = merged.dictionary
        self.pending = []

    def finish(self) -> pa.DictionaryArray:
        self.flush()
        codes = np.concatenate(self.codes) if self.codes else np.zeros(0, np.int32)
        self.codes = []
        mask = codes < 0
        indices = pa.array(codes, mask=mask if mask.any() else None, type=pa.int32())
        return pa.DictionaryArray.from_arrays(indices, self.values)


def to_categorical(col: pa.ChunkedArray | pa.Array) -> pd.Categorical:
    """An Arrow column as a pandas Categorical of strings (Arrow unifies the chunks' dictionaries);
    nulls stay missing."""
    if not pa.types.is_dictionary(col.type):
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            col = col.cast(STRING)
        col = pc.dictionary_encode(col)
    return col.to_pandas().array if isinstance(col, pa.ChunkedArray) else pa.chunked_array([col]).to_pandas().array


def map_categories(cat: pd.Categorical, fn: Callable[[str], str | None]) -> pd.Categorical:
    """Apply `fn` to each distinct value only (None = missing); equal results are merged."""
    mapped = pd.Series([fn(v) for v in cat.categories], dtype=object)
    remap, uniques = pd.factorize(mapped)  # None -> -1
    codes = np.append(remap, -1)[cat.codes]
    return pd.Categorical.from_codes(codes, pd.Index(uniques, dtype=object), validate=False)


def unescape_html(cat: pd.Categorical) -> pd.Categorical:
    """`&amp;` -> `&` and friends, on the distinct values (BX and Amazon titles carry entities)."""
    return map_categories(cat, lambda v: html.unescape(v) if "&" in v else v)


def lookup(keys: pd.Categorical, table_keys: pd.Index, columns: dict[str, pd.Categorical]) -> tuple[dict, int]:
    """Left join by key without per-row hashing: each distinct key is looked up once in
    `table_keys` (unique), and every side column is gathered by integer codes. Rows whose key is
    absent get missing values (prepare fills them with "unknown"). Returns the gathered columns and
    the number of rows whose key was absent."""
    pos = table_keys.get_indexer(pd.Index(keys.categories, dtype=object))
    row = np.append(pos, -1)[keys.codes]
    absent = int(np.count_nonzero(row < 0))
    out = {}
    for name, col in columns.items():
        codes = np.append(col.codes, -1)[row]
        out[name] = pd.Categorical.from_codes(codes, col.categories, validate=False)
    return out, absent


def first_unique(keys: pd.Categorical) -> tuple[pd.Index, np.ndarray, int]:
    """The distinct keys of a side table in file order, the row of each one's first occurrence,
    and how many later duplicate rows were ignored."""
    codes = keys.codes
    valid = codes >= 0
    order = np.flatnonzero(valid)
    uniq_codes, first = np.unique(codes[order], return_index=True)
    rows = order[first]
    rows.sort()
    index = pd.Index(np.asarray(keys.categories, dtype=object)[codes[rows]], dtype=object)
    return index, rows, int(valid.sum() - len(rows))


def take_categorical(col: pd.Categorical, rows: np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(col.codes[rows], col.categories, validate=False)


class Membership:
    """`value in set` for an Arrow string column against a fixed set of strings, hashed once.

    (`pyarrow.compute.is_in` re-hashes its value set on every call: with a million values and
    thousands of blocks that dominates a streamed read.)"""

    def __init__(self, values):
        self.index = pd.Index(np.asarray(values, dtype=object), dtype=object)
        self.index.get_indexer(np.asarray([], dtype=object))  # build the hash table now

    def __call__(self, column: pa.Array) -> pa.Array:
        return pa.array(self.index.get_indexer(column.to_numpy(zero_copy_only=False)) >= 0)


class BadLines:
    """Skipped lines: how many, and the first few for the statistics file's notes."""

    def __init__(self, keep: int = 2):
        self.count, self.samples, self.keep = 0, [], keep

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.samples) < self.keep:
            self.samples.append(text)

    def __len__(self) -> int:
        return self.count

    def note(self, path: Path, reason: str) -> str:
        sample = "; ".join(repr(b[:80]) for b in self.samples)
        return f"{path.name}: skipped {self.count:,} line(s) ({reason}), e.g. {sample}"
