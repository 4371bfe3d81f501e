"""The reader interface every dataset implements, and small shared parsing helpers.

A `Source` knows one raw format: which files it needs, where they come from, and how to turn them
into a `RawTable` — one row per interaction, one string column per field holding the human-readable
value the text template shows (Eq. 4), plus `rating` and, where the data has one, `timestamp`.
Everything after that (labels, k-core, split, vocabularies, text) is `clickprompt.data.prepare`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from clickprompt.errors import DataError


@dataclass(frozen=True)
class SourceSpec:
    """What `prepare` needs to know about a source (paper Appendix A for the four datasets)."""

    fields: tuple[tuple[str, str], ...]  # (column, display name in the template), in template order
    rating_range: tuple[float, float]  # valid ratings, inclusive
    label_threshold: float  # label = rating >= threshold
    neutral_ratings: tuple[float, ...] = ()  # dropped before labelling (ML-1M: rating 3)
    split: str = "time"  # "time" (global timestamp order) or "random" (seeded)
    kcore: int = 0  # k-core filter on (user_col, item_col); 0 = none
    user_col: str = "user_id"
    item_col: str = "item_id"
    label_col: str | None = None  # a ready binary label column instead of rating thresholds


@dataclass
class RawTable:
    frame: pd.DataFrame  # field columns (str), "rating" (float), optional "timestamp" (int64)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows skipped while reading
    notes: list[str] = field(default_factory=list)  # anything the statistics file should say
    source_files: list[str] = field(default_factory=list)
    encodings: dict[str, str] = field(default_factory=dict)  # file name -> the encoding it was decoded with


@dataclass(frozen=True)
class Download:
    url: str
    checksum: str  # "sha256:<hex>" or "md5:<hex>" (GroupLens publishes MD5 sums for its zips)
    filename: str


class Source:
    """Base class: subclasses set `name`, `spec`, `required_files` and implement `read`."""

    name: str = ""
    spec: SourceSpec
    required_files: tuple[str, ...] = ()  # relative to the raw directory
    download: Download | None = None  # None: manual download (see `manual_instructions`)
    manual_instructions: str = ""

    def locate(self, raw_dir: Path) -> Path:
        """Return the directory holding `required_files` (raw_dir or one level below it)."""
        raw_dir = Path(raw_dir)
        candidates = [raw_dir] + (sorted(p for p in raw_dir.iterdir() if p.is_dir()) if raw_dir.is_dir() else [])
        for c in candidates:
            if all((c / f).exists() for f in self.required_files):
                return c
        missing = [f for f in self.required_files if not (raw_dir / f).exists()]
        hint = f" ({self.manual_instructions})" if self.manual_instructions else ""
        raise DataError(f"missing raw file(s) {', '.join(missing)} for dataset {self.name!r}{hint}", raw_dir)

    def bind(self, raw_dir: Path) -> "Source":
        """The source that reads `raw_dir`: itself, except for sources configured by a file found
        there (the generic `table` source reads its schema.yaml). `prepare` calls this first."""
        return self

    def read(self, raw_dir: Path) -> RawTable:  # pragma: no cover - interface
        raise NotImplementedError


def read_lines(path: Path, encoding: str) -> list[str]:
    """Read a text file, turning undecodable bytes into a one-line error naming the line."""
    return decode_lines(path, encoding)[0]


def decode_lines(path: Path, encoding: str, *, utf8_if_valid: bool = False) -> tuple[list[str], str]:
    """(lines, the encoding used). With `utf8_if_valid`, a file whose non-ASCII bytes form valid UTF-8 is
    read as UTF-8 (a re-saved copy of an ISO-8859-1 file: 'Misérables', not 'MisÃ©rables'); pure ASCII
    says "ascii". Undecodable bytes: a one-line error naming the line."""
    data = Path(path).read_bytes()
    if data.isascii():
        return data.decode("ascii").splitlines(), "ascii"
    if utf8_if_valid:
        try:
            return data.decode("utf-8").splitlines(), "utf-8"
        except UnicodeDecodeError:
            pass
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"cannot decode byte 0x{data[e.start]:02x} as {encoding}", path, line) from None
    return text.splitlines(), encoding


def split_lines(lines: list[str], sep: str, ncols: int, path: Path, header: bool = False) -> pd.DataFrame:
    """Split separated lines into exactly `ncols` string columns; a wrong count names file and line."""
    start = 1 if header else 0
    rows, numbers = [], []
    for i, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != ncols:
            found = "no separator" if len(parts) == 1 else f"{len(parts)} columns"
            raise DataError(f"expected {ncols} columns separated by {sep!r}, found {found}", path, i)
        rows.append(parts)
        numbers.append(i)
    if not rows:
        raise DataError("file holds no data rows", path)
    frame = pd.DataFrame(rows, columns=[f"c{j}" for j in range(ncols)])
    frame.attrs["lines"] = np.asarray(numbers, dtype=np.int64)  # file line of each row (blank lines skipped)
    return frame


def line_of(frame: pd.DataFrame) -> Callable[[int], int]:
    """Row position -> 1-based file line, for a frame made by `split_lines` (blank lines are skipped,
    so the position alone is not the line)."""
    lines = frame.attrs["lines"]
    return lambda pos: int(lines[pos])


def to_number(values: pd.Series, path: Path, what: str, line_of: Callable[[int], int], integer: bool = False):
    """Parse a string column to numbers; the first bad value is reported with its line."""
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() & values.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{what} {values.iloc[pos]!r} is not a number", path, line_of(pos))
    if integer:
        if (out.dropna() % 1 != 0).any():
            pos = int(np.flatnonzero((out % 1 != 0).to_numpy())[0])
            raise DataError(f"{what} {values.iloc[pos]!r} is not an integer", path, line_of(pos))
        return out.astype("int64")
    return out.astype("float64")


def check_ratings(ratings: pd.Series, lo: float, hi: float, path: Path, line_of: Callable[[int], int]) -> None:
    bad = (ratings < lo) | (ratings > hi)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"rating {ratings.iloc[pos]:g} out of range [{lo:g}, {hi:g}] ({int(bad.sum())} such rows)",
            path,
            line_of(pos),
        )


def require_columns(frame: pd.DataFrame, columns, path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; found {list(frame.columns)}", path)
