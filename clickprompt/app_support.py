"""Support for the notebooks and the dashboard (`notebooks/*.ipynb`, `app/main.py`).

Both stay thin (STYLE item 8): they call `clickprompt.pipeline`, `clickprompt.analysis` and the
helpers here, which turn finished run directories into tables and one-line summaries.

    notebook_settings(profile)          where the staged notebooks read and write (runs, data, PLM)
    discover_runs(root)                 run directories under a root that hold results.json
    results_table(runs, baseline)       AUC / log loss / Rel.Impr / DeLong p of finished CTR runs
    pretrain_table(runs)                PA-MLM runs: validation MLM loss, masked value-token accuracy
    learning_curves(runs)               metrics.jsonl of each run, one row per (run, epoch, metric)
    describe_comparison(table)          the results table read out in sentences (no fixed claims)
    describe_long_tail(table, model)    the same for analysis.long_tail_table
    score_samples(models, ds, split, rows)  click probabilities of a few rows, with Eq. 9's parts
    find_rows(ds, split, user=, item=)  rows of a split by user / item value

Nothing here trains; every function reads what the stages wrote.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clickprompt.errors import ClickPromptError
from clickprompt.formatting import column_formatter, fmt_mean_std, fmt_num, fmt_p, fmt_pct, metric_label, missing
from clickprompt.rundir import ModelKind, RunDir, Stage, Verdict

QUICK_COMMAND = "clickprompt quick --dataset ml-100k --out runs/quick"


class WorkbenchError(ClickPromptError, ValueError):
    """A notebook or the dashboard was pointed at something that is not there (one-line message)."""


def repo_root(start: str | Path | None = None) -> Path:
    """The checkout's root (the folder with pyproject.toml and clickprompt/), searched upwards from
    `start` (default: the working directory; a notebook runs in notebooks/). Falls back to `start`."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "clickprompt").is_dir():
            return d
    return here


# ---------------------------------------------------------------- notebook settings

# On top of the profile, per stage: the tiny notebooks run the CTR stages with larger batches so each
# notebook finishes in well under a minute on CPU (same 2 epochs, ~4x fewer optimizer steps).
NOTEBOOK_OVERRIDES: dict[str, dict[str, dict]] = {
    "tiny": {
        "train-ctr": {"train.batch_size": 256},
        "finetune-without-plm": {"train.batch_size": 256},
    },
}

# The run directories of the staged notebooks, by the names the tables show.
BASELINE_NAME = "DCNv2 (from scratch)"
WO_PLM_NAME = "ClickPrompt w/o PLM"
WITH_PLM_NAME = "ClickPrompt with PLM"


@dataclass
class NotebookSettings:
    """Where the staged notebooks read and write. Build with `notebook_settings(PROFILE)`.

    profile "quick": real ML-100K and the packaged all-MiniLM-L6-v2, the quick CPU budget.
    profile "tiny":  real ML-100K and a tiny RANDOM 2-layer BERT (`make_tiny_plm`) for CI: every number
                     that involves the PLM is meaningless; the notebooks only check that they run."""

    profile: str
    dataset: str
    root: Path
    runs: Path
    raw_dir: Path
    processed_dir: Path
    seed: int | None = None  # None: the profile's seed
    progress: bool = True

    @property
    def dataset_dir(self) -> Path:
        return self.processed_dir / self.dataset

    @property
    def tiny_plm_dir(self) -> Path:
        return self.runs / "tiny-plm"

    @property
    def plm_is_random(self) -> bool:
        return self.profile == "tiny"

    def run_dir(self, name: str) -> Path:
        return self.runs / name

    def plm_name(self) -> str:
        """The PLM of this profile: an alias (quick: "minilm-l6") or, for tiny, the directory of a tiny
        random BERT, written on first use (seed 0, so the same weights every time)."""
        if self.profile == "tiny":
            if not (self.tiny_plm_dir / "config.json").exists():
                from clickprompt.plm.tiny import make_tiny_plm

                make_tiny_plm(self.tiny_plm_dir, "bert", seed=0)
            return str(self.tiny_plm_dir)
        from clickprompt.config import load_stage_config

        return load_stage_config(self.profile, "pretrain").plm.name

    def stage_config(self, stage: str):
        """The RunConfig of a stage: the profile, the notebook overrides, then dataset, data dir, PLM, seed."""
        from clickprompt.config import load_stage_config

        cfg = load_stage_config(self.profile, stage, overrides=NOTEBOOK_OVERRIDES.get(self.profile, {}).get(stage))
        cfg.data.dataset = self.dataset
        cfg.data.processed_dir = str(self.processed_dir)
        cfg.plm.name = self.plm_name()
        if self.seed is not None:
            cfg.train.seed = self.seed
        return cfg

    def tokenizer(self):
        from transformers import AutoTokenizer

        from clickprompt.plm import resolve_plm

        return AutoTokenizer.from_pretrained(resolve_plm(self.plm_name()), local_files_only=True)

    def load_dataset(self):
        """The prepared dataset; a clear message when notebook 01 has not run yet."""
        from clickprompt.data.dataset import PreparedDataset

        if not (self.dataset_dir / "schema.json").exists():
            raise WorkbenchError(f"{self.dataset_dir}: no prepared dataset; run notebooks/01_preprocess.ipynb first "
                                 f"(or `clickprompt data fetch {self.dataset} && clickprompt data prepare {self.dataset}`)")
        return PreparedDataset(self.dataset_dir)

    def require_run(self, name: str, notebook: str) -> Path:
        """The finished run `name` (results.json present), or a message naming the notebook that makes it."""
        run = self.run_dir(name)
        if not (run / "results.json").exists():
            raise WorkbenchError(f"{run}: no finished run; run notebooks/{notebook} first")
        return run

    def finetuned_runs(self) -> dict[str, Path]:
        """The three runs notebook 03 makes, by table name: baseline, w/o PLM (Eq. 10), with PLM (Eq. 9)."""
        return {BASELINE_NAME: self.run_dir("ctr"), WO_PLM_NAME: self.run_dir("finetune-without-plm"),
                WITH_PLM_NAME: self.run_dir("finetune-with-plm")}

    def describe(self) -> str:
        plm = ("a tiny RANDOM 2-layer BERT (CI smoke test: PLM-side numbers are meaningless)" if self.plm_is_random
               else self.plm_name())
        return (f"profile {self.profile!r}: dataset {self.dataset} from {self.dataset_dir}, PLM {plm}, "
                f"runs in {self.runs}")


