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
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clickprompt.errors import ClickPromptError
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


def discover_runs(root: str | Path) -> dict[str, Path]:
    """Every run directory under `root` (itself included) holding results.json, by its path relative
    to `root` ("." for the root itself), sorted. Checkpoint and trainer-state folders are skipped."""
    root = Path(root)
    if not root.is_dir():
        return {}
    found = {}
    for res in sorted(root.rglob("results.json")):
        run = res.parent
        if {"best", "state"} & set(run.relative_to(root).parts):
            continue
        found[run.relative_to(root).as_posix()] = run
    return found


def run_status(runs: dict[str, Path]) -> dict[str, Verdict]:
    """Each run's verdict (RunDir.verify: ok / damaged / stale / unfinished / running) with its reason."""
    return {name: RunDir(run).verify() for name, run in runs.items()}


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
PROMPT_KINDS = (ModelKind.PRETRAIN, ModelKind.CLICKPROMPT_CTR)  # with soft prompts; PA-MLM first (Table 7 masks text)


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
    """Long table of every run's metrics.jsonl: run, epoch, step, metric, value (one row per number)."""
    rows = []
    for name, run in runs.items():
        path = Path(run) / "metrics.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            for k, v in rec.items():
                if k in ("epoch", "step") or not isinstance(v, (int, float)) or v is None:
                    continue
                rows.append({"run": name, "epoch": rec.get("epoch"), "step": rec.get("step"), "metric": k,
                             "value": float(v)})
    return pd.DataFrame(rows, columns=["run", "epoch", "step", "metric", "value"])


def _fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p not available"
    return f"DeLong p = {p:.2g}"


def describe_comparison(table: pd.DataFrame, alpha_level: float = 0.05) -> str:
    """The results table (from `results_table` with a baseline) read out in sentences: for each run,
    whether its test AUC is above or below the baseline's, by how much, and whether DeLong's test
    calls the difference significant at `alpha_level`. Written from the numbers, never assumed."""
    baseline = table.attrs.get("baseline")
    if baseline is None or baseline not in table.index:
        return "No baseline chosen: no comparison."
    b = table.loc[baseline]
    lines = [f"Baseline {baseline}: test AUC {b['test AUC']:.4f}, log loss {b['test log loss']:.4f}."]
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
        lines.append(f"{name}: test AUC {r['test AUC']:.4f} ({100 * r['Rel.Impr']:+.2f}% Rel.Impr, {_fmt_p(p)}), "
                     f"log loss {r['test log loss']:.4f} -> {verdict}.")
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
            lines.append(f"- {r['subset']} ({r['n']:,} rows): {r['note'] or 'no AUC'}.")
            continue
        counted += 1
        better += r[col] > 0
        lines.append(f"- {r['subset']} ({r['n']:,} rows): {model} AUC {r[f'{model} AUC']:.4f} vs {baseline} "
                     f"{r[f'{baseline} AUC']:.4f} ({100 * r[col]:+.2f}%, {_fmt_p(r[f'{model} DeLong p'])}).")
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
