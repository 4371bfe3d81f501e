"""ClickPrompt dashboard: `streamlit run app/main.py -- --runs runs/quick`.

Thin by design (STYLE item 8): every number comes from clickprompt.pipeline, clickprompt.analysis or
clickprompt.app_support, every cell and axis is written by clickprompt.formatting; this file lays out
widgets, tables and plotly figures, and caches loaded checkpoints (st.cache_resource). Heavy analyses
show a progress bar and are cached on disk per run and settings (app_support.analysis_cache), so a
second visit is instant.

Safe by default: .streamlit/config.toml binds 127.0.0.1 with usage statistics off (README: exposing
it on purpose). A run that cannot be read is listed by name with its reason and never loaded; an error
inside a view is shown as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import plotly.express as px
import streamlit as st

from clickprompt import app_support as ws
from clickprompt.data.dataset import PreparedDataset
from clickprompt.errors import ClickPromptError
from clickprompt.rundir import ModelKind, RunDir

TABS = ["Runs", "Training curves", "Score samples", "Soft-prompt attention", "Attributions", "Long tail", "Latency"]
LOG = logging.getLogger("clickprompt.app")
REFRESH_S = 5  # training curves of a run being written refresh this often


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


def loaded(runs: dict) -> dict:
    return {name: load_model(str(run), ws.checkpoint_key(run)) for name, run in runs.items()}


# ------------------------------------------------------------------ tables, charts, messages


def show_table(table, key: str, name: str, *, default: list | None = None, pick: bool = True) -> None:
    """A table with a column picker (wide tables), cells written by the shared formatters, and a CSV download."""
    columns = [str(c) for c in table.columns]
    if pick and len(columns) > 5:
        chosen = st.multiselect("Columns", columns, default=[c for c in (default or columns) if c in columns],
                                key=f"{key}_cols", help="Choose the columns to show (the CSV has all of them)")
    else:
        chosen = columns
    st.dataframe(ws.display_table(table, chosen or columns), key=key, placeholder="—")
    st.download_button("Download CSV", table.to_csv().encode(), file_name=f"{name}.csv", mime="text/csv",
                       key=f"{key}_csv", icon=":material/download:")


def show_chart(fig, key: str, name: str) -> None:
    """A plotly chart; its toolbar's camera button saves it as PNG (named after the view)."""
    st.plotly_chart(fig, key=key, config={"displaylogo": False, "displayModeBar": True,
                                          "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}})


def show_error(e: Exception, what: str = "") -> None:
    """One line, never a traceback (that goes to the server log)."""
    LOG.warning("%s failed", what or "view", exc_info=e)
    prefix = f"{what}: " if what else ""
    known = isinstance(e, (ClickPromptError, OSError, ValueError, KeyError))
    st.error(f"{prefix}{type(e).__name__}: {e}" if known else f"{prefix}unexpected {type(e).__name__}: {e}",
             icon=":material/error:")


def progress_bar(label: str):
    """(callback(fraction, text), finish()) over an st.progress element."""
    bar = st.progress(0.0, text=label)

    def update(fraction: float, text: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=text)

    return update, bar.empty


def cache_note(hit: bool, table) -> None:
    if hit:
        st.caption(f"Read from the disk cache (computed {table.attrs.get('cached_at') or 'earlier'}; "
                   "per run and settings, in outputs/cache/analysis or CLICKPROMPT_CACHE_DIR).")


# ------------------------------------------------------------------ sidebar


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def sidebar(args):
    st.sidebar.title("ClickPrompt workbench")
    address = st.get_option("server.address")
    if address not in LOOPBACK:  # started outside the checkout, or exposed on purpose
        st.sidebar.warning(f"Listening on {address or 'every network interface'}: anyone who can reach this port "
                           "sees your runs and data. Start it from the checkout (.streamlit/config.toml) or with "
                           "`--server.address 127.0.0.1`.", icon=":material/public:")
    root = st.sidebar.text_input("Runs root", value=args.runs, key="runs_root",
                                 help="A folder with run directories (each with results.json), e.g. runs/quick")
    processed = st.sidebar.text_input("Prepared data dir (optional)", value=args.processed_dir, key="processed_dir",
                                      help="Where prepared datasets live, if not the runs' own data.processed_dir")
    every = ws.discover_runs(root, unfinished=True)
    status = ws.run_status(every)
    live = {n: every[n] for n, v in status.items() if v.status in ("running", "unfinished")}
    unusable = {n: v for n, v in status.items() if v.status not in ("ok", "stale", "running", "unfinished")}
    for name, verdict in unusable.items():  # listed by name with the reason, never loaded
        st.sidebar.warning(f"**{name}** is {verdict.status}: {ws.verdict_reason(name, verdict)}", icon="⚠️")
    for name in live:
        st.sidebar.info(f"**{name}** is {status[name].status}: {ws.verdict_reason(name, status[name])} (its curves "
                        "are in *Training curves*)", icon=":material/pending:")
    for name, verdict in status.items():
        if verdict.status == "stale":
            st.sidebar.caption(f"{name}: not verified ({ws.verdict_reason(name, verdict)})")
    runs = {n: r for n, r in every.items() if n not in unusable and n not in live}
    usable = {}
    for name, run in runs.items():  # a checkpoint config that cannot be read: listed, not used
        try:
            ws.checkpoint_config(run)
            usable[name] = run
        except (ClickPromptError, OSError, ValueError) as e:
            st.sidebar.warning(f"**{name}** is unreadable: {e}", icon="⚠️")
    runs = usable
    if not runs:
        return root, processed, runs, {}, None, None, live
    chosen = st.sidebar.multiselect("Runs", list(runs), default=list(runs), key="runs")
    chosen_runs = {name: runs[name] for name in chosen}
    datasets = sorted({ws.checkpoint_config(r)["dataset"] for r in chosen_runs.values()})
    dataset = st.sidebar.selectbox("Dataset", datasets, key="dataset") if datasets else None
    chosen_runs = {n: r for n, r in chosen_runs.items() if ws.checkpoint_config(r)["dataset"] == dataset}
    scoring = ws.runs_of_kind(chosen_runs, *ws.SCORING_KINDS)
    options = list(scoring)
    default = ws.default_baseline(scoring)
    baseline = st.sidebar.selectbox("Baseline (Rel.Impr, p-values)", options, key="baseline",
                                    index=options.index(default) if default in options else 0) if options else None
    return root, processed, runs, chosen_runs, dataset, baseline, live


# ------------------------------------------------------------------ tabs


def tab_runs(chosen: dict, baseline: str | None, dataset: str) -> None:
    table = ws.results_table(chosen, baseline=baseline)
    st.subheader(f"Runs on {dataset}")
    show_table(table, "results_table", "runs", default=["stage", "seed", "valid AUC", "test AUC", "test log loss",
                                                        "Rel.Impr", "DeLong p", "alpha", "epochs", "samples/s"])
    st.text(ws.describe_comparison(table))
    st.subheader("Groups: the same configuration over seeds")
    groups = ws.group_table(chosen, baseline=baseline)
    show_table(groups, "group_table", "groups", default=["runs", "seeds", "test AUC (mean ± sd)",
                                                         "test log loss (mean ± sd)", "Rel.Impr", "p", "test"])
    st.caption("Runs that differ only in their seed form a group (device, logging and data folder aside). Rel.Impr: "
               "mean test AUC against the baseline run's group; p: paired t-test over >= 3 shared seeds, else "
               "DeLong's test on each shared seed's test predictions (one direction on every seed), as in "
               "`clickprompt report`.")
    if len(chosen) >= 2:
        st.subheader("Settings of two runs")
        names = list(chosen)
        c1, c2, c3 = st.columns([2, 2, 1])
        a = c1.selectbox("Run A", names, index=0, key="diff_a")
        b = c2.selectbox("Run B", names, index=1, key="diff_b")
        every = c3.toggle("All settings", key="diff_all")
        diff = ws.config_diff(chosen[a], chosen[b], all_settings=every)
        if diff.empty:
            st.info(f"{a} and {b} have the same settings.")
        else:
            show_table(diff, "config_diff", f"settings-{a}-vs-{b}".replace("/", "_"), pick=False)
    pre = ws.pretrain_table(chosen)
    if len(pre):
        st.subheader("PA-MLM runs")
        show_table(pre, "pretrain_table", "pa-mlm")


def tab_curves(chosen: dict, live: dict) -> None:
    runs = {**chosen, **live}
    names = st.multiselect("Runs", list(runs), default=list(runs), key="curve_runs",
                           help="Finished runs from the sidebar, and runs being written (or killed) under the root")
    activity = ws.run_activity({n: runs[n] for n in names})
    writing = [n for n, a in activity.items() if a == "running"]
    curves = ws.learning_curves({n: runs[n] for n in names})
    if curves.empty:
        st.info("No metrics.jsonl in the selected runs.")
        return
    metrics = sorted(curves["metric"].unique())
    default = [m for m in ws.CURVE_DEFAULTS if m in metrics] or metrics[:2]
    c1, c2, c3 = st.columns([3, 1, 1])
    chosen_metrics = c1.multiselect("Metrics (one chart each, with its own axis)", metrics, default=default,
                                    key="curve_metrics")
    x = c2.radio("x axis", ["optimizer step", "epoch"], key="curve_x", horizontal=True)
    smoothing = c3.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="curve_smooth",
                          help="Exponential moving average of the step records (as TensorBoard's)")
    refresh = bool(writing) and st.toggle(f"Refresh every {REFRESH_S} s while a run is written", value=True,
                                          key="curve_live")
    if writing:
        st.caption(f"Live: {', '.join(writing)} {'is' if len(writing) == 1 else 'are'} being written.")
    st.caption("Lines: step records (every train.log_every optimizer steps: the mean training loss since the previous "
               "one); diamonds: epoch records (validation after each epoch). TensorBoard: `tensorboard --logdir "
               "<runs root>` reads the event files the runs wrote.")

    @st.fragment(run_every=REFRESH_S if refresh else None)
    def charts():
        data = ws.learning_curves({n: runs[n] for n in names}) if refresh else curves
        for metric in chosen_metrics:
            fig = ws.curve_figure(data, metric, x="epoch" if x == "epoch" else "step", smoothing=smoothing)
            show_chart(fig, f"curve_{metric}", f"curve-{metric}")
        st.download_button("Download curves (CSV)", data.to_csv(index=False).encode(), file_name="curves.csv",
                           mime="text/csv", key="curves_csv", icon=":material/download:")

    charts()


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
    table = table[[c for c in table.columns if c != "text"] + ["text"]]  # the long text last: numbers stay in view
    show_table(table, "score_table", f"scores-{split}",
               default=["label", *[f"{n} p" for n in names], *[c for c in table.columns if c.endswith(("alpha", "y_CTR", "y_PLM"))], "text"])
    long = table.reset_index().melt(id_vars=["row", "label"], value_vars=[f"{n} p" for n in names], var_name="model",
                                    value_name="click probability")
    long["model"] = long["model"].str.removesuffix(" p")
    long["row"] = "row " + long["row"].astype(str)  # labels, not numbers: one bar group per row, whatever the gaps
    fig = px.bar(long, x="row", y="click probability", color="model", barmode="group", hover_data=["label"],
                 title=f"Click probability per {split} row")
    fig.update_xaxes(type="category", title_text=f"{split} row (row number in the split)")
    fig.update_yaxes(title_text="click probability (0-1)", range=[0, 1])
    show_chart(fig, "score_chart", f"scores-{split}")
    st.caption("For with-PLM runs, y_CTR and y_PLM are the two logits of Eq. 9 and alpha their learned weight: "
               "p = sigmoid(alpha * y_CTR + (1 - alpha) * y_PLM).")


def tab_attention(prompt_runs: dict, ds) -> None:
    if not prompt_runs:
        st.info("No ClickPrompt run with soft prompts (a pretraining or with-PLM run) is selected.")
        return
    name = st.selectbox("Checkpoint", list(prompt_runs), key="att_run")
    run = prompt_runs[name]
    depth = ws.plm_depth(run) or 1
    c1, c2, c3, c4 = st.columns(4)
    split = c1.selectbox("Split", ["test", "valid", "train"], key="att_split")
    row = int(c2.number_input("Row", 0, max(len(ds.split(split)) - 1, 0), 0, key="att_row"))
    layer = int(c3.number_input(f"Layer ({depth} layers; -1 = last)", -depth, depth - 1, -1, key="att_layer",
                                help=f"0 .. {depth - 1} from the first layer, -1 .. -{depth} from the last"))
    mask = c4.radio("Mask", ["value", "segment"], horizontal=True, key="att_mask",
                    help="value: mask the field's value tokens; segment: the whole 'name is value .'")
    st.code(ds.texts(split, [row])[0], language=None, wrap_lines=True)
    table, hit = ws.attention_cached(run, load_model(str(run), ws.checkpoint_key(run)), ds, split, row, layer, mask)
    cache_note(hit, table)
    show_table(table, "att_table", f"attention-{split}-{row}", pick=False)
    fig = px.imshow(table, text_auto=".3f", color_continuous_scale="Blues", aspect="auto", zmin=0,
                    labels={"x": "soft prompt", "y": "masked field", "color": "attention share"},
                    title=f"Attention of the masked field's tokens over the K prompts, layer {layer} (rows sum to 1)")
    show_chart(fig, "att_heatmap", f"attention-{split}-{row}")
    st.markdown(ws.describe_attention(table))
    st.caption("App. C.1 / Table 7. Definition: clickprompt.analysis.prompt_attention.")


def tab_attributions(scoring: dict, ds) -> None:
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
        st.caption("Switch on to compute (a progress bar per row; cached on disk per run and setting).")
        return
    run = scoring[name]
    rows = list(range(start, min(start + count, len(ds.split(split)))))
    tokens = ws.run_kind(run) == ModelKind.CLICKPROMPT_CTR
    update, done = progress_bar("Integrated gradients ...")
    fields, toks, hit = ws.attributions_cached(run, load_model(str(run), ws.checkpoint_key(run)), ds, split, rows,
                                               n_steps, tokens, on_progress=update)
    done()
    cache_note(hit, fields)
    st.subheader("Field attributions (CTR embeddings)")
    show_table(fields, "attr_fields", f"field-attributions-{name}".replace("/", "_"))
    fig = px.bar(ws.field_importance({name: fields}, ds.spec.displays), x="field", y="mean |attribution|",
                 title=f"Mean |IG attribution| per field over {len(rows)} {split} rows")
    fig.update_xaxes(type="category", title_text="field")
    fig.update_yaxes(title_text="mean |attribution| (click-logit units)")
    show_chart(fig, "attr_fields_chart", "field-attributions")
    if toks is not None:
        st.subheader(f"Token attributions (PLM word embeddings), {split} row {rows[0]}")
        t = toks.copy()
        t["token (position)"] = t["token"].astype(str) + " (" + t["position"].astype(str) + ")"
        fig = px.bar(t, x="token (position)", y="attribution", color="field", hover_data=["token", "is_value"])
        fig.update_xaxes(type="category", title_text="token (position in the text)", categoryorder="array",
                         categoryarray=list(t["token (position)"]))
        fig.update_yaxes(title_text="IG attribution (click-logit units)")
        show_chart(fig, "attr_tokens_chart", "token-attributions")
        show_table(toks, "attr_tokens", "token-attributions")
    st.caption("Baselines and targets: clickprompt.analysis.field_attributions / token_attributions.")


def tab_long_tail(scoring: dict, baseline: str | None, processed: str, ds) -> None:
    if not scoring or baseline is None:
        st.info("No run that makes click predictions is selected.")
        return
    names = st.multiselect("Models", list(scoring), default=list(scoring), key="lt_models")
    c1, c2 = st.columns(2)
    split = c1.selectbox("Split", ["test", "valid"], key="lt_split",
                         help="test reads the saved predictions; valid scores the checkpoints (a progress bar over "
                              "batches; cached on disk per run)")
    tail = c2.slider("Long-tail fraction", 0.05, 0.5, 0.1, 0.05, key="lt_tail")
    if baseline not in names:
        names = [baseline, *names]
    update, done = progress_bar("Long-tail subsets ...")
    table, hit = ws.long_tail_cached({n: scoring[n] for n in names}, split, tail, baseline, processed or None,
                                     on_progress=update)
    done()
    cache_note(hit, table)
    show_table(table.set_index("subset"), "lt_table", f"long-tail-{split}",
               default=["n", "positive_rate", *[f"{n} AUC" for n in names],
                        *[f"{n} Rel.Impr" for n in names if n != baseline],
                        *[f"{n} DeLong p" for n in names if n != baseline], "note"])
    fig = px.bar(ws.long_tail_long(table), x="subset", y="AUC", color="model", barmode="group", hover_data=["n"],
                 title=f"AUC per long-tail subset, {split} split (Sec 4.5, Table 6)")
    fig.update_xaxes(type="category", title_text="subset (user / item by training frequency)")
    fig.update_yaxes(title_text=f"{split} AUC")
    show_chart(fig, "lt_chart", f"long-tail-{split}")
    st.markdown(table.attrs.get("definition", ""))
    for n in names:
        if n != baseline:
            st.text(ws.describe_long_tail(table, n))


def tab_latency(scoring: dict, ds) -> None:
    st.subheader("Inference latency (App. C.2, Table 8)")
    if not scoring:
        st.info("No run that makes click predictions is selected.")
        return
    c1, c2 = st.columns(2)
    batch = int(c1.number_input("Batch size", 1, 4096, 128, key="lat_batch"))
    repeats = int(c2.number_input("Timed batches", 1, 200, 20, key="lat_repeats"))
    if not st.toggle("Measure latency", key="lat_go", help="Times every selected scoring run on this machine"):
        st.caption("Switch on to time the selected runs (inference only, eval mode; a progress bar over batches; "
                   "the result is cached per runs, settings and machine).")
        return
    refresh = st.button("Measure again", key="lat_refresh")
    update, done = progress_bar("Timing ...")
    timing, hit = ws.latency_cached(scoring, loaded(scoring), ds, batch_size=batch, repeats=repeats,
                                    on_progress=update, refresh=refresh)
    done()
    cache_note(hit, timing)
    show_table(timing.set_index("model"), "lat_table", "latency",
               default=["device", "batch_size", "ms_assembly_median", "ms_model_median", "ms_model_p90",
                        "ms_e2e_median", "ms_e2e_p90"])
    long = timing.melt(id_vars=["model"], value_vars=["ms_model_median", "ms_e2e_median"], var_name="measure",
                       value_name="ms")
    long["measure"] = long["measure"].map({"ms_model_median": "model only (median)",
                                           "ms_e2e_median": "end-to-end (median)"})
    fig = px.bar(long, x="model", y="ms", color="measure", barmode="group", log_y=True,
                 title=f"Milliseconds per batch of {int(timing['batch_size'].iloc[0])} rows")
    fig.update_xaxes(type="category", title_text="model")
    fig.update_yaxes(title_text="ms per batch (log scale)")
    show_chart(fig, "lat_chart", "latency")
    st.caption(timing.attrs.get("definition", ""))


# ------------------------------------------------------------------ page


def main() -> None:
    st.set_page_config(page_title="ClickPrompt workbench", layout="wide")
    args = cli_args()
    root, processed, runs, chosen, dataset, baseline, live = sidebar(args)
    st.title("ClickPrompt workbench")
    summary = Path(root) / "summary.md"
    if summary.is_file():  # the main job's two acts (`clickprompt quick`): its verdicts first
        with st.expander("The main job's verdicts (summary.md): act 1, the positive control; act 2, the dataset",
                         expanded=True):
            st.markdown(summary.read_text(encoding="utf-8"))
            st.caption("Each act's runs are in the sidebar: pick the act's dataset under *Dataset* (act 1: the "
                       "control-* dataset, runs under control/).")
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
        if live:
            tab_curves({}, live)
        return
    try:
        run0 = next(iter(chosen.values()))
        ds_path = str(ws.run_dataset_dir(run0, processed or None))
        ds = load_dataset(ds_path)
    except Exception as e:  # noqa: BLE001 - one line, whatever went wrong
        show_error(e, "the prepared dataset")
        ds = None
    scoring = ws.runs_of_kind(chosen, *ws.SCORING_KINDS)
    prompt_runs = ws.runs_of_kind(chosen, *ws.PROMPT_KINDS)
    tabs = st.tabs(TABS, key="tab", on_change="rerun")
    bodies = [
        lambda: tab_runs(chosen, baseline, dataset),
        lambda: tab_curves(chosen, live),
        lambda: tab_score(scoring, ds),
        lambda: tab_attention(prompt_runs, ds),
        lambda: tab_attributions(scoring, ds),
        lambda: tab_long_tail(scoring, baseline, processed, ds),
        lambda: tab_latency(scoring, ds),
    ]
    needs_data = {"Score samples", "Soft-prompt attention", "Attributions", "Long tail", "Latency"}
    for title, tab, body in zip(TABS, tabs, bodies):
        if tab.open is False:  # lazy tabs: only the selected one runs
            continue
        with tab:
            if ds is None and title in needs_data:
                st.info("This view needs the prepared dataset (see the message above; *Prepared data dir* in the "
                        "sidebar).")
                continue
            try:
                body()
            except Exception as e:  # noqa: BLE001 - a damaged file or a bug: one line, never a traceback
                show_error(e, title)


main()