def notebook_settings(profile: str = "quick", *, dataset: str = "ml-100k", runs: str | Path | None = None,
                      seed: int | None = None, root: str | Path | None = None) -> NotebookSettings:
    """Settings shared by the five notebooks. Paths are anchored at the checkout root, so a notebook
    works from notebooks/ (Jupyter, nbval) as from the root. Runs go to runs/notebooks (quick) or
    runs/notebooks-<profile>; the environment variable CLICKPROMPT_RUNS overrides (the test suite
    points it at a temporary folder). Raw data in data/raw, prepared data in data/processed."""
    from clickprompt.config import list_profiles

    if profile not in list_profiles():
        raise WorkbenchError(f"unknown profile {profile!r}; known: {', '.join(list_profiles())}")
    base = repo_root(root)
    if runs is None:
        runs = os.environ.get("CLICKPROMPT_RUNS") or (
            base / "runs" / ("notebooks" if profile == "quick" else f"notebooks-{profile}"))
    runs = Path(runs)
    if not runs.is_absolute():
        runs = base / runs
    return NotebookSettings(profile=profile, dataset=dataset, root=base, runs=runs, raw_dir=base / "data" / "raw",
                            processed_dir=base / "data" / "processed", seed=seed, progress=profile != "tiny")


def config_table(cfg) -> pd.DataFrame:
    """A RunConfig as a two-column table (setting, value)."""
    items = {f"{section}.{key}": str(value) for section, values in cfg.to_dict().items() for key, value in values.items()}
    return pd.DataFrame({"value": items}).rename_axis("setting")


# ---------------------------------------------------------------- the prepared data


def dataset_overview(ds) -> dict[str, pd.DataFrame]:
    """Tables describing a prepared dataset: "splits" (rows, positive rate), "fields" (display name,
    vocabulary size, an example value), "oov" (share of out-of-vocabulary ids per field and split)."""
    stats = ds.stats
    splits = pd.DataFrame({
        "rows": {s: stats[s] for s in ("train", "valid", "test")},
        "positive rate": stats["positive_rate"],
    })
    splits.index.name = "split"
    first = ds.frames["train"].iloc[0]
    fields = pd.DataFrame({
        "field": ds.spec.names,
        "display name": ds.spec.displays,
        "vocabulary (incl. OOV id 0)": ds.spec.vocab_sizes,
        "example value": [str(first[f]) for f in ds.spec.names],
    }).set_index("field")
    oov = pd.DataFrame(stats["oov_rate"])
    oov.index.name = "field"
    return {"splits": splits, "fields": fields, "oov": oov}


def token_table(tokenizer, ds, split: str, row: int, max_length: int = 128) -> pd.DataFrame:
    """One sample's text view (Eq. 4) as tokens: position, token, the field it belongs to, whether it
    is part of the field's value (PA-MLM's value tokens) or its name / "is" / ".", special tokens."""
    from clickprompt.analysis import row_tokens

    tok = row_tokens(tokenizer, ds, split, [row], max_length)
    real = np.flatnonzero(tok["attention_mask"][0])
    displays = np.array(["[special]", *ds.spec.displays], dtype=object)
    return pd.DataFrame({
        "position": real,
        "token": tokenizer.convert_ids_to_tokens(tok["input_ids"][0, real].tolist()),
        "field": displays[tok["token_field"][0, real].astype(int) + 1],
        "value token": tok["value_mask"][0, real],
    }).set_index("position")


def masking_example(tokenizer, ds, split: str, row: int, max_length: int = 128, seed: int = 0,
                    prob: float = 0.15) -> pd.DataFrame:
    """PA-MLM's corruption of one sample (Sec 3.5.1): 15% of the text tokens chosen, 8:1:1 mask /
    random / keep, never special tokens. Columns: token, input (what the PLM reads), target (the token
    to recover, or empty), operation."""
    import torch

    from clickprompt.analysis import row_tokens
    from clickprompt.masking import mask_tokens

    tok = row_tokens(tokenizer, ds, split, [row], max_length)
    input_ids = torch.from_numpy(tok["input_ids"])
    attention = torch.from_numpy(tok["attention_mask"])
    special = torch.from_numpy((tok["token_field"] < 0) & (tok["attention_mask"] == 1))
    gen = torch.Generator().manual_seed(seed)
    masked, labels = mask_tokens(input_ids, attention, special, tokenizer.mask_token_id, len(tokenizer), prob=prob,
                                 special_ids=list(tokenizer.all_special_ids), generator=gen)
    real = np.flatnonzero(tok["attention_mask"][0])
    orig = input_ids[0, real].tolist()
    new = masked[0, real].tolist()
    target = labels[0, real].tolist()
    op = ["" if t == -100 else ("[MASK]" if n == tokenizer.mask_token_id else ("kept" if n == o else "random"))
          for o, n, t in zip(orig, new, target)]
    return pd.DataFrame({
        "token": tokenizer.convert_ids_to_tokens(orig),
        "input": tokenizer.convert_ids_to_tokens(new),
        "target": ["" if t == -100 else tokenizer.convert_ids_to_tokens([t])[0] for t in target],
        "operation": op,
    }, index=pd.Index(real, name="position"))


