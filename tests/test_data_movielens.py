"""MovieLens readers: the real file formats, decoding, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import (
    ML1M_MOVIES,
    ML1M_RATINGS,
    ML1M_USERS,
    write_ml1m,
    write_ml100k_grouplens,
    write_ml100k_recbole,
)

from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.prepare import SPLITS, prepare
from clickprompt.data.sources import get_source
from clickprompt.errors import DataError

# ---- MovieLens-1M --------------------------------------------------------------------------------


def test_ml1m_reader_decodes_codes_and_latin1(ml1m_raw):
    frame = get_source("ml-1m").read(ml1m_raw).frame
    assert len(frame) == len(ML1M_RATINGS)  # rating 3 is dropped later, by prepare
    assert list(frame.columns) == [
        "user_id", "gender", "age", "occupation", "zipcode", "item_id", "title", "genre", "rating", "timestamp",
    ]  # fmt: skip
    users = frame.drop_duplicates("user_id").set_index("user_id")
    assert users.loc["1", ["gender", "age", "occupation"]].tolist() == ["female", "Under 18", "K-12 student"]
    assert users.loc["2", ["gender", "age", "occupation"]].tolist() == ["male", "56+", "self-employed"]
    assert users.loc["3", ["age", "occupation"]].tolist() == ["25-34", "programmer"]
    assert users.loc["4", ["age", "occupation", "zipcode"]].tolist() == ["45-49", "executive/managerial", "02460"]
    movies = frame.drop_duplicates("item_id").set_index("item_id")
    assert movies.loc["2", "title"] == "Misérables, Les (1995)"  # ISO-8859-1 0xe9 decoded to é
    assert movies.loc["3", "title"] == "Cité des enfants perdus, La (City of Lost Children, The) (1995)"
    assert movies.loc["1", "genre"] == "Animation"  # the first of Animation|Children's|Comedy
    assert frame["rating"].dtype == np.float64 and frame["timestamp"].dtype == np.int64
    assert frame["timestamp"].iloc[0] == 978300760


def test_ml1m_prepares_to_expected_splits_labels_and_text(ml1m_raw, tmp_path):
    # On the real ml-1m.zip files this gives 591,208 / 73,902 / 73,902 samples (Table 1): 1,000,209
    # ratings, 261,197 of them 3s dropped, 739,012 left, valid = test = ceil(739,012 / 10).
    stats = prepare("ml-1m", ml1m_raw, tmp_path / "out")
    # 16 ratings, 4 of them 3s -> 12 samples; valid = test = ceil(12/10) = 2, train = 8
    assert (stats["train"], stats["valid"], stats["test"]) == (8, 2, 2)
    assert stats["report"]["neutral_dropped"] == 4
    ds = PreparedDataset(tmp_path / "out")
    f = ds.frames
    # global timestamp order, ties kept in file order (see the fixture's timestamps)
    pairs = {s: list(zip(f[s].user_id, f[s].item_id)) for s in SPLITS}
    assert pairs["train"] == [
        ("2", "2"), ("2", "3"), ("3", "1"), ("3", "2"), ("4", "3"), ("1", "3"), ("2", "4"), ("3", "3"),
    ]  # fmt: skip
    assert pairs["valid"] == [("1", "1"), ("4", "1")]
    assert pairs["test"] == [("5", "2"), ("5", "4")]
    assert f["train"].label.tolist() == [1, 0, 0, 1, 1, 0, 1, 1]  # rating >= 4
    assert f["valid"].label.tolist() == [1, 0]
    assert f["test"].label.tolist() == [1, 1]
    assert stats["positive_rate"]["train"] == 0.625
    assert all(np.diff(pd.concat([f[s] for s in SPLITS]).timestamp.to_numpy()) >= 0)

    texts = ds.texts("train")
    assert texts[3] == (
        "User ID is 3 . Gender is male . Age is 25-34 . Occupation is programmer . Zipcode is 55117 . "
        "Movie ID is 2 . Title is Misérables, Les (1995) . Genre is Drama ."
    )
    assert ds.texts("test")[0].startswith("User ID is 5 . Gender is male . Age is 25-34 . Occupation is writer .")
    # user 5 only appears in test: its id is out-of-vocabulary, but the text keeps the real values
    assert ds.split("test").ids[:, ds.spec.names.index("user_id")].tolist() == [0, 0]
    assert ds.split("test").ids[:, ds.spec.names.index("occupation")].tolist() == [0, 0]
    schema = json.loads((tmp_path / "out" / "schema.json").read_text(encoding="utf-8"))
    assert schema["example_text"] == ds.texts("train")[0]
    assert "Title is Misérables, Les (1995) ." in schema["example_text"]  # train row 0 is (user 2, movie 2)


# ---- MovieLens-100K: GroupLens and RecBole layouts ----------------------------------------------


def _recbole_to_grouplens(recbole_dir, out_root):
    """Convert the RecBole atomic files back to GroupLens' u.data / u.user / u.item."""
    read = lambda name: pd.read_csv(recbole_dir / name, sep="\t", dtype=str, keep_default_na=False)  # noqa: E731
    inter, user, item = read("ml-100k.inter"), read("ml-100k.user"), read("ml-100k.item")
    items = []
    for item_id, title, year, classes in item.itertuples(index=False):
        if item_id == "267":  # the title-less movie; RecBole writes "unkonwn" in title and year
            items.append((item_id, "unknown", "", classes.split(" ")))
        else:  # RecBole cut "Title (1995)" at the last space and stripped the parentheses
            items.append((item_id, f"{title} ({year})", year, classes.split(" ")))
    return write_ml100k_grouplens(out_root, inter.itertuples(index=False), user.itertuples(index=False), items)


