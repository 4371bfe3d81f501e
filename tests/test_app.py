"""The Streamlit dashboard (app/main.py) against runs of the tiny pipeline, through streamlit's AppTest.

One test per problem a new user met (issue 16): no exception or traceback on any tab, damaged or
unreadable runs named with their reason and never loaded, learning curves per metric with their own
axes (step records, integer epochs, PA-MLM apart from the click models' BCE) and live while a run is
written, runs grouped over seeds with mean ± sd and p-values, a settings diff, no 'None' in tables, a
column picker and CSV downloads, categorical row and token axes, a layer input bounded by the model's
depth, analyses cached on disk, and latency where end-to-end is never below model-only."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from app_helpers import RUN_NAMES, TABS, damage_weights, shared_tiny_runs
from clickprompt.app_support import QUICK_COMMAND, discover_runs, results_table
from clickprompt.data.synthetic import make_tiny_dataset
from clickprompt.formatting import metric_label

AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app" / "main.py"


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    return shared_tiny_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def seed_runs(tmp_path_factory):
    """Two CTR configurations (learning rates) over three seeds each: two groups for the comparison view."""
    from clickprompt.config import load_config
    from clickprompt.pipeline import train_ctr

    root = tmp_path_factory.mktemp("seeds")
    make_tiny_dataset(root / "processed" / "tiny-ml", n=600, seed=0)
    for lr in (0.003, 0.03):
        for seed in (1, 2, 3):
            cfg = load_config(None, {"data.dataset": "tiny-ml", "data.processed_dir": str(root / "processed"),
                                     "ctr.model": "dcnv2", "ctr.embed_dim": 8, "ctr.dnn_hidden": 16, "ctr.dnn_layers": 1,
                                     "train.epochs": 1, "train.batch_size": 64, "train.lr": lr, "train.seed": seed,
                                     "train.device": "cpu", "train.precision": "fp32"})
            train_ctr(cfg, root / "runs" / f"lr{lr}" / f"seed-{seed}", progress=False)
    return root / "runs"


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CLICKPROMPT_CACHE_DIR", str(tmp_path / "cache"))  # a fresh analysis cache per test


def _app(monkeypatch, runs_root: Path, tab: str | None = None) -> AppTest:
    monkeypatch.setattr(sys, "argv", ["app/main.py", "--runs", str(runs_root)])
    at = AppTest.from_file(str(APP), default_timeout=300)
    if tab is not None:
        at.session_state["tab"] = tab
    return at.run()


def _frames(at) -> list:
    return [d.value for d in at.dataframe]


def _shown(frame) -> "object":
    """The cells of an st.dataframe as the page shows them (the Styler's display values)."""
    import pyarrow as pa

    return pa.ipc.open_stream(frame.proto.arrow_data.styler.display_values).read_all().to_pandas()


def _charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _values(v) -> list:
    """A trace's x or y as a list (plotly writes numeric arrays as base64 'bdata')."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


def _no_errors(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_streamlit_listens_on_localhost_only_without_usage_statistics():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] in ("none", False)  # a traceback never reaches the page


def test_a_dashboard_reachable_from_the_network_says_so(monkeypatch, tiny_runs):
    from streamlit import config

    at = _app(monkeypatch, tiny_runs)
    assert not any("Listening on" in w.value for w in at.sidebar.warning)  # the checkout's config: 127.0.0.1
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0", "test")
    try:
        at = _app(monkeypatch, tiny_runs)
    finally:
        config.set_option("server.address", before, "test")
    _no_errors(at)
    assert any("Listening on 0.0.0.0" in w.value for w in at.sidebar.warning)


def test_no_runs_tells_the_command(monkeypatch, tmp_path):
    at = _app(monkeypatch, tmp_path / "nothing-here")
    _no_errors(at)
    assert any("No finished runs" in w.value for w in at.warning)
    assert any(QUICK_COMMAND in m.value for m in at.markdown)


def test_runs_tab_results_table_without_none_and_with_exports(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs)
    _no_errors(at)
    assert sorted(discover_runs(tiny_runs)) == RUN_NAMES
    assert at.sidebar.multiselect(key="runs").value == RUN_NAMES
    assert at.sidebar.selectbox(key="baseline").value == "ctr"
    results = at.dataframe[0]
    assert sorted(results.value.index) == ["ctr", "finetune-with-plm", "finetune-without-plm"]  # PA-MLM has no AUC
    expected = results_table(discover_runs(tiny_runs), baseline="ctr")
    assert results.value.loc["finetune-with-plm", "test AUC"] == pytest.approx(expected.loc["finetune-with-plm", "test AUC"])
    shown = _shown(results)
    cells = shown.astype(str).to_numpy().ravel().tolist()
    assert not {"None", "nan", "NaN", "<NA>"} & set(cells)  # empty cells are a dash
    assert shown.loc["ctr", "Rel.Impr"] == "—" and shown.loc["finetune-with-plm", "Rel.Impr"].endswith("%")
    # wide tables: every column can be chosen, alpha and samples/s among the defaults
    cols = at.multiselect(key="results_table_cols")
    assert {"alpha", "samples/s", "DeLong p"} <= set(cols.value) and "valid log loss" in cols.options
    cols.set_value(["test AUC"]).run()
    assert list(at.dataframe[0].value.columns) == ["test AUC"]
    downloads = {d.key for d in at.get("download_button")}
    assert {"results_table_csv", "group_table_csv", "config_diff_csv", "pretrain_table_csv"} <= downloads
    pre = at.dataframe[3].value  # the PA-MLM table
    assert "pretrain" in pre.index


def test_groups_over_seeds_with_mean_sd_and_p_and_a_settings_diff(monkeypatch, seed_runs):
    at = _app(monkeypatch, seed_runs)
    _no_errors(at)
    baseline = at.sidebar.selectbox(key="baseline").value
    assert baseline == "lr0.003/seed-1"
    groups = at.dataframe[1].value
    assert len(groups) == 2 and (groups["runs"] == 3).all()
    assert set(groups["seeds"]) == {"1, 2, 3"}
    assert groups["test AUC (mean ± sd)"].str.contains("±").all()
    labels = sorted(groups.index)
    assert labels == ["train-ctr (dcnv2) · train.lr=0.003", "train-ctr (dcnv2) · train.lr=0.03"]
    other = groups.loc["train-ctr (dcnv2) · train.lr=0.03"]
    assert 0 <= other["p"] <= 1 and other["test"] == "paired t-test, 3 seeds"
    assert pd.isna(groups.loc["train-ctr (dcnv2) · train.lr=0.003", "test"])  # the baseline's own group
    at.selectbox(key="diff_b").set_value("lr0.03/seed-2").run()
    diff = at.dataframe[2].value
    assert set(diff.index) == {"train.lr", "train.seed"}
    assert diff.loc["train.lr", "A"] == "0.003" and diff.loc["train.lr", "B"] == "0.03"
    assert diff.loc["train.lr", "changes what is computed"]


def test_learning_curves_per_metric_with_own_axes_integer_epochs_and_pa_mlm_apart(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Training curves")
    _no_errors(at)
    chosen = at.multiselect(key="curve_metrics").value
    assert {"train_loss", "train_mlm_loss", "valid_auc", "valid_mlm_loss"} <= set(chosen)
    charts = _charts(at)
    assert len(charts) == len(chosen)  # one chart, and one y axis, per metric
    for metric, spec in zip(chosen, charts):
        assert spec["layout"]["yaxis"]["title"]["text"] == metric_label(metric)
        assert spec["layout"]["xaxis"]["title"]["text"] == "optimizer step"
    by_metric = dict(zip(chosen, charts))
    bce = {t["name"] for t in by_metric["train_loss"]["data"]}
    assert not any(n.startswith("pretrain") for n in bce)  # MLM loss ~10 never flattens BCE ~0.6
    assert any(n.startswith("pretrain") for n in {t["name"] for t in by_metric["train_mlm_loss"]["data"]})
    ctr_steps = next(t for t in by_metric["train_loss"]["data"] if t["name"] == "ctr · steps")
    assert len(_values(ctr_steps["x"])) >= 3  # step records (every train.log_every steps), not one point per epoch
    at.radio(key="curve_x").set_value("epoch").run()
    _no_errors(at)
    for spec in _charts(at):
        assert spec["layout"]["xaxis"]["dtick"] == 1 and spec["layout"]["xaxis"]["title"]["text"] == "epoch"
    assert any(d.key == "curves_csv" for d in at.get("download_button"))


def test_curves_of_a_run_being_written_refresh(monkeypatch, tiny_runs, tmp_path):
    from clickprompt.rundir import RunDir

    runs = tmp_path / "runs"
    shutil.copytree(tiny_runs, runs)
    live = RunDir(runs / "live-ctr")
    shutil.copytree(runs / "ctr", live.path)
    for name in ("results.json", "manifest.json", "predictions_test.parquet"):
        (live.path / name).unlink()
    lines = live.metrics_path.read_text().splitlines()
    live.metrics_path.write_text("\n".join(lines[:2]) + "\n")
    lock = live.lock.acquire()  # a training process holds it
    try:
        at = _app(monkeypatch, runs, "Training curves")
        _no_errors(at)
        assert any("**live-ctr** is running" in i.value for i in at.sidebar.info)
        assert "live-ctr" not in at.sidebar.multiselect(key="runs").options  # not loaded while written
        assert at.toggle(key="curve_live").value
        assert any("Live: live-ctr" in c.value for c in at.caption)

        def points():
            spec = _charts(at)[at.multiselect(key="curve_metrics").value.index("train_loss")]
            return sum(len(_values(t["x"])) for t in spec["data"] if t["name"].startswith("live-ctr"))

        before = points()
        live.metrics_path.write_text("\n".join(lines) + "\n")  # the trainer wrote more
        at.run()
        assert points() > before
    finally:
        lock.release()


def test_scoring_tab_categorical_rows_and_user_filter(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Score samples")
    _no_errors(at)
    scores = _frames(at)[0]
    assert len(scores) == 5 and "finetune-with-plm alpha" in scores.columns and "ctr p" in scores.columns
    assert list(scores.columns)[-1] == "text"  # the long text last, the numbers in view
    assert ((scores["ctr p"] > 0) & (scores["ctr p"] < 1)).all()
    # filter by user: every row shown belongs to that user; rows are labels on a categorical axis
    user = scores["text"].iloc[0].split(" . ")[0].split(" is ")[-1]  # "User ID is 12 . Gender is ..." -> "12"
    at.text_input(key="score_user").set_value(user).run()
    _no_errors(at)
    assert any("matching rows" in c.value for c in at.caption)
    filtered = _frames(at)[0]
    assert len(filtered) >= 1 and filtered["text"].str.startswith(f"User ID is {user} .").all()
    layout = _charts(at)[0]["layout"]
    assert layout["xaxis"]["type"] == "category" and layout["yaxis"]["title"]["text"] == "click probability (0-1)"
    xs = {x for t in _charts(at)[0]["data"] for x in _values(t["x"])}
    assert xs == {f"row {r}" for r in filtered.index}


def test_attention_tab_shows_table7_with_layers_bounded_by_the_model(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Soft-prompt attention")
    _no_errors(at)
    att = _frames(at)[0]
    assert list(att.columns) == ["prompt 1", "prompt 2"]  # K = 2 in the tiny profile
    assert "User ID" in att.index and "Title" in att.index
    assert att.sum(axis=1).dropna().round(5).eq(1.0).all()
    layer = at.number_input(key="att_layer")
    assert (layer.proto.min, layer.proto.max) == (-2, 1)  # the tiny BERT has 2 layers
    heat = _charts(at)[0]["layout"]
    assert heat["xaxis"]["title"]["text"] == "soft prompt" and heat["yaxis"]["title"]["text"] == "masked field"
    layer.set_value(0).run()
    _no_errors(at)


def test_attributions_tab_tokens_on_the_axis_and_cached(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Attributions")
    _no_errors(at)
    at.selectbox(key="attr_run").set_value("finetune-with-plm")
    at.number_input(key="attr_count").set_value(2)
    at.toggle(key="attr_go").set_value(True).run()
    _no_errors(at)
    frames = _frames(at)
    fields = frames[0]
    assert "Movie ID" in fields.columns and "delta" in fields.columns and len(fields) == 2
    tokens = frames[1]
    assert {"token", "field", "attribution"} <= set(tokens.columns)
    token_axis = _charts(at)[1]["layout"]
    assert token_axis["xaxis"]["type"] == "category" and token_axis["xaxis"]["title"]["text"].startswith("token")
    assert "click-logit units" in token_axis["yaxis"]["title"]["text"]
    assert not any("disk cache" in c.value for c in at.caption)
    at.run()  # a second visit: read back from disk
    _no_errors(at)
    assert any("Read from the disk cache" in c.value for c in at.caption)
    pd.testing.assert_frame_equal(_frames(at)[0], fields, check_dtype=False, check_index_type=False, rtol=1e-6)


def test_long_tail_tab_on_valid_scores_once_then_reads_the_cache(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Long tail")
    _no_errors(at)
    table = _frames(at)[0]
    assert "cold start" in set(table.index)
    assert "finetune-with-plm Rel.Impr" in table.columns
    assert table["n"].sum() > 0
    at.selectbox(key="lt_split").set_value("valid").run()
    _no_errors(at)
    assert not any("disk cache" in c.value for c in at.caption)
    import clickprompt.analysis as analysis

    def no_scoring(*a, **k):
        raise AssertionError("scored again although the result is cached")

    monkeypatch.setattr(analysis, "score_split", no_scoring)
    at.run()
    _no_errors(at)
    assert any("Read from the disk cache" in c.value for c in at.caption)


def test_latency_tab_end_to_end_is_never_below_model_only(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs, "Latency")
    _no_errors(at)
    at.number_input(key="lat_repeats").set_value(3)
    at.toggle(key="lat_go").set_value(True).run()
    _no_errors(at)
    timing = _frames(at)[0]
    assert sorted(timing.index) == ["ctr", "finetune-with-plm", "finetune-without-plm"]
    assert (timing["ms_model_median"] > 0).all()
    assert (timing["ms_e2e_median"] >= timing["ms_model_median"]).all()
    assert (timing["ms_e2e_p90"] >= timing["ms_model_p90"]).all()
    assert any("e2e >= model" in c.value for c in at.caption)  # what each measure includes
    assert _charts(at)[0]["layout"]["yaxis"]["title"]["text"] == "ms per batch (log scale)"
    at.run()
    assert any("Read from the disk cache" in c.value for c in at.caption)


def test_no_run_selected(monkeypatch, tiny_runs):
    at = _app(monkeypatch, tiny_runs)
    at.sidebar.multiselect(key="runs").set_value([]).run()
    _no_errors(at)
    assert any("Select at least one run" in i.value for i in at.info)


@pytest.mark.parametrize("tab", [None, *TABS])
def test_a_damaged_run_is_listed_with_its_reason_and_never_loaded(monkeypatch, tiny_runs, tmp_path, tab):
    runs = tmp_path / "runs"
    shutil.copytree(tiny_runs, runs)
    weights = damage_weights(runs / "finetune-with-plm")  # 4 KiB zeroed
    (runs / "finetune-without-plm" / "results.json").write_text("{not json")  # and an unreadable one
    at = _app(monkeypatch, runs, tab)
    _no_errors(at)
    warnings = sorted(w.value for w in at.sidebar.warning if " is damaged" in w.value)
    assert len(warnings) == 2
    assert "**finetune-with-plm** is damaged: finetune-with-plm/best/model.safetensors: checksum mismatch" in warnings[0]
    assert "**finetune-without-plm** is damaged: finetune-without-plm/results.json" in warnings[1]
    assert str(weights.parent) not in warnings[0]  # the run's name, not the machine's path
    options = at.sidebar.multiselect(key="runs").options
    assert "finetune-with-plm" not in options and "finetune-without-plm" not in options


@pytest.mark.parametrize("tab, target", [("Score samples", "score_samples"), ("Runs", "group_table"),
                                         ("Training curves", "learning_curves"),
                                         ("Soft-prompt attention", "attention_cached")])
def test_an_error_inside_a_view_is_one_line_not_a_traceback(monkeypatch, tiny_runs, tab, target):
    import clickprompt.app_support as ws

    def broken(*args, **kwargs):
        raise RuntimeError("something broke in /some/machine/path")

    monkeypatch.setattr(ws, target, broken)
    at = _app(monkeypatch, tiny_runs, tab)
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0] == f"{tab}: unexpected RuntimeError: something broke in /some/machine/path"
    assert "Traceback" not in errors[0] and "\n" not in errors[0]


def test_a_checkpoint_damaged_after_listing_is_one_line(monkeypatch, tiny_runs):
    from clickprompt.errors import CheckpointError
    from clickprompt.rundir import RunDir

    def damaged(self, dataset=None):
        raise CheckpointError(f"{self.best}/model.safetensors: checksum mismatch (file damaged)")

    import streamlit as st

    monkeypatch.setattr(RunDir, "load_model", damaged)
    st.cache_resource.clear()  # checkpoints loaded by earlier tests stay cached in this process
    at = _app(monkeypatch, tiny_runs, "Score samples")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Score samples: CheckpointError: ") and "checksum mismatch" in errors[0]


def test_display_formatting_writes_no_none():
    import pandas as pd

    from clickprompt.app_support import display_table

    frame = pd.DataFrame({"test AUC": [0.78251, None], "Rel.Impr": [0.0074, float("nan")], "DeLong p": [1.2e-5, None],
                          "stage": ["train-ctr", None]})
    html = display_table(frame).to_html()
    assert "None" not in html and "nan" not in html
    assert "0.7825" in html and "+0.74%" in html and "1.2e-05" in html and "—" in html
    probs = display_table(pd.DataFrame({"ctr p": [0.581234]})).to_html()  # a click probability, not a p-value
    assert "0.5812" in probs
    buf = io.StringIO()
    frame.to_csv(buf)
    assert "0.78251" in buf.getvalue()  # the export keeps the numbers


def test_the_main_jobs_verdicts_open_the_page(monkeypatch, tiny_runs, tmp_path):
    """A runs root written by `clickprompt quick` (summary.md beside the runs) opens on both acts' verdicts."""
    import shutil

    root = tmp_path / "quick"
    shutil.copytree(tiny_runs, root)
    (root / "summary.md").write_text("# The main job\n\n## Act 1: the positive control\n\nAct 1 verdict.\n\n"
                                     "## Act 2: tiny-ml\n\nAct 2 verdict.\n")
    at = _app(monkeypatch, root)
    _no_errors(at)
    (exp,) = [e for e in at.expander if "verdicts (summary.md)" in e.label]
    shown = " ".join(m.value for m in exp.markdown)
    assert "Act 1 verdict." in shown and "Act 2 verdict." in shown
    (root / "summary.md").unlink()
    assert not any("verdicts (summary.md)" in e.label for e in _app(monkeypatch, root).expander)


def test_long_tail_words_give_the_aucs_a_subset_has_even_without_a_relative_change():
    """A subset where the baseline's AUC is 0 has AUCs but no Rel.Impr: the words show the AUCs, not 'no AUC'."""
    import pandas as pd

    from clickprompt.app_support import describe_long_tail

    table = pd.DataFrame([
        {"subset": "cold start", "n": 19, "ctr AUC": 0.0, "m AUC": 0.0, "m Rel.Impr": None, "m DeLong p": None,
         "note": "Rel.Impr undefined: ctr's AUC is 0"},  # as analysis.long_tail_table notes it
        {"subset": "head user / long-tail item", "n": 2, "ctr AUC": None, "m AUC": None, "m Rel.Impr": None,
         "m DeLong p": None, "note": "only 2 rows (< 10): AUC not reported"},
    ])
    table.attrs["baseline"] = "ctr"
    text = describe_long_tail(table, "m")
    assert "- cold start (19 rows): m AUC 0.0000, Rel.Impr undefined: ctr's AUC is 0." in text
    assert "- head user / long-tail item (2 rows): only 2 rows (< 10): AUC not reported." in text