def parameter_table(model) -> pd.DataFrame:
    """Parameters (millions) per part of a loaded model: CTR model, prompt generator, PLM, heads."""
    parts: dict[str, int] = {}
    for name, p in model.named_parameters():
        key = name.removeprefix("core.")
        if key.startswith("ctr."):
            part = "CTR model (Eq. 5)"
        elif key.startswith("generator."):
            part = "prompt generator g_{l,k} (Eq. 6)"
        elif key.startswith("plm."):
            part = "PLM (+ MLM head)"
        else:
            part = "CTR heads and alpha (Eq. 8-9)"
        parts[part] = parts.get(part, 0) + p.numel()
    out = pd.DataFrame({"parameters (M)": {k: v / 1e6 for k, v in parts.items()}})
    out.loc["total"] = out["parameters (M)"].sum()
    return out


# ---------------------------------------------------------------- run directories


def discover_runs(root: str | Path, *, unfinished: bool = False) -> dict[str, Path]:
    """Every run directory under `root` (itself included) holding results.json, by its path relative
    to `root` ("." for the root itself), sorted. Checkpoint and trainer-state folders are skipped.
    unfinished=True: also the runs that have only a config.json so far (being written, or killed)."""
    root = Path(root)
    if not root.is_dir():
        return {}
    found = {}
    names = ("results.json", "config.json") if unfinished else ("results.json",)
    for name in names:
        for res in sorted(root.rglob(name)):
            run = res.parent
            if {"best", "state", "tokenizer", "tensorboard"} & set(run.relative_to(root).parts):
                continue
            if name == "config.json" and not _is_run_config(res):
                continue
            found.setdefault(run.relative_to(root).as_posix(), run)
    return dict(sorted(found.items()))


def _is_run_config(path: Path) -> bool:
    """A run directory's config.json (it names a stage), not a PLM's or a checkpoint's."""
    try:
        return isinstance(json.loads(path.read_text()).get("stage"), str)
    except (OSError, ValueError, AttributeError):
        return False


def run_status(runs: dict[str, Path]) -> dict[str, Verdict]:
    """Each run's verdict (RunDir.verify: ok / damaged / stale / unfinished / running) with its reason."""
    return {name: RunDir(run).verify() for name, run in runs.items()}


def verdict_reason(name: str, verdict: Verdict) -> str:
    """A verdict's reason with the run's own path written as its name in the run list (no machine paths)."""
    reason = verdict.reason
    for path in {str(verdict.path), str(Path(verdict.path).resolve())}:
        reason = reason.replace(path + "/", f"{name}/").replace(path, name)
    return reason


def read_results(run: str | Path) -> dict:
    run = RunDir(run)
    if not run.finished:
        raise WorkbenchError(f"{run.path}: no results.json (not a finished run)")
    return run.read_results()


def run_kind(run: str | Path) -> ModelKind | None:
    """The checkpoint kind of a run (ModelKind), or None."""
    return RunDir(run).kind()


def checkpoint_key(run: str | Path) -> str:
    """A cache key that changes when a run's best checkpoint is rewritten (path + modification time)."""
    run = Path(run).resolve()
    weights = run / "best" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns if weights.exists() else 0
    return f"{run}@{mtime}"


def checkpoint_config(run: str | Path) -> dict:
    """The config.json of a run's best checkpoint (kind, dataset, fingerprint, run_config, ...), checked
    against its manifest."""
    from clickprompt.checkpoint import read_checkpoint_config

    path = Path(run) / "best"
    if not path.is_dir():
        raise WorkbenchError(f"{run}: no best/ checkpoint (not a finished run directory)")
    return read_checkpoint_config(path)


def run_dataset_dir(run: str | Path, processed_dir: str | Path | None = None) -> Path:
    """The prepared dataset a run was trained on: `processed_dir` (default: the run's data.processed_dir;
    a relative one is tried from the working directory, then from the checkout root) / dataset."""
    config = checkpoint_config(run)
    root = Path(processed_dir or config["run_config"]["data"]["processed_dir"])
    if not root.is_absolute() and not (root / config["dataset"]).exists():
        root = repo_root() / root
    return root / config["dataset"]


def runs_of_kind(runs: dict[str, Path], *kinds: str) -> dict[str, Path]:
    """The runs whose best checkpoint is one of `kinds` (ModelKind), grouped in the order of `kinds`
    (names sorted within a kind)."""
    found = {name: run_kind(run) for name, run in runs.items()}
    return {name: runs[name] for kind in kinds for name in sorted(runs) if found[name] == kind}


SCORING_KINDS = tuple(k for k in ModelKind if k.scores_clicks)  # checkpoints that make click predictions
PROMPT_KINDS = tuple(k for k in ModelKind if k.has_prompts)  # with soft prompts; PA-MLM first (Table 7 masks text)


def _stage_label(res: dict) -> str:
    stage = res.get("stage") or "?"
    model = res.get("model")
    return f"{stage} ({model})" if model and stage == Stage.TRAIN_CTR else stage


def default_baseline(runs: dict[str, Path]) -> str | None:
    """The first run trained from scratch (stage train-ctr), else None."""
    for name, run in runs.items():
        if RunDir(run).finished and read_results(run).get("stage") == Stage.TRAIN_CTR:
            return name
    return None