@pytest.mark.real
def test_ml100k_grouplens_and_recbole_layouts_prepare_to_the_same_dataset(real_raw_ml100k, tmp_path):
    gl = _recbole_to_grouplens(real_raw_ml100k, tmp_path / "grouplens")
    assert (gl / "u.item").read_bytes().count(b"Mis\xe9rables, Les (1995)") == 1  # really ISO-8859-1
    prepare("ml-100k", gl, tmp_path / "a")
    prepare("ml-100k", real_raw_ml100k, tmp_path / "b")
    for name in [f"{s}.parquet" for s in SPLITS] + ["vocab.parquet"]:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / name), pd.read_parquet(tmp_path / "b" / name))
    assert (tmp_path / "a" / "schema.json").read_text() == (tmp_path / "b" / "schema.json").read_text()
    stats_a, stats_b = (json.loads((tmp_path / d / "stats.json").read_text()) for d in "ab")
    assert stats_a.pop("encodings") == {"u.data": "ascii", "u.user": "ascii", "u.item": "latin-1"}
    assert stats_b.pop("encodings") == {"ml-100k.inter": "utf-8", "ml-100k.user": "utf-8", "ml-100k.item": "utf-8"}
    assert stats_a == stats_b  # everything else is the same dataset
    titles = PreparedDataset(tmp_path / "b").vocab.query("field == 'title'").value
    assert "Land Before Time III: The Time of the Great Giving (1995) (V)" in set(titles)  # GroupLens' title


@pytest.mark.real
def test_ml100k_recbole_reader_values(real_raw_ml100k):
    frame = get_source("ml-100k").read(real_raw_ml100k).frame
    assert len(frame) == 100_000
    first = frame.iloc[0]  # u.data's first line: 196 242 3 881250949
    assert (first.user_id, first.item_id, first.rating, first.timestamp) == ("196", "242", 3.0, 881250949)
    items = frame.drop_duplicates("item_id").set_index("item_id")
    assert items.loc["1", ["title", "genre"]].tolist() == ["Toy Story (1995)", "Animation"]
    assert items.loc["543", "title"] == "Misérables, Les (1995)"
    assert items.loc["267", ["title", "genre"]].tolist() == ["unknown", "unknown"]
    assert items.loc["1412", "title"] == "Land Before Time III: The Time of the Great Giving (1995) (V)"
    users = frame.drop_duplicates("user_id").set_index("user_id")
    assert users.loc["1", ["age", "gender", "occupation", "zipcode"]].tolist() == ["24", "male", "technician", "85711"]
    assert frame["item_id"].nunique() == 1682 and frame["user_id"].nunique() == 943


def test_ml100k_tiny_layouts_agree(tmp_path):
    rb = write_ml100k_recbole(tmp_path / "rb")
    from conftest import ML100K_INTER, ML100K_ITEMS, ML100K_USERS

    items = [(i, f"{t} ({y})", y, g) for i, t, y, g in ML100K_ITEMS]
    gl = write_ml100k_grouplens(tmp_path / "gl", ML100K_INTER, ML100K_USERS, items)
    a = get_source("ml-100k").read(rb).frame
    b = get_source("ml-100k").read(gl).frame
    pd.testing.assert_frame_equal(a, b)
    assert a.title.tolist()[1] == "Misérables, Les (1995)" and a.genre.tolist()[1] == "Drama"


# ---- bad input: one-line DataError naming file, line and problem -------------------------------


