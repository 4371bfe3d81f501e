"""MovieLens-1M and MovieLens-100K readers (GroupLens zip layouts, and RecBole atomic files for 100K).

Fields (8, as in Table 1 for ML-1M): User ID, Gender, Age, Occupation, Zipcode, Movie ID, Title,
Genre. Title keeps the year, "Toy Story (1995)"; Genre is the movie's first genre (the convention the
CTR-zoo reference runs use). ML-1M's coded Age and Occupation are decoded to words for the text view
(DESIGN.md); ML-100K already stores the age in years and the occupation as a word.
Labels (Appendix A): drop rating 3, label rating >= 4 as 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clickprompt.data.sources.base import (
    Download,
    RawTable,
    Source,
    SourceSpec,
    check_ratings,
    line_of,
    decode_lines,
    read_lines,
    require_columns,
    split_lines,
    to_number,
)
from clickprompt.errors import DataError

MOVIELENS_FIELDS = (
    ("user_id", "User ID"),
    ("gender", "Gender"),
    ("age", "Age"),
    ("occupation", "Occupation"),
    ("zipcode", "Zipcode"),
    ("item_id", "Movie ID"),
    ("title", "Title"),
    ("genre", "Genre"),
)
MOVIELENS_SPEC = SourceSpec(
    fields=MOVIELENS_FIELDS,
    rating_range=(1, 5),
    label_threshold=4,
    neutral_ratings=(3,),
    split="time",
)

ML1M_AGES = {"1": "Under 18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49", "50": "50-55", "56": "56+"}
ML1M_OCCUPATIONS = [
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
]  # fmt: skip
GENDERS = {"M": "male", "F": "female"}
ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def _join_interactions(
    ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, paths, rating_line
) -> pd.DataFrame:
    """Attach user and item side information; interactions with unknown users/items are an error."""
    for key, table, path in (("user_id", users, paths[1]), ("item_id", items, paths[2])):
        missing = ~ratings[key].isin(table[key])
        if missing.any():
            pos = int(np.flatnonzero(missing.to_numpy())[0])
            raise DataError(
                f"{int(missing.sum())} ratings name a {key} absent from {Path(path).name}, "
                f"first {ratings[key].iloc[pos]!r}",
                paths[0],
                rating_line(pos),
            )
        if table[key].duplicated().any():
            dup = table[key][table[key].duplicated()].iloc[0]
            raise DataError(f"{key} {dup!r} appears more than once", path)
    frame = ratings.merge(users, on="user_id", how="left", validate="many_to_one")
    frame = frame.merge(items, on="item_id", how="left", validate="many_to_one")
    cols = [c for c, _ in MOVIELENS_FIELDS]
    frame = frame[cols + ["rating", "timestamp"]]
    return frame.astype({c: str for c in cols})  # one string dtype whichever layout was read


def _read_latin1_or_utf8(paths) -> tuple[list[list[str]], dict[str, str]]:
    """GroupLens ships ISO-8859-1; a copy re-saved as UTF-8 is read as UTF-8 (never 'MisÃ©rables')."""
    decoded = [decode_lines(p, "latin-1", utf8_if_valid=True) for p in paths]
    return [lines for lines, _ in decoded], {p.name: enc for p, (_, enc) in zip(paths, decoded)}


class MovieLens1M(Source):
    name = "ml-1m"
    spec = MOVIELENS_SPEC
    required_files = ("ratings.dat", "users.dat", "movies.dat")
    download = Download(
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        checksum="md5:c4d9eecfca2ab87c1945afe126590906",
        filename="ml-1m.zip",
    )
    # The real files prepare to 591,208 / 73,902 / 73,902 train/valid/test samples (Table 1).

    def read(self, raw_dir: Path) -> RawTable:
        root = self.locate(raw_dir)
        paths = [root / "ratings.dat", root / "users.dat", root / "movies.dat"]
        lines, encodings = _read_latin1_or_utf8(paths)
        r = split_lines(lines[0], "::", 4, paths[0])
        ratings = pd.DataFrame({"user_id": r.c0.str.strip(), "item_id": r.c1.str.strip()})
        ratings["rating"] = to_number(r.c2, paths[0], "rating", line_of(r))
        ratings["timestamp"] = to_number(r.c3, paths[0], "timestamp", line_of(r), integer=True)
        check_ratings(ratings["rating"], *self.spec.rating_range, paths[0], line_of(r))

        u = split_lines(lines[1], "::", 5, paths[1])
        bad_age = ~u.c2.isin(list(ML1M_AGES))
        if bad_age.any():
            pos = int(np.flatnonzero(bad_age.to_numpy())[0])
            raise DataError(f"age code {u.c2.iloc[pos]!r} is not one of {list(ML1M_AGES)}", paths[1], line_of(u)(pos))
        occ = pd.to_numeric(u.c3, errors="coerce")
        bad_occ = ~occ.isin(range(len(ML1M_OCCUPATIONS)))
        if bad_occ.any():
            pos = int(np.flatnonzero(bad_occ.to_numpy())[0])
            raise DataError(f"occupation code {u.c3.iloc[pos]!r} is not in 0..20", paths[1], line_of(u)(pos))
        users = pd.DataFrame(
            {
                "user_id": u.c0.str.strip(),
                "gender": u.c1.map(GENDERS).fillna(u.c1),
                "age": u.c2.map(ML1M_AGES),
                "occupation": occ.astype(int).map(dict(enumerate(ML1M_OCCUPATIONS))),
                "zipcode": u.c4.str.strip(),
            }
        )
        m = split_lines(lines[2], "::", 3, paths[2])
        items = pd.DataFrame(
            {"item_id": m.c0.str.strip(), "title": m.c1.str.strip(), "genre": m.c2.str.split("|").str[0].str.strip()}
        )
        return RawTable(
            _join_interactions(ratings, users, items, paths, line_of(r)), source_files=[str(p) for p in paths],
            encodings=encodings,
        )


class MovieLens100K(Source):
    """GroupLens layout (u.data, u.user, u.item) or RecBole atomic files (ml-100k.{inter,user,item})."""

    name = "ml-100k"
    spec = MOVIELENS_SPEC
    required_files = ("u.data", "u.user", "u.item")
    recbole_files = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
    download = Download(
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        checksum="md5:0e33842e24a9c977be4e0107933c0723",
        filename="ml-100k.zip",
    )

    def locate(self, raw_dir: Path) -> Path:
        raw_dir = Path(raw_dir)
        candidates = [raw_dir] + (sorted(p for p in raw_dir.iterdir() if p.is_dir()) if raw_dir.is_dir() else [])
        for c in candidates:
            if all((c / f).exists() for f in self.required_files) or all((c / f).exists() for f in self.recbole_files):
                return c
        raise DataError(
            "missing raw files for 'ml-100k': need u.data, u.user, u.item (GroupLens) "
            "or ml-100k.inter, ml-100k.user, ml-100k.item (RecBole); run `clickprompt data fetch ml-100k`",
            raw_dir,
        )

    def read(self, raw_dir: Path) -> RawTable:
        root = self.locate(raw_dir)
        if all((root / f).exists() for f in self.required_files):
            return self._read_grouplens(root)
        return self._read_recbole(root)

    def _finish(self, ratings, users, items, paths, rating_line, encodings: dict) -> RawTable:
        users["gender"] = users["gender"].map(GENDERS).fillna(users["gender"])
        check_ratings(ratings["rating"], *self.spec.rating_range, paths[0], rating_line)
        return RawTable(
            _join_interactions(ratings, users, items, paths, rating_line), source_files=[str(p) for p in paths],
            encodings=encodings,
        )

    def _read_grouplens(self, root: Path) -> RawTable:
        paths = [root / "u.data", root / "u.user", root / "u.item"]
        lines, encodings = _read_latin1_or_utf8(paths)
        r = split_lines(lines[0], "\t", 4, paths[0])
        ratings = pd.DataFrame({"user_id": r.c0.str.strip(), "item_id": r.c1.str.strip()})
        ratings["rating"] = to_number(r.c2, paths[0], "rating", line_of(r))
        ratings["timestamp"] = to_number(r.c3, paths[0], "timestamp", line_of(r), integer=True)
        u = split_lines(lines[1], "|", 5, paths[1])
        u = u.apply(lambda s: s.str.strip())
        users = pd.DataFrame({"user_id": u.c0, "age": u.c1, "gender": u.c2, "occupation": u.c3, "zipcode": u.c4})
        m = split_lines(lines[2], "|", 5 + len(ML100K_GENRES), paths[2])
        flags = m[[f"c{5 + g}" for g in range(len(ML100K_GENRES))]].to_numpy() == "1"
        first = np.where(flags.any(axis=1), flags.argmax(axis=1), 0)
        items = pd.DataFrame(
            {
                "item_id": m.c0.str.strip(),
                "title": m.c1.str.strip(),
                "genre": np.asarray(ML100K_GENRES, dtype=object)[first],
            }
        )
        return self._finish(ratings, users, items, paths, line_of(r), encodings)

    def _read_recbole(self, root: Path) -> RawTable:
        paths = [root / f for f in self.recbole_files]
        inter = self._atomic(paths[0])
        require_columns(inter, ["user_id:token", "item_id:token", "rating:float", "timestamp:float"], paths[0])
        ratings = pd.DataFrame({"user_id": inter["user_id:token"], "item_id": inter["item_id:token"]})
        ratings["rating"] = to_number(inter["rating:float"], paths[0], "rating", line_of(inter))
        ratings["timestamp"] = to_number(inter["timestamp:float"], paths[0], "timestamp", line_of(inter), integer=True)
        user = self._atomic(paths[1])
        require_columns(user, ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"], paths[1])
        users = pd.DataFrame(
            {
                "user_id": user["user_id:token"],
                "age": user["age:token"],
                "gender": user["gender:token"],
                "occupation": user["occupation:token"],
                "zipcode": user["zip_code:token"],
            }
        )
        item = self._atomic(paths[2])
        require_columns(item, ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"], paths[2])
        # RecBole splits GroupLens' title at its last space and strips the parentheses: "Toy Story
        # (1995)" -> "Toy Story" + "1995", and "Land Before Time III: ... (1995) (V)" (id 1412) ->
        # "Land Before Time III: ... (1995)" + "V". It spells the one title-less movie (id 267)
        # "unkonwn" in both columns. Rebuild GroupLens' title so both layouts agree.
        title = item["movie_title:token_seq"]
        year = item["release_year:token"]
        no_year = year.isin(["unkonwn", "unknown", ""])
        title = title.where(no_year, title + " (" + year + ")").replace("unkonwn", "unknown")
        items = pd.DataFrame(
            {"item_id": item["item_id:token"], "title": title, "genre": item["class:token_seq"].str.split(" ").str[0]}
        )
        return self._finish(ratings, users, items, paths, line_of(inter), {p.name: "utf-8" for p in paths})

    @staticmethod
    def _atomic(path: Path) -> pd.DataFrame:
        lines = read_lines(path, "utf-8")
        if not lines or "\t" not in lines[0]:
            raise DataError("expected a tab-separated RecBole header such as 'user_id:token\\t...'", path, 1)
        header = lines[0].split("\t")
        frame = split_lines(lines, "\t", len(header), path, header=True)
        frame.columns = header
        lines = frame.attrs["lines"]
        frame = frame.apply(lambda s: s.str.strip())
        frame.attrs["lines"] = lines  # kept for line numbers in error messages
        return frame
