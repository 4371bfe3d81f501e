"""Shared fixtures: tiny raw MovieLens files in the real formats, and the real ML-100K prepared once.

The tiny writers produce byte-level faithful copies of the GroupLens layouts (separators, ISO-8859-1
encoding, coded ages and occupations) so the readers are tested on what the real files look like.
Tests on the real ML-100K files are marked `real`; they skip when the files cannot be had offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_RAW_ROOT = REPO / "data" / "raw"  # `clickprompt data fetch ml-100k` puts the files here

# ---- tiny MovieLens-1M in the real format -------------------------------------------------------

ML1M_USERS = [  # UserID::Gender::Age::Occupation::Zip-code (Age and Occupation coded, see DESIGN.md)
    "1::F::1::10::48067",  # Under 18, K-12 student
    "2::M::56::16::70072",  # 56+, self-employed
    "3::M::25::12::55117",  # 25-34, programmer
    "4::F::45::7::02460",  # 45-49, executive/managerial
    "5::M::25::20::55455",  # 25-34, writer
]
ML1M_MOVIES = [  # MovieID::Title (Year)::Genre|Genre, ISO-8859-1
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "2::Misérables, Les (1995)::Drama|Musical",
    "3::Cité des enfants perdus, La (City of Lost Children, The) (1995)::Adventure|Sci-Fi",
    "4::Heat (1995)::Action|Crime|Thriller",
]
# UserID::MovieID::Rating::Timestamp — 16 rows, 4 with rating 3 (dropped), so 12 usable samples:
# valid = test = ceil(12/10) = 2, train = 8. Timestamps are out of file order and have ties (the
# split sorts stably, so tied rows keep their file order).
ML1M_RATINGS = [
    "1::1::5::978300760",
    "1::2::3::978300761",
    "2::2::4::978300100",
    "2::3::1::978300200",
    "3::1::2::978300300",
    "3::4::3::978300300",
    "3::2::5::978300300",
    "4::3::4::978300400",
    "4::4::3::978300500",
    "1::3::2::978300500",
    "2::4::5::978300600",
    "3::3::4::978300700",
    "5::1::3::978300800",
    "4::1::1::978300900",
    "5::2::5::978301000",
    "5::4::4::978301000",
]


def write_ml1m(
    root: Path, ratings=ML1M_RATINGS, users=ML1M_USERS, movies=ML1M_MOVIES, *, sep: str = "::"
) -> Path:
    """Write ratings.dat, users.dat, movies.dat (ISO-8859-1, '\\n' line ends) into root/ml-1m."""
    d = Path(root) / "ml-1m"
    d.mkdir(parents=True, exist_ok=True)
    for name, lines in (("ratings.dat", ratings), ("users.dat", users), ("movies.dat", movies)):
        text = "".join(line.replace("::", sep) + "\n" for line in lines)
        (d / name).write_bytes(text.encode("latin-1"))
    return d


@pytest.fixture
def ml1m_raw(tmp_path) -> Path:
    return write_ml1m(tmp_path / "raw")


# ---- tiny MovieLens-100K in both layouts --------------------------------------------------------

ML100K_INTER = [  # user, item, rating, timestamp
    ("1", "1", "5", "874965758"),
    ("1", "2", "3", "876893171"),
    ("2", "1", "4", "888550871"),
    ("2", "3", "1", "888551000"),
    ("3", "2", "2", "889237455"),
    ("3", "3", "5", "889237500"),
    ("1", "3", "4", "889237600"),
    ("2", "2", "5", "889237700"),
]
ML100K_USERS = [  # id, age in years, gender, occupation word, zip
    ("1", "24", "M", "technician", "85711"),
    ("2", "53", "F", "other", "94043"),
    ("3", "23", "M", "writer", "32067"),
]
ML100K_ITEMS = [  # id, title without year, year, genres in GroupLens' fixed order
    ("1", "Toy Story", "1995", ["Animation", "Children's", "Comedy"]),
    ("2", "Misérables, Les", "1995", ["Drama", "Musical"]),
    ("3", "Heat", "1995", ["Action", "Crime", "Thriller"]),
]


def write_ml100k_recbole(root: Path, inter=ML100K_INTER, users=ML100K_USERS, items=ML100K_ITEMS) -> Path:
    """RecBole atomic files ml-100k.{inter,user,item}: tab-separated, typed header, UTF-8."""
    d = Path(root) / "ml-100k"
    d.mkdir(parents=True, exist_ok=True)
    rows = {
        "ml-100k.inter": ["user_id:token\titem_id:token\trating:float\ttimestamp:float"] + ["\t".join(r) for r in inter],
        "ml-100k.user": ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
        + ["\t".join(r) for r in users],
        "ml-100k.item": ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
        + [f"{i}\t{t}\t{y}\t{' '.join(g)}" for i, t, y, g in items],
    }
    for name, lines in rows.items():
        (d / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return d


def write_ml100k_grouplens(root: Path, inter, users, items) -> Path:
    """GroupLens files u.data (tabs), u.user ('|'), u.item ('|', 19 genre flags), ISO-8859-1.

    `items` rows are (id, full title, year or "", genres); the release date is written as
    01-Jan-<year> and the video release date and IMDb URL columns are left empty, as GroupLens does
    for movie 267."""
    from clickprompt.data.sources.movielens import ML100K_GENRES

    d = Path(root) / "ml-100k"
    d.mkdir(parents=True, exist_ok=True)
    data = "".join("\t".join(r) + "\n" for r in inter)
    user = "".join("|".join(r) + "\n" for r in users)
    item_lines = []
    for item_id, title, year, genres in items:
        unknown = set(genres) - set(ML100K_GENRES)
        assert not unknown, f"item {item_id}: genres {unknown} are not GroupLens genres"
        flags = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
        date = f"01-Jan-{year}" if year else ""
        item_lines.append(f"{item_id}|{title}|{date}|||{flags}\n")
    (d / "u.data").write_bytes(data.encode("latin-1"))
    (d / "u.user").write_bytes(user.encode("latin-1"))
    (d / "u.item").write_bytes("".join(item_lines).encode("latin-1"))
    return d


# ---- the real ML-100K -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_raw_ml100k() -> Path:
    """The real ML-100K raw directory, fetched with `clickprompt.data.fetch.fetch` (which finds the
    files already present in data/raw/ml-100k and does nothing, or takes them from the recbole wheel)."""
    from clickprompt.data.fetch import fetch
    from clickprompt.errors import DataError

    try:
        return fetch("ml-100k", REAL_RAW_ROOT, log=lambda msg: None)
    except DataError as e:  # no network and no package index: nothing to test on
        pytest.skip(f"real ML-100K unavailable: {e}")


@pytest.fixture(scope="session")
def real_prepared_ml100k(real_raw_ml100k, tmp_path_factory) -> Path:
    """Real ML-100K prepared once per session into a temporary directory (about a second)."""
    from clickprompt.data.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "ml-100k"
    prepare("ml-100k", real_raw_ml100k, out)
    return out


@pytest.fixture(scope="session")
def real_dataset(real_prepared_ml100k):
    from clickprompt.data.dataset import PreparedDataset

    return PreparedDataset(real_prepared_ml100k)