def test_missing_file(tmp_path):
    d = write_ml1m(tmp_path)
    (d / "movies.dat").unlink()
    with pytest.raises(DataError, match=r"missing raw file\(s\) movies\.dat for dataset 'ml-1m'") as e:
        get_source("ml-1m").read(d)
    assert str(d) in str(e.value) and "\n" not in str(e.value)


def test_missing_ml100k_files_name_both_layouts(tmp_path):
    with pytest.raises(DataError, match=r"u\.data, u\.user, u\.item .*ml-100k\.inter") as e:
        get_source("ml-100k").read(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_recbole_header_missing_a_column(tmp_path):
    d = write_ml100k_recbole(tmp_path)
    path = d / "ml-100k.user"
    lines = path.read_text().splitlines()
    cut = ["\t".join(line.split("\t")[:4]) for line in lines]  # drop zip_code
    path.write_text("\n".join(cut) + "\n")
    with pytest.raises(DataError) as e:
        get_source("ml-100k").read(d)
    msg = str(e.value)
    assert msg.startswith(f"{path}: missing column(s) ['zip_code:token']")
    assert "found ['user_id:token', 'age:token', 'gender:token', 'occupation:token']" in msg


def test_wrong_separator_names_file_and_line(tmp_path):
    d = write_ml1m(tmp_path)
    (d / "ratings.dat").write_text("1\t1\t5\t978300760\n")  # tabs instead of '::'
    with pytest.raises(DataError) as e:
        get_source("ml-1m").read(d)
    assert str(e.value) == f"{d / 'ratings.dat'}, line 1: expected 4 columns separated by '::', found no separator"


def test_wrong_column_count_after_blank_line_names_the_real_line(tmp_path):
    d = write_ml1m(tmp_path, ratings=["1::1::5::978300760", "", "1::2::4::978300761::9"])
    with pytest.raises(DataError, match=r"ratings\.dat, line 3: expected 4 columns separated by '::', found 5 columns"):
        get_source("ml-1m").read(d)


def test_undecodable_bytes_in_recbole_file(tmp_path):
    d = write_ml100k_recbole(tmp_path)
    path = d / "ml-100k.item"
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))  # é as 0xe9: not UTF-8
    with pytest.raises(DataError) as e:
        get_source("ml-100k").read(d)
    # line 1 is the header, line 2 Toy Story, line 3 "Misérables, Les"
    assert str(e.value) == f"{path}, line 3: cannot decode byte 0xe9 as utf-8"


def test_rating_out_of_range(tmp_path):
    ratings = list(ML1M_RATINGS)
    ratings[5] = "3::4::6::978300300"
    ratings[9] = "1::3::0::978300500"
    d = write_ml1m(tmp_path, ratings=ratings)
    with pytest.raises(DataError) as e:
        get_source("ml-1m").read(d)
    assert str(e.value) == f"{d / 'ratings.dat'}, line 6: rating 6 out of range [1, 5] (2 such rows)"


def test_rating_not_a_number_recbole_counts_the_header(tmp_path):
    from conftest import ML100K_INTER

    inter = list(ML100K_INTER)
    inter[2] = ("2", "1", "four", "888550871")
    d = write_ml100k_recbole(tmp_path, inter=inter)
    with pytest.raises(DataError) as e:
        get_source("ml-100k").read(d)
    assert str(e.value) == f"{d / 'ml-100k.inter'}, line 4: rating 'four' is not a number"


def test_rating_names_unknown_user(tmp_path):
    from conftest import ML100K_INTER

    d = write_ml100k_recbole(tmp_path, inter=list(ML100K_INTER) + [("9", "1", "4", "889237800")])
    with pytest.raises(DataError) as e:
        get_source("ml-100k").read(d)
    assert str(e.value) == (
        f"{d / 'ml-100k.inter'}, line 10: 1 ratings name a user_id absent from ml-100k.user, first '9'"
    )


@pytest.mark.parametrize(
    "row, problem",
    [
        ("3::M::26::12::55117", "age code '26' is not one of"),
        ("3::M::25::21::55117", "occupation code '21' is not in 0..20"),
        ("3::M::25::x::55117", "occupation code 'x' is not in 0..20"),
    ],
)
def test_ml1m_bad_codes(tmp_path, row, problem):
    users = list(ML1M_USERS)
    users[2] = row
    d = write_ml1m(tmp_path, users=users, movies=ML1M_MOVIES)
    with pytest.raises(DataError) as e:
        get_source("ml-1m").read(d)
    assert str(e.value).startswith(f"{d / 'users.dat'}, line 3: {problem}")