def results_table(runs: dict[str, str | Path], baseline: str | None = None) -> pd.DataFrame:
    """One row per finished CTR-scoring run (PA-MLM runs are left out: see `pretrain_table`):
    stage, valid / test AUC and log loss, test Rel.Impr of the AUC against `baseline` (a fraction:
    0.0074 = 0.74%) and DeLong's p on the saved test predictions, alpha (Eq. 9), epochs, steps,
    training throughput. `baseline` None: no Rel.Impr / p columns filled."""
    from clickprompt.evaluation import delong_test, rel_impr

    rows, saved = [], {}  # run name -> (labels, probs) of its saved test predictions, or None
    for name, run in runs.items():
        run = Path(run)
        res = read_results(run)
        if "test" not in res:
            continue
        saved[name] = RunDir(run).read_predictions()
        rows.append({
            "run": name, "stage": _stage_label(res), "dataset": res.get("dataset"), "seed": res.get("seed"),
            "valid AUC": res.get("valid", {}).get("auc"), "valid log loss": res.get("valid", {}).get("logloss"),
            "test AUC": res["test"].get("auc"), "test log loss": res["test"].get("logloss"),
            "alpha": res.get("alpha"), "epochs": res.get("epochs_run"), "steps": res.get("steps"),
            "samples/s": res.get("train_samples_per_s"),
        })
    table = pd.DataFrame(rows, columns=["run", "stage", "dataset", "seed", "valid AUC", "valid log loss", "test AUC",
                                        "test log loss", "alpha", "epochs", "steps", "samples/s"])
    table["Rel.Impr"] = None
    table["DeLong p"] = None
    if baseline is not None and baseline in set(table["run"]):
        b = table.set_index("run").loc[baseline]
        labels, b_probs = saved.get(baseline) or (None, None)
        rel, pv = [], []
        for _, r in table.iterrows():
            if r["run"] == baseline or r["dataset"] != b["dataset"] or r["test AUC"] is None or b["test AUC"] is None:
                rel.append(None)
                pv.append(None)
                continue
            rel.append(rel_impr(r["test AUC"], b["test AUC"]))
            p = (saved.get(r["run"]) or (None, None))[1]
            pv.append(delong_test(labels, p, b_probs)[2] if p is not None and labels is not None
                      and len(p) == len(labels) else None)
        table["Rel.Impr"], table["DeLong p"] = rel, pv
    for col in ("Rel.Impr", "DeLong p", "alpha"):
        table[col] = pd.to_numeric(table[col], errors="coerce")  # None -> NaN: numeric columns for display
    order = ["run", "stage", "dataset", "seed", "valid AUC", "valid log loss", "test AUC", "test log loss", "Rel.Impr",
             "DeLong p", "alpha", "epochs", "steps", "samples/s"]
    table = table[order].set_index("run")
    table.attrs["baseline"] = baseline
    return table


def pretrain_table(runs: dict[str, str | Path]) -> pd.DataFrame:
    """PA-MLM runs: steps, validation MLM loss, and the masked value-token accuracy with the run's own
    prompts, prompts of other samples (shuffled) and no prompts (`diagnostics.masked_value_accuracy`)."""
    rows = []
    for name, run in runs.items():
        res = read_results(Path(run))
        if res.get("stage") != Stage.PRETRAIN:
            continue
        rows.append({
            "run": name, "plm": res.get("plm"), "steps": res.get("steps"),
            "samples/epoch": res.get("train_samples_per_epoch"), "valid MLM loss": res.get("valid_mlm_loss"),
            "value-token acc (true prompts)": res.get("value_token_acc_true"),
            "value-token acc (shuffled prompts)": res.get("value_token_acc_shuffled"),
            "value-token acc (no prompts)": res.get("value_token_acc_none"),
            "wall s": res.get("wall_s"),
        })
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame(columns=["run"]).set_index("run")


def describe_pretraining(res: dict) -> str:
    """PA-MLM's evidence read out from a pretraining results dict: do the prompts help recover tokens?"""
    t, s, n = (res.get(f"value_token_acc_{m}") for m in ("true", "shuffled", "none"))
    if t is None:
        return "This run has no masked value-token accuracy."
    gap = t - max(s, n)
    verdict = ("the PLM recovers more masked values with the sample's own prompts than with another sample's "
               "prompts or none: the prompts carry information about the sample that the PLM has learned to read"
               if gap > 0.005 else
               "the prompts make no real difference to masked-value recovery yet: at this budget the PLM has not "
               "learned to read the CTR model's prompts")
    return (f"Masked value-token accuracy: {t:.1%} with the sample's own prompts, {s:.1%} with shuffled prompts, "
            f"{n:.1%} without prompts ({res.get('masked_value_tokens', 0):,} masked value tokens) -> {verdict}.")


def learning_curves(runs: dict[str, str | Path]) -> pd.DataFrame:
    """Long table of every run's metrics.jsonl: run, stage, kind ("step": every train.log_every steps;
    "epoch": after each epoch), epoch, step, metric, value -- one row per number. A pretraining run's
    training loss is the LM loss, so it is named train_mlm_loss (train_clm_loss for PA-CLM), never mixed
    with the click models' BCE train_loss on one axis. elapsed_s is left out."""
    from clickprompt.progress import read_records

    rows = []
    for name, run in runs.items():
        run = RunDir(run)
        records = read_records(run.metrics_path)  # tolerates a line being written right now
        if not records:
            continue
        stage = run.stage
        lm = "clm" if any("valid_clm_loss" in r for r in records) else "mlm"
        for rec in records:
            kind = "step" if rec.get("kind") == "step" else "epoch"
            for k, v in rec.items():
                if k in ("epoch", "step", "kind", "elapsed_s") or not isinstance(v, (int, float)) or isinstance(v, bool):
                    continue
                if k == "train_loss" and stage == Stage.PRETRAIN:
                    k = f"train_{lm}_loss"
                rows.append({"run": name, "stage": str(stage) if stage else None, "kind": kind,
                             "epoch": rec.get("epoch"), "step": rec.get("step"), "metric": k, "value": float(v)})
    return pd.DataFrame(rows, columns=["run", "stage", "kind", "epoch", "step", "metric", "value"])


CURVE_DEFAULTS = ("train_loss", "train_mlm_loss", "train_clm_loss", "valid_auc", "valid_logloss", "valid_mlm_loss",
                  "valid_clm_loss")


