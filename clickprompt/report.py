"""One report from many runs: the paper's Tables 2-8 filled from whatever runs exist, the paper's own
numbers beside ours, significance marks and figures.

    md_path, html_path = build_report(["runs/ml100k-core"], "reports/ml100k")

Reading runs. Every directory under the given paths that holds a `results.json` is a run (its
`config.json` says the stage and the resolved settings). Runs that differ only in their seed (and in
device, logging or paths) form a seed group; a `summary.json` of a seed group (`clickprompt ... --seeds`)
may also point to its runs. Analyses saved by `clickprompt analyse ... --out DIR` (`long_tail.json`,
`attention.json`, `latency.json`) are picked up wherever they lie under the paths.

Placing runs. A group's role comes from its stage and settings: `train-ctr` is the CTR model from
scratch (Table 2's backbone rows, Table 3's "N/A"); `finetune-without-plm` from a PA-MLM run is
ClickPrompt w/o PLM; `finetune-with-plm` is ClickPrompt with PLM (layer-wise, prompts, pretrained), or
Table 4's "w/o Layerwise" (input-layer strategy), or Table 5's "w/o Prompt" / "w/o Pretrain" / "w/o
Both". Where several groups fit one cell, the one with more seeds wins, then the higher mean
validation AUC (as the paper selects on validation); every group is listed in the last section.

Numbers. Ours: test AUC and log loss, mean ± sample std over seeds (the count in its own column).
Rel.Impr as in the paper: (AUC - AUC_base) / AUC_base. Significance marks: `*` p < 0.001 (the
paper's threshold), `†` p < 0.05, only for an improvement; p from a paired t-test over the shared
seeds when there are at least 3, else DeLong's test on the test predictions of one shared seed (or the
first seed of each). The paper's numbers (clickprompt.paper_numbers) stand beside ours for ML-1M,
BookCrossing, Amazon-Toys and GoodReads; ML-100K is not in the paper, so it has none.

Output: `report.md` (GitHub-readable: pipe tables, no HTML) and `report.html` (the same content plus
plotly figures, with plotly.js inlined: one self-contained file that opens offline).
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from clickprompt import paper_numbers as P
from clickprompt.analysis import from_payload, read_analysis
from clickprompt.evaluation import delong_per_seed, mean_std, paired_ttest, rel_impr
from clickprompt.formatting import DASH, fmt_mean_std, fmt_num, fmt_p, fmt_paper_pct, fmt_pct
from clickprompt.rundir import RunDir, Stage

ANALYSIS_FILES = ("long_tail.json", "attention.json", "latency.json")
_PRUNE = {"best", "state", "tokenizer", "__pycache__", ".git"}
_VOLATILE = {("train", "seed"), ("train", "device"), ("train", "precision"), ("train", "num_workers"),
             ("train", "log_every"), ("train", "save_every"), ("train", "eval_batch_size"),
             ("data", "processed_dir")}
PLM_LABELS = {"tinybert": "TinyBERT", "huawei-noah/tinybert_general_4l_312d": "TinyBERT", "roberta-base": "RoBERTa-base",
              "facebookai/roberta-base": "RoBERTa-base", "roberta-large": "RoBERTa-large",
              "facebookai/roberta-large": "RoBERTa-large", "minilm-l6": "MiniLM-L6"}
SIG_LEGEND = ("`*` p < 0.001 (the paper's threshold), `†` p < 0.05, marked only for an improvement; p from a "
              "paired t-test over the shared seeds when there are at least 3, else DeLong's test on each shared "
              "seed's test predictions (one seed: its p; several: the largest p if every seed differs in the "
              "same direction, else 1).")


# ============================================================================ reading runs


@dataclass
class Run:
    path: Path
    results: dict
    config: dict

    @property
    def stage(self) -> str:
        return self.results.get("stage") or self.config.get("stage") or "unknown"

    @property
    def dataset(self) -> str:
        return self.results.get("dataset") or self.config.get("data", {}).get("dataset") or "unknown"

    @property
    def seed(self):
        return self.results.get("seed", self.config.get("train", {}).get("seed"))

    def metric(self, split: str, name: str):
        v = self.results.get(split)
        return v.get(name) if isinstance(v, dict) else None

    @functools.cached_property
    def predictions(self):
        """(labels, probs) on the test split, read once per run (Tables 2-4 and 6 compare a run many times)."""
        return RunDir(self.path).read_predictions()


@dataclass
class Group:
    key: str
    role: str  # scratch | wo | with | with-input | no-prompt | no-pretrain | no-both | pretrain | baseline | other
    dataset: str
    ctr: str | None
    plm: str | None
    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]

    def values(self, split: str, name: str) -> list[float]:
        return [v for v in (r.metric(split, name) for r in self.runs) if v is not None]

    def mean_std(self, split: str, name: str):
        v = self.values(split, name)
        return mean_std(v) + (len(v),) if v else (None, None, 0)

    @property
    def auc(self):
        return self.mean_std("test", "auc")[0]

    @property
    def valid_auc(self):
        return self.mean_std("valid", "auc")[0]


def plm_label(name: str | None) -> str:
    if not name:
        return DASH
    if name.lower() in PLM_LABELS:
        return PLM_LABELS[name.lower()]
    return Path(name).name or name


def _role(stage: str, cfg: dict, results: dict) -> str:
    prompt = cfg.get("prompt", {})
    pretrained = bool(cfg.get("pretrained") or results.get("pretrained"))
    if stage == Stage.TRAIN_CTR:
        return "scratch"
    if stage == Stage.PRETRAIN:
        return "pretrain"
    if stage == Stage.FINETUNE_WITHOUT_PLM:
        return "wo" if pretrained else "wo-no-pretrain"
    if stage == Stage.FINETUNE_WITH_PLM:
        prompts = prompt.get("use_prompts", True)
        layerwise = prompt.get("strategy", "layerwise") == "layerwise"
        if prompts and pretrained:
            return "with" if layerwise else "with-input"
        if prompts:
            return "no-pretrain" if layerwise else "no-pretrain-input"
        return "no-prompt" if pretrained else "no-both"
    return "baseline" if results.get("model") else "other"


def _canonical_baseline(name: str) -> str:
    squash = re.sub(r"[^a-z0-9]", "", name.lower())
    for known in P.TABLE2_MODELS:
        if re.sub(r"[^a-z0-9]", "", known.lower()) == squash:
            return known
    return name


def _label(role: str, ctr: str | None, plm: str | None, cfg: dict, results: dict) -> str:
    c = P.CTR_LABELS.get(ctr or "", ctr or "?")
    lm = plm_label(plm)
    K = cfg.get("prompt", {}).get("num_prompts")
    if role == "other" and results.get("method"):  # a PLM baseline's pretraining (clickprompt.baselines)
        return f"{results.get('stage')} ({plm_label(results.get('plm'))})"
    return {
        "scratch": f"{c} (from scratch)",
        "wo": f"ClickPrompt w/o PLM ({c}, {lm})",
        "wo-no-pretrain": f"{c} (finetune w/o PLM, no pretraining)",
        "with": f"ClickPrompt with PLM ({c}, {lm}, K={K})",
        "with-input": f"ClickPrompt with PLM, input-layer prompts ({c}, {lm}, K={K})",
        "no-prompt": f"ClickPrompt w/o Prompt ({c}, {lm})",
        "no-pretrain": f"ClickPrompt w/o Pretrain ({c}, {lm}, K={K})",
        "no-pretrain-input": f"ClickPrompt w/o Pretrain, input-layer prompts ({c}, {lm})",
        "no-both": f"ClickPrompt w/o Both ({c}, {lm})",
        "pretrain": f"PA-MLM pretraining ({c}, {lm}, K={K})",
        "baseline": _canonical_baseline(str(results.get("model", "?"))),
    }.get(role, f"{results.get('stage', 'run')} ({c})")


def _group_key(run: Run, role: str) -> str:
    from clickprompt.config import RunConfig

    # keys a config.json lacks (written before a setting existed) take today's defaults, as in rundir.identity,
    # so seeds of one setting run before and after a new setting was added stay one group
    defaults = RunConfig().to_dict()
    cfg = {k: ({**defaults[k], **v} if k in defaults else v) for k, v in run.config.items() if isinstance(v, dict)}
    if role in ("scratch", "wo-no-pretrain", "baseline", "other"):  # settings a bare CTR model never reads
        cfg = {k: v for k, v in cfg.items() if k not in ("plm", "prompt")}
    stable = {s: {k: v for k, v in sec.items() if (s, k) not in _VOLATILE} for s, sec in cfg.items()}
    if role == "baseline" and run.results.get("plm"):  # a PLM baseline: one group per PLM (clickprompt.baselines)
        stable["plm_name"] = run.results["plm"]
    payload = json.dumps({"role": role, "dataset": run.dataset, "stage": run.stage, "cfg": stable,
                          "model": run.results.get("model")}, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def discover(run_dirs) -> tuple[list[Group], list[dict], list[str]]:
    """(groups, saved analyses, notes) under the given directories."""
    runs: dict[Path, Run] = {}
    analyses: list[dict] = []
    notes: list[str] = []
    stale: list[tuple[Path, str]] = []
    seen_files: set[Path] = set()
    extra: list[Path] = []

    def add_run(d: Path):
        d = d.resolve()
        if d in runs or not (d / "results.json").exists():
            return
        verdict = RunDir(d).verify()
        if verdict.status == "damaged":
            notes.append(f"skipped {shown(d)}: {verdict.reason}")
            return
        if verdict.status == "stale":
            stale.append((d, verdict.reason))
        try:
            results = json.loads((d / "results.json").read_text())
            config = json.loads((d / "config.json").read_text()) if (d / "config.json").exists() else {}
        except (OSError, json.JSONDecodeError) as e:
            notes.append(f"skipped {d}: {e}")
            return
        runs[d] = Run(d, results, config)

    for root in map(Path, run_dirs):
        if not root.exists():
            notes.append(f"{root}: no such directory")
            continue
        for dirpath, dirnames, files in os.walk(root):
            dirnames[:] = sorted(n for n in dirnames if n not in _PRUNE)
            here = Path(dirpath)
            if "results.json" in files:
                add_run(here)
            if "summary.json" in files:
                try:
                    s = json.loads((here / "summary.json").read_text())
                    extra += [Path(p) for p in s.get("runs", []) if isinstance(p, str)]
                except (OSError, json.JSONDecodeError):
                    pass
            for name in ANALYSIS_FILES:
                f = (here / name).resolve()
                if name in files and f not in seen_files:
                    seen_files.add(f)
                    a = read_analysis(f)  # the analysis JSON format (clickprompt.analysis.to_payload)
                    if a is not None:
                        analyses.append(a)
    for p in extra:
        if p.exists():
            add_run(p)

    groups: dict[str, Group] = {}
    for run in sorted(runs.values(), key=lambda r: (str(r.path.parent), str(r.seed), str(r.path))):
        role = _role(run.stage, run.config, run.results)
        key = _group_key(run, role)
        if key not in groups:
            ctr = run.config.get("ctr", {}).get("model") or run.results.get("model")
            uses_plm = role not in ("scratch", "baseline", "other", "wo-no-pretrain")
            plm = run.config.get("plm", {}).get("name") if uses_plm else None
            groups[key] = Group(key, role, run.dataset, ctr, plm, _label(role, ctr, plm, run.config, run.results))
        groups[key].runs.append(run)
    for g in groups.values():
        g.runs.sort(key=lambda r: (r.seed is None, r.seed if isinstance(r.seed, (int, float)) else 0))
    for reason in sorted({r for _, r in stale}):
        paths = [shown(d) for d, r in stale if r == reason]
        notes.append(f"{len(paths)} run(s) not verified, {reason}: {', '.join(paths[:3])}" + (" ..." if len(paths) > 3 else ""))
    return list(groups.values()), analyses, notes


def pick(groups: list[Group], dataset: str, role: str, *, ctr: str | None = None, plm: str | None = None,
         label: str | None = None, prefer_ctr: str | None = None) -> Group | None:
    """The group for one cell: more seeds first, then the higher mean validation AUC."""
    cands = [g for g in groups if g.dataset == dataset and g.role == role
             and (ctr is None or g.ctr == ctr) and (plm is None or plm_label(g.plm) == plm)
             and (label is None or g.label == label)]
    if not cands:
        return None

    def score(g: Group):
        return (prefer_ctr is not None and g.ctr == prefer_ctr, plm_label(g.plm) == "RoBERTa-base", len(g.runs),
                g.valid_auc if g.valid_auc is not None else -1.0)

    return max(cands, key=score)


# ============================================================================ significance


def compare(a: Group | None, b: Group | None) -> tuple[float | None, str]:
    """p-value of A vs B and the test used ("" when no test was possible): a paired t-test over >= 3
    shared seeds, else DeLong on each shared seed (one direction on every seed: same_direction_p)."""
    if a is None or b is None:
        return None, ""
    sa = {r.seed: r for r in a.runs if r.metric("test", "auc") is not None}
    sb = {r.seed: r for r in b.runs if r.metric("test", "auc") is not None}
    shared = [s for s in sa if s in sb]
    if len(shared) >= 3:
        p = paired_ttest([sa[s].metric("test", "auc") for s in shared], [sb[s].metric("test", "auc") for s in shared])
        if not math.isnan(p):
            return p, f"paired t-test, {len(shared)} seeds"
    pairs = [(sa[s], sb[s]) for s in shared] or ([(a.runs[0], b.runs[0])] if a.runs and b.runs else [])
    scored = [(ra.predictions, rb.predictions) for ra, rb in pairs]
    same_rows = [(pa[0], pa[1], pb[1]) for pa, pb in scored  # DeLong needs both scored on the same test rows
                 if pa is not None and pb is not None and len(pa[0]) == len(pb[0]) and np.array_equal(pa[0], pb[0])]
    if not same_rows:
        return None, ""
    try:
        seedwise = delong_per_seed(same_rows)
    except ValueError:  # a test split with under two positives or negatives
        return None, ""
    if len(same_rows) == 1:
        return seedwise["p"][0], "DeLong"
    return seedwise["p_every_seed"], f"DeLong, same direction on {len(same_rows)} seeds"


def mark(p: float | None, improvement: float | None) -> str:
    if p is None or improvement is None or improvement <= 0 or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "*" if p < 0.001 else "†" if p < 0.05 else ""


def significance(g: Group, ref: Group) -> tuple[str, str]:
    """(the mark for g's AUC cell, "p (test)") of group g against the reference group ref."""
    p, test = compare(g, ref)
    return mark(p, g.auc - ref.auc), f"{fmt_p(p)} ({test})" if p is not None else DASH


# ============================================================================ formatting


def shown(path) -> str:
    """A path as a report shows it: relative to the working directory when under it (no machine paths)."""
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# AUC / log loss, Rel.Impr, the paper's percentages, p-values and "mean ± sd"
# are written by clickprompt.formatting, as in the experiment summaries, the quick summary and the dashboard


def cell(g: Group | None, name: str = "auc", split: str = "test", sig: str = "") -> str:
    if g is None:
        return DASH
    m, s, n = g.mean_std(split, name)
    return fmt_mean_std(m, s, n, mark=sig)


def seeds(g: Group | None) -> str:
    return DASH if g is None else str(len(g.runs))


# ============================================================================ document


class Doc:
    """Blocks rendered twice: Markdown for GitHub, HTML with embedded plotly figures."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list], caption: str | None = None):
        self.blocks.append(("table", header, [[str(c) for c in r] for r in rows], caption))

    def fig(self, figure, caption: str):
        self.blocks.append(("fig", figure, caption))

    @staticmethod
    def _md_cell(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "table":
                _, header, rows, caption = b
                if caption:
                    out.append(caption)
                lines = ["| " + " | ".join(self._md_cell(h) for h in header) + " |",
                         "|" + "|".join("---" for _ in header) + "|"]
                lines += ["| " + " | ".join(self._md_cell(c) for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif b[0] == "fig":
                out.append(f"*Figure: {b[2]} (interactive, in report.html).*")
        return "\n\n".join(out) + "\n"

    @staticmethod
    def _inline(text: str) -> str:
        t = html.escape(text, quote=False)
        t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
        t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
        return t

    def html(self, title: str) -> str:
        parts = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
                 "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
                 "color:#222}table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}"
                 "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
                 "td:first-child,th:first-child{text-align:left}caption{text-align:left;font-weight:600;"
                 "padding:4px 0}code{background:#f4f4f4;padding:0 3px}.fig{margin:1em 0 2em}</style>",
                 "</head><body>"]
        first_fig = True
        for b in self.blocks:
            if b[0] == "h":
                parts.append(f"<h{b[1]}>{self._inline(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                parts.append(f"<p>{self._inline(b[1])}</p>")
            elif b[0] == "table":
                _, header, rows, caption = b
                t = ["<table>"]
                if caption:
                    t.append(f"<caption>{self._inline(caption)}</caption>")
                t.append("<tr>" + "".join(f"<th>{self._inline(h)}</th>" for h in header) + "</tr>")
                t += ["<tr>" + "".join(f"<td>{self._inline(c)}</td>" for c in r) + "</tr>" for r in rows]
                t.append("</table>")
                parts.append("\n".join(t))
            elif b[0] == "fig":
                div = b[1].to_html(full_html=False, include_plotlyjs=True if first_fig else False,
                                   config={"displaylogo": False})
                first_fig = False
                parts.append(f"<div class='fig'>{div}<p><i>{self._inline(b[2])}</i></p></div>")
        parts.append("</body></html>")
        return "\n".join(parts)


# ============================================================================ tables


def _datasets(groups: list[Group]) -> list[str]:
    order = {d: i for i, d in enumerate(("ml-100k", *P.DATASETS))}
    return sorted({g.dataset for g in groups}, key=lambda d: (order.get(d, 99), d))


def _paper_note(doc: Doc, ds: str, table: str, available: tuple = P.DATASETS):
    if ds in available:
        doc.p(f"Paper columns: the paper's {table} for {P.DATASET_TITLES[ds]} (DCNv2 backbone, RoBERTa-base PLM unless "
              "the row says otherwise).")
    elif ds in P.DATASETS:
        doc.p(f"The paper's {table} has no {P.DATASET_TITLES[ds]} column: no paper numbers here.")
    else:
        doc.p(f"Dataset `{ds}` is not in the paper (it uses ML-1M, BookCrossing, Amazon-Toys and GoodReads): there "
              "are no paper numbers to compare with; only our runs are shown.")


def table2(doc: Doc, groups: list[Group], ds: str) -> None:
    doc.h(3, f"Table 2 — overall performance, {ds}")
    paper = ds in P.DATASETS
    _paper_note(doc, ds, "Table 2")
    rows_spec = []  # (row label, group)
    for name in P.TABLE2_MODELS:
        if name in P.CTR_LABELS.values():
            reg = next(k for k, v in P.CTR_LABELS.items() if v == name)
            g = pick(groups, ds, "scratch", ctr=reg)
        elif name == P.CLICKPROMPT_WO:
            g = pick(groups, ds, "wo", prefer_ctr="dcnv2")
        elif name == P.CLICKPROMPT_WITH:
            g = pick(groups, ds, "with", prefer_ctr="dcnv2")
        else:
            g = pick(groups, ds, "baseline", label=name)
        rows_spec.append((name, g))
    for g in groups:  # our extra baselines, not in the paper's table
        if g.dataset == ds and g.role == "baseline" and g.label not in P.TABLE2_MODELS \
                and all(x is not g for _, x in rows_spec):
            rows_spec.append((g.label, g))
    not_run = _baselines_not_run(groups, ds, dict(rows_spec))  # P5 without a T5 at hand: its row says so
    if not paper:
        rows_spec = [(n, g) for n, g in rows_spec if g is not None or n in not_run]
    cp = dict(rows_spec).get(P.CLICKPROMPT_WITH)
    baselines = [g for n, g in rows_spec if g is not None and n not in (P.CLICKPROMPT_WO, P.CLICKPROMPT_WITH)
                 and g.auc is not None]
    best = max(baselines, key=lambda g: g.auc) if baselines else None
    header = ["Model", "Seeds", "AUC", "Log Loss", "Rel.Impr", "p vs best baseline"]
    if paper:
        header += ["Paper AUC", "Paper Log Loss", "Paper Rel.Impr"]
    rows = []
    for name, g in rows_spec:
        is_cp = name in (P.CLICKPROMPT_WO, P.CLICKPROMPT_WITH)
        label = name
        if is_cp and g is not None:
            label = f"{name} ({P.CTR_LABELS.get(g.ctr, g.ctr)} + {plm_label(g.plm)})"
        elif g is not None and g.role == "baseline" and g.runs[0].results.get("plm"):  # a PLM baseline
            r0 = g.runs[0].results
            label = f"{name} (" + (f"{P.CTR_LABELS.get(r0['ctr'], r0['ctr'])} + " if r0.get("ctr") else "") \
                + f"{plm_label(r0['plm'])})"
        sig, ptxt = "", DASH
        if is_cp and g is not None and best is not None and g.auc is not None:
            sig, ptxt = significance(g, best)
        rel = DASH
        if not is_cp and g is not None and cp is not None and cp.auc is not None and g.auc:
            rel = fmt_pct(rel_impr(cp.auc, g.auc))
        row = [label, seeds(g), not_run.get(name) or cell(g, "auc", sig=sig), cell(g, "logloss"), rel, ptxt]
        if paper:
            pv = P.TABLE2.get(name, {}).get(ds)
            stars = P.TABLE2_SIGNIFICANT.get((name, ds), (False, False))
            row += [DASH, DASH, DASH] if pv is None else [
                f"{pv[0]:.4f}{'*' if stars[0] else ''}", f"{pv[1]:.4f}{'*' if stars[1] else ''}", fmt_paper_pct(pv[2])]
        rows.append(row)
    if not rows:
        doc.p("No runs for this table.")
        return
    doc.table(header, rows)
    doc.p("Rel.Impr: relative AUC improvement of ClickPrompt with PLM over the row, as in the paper. "
          + (f"Best baseline of ours: {best.label}. " if best else "") + SIG_LEGEND)


def _baselines_not_run(groups: list[Group], ds: str, rows: dict) -> dict:
    """{Table 2 row: "not run: ..."} for the PLM baselines that cannot run here and have no run (P5 without a
    pretrained T5 in the local cache), where the dataset has runs of the other PLM baselines."""
    if rows.get("P5") is not None or not any(g.dataset == ds and g.role == "baseline" for g in groups):
        return {}
    from clickprompt.baselines.p5 import t5_not_run

    why = t5_not_run()
    return {"P5": why} if why else {}


def table3(doc: Doc, groups: list[Group], ds: str) -> None:
    doc.h(3, f"Table 3 — model compatibility (CTR backbones × PLMs), {ds}")
    paper = ds in P.TABLE3_DATASETS
    _paper_note(doc, ds, "Table 3", P.TABLE3_DATASETS)
    ours_ctr = [g.ctr for g in groups if g.dataset == ds and g.role in ("scratch", "wo", "with")]
    ctrs = list(dict.fromkeys(([*("dcnv2", "autoint", "dnn")] if paper else []) + ours_ctr))
    header = ["CTR model", "Finetuning", "Language model", "Seeds", "AUC", "Log Loss", "Rel.Impr", "p vs N/A"]
    if paper:
        header += ["Paper AUC", "Paper Log Loss", "Paper Rel.Impr"]
    rows = []
    for ctr in ctrs:
        base = pick(groups, ds, "scratch", ctr=ctr)
        specs = [("N/A", "N/A", base)]
        for ft, role in (("w/o PLM", "wo"), ("with PLM", "with")):
            lms = list(dict.fromkeys(([*P.TABLE3_LMS] if paper and ctr in ("dcnv2", "autoint", "dnn") else [])
                                     + [plm_label(g.plm) for g in groups if g.dataset == ds and g.role == role
                                        and g.ctr == ctr]))
            specs += [(ft, lm, pick(groups, ds, role, ctr=ctr, plm=lm)) for lm in lms]
        for ft, lm, g in specs:
            pv = P.TABLE3.get((ctr, ft, lm), {}).get(ds) if paper else None
            if g is None and pv is None and not (ft == "N/A" and paper):
                continue
            rel, sig, ptxt = DASH, "", DASH
            if ft != "N/A" and g is not None and base is not None and g.auc is not None and base.auc:
                rel = fmt_pct(rel_impr(g.auc, base.auc))
                sig, ptxt = significance(g, base)
            row = [P.CTR_LABELS.get(ctr, ctr), ft, lm, seeds(g), cell(g, "auc", sig=sig), cell(g, "logloss"), rel, ptxt]
            if paper:
                row += [DASH] * 3 if pv is None else [fmt_num(pv[0]), fmt_num(pv[1]), fmt_paper_pct(pv[2])]
            rows.append(row)
    if not rows:
        doc.p("No runs for this table.")
        return
    doc.table(header, rows)
    doc.p("Rel.Impr and p against the same backbone trained from scratch (N/A). " + SIG_LEGEND)


def table4(doc: Doc, groups: list[Group], ds: str) -> None:
    doc.h(3, f"Table 4 — prompt strategy (finetuning with PLM), {ds}")
    paper = ds in P.TABLE4
    _paper_note(doc, ds, "Table 4", tuple(P.TABLE4))
    ctrs = list(dict.fromkeys(([*P.TABLE4[ds]] if paper else [])
                              + [g.ctr for g in groups if g.dataset == ds and g.role in ("with-input", "with")]))
    header = ["CTR model", "w/o Layerwise AUC", "w/o Layerwise Log Loss", "Layerwise AUC", "Layerwise Log Loss",
              "Rel.Impr", "p"]
    if paper:
        header += ["Paper w/o Layerwise AUC", "Paper Layerwise AUC", "Paper Rel.Impr"]
    rows = []
    for ctr in ctrs:
        wo = pick(groups, ds, "with-input", ctr=ctr)
        lw = pick(groups, ds, "with", ctr=ctr, plm=plm_label(wo.plm) if wo else None) or pick(groups, ds, "with", ctr=ctr)
        if wo is None and not paper:
            continue
        rel, sig, ptxt = DASH, "", DASH
        if wo is not None and lw is not None and wo.auc and lw.auc is not None:
            rel = fmt_pct(rel_impr(lw.auc, wo.auc))
            sig, ptxt = significance(lw, wo)
        row = [P.CTR_LABELS.get(ctr, ctr), cell(wo), cell(wo, "logloss"), cell(lw, sig=sig), cell(lw, "logloss"), rel, ptxt]
        if paper:
            pv = P.TABLE4[ds].get(ctr)
            row += [DASH] * 3 if pv is None else [fmt_num(pv[0]), fmt_num(pv[2]), fmt_paper_pct(pv[4])]
        rows.append(row)
    if not rows:
        doc.p("No input-layer (w/o Layerwise) runs: run `clickprompt finetune --strategy input ...` to fill this table.")
        return
    doc.table(header, rows)
    doc.p("Rel.Impr: layer-wise over input-layer-only prompts (Fig. 3). " + SIG_LEGEND)


def table5(doc: Doc, groups: list[Group], ds: str) -> None:
    doc.h(3, f"Table 5 — fusion-strategy ablation, {ds}")
    paper = ds in P.TABLE3_DATASETS
    _paper_note(doc, ds, "Table 5", P.TABLE3_DATASETS)
    roles = {"ClickPrompt": "with", "w/o Prompt": "no-prompt", "w/o Pretrain": "no-pretrain", "w/o Both": "no-both"}
    ours = [g.ctr for g in groups if g.dataset == ds and g.role in ("no-prompt", "no-pretrain", "no-both")]
    ctrs = list(dict.fromkeys(([*P.TABLE5] if paper else []) + ours))
    header = ["CTR model", "Variant", "Seeds", "AUC", "Log Loss"] + (["Paper AUC", "Paper Log Loss"] if paper else [])
    rows = []
    for ctr in ctrs:
        for variant, role in roles.items():
            g = pick(groups, ds, role, ctr=ctr)
            pv = P.TABLE5.get(ctr, {}).get(variant, {}).get(ds) if paper else None
            row = [P.CTR_LABELS.get(ctr, ctr), variant, seeds(g), cell(g), cell(g, "logloss")]
            if paper:
                row += [DASH, DASH] if pv is None else [fmt_num(pv[0]), fmt_num(pv[1])]
            rows.append(row)
    if not ours:
        doc.p("No ablation runs (`finetune --no-prompts`, `finetune` without `--pretrained`) for this dataset.")
        if not paper:
            return
    doc.table(header, rows)


def _analysis_dataset(group: Group, processed_dir):
    """The prepared dataset a group's runs were trained on (refused if its fingerprint differs)."""
    from clickprompt.checkpoint import check_fingerprint, read_checkpoint_config

    ds = RunDir(group.runs[0].path).dataset(processed_dir)
    for r in group.runs[1:]:
        check_fingerprint(read_checkpoint_config(RunDir(r.path).checkpoint()), ds.fingerprint, r.path)
    return ds


def table6(doc: Doc, groups: list[Group], ds: str, analyses: list[dict], processed_dir, figures: bool,
           compute: bool = True) -> None:
    from clickprompt.analysis import SUBSETS, long_tail_table

    doc.h(3, f"Table 6 — long-tail users and items, {ds}")
    cp = pick(groups, ds, "with", prefer_ctr="dcnv2")
    base = pick(groups, ds, "scratch", ctr=cp.ctr if cp else "dcnv2") if cp else None
    wo = pick(groups, ds, "wo", ctr=cp.ctr) if cp else None
    table, used = None, []
    if compute and cp is not None and base is not None:
        models = {f"{P.CTR_LABELS.get(base.ctr, base.ctr)}": base, P.CLICKPROMPT_WITH: cp}
        if wo is not None:
            models[P.CLICKPROMPT_WO] = wo
        preds = {}
        for name, g in models.items():
            shared = [r for r in g.runs if r.seed in set(cp.seeds)] or g.runs
            pr = shared[0].predictions
            if pr is not None:
                preds[name] = pr[1]
                used.append(f"{name}: seed {shared[0].seed} ({shown(shared[0].path)})")
        try:
            dsobj = _analysis_dataset(cp, processed_dir)
            for g in models.values():
                _analysis_dataset(g, processed_dir)
            if len(preds) >= 2:
                table = long_tail_table(dsobj, preds, baseline=next(iter(models)))
        except Exception as e:  # noqa: BLE001 - a missing prepared dataset must not stop the report
            doc.p(f"Long-tail analysis not computed: {type(e).__name__}: {e}")
    saved = [a for a in analyses if a.get("analysis") == "long_tail" and a.get("dataset") == ds]
    if table is None and saved:
        table = from_payload(saved[0])
        used = [f"saved analysis {shown(saved[0]['_path'])}"]
    if table is None:
        doc.p("No long-tail table: needs a ClickPrompt with PLM run, its backbone trained from scratch, their test "
              "predictions and the prepared dataset (or a `long_tail.json` from `clickprompt analyse long-tail`).")
        if ds == P.TABLE6_DATASET:
            _paper_table6(doc)
        return
    doc.p("Definition: " + table.attrs.get("definition", ""))
    doc.p("Predictions used: " + "; ".join(used) + ".")
    names = [c[: -len(" AUC")] for c in table.columns if c.endswith(" AUC")]
    baseline = table.attrs.get("baseline") or names[0]
    header = ["Subset", "n", "Positive rate"]
    for n in names:
        header += [f"{n} AUC", f"{n} Log Loss"] + ([f"{n} Rel.Impr"] if n != baseline else [])
    paper = ds == P.TABLE6_DATASET
    if paper:
        header += ["Paper DCNv2 AUC", "Paper ClickPrompt AUC", "Paper Rel.Impr"]
    header.append("Note")
    rows = []
    for _, r in table.iterrows():
        row = [r["subset"], str(int(r["n"])), fmt_num(_none(r["positive_rate"]))]
        for n in names:
            auc = _none(r.get(f"{n} AUC"))
            p = _none(r.get(f"{n} DeLong p")) if n != baseline else None
            rel = _none(r.get(f"{n} Rel.Impr")) if n != baseline else None
            row += [fmt_num(auc) + mark(p, rel), fmt_num(_none(r.get(f"{n} log loss")))] + ([fmt_pct(rel)] if n != baseline else [])
        if paper:
            key = (r["long_tail_user"], r["long_tail_item"])
            pv = P.TABLE6.get(key) if r["subset"] != "cold start" else None
            row += [DASH] * 3 if pv is None else [fmt_num(pv[0]), fmt_num(pv[2]), fmt_paper_pct(pv[4])]
        row.append(r.get("note") or "")
        rows.append(row)
    doc.table(header, rows)
    doc.p("Marks: DeLong's test per subset against " + baseline + "; " + SIG_LEGEND.split(";")[0] + "."
          + (" The paper has no cold-start row: its four subsets cover its whole test set." if paper else ""))
    if figures:
        import plotly.graph_objects as go

        fig = go.Figure()
        subsets = [s for s in SUBSETS if s in set(table["subset"])]
        for n in names:
            vals = [_none(table.loc[table["subset"] == s, f"{n} AUC"].iloc[0]) for s in subsets]
            fig.add_bar(name=n, x=subsets, y=[v if v is not None else 0 for v in vals],
                        text=[fmt_num(v) for v in vals], textposition="outside")
        fig.update_layout(barmode="group", title=f"AUC per long-tail subset — {ds}", yaxis_title="test AUC",
                          yaxis_range=[0.4, 1.0], height=420)
        doc.fig(fig, f"Long-tail subsets, {ds} (a missing bar: AUC not reported, see the table's note)")


def _paper_table6(doc: Doc):
    rows = [["yes" if u else "no", "yes" if i else "no", fmt_num(v[0]), fmt_num(v[1]), fmt_num(v[2]), fmt_num(v[3]), fmt_paper_pct(v[4])]
            for (u, i), v in P.TABLE6.items()]
    doc.table(["Long-tail user?", "Long-tail item?", "DCNv2 AUC", "DCNv2 Log Loss", "ClickPrompt AUC",
               "ClickPrompt Log Loss", "Rel.Impr"], rows, caption="The paper's Table 6 (ML-1M), for reference:")


def _none(v):
    if v is None:
        return None
    try:
        return None if pd.isna(v) else v
    except (TypeError, ValueError):
        return v


def table7(doc: Doc, groups: list[Group], ds: str, analyses: list[dict], processed_dir, figures: bool,
           row: int, compute: bool) -> None:
    doc.h(3, f"Table 7 — attention over the soft prompts when one field is masked, {ds}")
    table, source = None, ""
    pre = pick(groups, ds, "pretrain", prefer_ctr="dcnv2")
    if compute and pre is not None:
        from clickprompt.analysis import prompt_attention

        try:
            dsobj = _analysis_dataset(pre, processed_dir)
            model, config, tokenizer = RunDir(pre.runs[0].path).load_model(dsobj)
            table = prompt_attention(model, tokenizer, dsobj, "test", row)
            source = f"{pre.label}, {shown(pre.runs[0].path)}, test row {row}, last layer, value tokens masked"
        except Exception as e:  # noqa: BLE001 - a missing checkpoint or dataset must not stop the report
            doc.p(f"Attention not computed: {type(e).__name__}: {e}")
    if table is None:
        saved = [a for a in analyses if a.get("analysis") == "attention" and a.get("dataset") == ds]
        if saved:
            a = saved[0]
            table = from_payload(a)
            source = f"saved analysis {shown(a['_path'])}"
    if table is None:
        doc.p("No attention table: needs a PA-MLM pretraining run with its checkpoint and prepared dataset "
              "(or an `attention.json` from `clickprompt analyse attention`).")
    else:
        doc.p(f"From: {source}. Rows: the masked field; columns: the K prompts of the last layer; each row is the "
              "attention of the masked tokens over the K prompts, averaged over heads and tokens, normalised to 1.")
        mass = table.attrs.get("prompt_mass") or {}
        header = ["Masked field", *table.columns] + (["Share on prompts"] if mass else [])
        rows = [[f, *[fmt_num(v) for v in table.loc[f]]] + ([f"{100 * mass[f]:.1f}%"] if mass and f in mass and
                                                          not math.isnan(mass[f]) else ([DASH] if mass else []))
                for f in table.index]
        doc.table(header, rows)
        if figures:
            import plotly.graph_objects as go

            fig = go.Figure(go.Heatmap(z=table.to_numpy(), x=list(table.columns), y=list(table.index),
                                       colorscale="Blues", zmin=0, text=np.round(table.to_numpy(), 3),
                                       texttemplate="%{text}"))
            fig.update_layout(title=f"Attention over the soft prompts — {ds}", height=120 + 40 * len(table),
                              yaxis_autorange="reversed")
            doc.fig(fig, f"Soft-prompt attention heatmap, {ds}")
    if ds == "ml-1m" or table is not None:
        prow = [[f, *[fmt_num(v) for v in vals]] for f, vals in P.TABLE7.items()]
        doc.table(["Masked field", "1st", "2nd", "3rd", "4th", "5th"], prow,
                  caption="The paper's Table 7 (one ML-1M sample, DCNv2 + RoBERTa-base, K = 5, last layer), for reference:")


def table8(doc: Doc, ds: str, analyses: list[dict]) -> None:
    doc.h(3, f"Table 8 — inference time per batch, {ds}")
    saved = [a for a in analyses if a.get("analysis") == "latency" and a.get("dataset") == ds]
    paper = ds in P.DATASETS
    if not saved:
        doc.p("No latency measurement for this dataset: run `clickprompt analyse latency NAME=RUN ... --out DIR` "
              "under one of the report's run directories (use the paper's model names, e.g. `DCNv2=...`, "
              "`\"ClickPrompt with PLM\"=...`, to get the paper's numbers beside ours).")
        if paper:
            doc.table(["Model", f"Paper ms ({P.DATASET_LABELS[ds]})", "Paper AUC Imprv."],
                      [[m, f"{P.table8_ms(m, ds)}", fmt_paper_pct(v[4])] for m, v in P.TABLE8.items()],
                      caption=f"The paper's Table 8 ({P.TABLE8_DEVICE}, batch {P.TABLE8_BATCH_SIZE}):")
        return
    for a in saved:
        header = ["Model", "Device", "Batch", "ms model (median)", "ms model (p90)", "ms end-to-end (median)",
                  "ms end-to-end (p90)", "AUC Imprv."]
        if paper:
            header += [f"Paper ms ({P.DATASET_LABELS[ds]}, {P.TABLE8_DEVICE})", "Paper AUC Imprv."]
        rows = []
        for r in a["rows"]:
            row = [r["model"], r.get("device", DASH), str(r.get("batch_size", DASH)), f"{r['ms_model_median']:.2f}",
                   f"{r['ms_model_p90']:.2f}", f"{r['ms_e2e_median']:.2f}", f"{r['ms_e2e_p90']:.2f}",
                   fmt_pct(_none(r.get("auc_impr")))]
            if paper:
                name = next((m for m in P.TABLE8 if m.lower() == str(r["model"]).lower()), None)
                row += [DASH, DASH] if name is None else [f"{P.table8_ms(name, ds)}", fmt_paper_pct(P.TABLE8[name][4])]
            rows.append(row)
        doc.table(header, rows, caption=f"From {shown(a['_path'])} ({a.get('definition', '')})")


def pretrain_section(doc: Doc, groups: list[Group], ds: str) -> None:
    pre = [g for g in groups if g.dataset == ds and g.role == "pretrain"]
    if not pre:
        return
    doc.h(3, f"PA-MLM pretraining, {ds}")
    rows = []
    for g in pre:
        r = g.runs[0].results
        rows.append([g.label, seeds(g), fmt_num(r.get("valid_mlm_loss")), fmt_num(r.get("value_token_acc_true")),
                     fmt_num(r.get("value_token_acc_shuffled")), fmt_num(r.get("value_token_acc_none")),
                     str(r.get("steps", DASH)), str(r.get("wall_s", DASH))])
    doc.table(["Run", "Seeds", "Valid MLM loss", "Value-token acc. (true prompts)", "(shuffled prompts)",
               "(no prompts)", "Steps", "Wall s"], rows)
    doc.p("Masked value-token accuracy on validation text with the sample's own prompts, with prompts of other "
          "samples, and without prompts: the gap between the first and the other two is the evidence that the PLM "
          "reads the CTR model's prompts (first seed shown).")


def auc_figure(groups: list[Group], ds: str):
    import plotly.graph_objects as go

    gs = [g for g in groups if g.dataset == ds and g.auc is not None]
    if not gs:
        return None
    gs.sort(key=lambda g: g.auc)
    means = [g.auc for g in gs]
    stds = [g.mean_std("test", "auc")[1] or 0.0 for g in gs]
    fig = go.Figure(go.Bar(x=means, y=[g.label for g in gs], orientation="h",
                           error_x={"type": "data", "array": stds, "visible": True},
                           text=[f"{m:.4f} (n={len(g.runs)})" for m, g in zip(means, gs)], textposition="auto"))
    lo = min(m - s for m, s in zip(means, stds))
    hi = max(m + s for m, s in zip(means, stds))
    pad = max(0.005, 0.15 * (hi - lo))
    fig.update_layout(title=f"Test AUC per model — {ds} (mean ± std over seeds)", xaxis_title="test AUC",
                      xaxis_range=[lo - pad, hi + pad], height=160 + 36 * len(gs), margin={"l": 20})
    return fig


def all_runs(doc: Doc, groups: list[Group]) -> None:
    doc.h(2, "All run groups")
    rows = []
    for g in sorted(groups, key=lambda g: (g.dataset, g.role, g.label)):
        first = shown(g.runs[0].path)
        rows.append([g.dataset, g.label, g.runs[0].stage, ", ".join(str(s) for s in g.seeds), cell(g), cell(g, "logloss"),
                     cell(g, "auc", "valid"), f"`{first}`" + (f" (+{len(g.runs) - 1})" if len(g.runs) > 1 else "")])
    doc.table(["Dataset", "Group", "Stage", "Seed(s)", "Test AUC", "Test Log Loss", "Valid AUC", "Runs"], rows)


# ============================================================================ entry point


def build_report(run_dirs, out_dir, *, title: str = "ClickPrompt: our runs beside the paper",
                 processed_dir: str | Path | None = None, compute: bool = True, figures: bool = True,
                 attention_row: int = 0) -> tuple[Path, Path]:
    """Write out_dir/report.md and out_dir/report.html from the runs under `run_dirs`.

    compute: also run the cheap analyses that need the prepared data or a checkpoint (long-tail
    subsets from the saved test predictions; prompt attention of one test row of a PA-MLM run);
    False reads only saved files. processed_dir: where prepared datasets live when the runs' own
    `data.processed_dir` is not reachable from here. Returns (md_path, html_path)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    groups, analyses, notes = discover(run_dirs)
    doc = Doc()
    doc.h(1, title)
    n_runs = sum(len(g.runs) for g in groups)
    doc.p(f"{n_runs} runs in {len(groups)} groups, read from " + ", ".join(f"`{d}`" for d in run_dirs) + ".")
    doc.p("Paper: Lin et al., \"ClickPrompt: CTR Models are Strong Prompt Generators for Adapting Language Models "
          "to CTR Prediction\", WWW'24. The paper's numbers come from RoBERTa-base and full training on four large "
          "datasets; ours come from whatever PLM, data and budget the runs used (named in each row), so read the "
          "paper columns as the target, not as a like-for-like comparison. `—`: no run or no paper number.")
    doc.p("Cells: test-set mean ± sample std over seeds (the Seeds column counts them). " + SIG_LEGEND)
    for n in notes:
        doc.p(f"Note: {n}")
    if not groups:
        doc.p("No finished runs (directories with a results.json) were found.")
    for ds in _datasets(groups):
        title_ds = {**P.DATASET_TITLES, "ml-100k": "MovieLens-100K"}.get(ds, ds)
        doc.h(2, f"{title_ds} (`{ds}`)")
        if figures:
            fig = auc_figure(groups, ds)
            if fig is not None:
                doc.fig(fig, f"Test AUC of every run group on {ds}, error bars: std over seeds")
        table2(doc, groups, ds)
        table3(doc, groups, ds)
        table4(doc, groups, ds)
        table5(doc, groups, ds)
        table6(doc, groups, ds, analyses, processed_dir, figures, compute)
        table7(doc, groups, ds, analyses, processed_dir, figures, attention_row, compute)
        table8(doc, ds, analyses)
        pretrain_section(doc, groups, ds)
    if groups:
        all_runs(doc, groups)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(doc.markdown(), encoding="utf-8")
    html_path.write_text(doc.html(title), encoding="utf-8")
    return md_path, html_path
