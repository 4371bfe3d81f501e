"""ClickPrompt dashboard: `streamlit run app/main.py -- --runs runs/quick`.

Thin by design (STYLE item 8): every number comes from clickprompt.pipeline, clickprompt.analysis or
clickprompt.app_support; this file lays out widgets, tables and plotly figures, and caches loaded
checkpoints (st.cache_resource) and computed tables (st.cache_data).
"""

from __future__ import annotations

import argparse
import os
import sys

import plotly.express as px
import streamlit as st

from clickprompt import analysis
from clickprompt import app_support as ws
from clickprompt.data.dataset import PreparedDataset
from clickprompt.errors import ClickPromptError
from clickprompt.rundir import ModelKind, RunDir

TABS = ["Score samples", "Soft-prompt attention", "Attributions", "Long tail", "Runs & latency"]


def cli_args():
    p = argparse.ArgumentParser(prog="app/main.py", add_help=False)
    p.add_argument("--runs", default=os.environ.get("CLICKPROMPT_APP_RUNS", "runs/quick"))
    p.add_argument("--processed-dir", default=os.environ.get("CLICKPROMPT_APP_PROCESSED_DIR", ""))
    return p.parse_known_args(sys.argv[1:])[0]


# ------------------------------------------------------------------ cached loaders


@st.cache_resource(show_spinner="Loading checkpoint ...", max_entries=8)
def load_model(run: str, key: str):  # key: ws.checkpoint_key(run), changes when best/ is rewritten
    return RunDir(run).load_model()


@st.cache_resource(show_spinner="Reading the prepared dataset ...", max_entries=4)
def load_dataset(path: str):
    return PreparedDataset(path)


@st.cache_data(show_spinner="Reading predictions ...", max_entries=64)
def predictions(run: str, key: str, split: str, processed_dir: str):
    return analysis.run_predictions(run, split, processed_dir or None)[0]


@st.cache_data(show_spinner="Attention over the prompts ...", max_entries=32)
def attention_table(run: str, key: str, split: str, row: int, layer: int, mask: str, dataset_path: str):
    model, _, tokenizer = load_model(run, key)
    return analysis.prompt_attention(model, tokenizer, load_dataset(dataset_path), split, row, layer=layer, mask=mask)


@st.cache_data(show_spinner="Integrated gradients ...", max_entries=16)
def attributions(run: str, key: str, split: str, rows: tuple, n_steps: int, dataset_path: str, tokens: bool):
    model, config, tokenizer = load_model(run, key)
    ds = load_dataset(dataset_path)
    fields = analysis.field_attributions(model, config, tokenizer, ds, split, list(rows), n_steps=n_steps)
    toks = (analysis.token_attributions(model, config, tokenizer, ds, split, list(rows[:1]), n_steps=n_steps)
            if tokens else None)
    return fields, toks


def loaded(runs: dict) -> dict:
    return {name: load_model(str(run), ws.checkpoint_key(run)) for name, run in runs.items()}


def formats(table) -> dict:
    """Column formats: Rel.Impr as a percentage, p-values in %g (DeLong's p can be 1e-100)."""
    cfg = {}
    for c in table.columns:
        if str(c).endswith("Rel.Impr"):
            cfg[c] = st.column_config.NumberColumn(format="percent")
        elif str(c).endswith("DeLong p"):
            cfg[c] = st.column_config.NumberColumn(format="%.3g")
    return cfg


def show_error(e: Exception) -> None:
    st.error(f"{type(e).__name__}: {e}")


# ------------------------------------------------------------------ sidebar


