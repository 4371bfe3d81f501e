"""The Streamlit dashboard (app/main.py) against runs of the tiny pipeline, through streamlit's AppTest:
no exception on any tab, the run names in the results table, Table 7's attention table, Table 6's
long-tail table, attributions and latency once switched on; and a clear message when there are no runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clickprompt.app_support import QUICK_COMMAND, discover_runs, results_table
from clickprompt.data.synthetic import make_tiny_dataset
from clickprompt.pipeline import quick
from clickprompt.plm.tiny import make_tiny_plm

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
APP = Path(__file__).resolve().parents[1] / "app" / "main.py"
RUN_NAMES = ["ctr", "finetune-with-plm", "finetune-without-plm", "pretrain"]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A DCNv2 baseline, PA-MLM, finetuning without and with a tiny random BERT: `quick` on tiny data."""
    root = tmp_path_factory.mktemp("app")
    make_tiny_dataset(root / "processed" / "tiny-ml", n=600, seed=0)
    plm = make_tiny_plm(root / "plm", "bert")
    quick("tiny-ml", root / "runs", profile="tiny", processed_dir=root / "processed", plm=str(plm), progress=False)
    return root / "runs"


def _app(monkeypatch, runs_root: Path, tab: str | None = None) -> AppTest:
    monkeypatch.setattr(sys, "argv", ["app/main.py", "--runs", str(runs_root)])
    at = AppTest.from_file(str(APP), default_timeout=300)
    if tab is not None:
        at.session_state["tab"] = tab
    return at.run()


def _frames(at) -> list:
    return [d.value for d in at.dataframe]


def _no_errors(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_no_runs_tells_the_command(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path / "nothing-here")
    _no_errors(at)
    assert any("No finished runs" in w.value for w in at.warning)
    assert any(QUICK_COMMAND in m.value for m in at.markdown)


def test_results_table_and_scoring_tab(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs)
    _no_errors(at)
    assert sorted(discover_runs(tiny_runs)) == RUN_NAMES
    assert at.sidebar.multiselect(key="runs").value == RUN_NAMES
    assert at.sidebar.selectbox(key="baseline").value == "ctr"
    frames = _frames(at)
    results = frames[0]
    assert sorted(results.index) == ["ctr", "finetune-with-plm", "finetune-without-plm"]  # PA-MLM has no AUC
    expected = results_table(discover_runs(tiny_runs), baseline="ctr")
    assert results.loc["finetune-with-plm", "test AUC"] == pytest.approx(expected.loc["finetune-with-plm", "test AUC"])
    scores = frames[1]  # the "Score samples" tab: 5 test rows by default
    assert len(scores) == 5 and "finetune-with-plm alpha" in scores.columns and "ctr p" in scores.columns
    assert ((scores["ctr p"] > 0) & (scores["ctr p"] < 1)).all()
    # filter by user: every row shown belongs to that user
    user = scores["text"].iloc[0].split(" . ")[0].split(" is ")[-1]  # "User ID is 12 . Gender is ..." -> "12"
    at.text_input(key="score_user").set_value(user).run()
    _no_errors(at)
    assert any("matching rows" in c.value for c in at.caption)
    filtered = _frames(at)[1]
    assert len(filtered) >= 1 and filtered["text"].str.startswith(f"User ID is {user} .").all()


def test_attention_tab_shows_table7(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Soft-prompt attention")
    _no_errors(at)
    att = _frames(at)[1]
    assert list(att.columns) == ["prompt 1", "prompt 2"]  # K = 2 in the tiny profile
    assert "User ID" in att.index and "Title" in att.index
    assert att.sum(axis=1).dropna().round(5).eq(1.0).all()
    assert len(at.get("plotly_chart")) >= 1


def test_attributions_tab(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Attributions")
    _no_errors(at)
    at.selectbox(key="attr_run").set_value("finetune-with-plm")
    at.toggle(key="attr_go").set_value(True).run()
    _no_errors(at)
    frames = _frames(at)
    fields = frames[1]
    assert "Movie ID" in fields.columns and "delta" in fields.columns and len(fields) == 4
    tokens = frames[2]
    assert {"token", "field", "attribution"} <= set(tokens.columns)


def test_long_tail_tab(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Long tail")
    _no_errors(at)
    table = _frames(at)[1]
    assert "cold start" in set(table["subset"])
    assert "finetune-with-plm Rel.Impr" in table.columns
    assert table["n"].sum() > 0


def test_runs_and_latency_tab(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Runs & latency")
    _no_errors(at)
    assert at.selectbox(key="curve_metric").value == "valid_auc"
    at.number_input(key="lat_repeats").set_value(2)
    at.toggle(key="lat_go").set_value(True).run()
    _no_errors(at)
    timing = _frames(at)[-1]
    assert sorted(timing["model"]) == ["ctr", "finetune-with-plm", "finetune-without-plm"]
    assert (timing["ms_model_median"] > 0).all()


def test_no_run_selected(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs)
    at.sidebar.multiselect(key="runs").set_value([]).run()
    _no_errors(at)
    assert any("Select at least one run" in i.value for i in at.info)


@pytest.mark.parametrize("tab", [None, "Score samples", "Soft-prompt attention", "Attributions", "Long tail",
                                 "Runs & latency"])
def test_a_damaged_run_is_listed_with_its_reason_and_never_loaded(monkeypatch, tiny_runs, tmp_path, tab):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(tiny_runs, runs)
    weights = runs / "finetune-with-plm" / "best" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)  # 4 KiB zeroed
    weights.write_bytes(bytes(data))
    at = _app(monkeypatch, runs, tab)
    _no_errors(at)
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 1 and "**finetune-with-plm** is damaged" in warnings[0]
    assert f"{weights}: checksum mismatch" in warnings[0]
    assert "finetune-with-plm" not in at.sidebar.multiselect(key="runs").options