def smooth(values, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start (weight 0: none)."""
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(last / norm if norm else v)
    return np.asarray(out, dtype=float)


def curve_figure(curves: pd.DataFrame, metric: str, *, x: str = "step", smoothing: float = 0.0):
    """One metric of `learning_curves` as a plotly figure with its own y axis (title and unit from
    clickprompt.formatting.metric_label): step records as lines (optionally smoothed, the raw values
    faint behind), epoch records as markers. x: "step" (optimizer step) or "epoch" (integer ticks; a
    step record sits at its fractional epoch, e.g. 1.5 halfway through epoch 2)."""
    import plotly.graph_objects as go

    data = curves[curves["metric"] == metric]
    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf"]
    colors = {run: palette[i % len(palette)] for i, run in enumerate(sorted(curves["run"].unique()))}  # one per run
    for run, d in data.groupby("run", sort=True):
        color = colors[run]
        steps = d[d["kind"] == "step"].sort_values("step")
        epochs = d[d["kind"] == "epoch"].sort_values("step")
        if x == "epoch":
            xs_steps = _fractional_epochs(steps, epochs)
            xs_epochs = epochs["epoch"]
        else:
            xs_steps, xs_epochs = steps["step"], epochs["step"]
        if len(steps):
            if smoothing > 0:
                fig.add_scatter(x=xs_steps, y=steps["value"], mode="lines", line={"color": color, "width": 1},
                                opacity=0.25, name=f"{run} (raw)", legendgroup=run, showlegend=False, hoverinfo="skip")
            fig.add_scatter(x=xs_steps, y=smooth(steps["value"].to_numpy(), smoothing),
                            mode="lines" if len(steps) > 30 else "lines+markers", marker={"size": 5},
                            line={"color": color}, name=f"{run} · steps", legendgroup=run)
        if len(epochs):
            fig.add_scatter(x=xs_epochs, y=epochs["value"], mode="markers+lines" if not len(steps) else "markers",
                            marker={"color": color, "size": 9, "symbol": "diamond"}, line={"color": color, "dash": "dot"},
                            name=f"{run} · epoch end", legendgroup=run)
    fig.update_layout(title=metric_label(metric), height=340, margin={"t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(title_text=metric_label(metric))
    if x == "epoch":
        fig.update_xaxes(title_text="epoch", dtick=1, tickformat="d")
    else:  # whole steps only: a short run would otherwise get half-step ticks
        short = len(data) and data["step"].max() <= 10
        fig.update_xaxes(title_text="optimizer step", tickformat=",d", **({"dtick": 1} if short else {}))
    return fig


def _fractional_epochs(steps: pd.DataFrame, epochs: pd.DataFrame) -> pd.Series:
    """A step record's position in epochs: (epoch - 1) + its share of that epoch's steps."""
    if steps.empty:
        return steps["epoch"]
    ends = dict(zip(epochs["epoch"], epochs["step"]))
    per_epoch = (np.diff([0, *[ends[e] for e in sorted(ends)]]) if ends else [])
    size = float(np.median(per_epoch)) if len(per_epoch) else float(steps["step"].max())
    start = steps["epoch"].map(lambda e: ends.get(e - 1, (e - 1) * size))
    return (steps["epoch"] - 1) + (steps["step"] - start) / max(size, 1.0)


def run_activity(runs: dict[str, Path]) -> dict[str, str]:
    """name -> "running" (a live process holds the run's lock) / "unfinished" / "finished" / "not-a-run"."""
    out = {}
    for name, run in runs.items():
        r = RunDir(run)
        if r.lock.holder_if_held() is not None:
            out[name] = "running"
        elif r.finished:
            out[name] = "finished"
        elif r.config_path.exists():
            out[name] = "unfinished"
        else:
            out[name] = "not-a-run"
    return out


def _fmt_p(p) -> str:
    return "p not available" if missing(p) else f"DeLong p = {fmt_p(p)}"


def describe_comparison(table: pd.DataFrame, alpha_level: float = 0.05) -> str:
    """The results table (from `results_table` with a baseline) read out in sentences: for each run,
    whether its test AUC is above or below the baseline's, by how much, and whether DeLong's test
    calls the difference significant at `alpha_level`. Written from the numbers, never assumed."""
    baseline = table.attrs.get("baseline")
    if baseline is None or baseline not in table.index:
        return "No baseline chosen: no comparison."
    b = table.loc[baseline]
    lines = [f"Baseline {baseline}: test AUC {fmt_num(b['test AUC'])}, log loss {fmt_num(b['test log loss'])}."]
    for name, r in table.iterrows():
        if name == baseline or r["Rel.Impr"] is None or pd.isna(r["Rel.Impr"]):
            continue
        diff = r["test AUC"] - b["test AUC"]
        p = r["DeLong p"]
        significant = p is not None and not pd.isna(p) and p < alpha_level
        if diff > 0:
            verdict = ("beats the baseline, and DeLong's test calls the difference significant" if significant else
                       "is above the baseline, but DeLong's test does not call the difference significant")
        elif diff < 0:
            verdict = ("does NOT beat the baseline: it is significantly worse" if significant else
                       "does NOT beat the baseline (below it, not significantly)")
        else:
            verdict = "ties the baseline"
        lines.append(f"{name}: test AUC {fmt_num(r['test AUC'])} ({fmt_pct(r['Rel.Impr'])} Rel.Impr, {_fmt_p(p)}), "
                     f"log loss {fmt_num(r['test log loss'])} -> {verdict}.")
    return "\n".join(lines)


# ---------------------------------------------------------------- long tail (Table 6)


def long_tail_long(table: pd.DataFrame, metric: str = "AUC") -> pd.DataFrame:
    """analysis.long_tail_table in long form for plotting: subset, model, value, n."""
    models = [c[: -len(f" {metric}")] for c in table.columns if c.endswith(f" {metric}")]
    long = table.melt(id_vars=["subset", "n"], value_vars=[f"{m} {metric}" for m in models], var_name="model",
                      value_name=metric)
    long["model"] = long["model"].str[: -len(f" {metric}")]
    return long


def describe_long_tail(table: pd.DataFrame, model: str) -> str:
    """One line per subset of a long-tail table: `model` against the table's baseline, from the numbers."""
    baseline = table.attrs.get("baseline")
    col = f"{model} Rel.Impr"
    if col not in table.columns:
        return f"{model!r} is the baseline or not in the table."
    lines, better = [], 0
    counted = 0
    for _, r in table.iterrows():
        if r[col] is None or pd.isna(r[col]):
            mine = r.get(f"{model} AUC")
            auc = "" if mine is None or pd.isna(mine) else f"{model} AUC {fmt_num(mine)}, "
            lines.append(f"- {r['subset']} ({r['n']:,} rows): {auc}{r['note'] or 'no AUC'}.")
            continue
        counted += 1
        better += r[col] > 0
        lines.append(f"- {r['subset']} ({r['n']:,} rows): {model} AUC {fmt_num(r[f'{model} AUC'])} vs {baseline} "
                     f"{fmt_num(r[f'{baseline} AUC'])} ({fmt_pct(r[col])}, {_fmt_p(r[f'{model} DeLong p'])}).")
    head = f"{model} is above {baseline} on {better} of the {counted} subsets with an AUC."
    return "\n".join([head, *lines])


# ---------------------------------------------------------------- attention (Table 7) and attributions


def describe_attention(table: pd.DataFrame) -> str:
    """analysis.prompt_attention read out: do the fields attend to the K prompts differently (the
    paper's claim in App. C.1), and does any prompt get (nearly) no attention from some field?"""
    t = table.dropna(how="all")
    if t.empty:
        return "No field had tokens to mask."
    K = t.shape[1]
    spread = float((t.max(axis=0) - t.min(axis=0)).max())  # largest difference between two fields' weights
    low = float(t.min().min())
    mass = table.attrs.get("prompt_mass", {})
    mass_vals = [v for v in mass.values() if v == v]
    lines = [
        f"Uniform attention would give every prompt 1/{K} = {1 / K:.3f}. Here the weights range from {low:.4f} to "
        f"{float(t.max().max()):.4f}; the largest difference between two fields on the same prompt is {spread:.4f}.",
        ("The fields attend to the prompts in visibly different patterns." if spread > 0.1 else
         "The patterns are close to each other across fields" + (" and close to uniform." if
                                                                 abs(low - 1 / K) < 0.05 else ".")),
    ]
    if low < 0.01:
        lines.append("Some field gives a prompt (nearly) zero weight, as in the paper's Table 7.")
    if mass_vals:
        lines.append(f"Before normalising over the prompts, {min(mass_vals):.1%}-{max(mass_vals):.1%} of the masked "
                     "tokens' attention goes to the prompts (the rest to the text tokens).")
    return " ".join(lines)


def field_importance(attributions: dict[str, pd.DataFrame], displays) -> pd.DataFrame:
    """Mean absolute Integrated-Gradients attribution per field, per model (long form: model, field,
    mean |attribution|), from `analysis.field_attributions` tables."""
    rows = []
    for name, frame in attributions.items():
        for field in displays:
            if field in frame.columns:
                rows.append({"model": name, "field": field, "mean |attribution|": float(frame[field].abs().mean())})
    return pd.DataFrame(rows, columns=["model", "field", "mean |attribution|"])


# ---------------------------------------------------------------- scoring samples


def find_rows(ds, split: str, user: str | None = None, item: str | None = None, limit: int | None = None,
              user_field: str = "user_id", item_field: str = "item_id") -> np.ndarray:
    """Row numbers of `split` whose user and/or item value equals the given strings (None: any)."""
    frame = ds.frames[split]
    keep = np.ones(len(frame), dtype=bool)
    for value, field in ((user, user_field), (item, item_field)):
        if value in (None, ""):
            continue
        if field not in frame.columns:
            raise WorkbenchError(f"dataset {ds.name!r} has no field {field!r}")
        keep &= frame[field].astype(str).to_numpy() == str(value).strip()
    rows = np.flatnonzero(keep)
    return rows if limit is None else rows[:limit]


def score_samples(models: dict[str, tuple], ds, split: str, rows) -> pd.DataFrame:
    """Click probabilities of a few rows by each model. models: name -> (model, config, tokenizer) from
    `RunDir.load_model`. Columns: text (Eq. 4), label, then per model "<name> p"; for with-PLM
    checkpoints also Eq. 9's parts: "<name> alpha", "<name> y_CTR" and "<name> y_PLM" (logits),
    "<name> p(CTR part)" = sigmoid(y_CTR), "<name> p(PLM part)" = sigmoid(y_PLM)."""
    import torch

    from clickprompt.analysis import _run_max_length, row_tokens
    from clickprompt.batching import predict_probs

    rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
    s = ds.split(split)
    out = pd.DataFrame({"text": ds.texts(split, rows), "label": s.labels[rows].astype(int)},
                       index=pd.Index(rows, name="row"))
    for name, (model, config, tokenizer) in models.items():
        kind = config.get("kind")
        if kind == ModelKind.CTR:
            out[f"{name} p"] = predict_probs(model, config, tokenizer, ds, split, rows=rows)
        elif kind == ModelKind.CLICKPROMPT_CTR:
            tok = row_tokens(tokenizer, ds, split, rows, _run_max_length(config))
            device = next(model.parameters()).device
            model.eval()
            with torch.no_grad():
                o = model(torch.from_numpy(s.ids[rows]).to(device), torch.from_numpy(tok["input_ids"]).to(device),
                          torch.from_numpy(tok["attention_mask"]).to(device))
            sig = torch.sigmoid
            out[f"{name} p"] = sig(o["logits"].float()).cpu().numpy()
            out[f"{name} alpha"] = float(model.alpha.detach())
            out[f"{name} y_CTR"] = o["logit_ctr"].float().cpu().numpy()
            out[f"{name} y_PLM"] = o["logit_plm"].float().cpu().numpy()
            out[f"{name} p(CTR part)"] = sig(o["logit_ctr"].float()).cpu().numpy()
            out[f"{name} p(PLM part)"] = sig(o["logit_plm"].float()).cpu().numpy()
        else:
            raise WorkbenchError(f"{name}: a {kind!r} checkpoint makes no click predictions")
    return out


# ---------------------------------------------------------------- comparing runs


def group_runs(runs: dict[str, str | Path]) -> dict[str, list[str]]:
    """Runs that differ only in their seed (and in settings that never change what is computed: device,
    logging cadence, data folder) form a group: label -> run names. Labels name the stage and model, and,
    where that is not enough to tell groups apart, the settings that differ ("train.lr=0.01")."""
    from clickprompt.rundir import request_key

    keys, flat = {}, {}
    for name, run in runs.items():
        r = RunDir(run)
        try:
            config = r.read_config()
            results = r.read_results() if r.finished else {}
        except ClickPromptError:
            continue
        key = request_key(config)
        key.get("train", {}).pop("seed", None)
        keys[name] = json.dumps(key, sort_keys=True, default=str)
        flat[name] = (_stage_label({**results, "stage": config.get("stage"),
                                    "model": results.get("model") or (config.get("ctr") or {}).get("model")}),
                      _flatten(key))
    by_key: dict[str, list[str]] = {}
    for name in runs:
        if name in keys:
            by_key.setdefault(keys[name], []).append(name)
    labels = {}
    for members in by_key.values():
        stage, settings = flat[members[0]]
        rivals = [flat[m[0]][1] for m in by_key.values() if flat[m[0]][0] == stage and m is not members]
        differing = sorted(k for k in settings if any(r.get(k) != settings[k] for r in rivals)
                           and k not in ("pretrained", "pretrained_weights", "data_fingerprint"))
        if not rivals:  # the only group of its stage and model
            label = stage
        elif differing:
            label = f"{stage} · " + ", ".join(f"{k}={settings[k]}" for k in differing[:3])
        else:  # differs only in what the run started from (another pretraining run, other data)
            label = f"{stage} · {members[0]}"
        while label in labels:
            label += "'"
        labels[label] = members
    return labels


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def group_table(runs: dict[str, str | Path], baseline: str | None = None) -> pd.DataFrame:
    """One row per group of `group_runs`: seeds, test / valid AUC and test log loss as mean ± sample sd
    over the seeds (strings, as the report writes them) and the means as numbers, Rel.Impr of the mean
    test AUC against the group of the run `baseline`, and its p-value with the report's rule
    (clickprompt.report.compare: paired t-test over >= 3 shared seeds, else DeLong's test on each shared
    seed's test predictions, one direction required on every seed). PA-MLM groups are listed without AUC."""
    from clickprompt.evaluation import rel_impr
    from clickprompt.report import Group, Run, compare

    groups = group_runs(runs)
    built, base_group = {}, None
    for label, members in groups.items():
        rs = []
        for m in members:
            r = RunDir(runs[m])
            rs.append(Run(r.path, r.read_results() if r.finished else {}, r.read_config()))
        g = Group(key=label, role="other", dataset=rs[0].dataset, ctr=None, plm=None, label=label, runs=rs)
        built[label] = (g, members)
        if baseline in members:
            base_group = g
    rows = []
    for label, (g, members) in built.items():
        auc, sd, n = g.mean_std("test", "auc")
        ll, ll_sd, _ = g.mean_std("test", "logloss")
        vauc, vsd, vn = g.mean_std("valid", "auc")
        p, test = (compare(g, base_group) if base_group is not None and g is not base_group and auc is not None
                   else (None, ""))
        rows.append({
            "group": label, "runs": len(members), "seeds": ", ".join(str(s) for s in g.seeds),
            "test AUC (mean ± sd)": fmt_mean_std(auc, sd, n), "test log loss (mean ± sd)": fmt_mean_std(ll, ll_sd, n),
            "valid AUC (mean ± sd)": fmt_mean_std(vauc, vsd, vn),
            "test AUC": auc, "test AUC sd": sd if n > 1 else None,
            "Rel.Impr": (rel_impr(auc, base_group.auc) if base_group is not None and g is not base_group
                         and auc is not None and base_group.auc else None),
            "p": p, "test": test or None, "members": ", ".join(members),
        })
    table = pd.DataFrame(rows, columns=["group", "runs", "seeds", "test AUC (mean ± sd)", "test log loss (mean ± sd)",
                                        "valid AUC (mean ± sd)", "test AUC", "test AUC sd", "Rel.Impr", "p", "test",
                                        "members"]).set_index("group")
    for c in ("test AUC", "test AUC sd", "Rel.Impr", "p"):
        table[c] = pd.to_numeric(table[c], errors="coerce")
    table.attrs["baseline_group"] = next((label for label, (g, _) in built.items() if g is base_group), None)
    return table


def config_diff(run_a: str | Path, run_b: str | Path, *, all_settings: bool = False) -> pd.DataFrame:
    """The settings (config.json) of two runs side by side: the ones that differ (all of them with
    `all_settings`), and whether each changes what either run computes (part of its identity,
    clickprompt.rundir.request_key: not the device, logging cadence or data folder, nor a section its
    stage does not read, such as plm.* for a CTR model alone)."""
    from clickprompt.rundir import request_key

    ca, cb = RunDir(run_a).read_config(), RunDir(run_b).read_config()
    a, b = _flatten(ca), _flatten(cb)
    computed = set(_flatten(request_key(ca))) | set(_flatten(request_key(cb)))
    rows = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "(absent)"), b.get(k, "(absent)")
        if va != vb or all_settings:
            rows.append({"setting": k, "A": _show(va), "B": _show(vb), "differs": va != vb,
                         "changes what is computed": k in computed})
    return pd.DataFrame(rows, columns=["setting", "A", "B", "differs", "changes what is computed"]).set_index("setting")


def _show(v) -> str:
    return "—" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def display_table(table: pd.DataFrame, columns: list[str] | None = None):
    """A table as the dashboard shows it: the chosen columns, every cell written by the shared
    formatters (clickprompt.formatting.column_formatter: AUC 4 decimals, Rel.Impr '+0.74%', p-values
    two significant digits, missing values '—', never 'None' or 'nan'). A pandas Styler: the numbers
    underneath stay numbers (sorting, CSV export)."""
    t = table[columns] if columns is not None else table
    return t.style.format({c: column_formatter(c) for c in t.columns}, na_rep="—")


def plm_depth(run: str | Path) -> int | None:
    """The number of transformer layers of a run's PLM (from its checkpoint config; None for a CTR model):
    bounds for the attention view's layer input (-depth .. depth - 1)."""
    hf = checkpoint_config(run).get("hf_config") or {}
    for key in ("num_hidden_layers", "n_layer", "encoder_layers", "num_layers"):
        if isinstance(hf.get(key), int):
            return int(hf[key])
    return None


# ---------------------------------------------------------------- heavy analyses: progress and a disk cache


def analysis_cache(root: str | Path | None = None):
    """The dashboard's disk cache (clickprompt.analysis.AnalysisCache): CLICKPROMPT_CACHE_DIR, else
    outputs/cache/analysis under the checkout (git-ignored)."""
    from clickprompt.analysis import AnalysisCache

    return AnalysisCache(root or os.environ.get("CLICKPROMPT_CACHE_DIR") or repo_root() / "outputs" / "cache" / "analysis")


def long_tail_cached(runs: dict[str, Path], split: str, tail_fraction: float, baseline: str, processed_dir=None,
                     *, cache=None, on_progress=None) -> tuple[pd.DataFrame, bool]:
    """analysis.long_tail_table for named runs, cached on disk per runs and settings. The test split reads
    the saved predictions; another split scores each checkpoint (cached per run and split too), with
    `on_progress(fraction, text)` after every batch. Returns (table, read from the cache)."""
    from clickprompt.analysis import long_tail_table, run_predictions

    cache = cache if cache is not None else analysis_cache()
    settings = {"split": split, "tail_fraction": tail_fraction, "baseline": baseline, "models": sorted(runs)}
    key = cache.key([runs[n] for n in sorted(runs)], "long_tail", settings)

    def compute():
        preds, ds = {}, None
        for i, (name, run) in enumerate(runs.items()):
            def tick(done, total, i=i, name=name):
                if on_progress is not None:
                    on_progress((i + done / total) / len(runs), f"scoring the {split} split with {name}: batch {done}/{total}")
            preds[name], ds = run_predictions(run, split, processed_dir, cache=cache, on_batch=tick)
        return long_tail_table(ds, preds, split=split, tail_fraction=tail_fraction, baseline=baseline)

    return cache.cached(key, "long_tail", compute, split=split, models={n: str(r) for n, r in runs.items()})


def attention_cached(run: Path, model_triplet, ds, split: str, row: int, layer: int, mask: str, *, cache=None):
    from clickprompt.analysis import prompt_attention

    cache = cache if cache is not None else analysis_cache()
    key = cache.key([run], "attention", {"split": split, "row": row, "layer": layer, "mask": mask})
    model, _, tokenizer = model_triplet
    return cache.cached(key, "attention", lambda: prompt_attention(model, tokenizer, ds, split, row, layer=layer, mask=mask),
                        run=str(run), dataset=ds.name)


def attributions_cached(run: Path, model_triplet, ds, split: str, rows: list[int], n_steps: int, tokens: bool, *,
                        cache=None, on_progress=None):
    """(field table, token table or None, read from the cache): Integrated Gradients row by row (a
    progress step per row), cached on disk per run and settings."""
    from clickprompt.analysis import field_attributions, token_attributions

    cache = cache if cache is not None else analysis_cache()
    model, config, tokenizer = model_triplet
    settings = {"split": split, "rows": list(rows), "n_steps": n_steps}
    total = len(rows) + (1 if tokens else 0)

    def fields():
        parts = []
        for i, r in enumerate(rows):
            if on_progress is not None:
                on_progress(i / total, f"integrated gradients over the field embeddings: row {r} ({i + 1}/{len(rows)})")
            parts.append(field_attributions(model, config, tokenizer, ds, split, [r], n_steps=n_steps))
        out = pd.concat(parts)
        out.attrs.update(parts[0].attrs)
        return out

    f, hit_f = cache.cached(cache.key([run], "field_attributions", settings), "field_attributions", fields,
                            run=str(run), dataset=ds.name)
    t, hit_t = None, True
    if tokens:
        def toks():
            if on_progress is not None:
                on_progress(len(rows) / total, f"integrated gradients over the PLM's word embeddings: row {rows[0]}")
            return token_attributions(model, config, tokenizer, ds, split, [rows[0]], n_steps=n_steps)

        t, hit_t = cache.cached(cache.key([run], "token_attributions", {**settings, "rows": [rows[0]]}),
                                "token_attributions", toks, run=str(run), dataset=ds.name)
    return f, t, hit_f and hit_t


def latency_cached(runs: dict[str, Path], models: dict[str, tuple], ds, *, batch_size: int, repeats: int, warmup: int = 3,
                   cache=None, on_progress=None, refresh: bool = False):
    """analysis.latency for named runs, cached on disk per runs, settings and machine (device, threads);
    `refresh` measures again. Returns (table, read from the cache)."""
    import platform

    import torch

    from clickprompt.analysis import latency

    cache = cache if cache is not None else analysis_cache()
    machine = {"host": platform.node(), "threads": torch.get_num_threads(),
               "devices": sorted({str(next(m.parameters()).device) for m, _, _ in models.values()})}
    key = cache.key([runs[n] for n in sorted(runs)], "latency",
                    {"batch_size": batch_size, "repeats": repeats, "warmup": warmup, "models": sorted(runs), **machine})

    def tick(done, total):
        if on_progress is not None:
            on_progress(done / total, f"timing batch {done}/{total} ({warmup} warm-up + {repeats} timed per model)")

    def compute():
        return latency(models, ds, "test", batch_size=batch_size, warmup=warmup, repeats=repeats, on_batch=tick)

    return cache.cached(key, "latency", compute, refresh=refresh, dataset=ds.name)