def sidebar(args):
    st.sidebar.title("ClickPrompt workbench")
    root = st.sidebar.text_input("Runs root", value=args.runs, key="runs_root",
                                 help="A folder with run directories (each with results.json), e.g. runs/quick")
    processed = st.sidebar.text_input("Prepared data dir (optional)", value=args.processed_dir, key="processed_dir",
                                      help="Where prepared datasets live, if not the runs' own data.processed_dir")
    runs = ws.discover_runs(root)
    status = ws.run_status(runs)
    unusable = {n: v for n, v in status.items() if v.status in ("damaged", "running", "unfinished")}
    for name, verdict in unusable.items():  # listed by name with the reason, never loaded
        st.sidebar.warning(f"**{name}** is {verdict.status}: {verdict.reason}", icon="⚠️")
    runs = {n: r for n, r in runs.items() if n not in unusable}
    if not runs:
        return root, processed, runs, {}, None, None
    chosen = st.sidebar.multiselect("Runs", list(runs), default=list(runs), key="runs")
    chosen_runs = {name: runs[name] for name in chosen}
    datasets = sorted({ws.checkpoint_config(r)["dataset"] for r in chosen_runs.values()})
    dataset = st.sidebar.selectbox("Dataset", datasets, key="dataset") if datasets else None
    chosen_runs = {n: r for n, r in chosen_runs.items() if ws.checkpoint_config(r)["dataset"] == dataset}
    scoring = ws.runs_of_kind(chosen_runs, *ws.SCORING_KINDS)
    options = list(scoring)
    default = ws.default_baseline(scoring)
    baseline = st.sidebar.selectbox("Baseline (Rel.Impr, DeLong)", options, key="baseline",
                                    index=options.index(default) if default in options else 0) if options else None
    return root, processed, runs, chosen_runs, dataset, baseline


# ------------------------------------------------------------------ tabs


def tab_score(scoring: dict, ds) -> None:
    if not scoring:
        st.info("No run that makes click predictions is selected.")
        return
    names = st.multiselect("Models", list(scoring), default=list(scoring), key="score_models")
    c1, c2, c3 = st.columns(3)
    split = c1.selectbox("Split", ["test", "valid", "train"], key="score_split")
    user = c2.text_input("User ID (optional)", key="score_user")
    item = c3.text_input("Movie / item ID (optional)", key="score_item")
    if user or item:
        rows = ws.find_rows(ds, split, user=user or None, item=item or None, limit=50)
        st.caption(f"{len(rows)} matching rows (first 50 shown)")
    else:
        n = len(ds.split(split))
        d1, d2 = st.columns(2)
        start = d1.number_input("First row", 0, max(n - 1, 0), 0, key="score_start")
        count = d2.number_input("Rows", 1, 50, 5, key="score_count")
        rows = list(range(int(start), min(int(start) + int(count), n)))
    if len(rows) == 0 or not names:
        st.info("No rows to score.")
        return
    table = ws.score_samples(loaded({n: scoring[n] for n in names}), ds, split, rows)
    st.dataframe(table, key="score_table")
    long = table.reset_index().melt(id_vars=["row", "label"], value_vars=[f"{n} p" for n in names], var_name="model",
                                    value_name="click probability")
    long["row"] = long["row"].astype(str)
    st.plotly_chart(px.bar(long, x="row", y="click probability", color="model", barmode="group",
                           hover_data=["label"], title="Click probability per row"), key="score_chart")
    st.caption("For with-PLM runs, y_CTR and y_PLM are the two logits of Eq. 9 and alpha their learned weight: "
               "p = sigmoid(alpha * y_CTR + (1 - alpha) * y_PLM).")


def tab_attention(prompt_runs: dict, ds_path: str, ds) -> None:
    if not prompt_runs:
        st.info("No ClickPrompt run with soft prompts (a pretraining or with-PLM run) is selected.")
        return
    name = st.selectbox("Checkpoint", list(prompt_runs), key="att_run")
    c1, c2, c3, c4 = st.columns(4)
    split = c1.selectbox("Split", ["test", "valid", "train"], key="att_split")
    row = int(c2.number_input("Row", 0, max(len(ds.split(split)) - 1, 0), 0, key="att_row"))
    layer = int(c3.number_input("Layer (-1 = last)", -24, 23, -1, key="att_layer"))
    mask = c4.radio("Mask", ["value", "segment"], horizontal=True, key="att_mask",
                    help="value: mask the field's value tokens; segment: the whole 'name is value .'")
    run = prompt_runs[name]
    st.code(ds.texts(split, [row])[0], language=None, wrap_lines=True)
    table = attention_table(str(run), ws.checkpoint_key(run), split, row, layer, mask, ds_path)
    st.dataframe(table, key="att_table")
    st.plotly_chart(px.imshow(table, text_auto=".3f", color_continuous_scale="Blues", aspect="auto", zmin=0,
                              title="Attention of the masked field's tokens over the K prompts (rows sum to 1)"),
                    key="att_heatmap")
    st.markdown(ws.describe_attention(table))
    st.caption("App. C.1 / Table 7. Definition: clickprompt.analysis.prompt_attention.")


def tab_attributions(scoring: dict, ds_path: str, ds) -> None:
    if not scoring:
        st.info("No run that makes click predictions is selected.")
        return
    name = st.selectbox("Checkpoint", list(scoring), key="attr_run")
    c1, c2, c3, c4 = st.columns(4)
    split = c1.selectbox("Split", ["test", "valid", "train"], key="attr_split")
    start = int(c2.number_input("First row", 0, max(len(ds.split(split)) - 1, 0), 0, key="attr_start"))
    count = int(c3.number_input("Rows", 1, 32, 4, key="attr_count"))
    n_steps = int(c4.select_slider("IG steps", [8, 16, 32, 64], value=32, key="attr_steps"))
    if not st.toggle("Compute attributions", key="attr_go", help="Integrated Gradients: one backward pass per step"):
        st.caption("Switch on to compute (cached per setting).")
        return
    run = scoring[name]
    rows = tuple(range(start, min(start + count, len(ds.split(split)))))
    tokens = ws.run_kind(run) == ModelKind.CLICKPROMPT_CTR
    fields, toks = attributions(str(run), ws.checkpoint_key(run), split, rows, n_steps, ds_path, tokens)
    st.subheader("Field attributions (CTR embeddings)")
    st.dataframe(fields, key="attr_fields")
    st.plotly_chart(px.bar(ws.field_importance({name: fields}, ds.spec.displays), x="field", y="mean |attribution|",
                           title="Mean |IG attribution| per field"), key="attr_fields_chart")
    if toks is not None:
        st.subheader(f"Token attributions (PLM word embeddings), row {rows[0]}")
        st.plotly_chart(px.bar(toks, x="position", y="attribution", color="field", hover_data=["token", "is_value"]),
                        key="attr_tokens_chart")
        st.dataframe(toks, key="attr_tokens")
    st.caption("Baselines and targets: clickprompt.analysis.field_attributions / token_attributions.")


def tab_long_tail(scoring: dict, baseline: str | None, processed: str, ds) -> None:
    if not scoring or baseline is None:
        st.info("No run that makes click predictions is selected.")
        return
    names = st.multiselect("Models", list(scoring), default=list(scoring), key="lt_models")
    c1, c2 = st.columns(2)
    split = c1.selectbox("Split", ["test", "valid"], key="lt_split",
                         help="test reads the saved predictions; valid scores the checkpoints")
    tail = c2.slider("Long-tail fraction", 0.05, 0.5, 0.1, 0.05, key="lt_tail")
    if baseline not in names:
        names = [baseline, *names]
    preds = {n: predictions(str(scoring[n]), ws.checkpoint_key(scoring[n]), split, processed) for n in names}
    table = analysis.long_tail_table(ds, preds, split=split, tail_fraction=tail, baseline=baseline)
    st.dataframe(table, key="lt_table", column_config=formats(table))
    st.plotly_chart(px.bar(ws.long_tail_long(table), x="subset", y="AUC", color="model", barmode="group",
                           hover_data=["n"], title="AUC per long-tail subset (Sec 4.5, Table 6)"), key="lt_chart")
    st.markdown(table.attrs["definition"])
    for n in names:
        if n != baseline:
            st.text(ws.describe_long_tail(table, n))


def tab_runs(chosen: dict, scoring: dict, ds) -> None:
    curves = ws.learning_curves(chosen)
    if curves.empty:
        st.info("No metrics.jsonl in the selected runs.")
    else:
        metrics = sorted(curves["metric"].unique())
        default = "valid_auc" if "valid_auc" in metrics else metrics[0]
        metric = st.selectbox("Metric", metrics, index=metrics.index(default), key="curve_metric")
        st.plotly_chart(px.line(curves[curves["metric"] == metric], x="epoch", y="value", color="run", markers=True,
                                title=f"{metric} per epoch"), key="curve_chart")
    pre = ws.pretrain_table(chosen)
    if len(pre):
        st.subheader("PA-MLM runs")
        st.dataframe(pre, key="pretrain_table")
    st.subheader("Inference latency (App. C.2, Table 8)")
    if not scoring:
        st.info("No run that makes click predictions is selected.")
        return
    c1, c2 = st.columns(2)
    batch = int(c1.number_input("Batch size", 1, 4096, 128, key="lat_batch"))
    repeats = int(c2.number_input("Timed batches", 1, 200, 20, key="lat_repeats"))
    if not st.toggle("Measure latency", key="lat_go", help="Times every selected scoring run on this machine"):
        st.caption("Switch on to time the selected runs (inference only, eval mode).")
        return
    timing = analysis.latency(loaded(scoring), ds, "test", batch_size=batch, warmup=3, repeats=repeats)
    st.dataframe(timing, key="lat_table")
    st.plotly_chart(px.bar(timing, x="model", y=["ms_model_median", "ms_e2e_median"], barmode="group", log_y=True,
                           title="Milliseconds per batch"), key="lat_chart")
    st.caption(timing.attrs["definition"])


# ------------------------------------------------------------------ page


def main() -> None:
    st.set_page_config(page_title="ClickPrompt workbench", layout="wide")
    args = cli_args()
    root, processed, runs, chosen, dataset, baseline = sidebar(args)
    st.title("ClickPrompt workbench")
    if runs and not chosen:
        st.info("Select at least one run in the sidebar.")
        return
    if not chosen:
        st.warning(f"No finished runs under `{root}` (a run directory holds results.json).")
        st.markdown(
            "Create them with the quick CPU pipeline (DCNv2 baseline, PA-MLM, finetuning without and with MiniLM; "
            f"about 10 minutes):\n\n```bash\n{ws.QUICK_COMMAND}\n```\n\nor run `bash scripts/demo.sh` (fetches and "
            "prepares ML-100K first), or the notebooks in `notebooks/` (their runs go to `runs/notebooks`). Then "
            "point *Runs root* in the sidebar at the output folder.")
        return
    try:
        table = ws.results_table(chosen, baseline=baseline)
        st.subheader(f"Runs on {dataset}")
        st.dataframe(table, key="results_table", column_config=formats(table))
        st.text(ws.describe_comparison(table))
        run0 = next(iter(chosen.values()))
        ds_path = str(ws.run_dataset_dir(run0, processed or None))
        ds = load_dataset(ds_path)
    except (ClickPromptError, OSError) as e:
        show_error(e)
        return
    scoring = ws.runs_of_kind(chosen, *ws.SCORING_KINDS)
    prompt_runs = ws.runs_of_kind(chosen, *ws.PROMPT_KINDS)
    tabs = st.tabs(TABS, key="tab", on_change="rerun")
    bodies = [
        lambda: tab_score(scoring, ds),
        lambda: tab_attention(prompt_runs, ds_path, ds),
        lambda: tab_attributions(scoring, ds_path, ds),
        lambda: tab_long_tail(scoring, baseline, processed, ds),
        lambda: tab_runs(chosen, scoring, ds),
    ]
    for tab, body in zip(tabs, bodies):
        if tab.open is False:  # lazy tabs: only the selected one runs
            continue
        with tab:
            try:
                body()
            except ClickPromptError as e:
                show_error(e)


main()
