"""Summarise experiments/ml100k_baselines.sh into experiments/results/ml100k_baselines.md.

    .venv/bin/python experiments/summarize_ml100k_baselines.py [--out runs/ml100k-baselines]

Whatever has finished: the arms of experiments/ml100k_baselines.yaml over the seeds on which every arm
finished (clickprompt.experiments.summarize: mean ± std, Rel.Impr against the arm's reference, paired
t-test over seeds, DeLong per seed), with ClickPrompt w/o PLM and with PLM added where the quick profile's
Table 2 arms have finished in the same --out (`clickprompt experiment configs/table2_overall.yaml
--dataset ml-100k --profile quick --seeds 1 2 3 --out runs/ml100k-baselines`: the same run directories,
content-addressed); the report's Table 2 (`clickprompt report`, its Rel.Impr and p-values); the
pretraining diagnostics; the CPU budget against the paper's with the cut factors; the latency table
(benchmarks/baseline_latency.py); and which runs exist.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "experiments" / "ml100k_baselines.yaml"
RESULTS = ROOT / "experiments" / "results" / "ml100k_baselines.md"
TRAIN_ROWS = 58_283  # ML-100K training split
# (stage, paper samples, paper setting) -- App. B.2 (the paper profile's blocks)
PAPER = {
    "ctr-bert": (10 * TRAIN_ROWS, "10 epochs, batch 1024, lr 5e-5, warmup 0.05, linear decay"),
    "ptab-pretrain": (10 * TRAIN_ROWS, "10 epochs, batch 1024, lr 5e-5, warmup 0.05, linear decay"),
    "ptab-finetune": (10 * TRAIN_ROWS, "10 epochs, batch 1024, lr 5e-5, warmup 0.01, linear decay"),
    "ctrl-pretrain": (20 * TRAIN_ROWS, "20 epochs, batch 1024, CTR side lr 1e-3, PLM lr 5e-5 (trained), warmup 0.05"),
    "ctrl-finetune": (None, "up to 20 epochs, batch 256, lr 1e-3, early stopping (patience 2)"),
    "train-ctr": (None, "up to 20 epochs, batch 256, lr 1e-3, early stopping (patience 2)"),
}


def with_clickprompt(exp):
    """The study plus the quick profile's ClickPrompt arms of configs/table2_overall.yaml (same run dirs)."""
    from clickprompt.experiments import Arm

    exp = copy.deepcopy(exp)
    exp.pretrain["pa-mlm"] = {"set": {}, "label": None, "stage": "pretrain"}
    exp.arms += [Arm("clickprompt-wo-plm", "finetune-without-plm", "pa-mlm", {}, "dcnv2", "ClickPrompt w/o PLM"),
                 Arm("clickprompt-with-plm", "finetune-with-plm", "pa-mlm", {}, "dcnv2", "ClickPrompt with PLM")]
    exp.contrasts = [("clickprompt-with-plm", a.name) for a in exp.arms
                     if a.name not in ("clickprompt-with-plm", "p5")]
    return exp


def complete_seeds(plan, arms) -> list[int]:
    return [s for s in plan.seeds if all(plan.cells[(0, 0, a, s)].done for a in arms)]


def budget_rows(plan) -> list[str]:
    rows = ["| stage | ours (CPU) | samples seen | the paper's (App. B.1/B.2) | cut factor | measured steps, train samples/s |",
            "|---|---|---|---|---|---|"]
    seen = set()
    for run in plan.runs:
        if (run.stage, run.cfg.ctr.model) in seen or run.stage not in PAPER:
            continue
        seen.add((run.stage, run.cfg.ctr.model))
        t = run.cfg.train
        mates = [r for r in plan.runs if r.stage == run.stage and r.done and r.cfg.ctr.model == run.cfg.ctr.model]
        if run.stage in ("train-ctr", "ctrl-finetune"):
            ours = f"up to {t.epochs} epochs, batch {t.batch_size}, lr {t.lr:g}, early stopping (patience {t.patience})"
            samples, cut = "early stopping", "- (both stop early)"
        else:
            samples = t.max_steps * t.batch_size if t.max_steps else t.epochs * TRAIN_ROWS
            lr = f"lr {t.lr:g}" + (f", PLM lr {t.plm_lr:g}" + (" (frozen)" if t.plm_lr == 0 else "")
                                   if run.stage == "ctrl-pretrain" else "")
            ours = f"{t.max_steps} steps at batch {t.batch_size}, {lr}, warmup {t.warmup_ratio:g}, linear decay"
            cut = f"{PAPER[run.stage][0] / samples:.0f}x"
            samples = f"{samples:,}"
        measured = ", ".join(f"{r.results['steps']} steps {r.results['train_samples_per_s']:.0f}/s" for r in mates[:3]) or "-"
        label = run.stage + (f" ({run.cfg.ctr.model})" if run.stage == "train-ctr" else "")
        rows.append(f"| {label} | {ours} | {samples} | {PAPER[run.stage][1]} | {cut} | {measured} |")
    return rows


def pretraining_rows(plan, seeds) -> list[str]:
    rows = ["| pretraining | seed | steps | valid loss | diagnostic | wall s |", "|---|---|---|---|---|---|"]
    for (pi, ii, name, s), run in sorted(plan.cells.items(), key=lambda kv: (kv[0][2], kv[0][3])):
        if not name.startswith("pretrain:") or s not in seeds or not run.done or run.stage == "pretrain":
            continue
        r = run.results
        if run.stage == "ptab-pretrain":
            diag = f"masked value-token accuracy {r['value_token_acc']:.3f} (no prompts)"
            loss = f"MLM {r['valid_mlm_loss']:.3f}"
        else:
            diag = (f"top-1 retrieval CTR -> text {r['valid_retrieval_acc']:.3f} among {r['in_batch_negatives'] + 1}, "
                    f"temperature {r['temperature']:.4f}")
            loss = f"InfoNCE {r['valid_infonce_loss']:.3f}"
        rows.append(f"| {run.stage} | {s} | {r['steps']} | {loss} | {diag} | {r['wall_s']} |")
    return rows


def latency_rows(out: Path) -> list[str]:
    path = out / "latency" / "latency.json"
    if not path.exists():
        return ["Not measured yet: `.venv/bin/python benchmarks/baseline_latency.py`."]
    a = json.loads(path.read_text())
    rows = [f"Command: `.venv/bin/python benchmarks/baseline_latency.py`. {a.get('machine', '')}. "
            f"{a.get('note', '')}. {a.get('definition', '')}", "",
            "| model | checkpoint kind | parameters (M) | ms per batch, model (median) | (p90) | ms end-to-end (median) "
            "| mean test AUC | AUC Imprv. vs AutoInt | paper Table 8 ms (RTX 4090, ML-1M) |",
            "|---|---|---|---|---|---|---|---|---|"]
    from clickprompt.paper_numbers import TABLE8, table8_ms

    for r in a["rows"]:
        paper = next((m for m in TABLE8 if m.lower() == str(r["model"]).lower()), None)
        auc, imp = r.get("auc"), r.get("auc_impr")
        rows.append(f"| {r['model']} | {r['kind']} | {r['params_m']:.2f} | {r['ms_model_median']:.2f} | {r['ms_model_p90']:.2f} "
                    f"| {r['ms_e2e_median']:.2f} | " + ("-" if auc is None else f"{auc:.4f}") + " | "
                    + ("-" if imp is None else f"{100 * imp:+.2f}%") + " | "
                    + ("-" if paper is None else f"{table8_ms(paper, 'ml-1m')}") + " |")
    return rows


def report_table2(out: Path) -> list[str]:
    import tempfile

    from clickprompt.report import build_report

    with tempfile.TemporaryDirectory() as d:
        md, _ = build_report([out], d, compute=False, figures=False)
        text = md.read_text()
    part = text.split("### Table 2")[1].split("\n### ")[0]
    return ["### Table 2" + part.rstrip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "ml100k-baselines"))
    args = ap.parse_args()
    os.chdir(ROOT)
    out = Path(args.out).resolve().relative_to(ROOT) if Path(args.out).resolve().is_relative_to(ROOT) else Path(args.out)

    from clickprompt.experiments import load_experiment, plan_experiment, summarize

    exp = load_experiment(STUDY)
    full = with_clickprompt(exp)
    plan = plan_experiment(full, "ml-100k", out=out)
    own = [a.name for a in exp.arms if a.name not in plan.skipped]
    seeds = complete_seeds(plan, own)
    cp_seeds = complete_seeds(plan, own + ["clickprompt-wo-plm", "clickprompt-with-plm"])
    md = ["# PLM-based baselines of Table 2 on ML-100K (MiniLM-L6, CPU budget)", ""]
    md += ["Commands (2 CPU cores shared with other jobs, no GPU; one intra-op thread per run):", "",
           "```bash", "bash experiments/ml100k_baselines.sh          # the runs, seed by seed, then the summary below",
           f"clickprompt experiment experiments/ml100k_clickprompt.yaml --dataset ml-100k --out {out}   # ClickPrompt's rows "
           "(the quick profile's Table 2 arms: PA-MLM 100 steps of 64, with PLM 100 steps of 64 at PLM lr 5e-5, every part "
           "from PA-MLM as in the paper)",
           ".venv/bin/python benchmarks/baseline_latency.py   # Table 8's rows",
           ".venv/bin/python experiments/summarize_ml100k_baselines.py   # this file",
           f"clickprompt report {out} --out reports/ml100k-baselines    # the paper's Table 2 and 8 filled from these runs",
           "```", "",
           "Settings: `experiments/ml100k_baselines.yaml` (profile `quick`: MiniLM-L6, ML-100K; the baselines' recipe "
           "is App. B.2's, from the `paper` profile's blocks, with the CPU budget below as stage-limited settings). "
           "The paper's budget runs unchanged from `configs/table2_overall.yaml` (profile `paper`). P5: "
           + plan.skipped.get("p5", "run") + ".", ""]
    md += ["## Budget: ours against the paper's", ""] + budget_rows(plan) + [
        "", "Cut factor: the paper's training samples / ours (ML-100K's 58,283 training rows per epoch). The batch "
        "size of the capped stages is 32 (CTRL's pretraining 256) instead of 1024 so that the capped budget still "
        "takes 96-256 optimizer steps; CTRL's PLM is frozen on this CPU (a forward pass only), where the paper "
        "profile trains it at 5e-5. DCNv2, AutoInt and CTRL's AutoInt finetuning stop early (patience 2) well before "
        "their epoch caps (10 here, 20 in the paper), so they are not cut.", ""]
    if not seeds:
        md += ["No seed has finished every arm yet.", ""]
    else:
        sub = copy.deepcopy(full if cp_seeds == seeds else exp)
        if cp_seeds != seeds:
            sub.contrasts = []
        splan = plan_experiment(sub, "ml-100k", out=out, seeds=seeds)
        summary = summarize(splan)
        body = summary["markdown"].split("\n", 1)[1]
        md += [f"## Table 2 rows, seeds {seeds}", "", body.strip(), ""]
        if cp_seeds != seeds:
            md += ["ClickPrompt w/o PLM and with PLM: not in this table yet. They are the quick profile's Table 2 arms, "
                   "run into the same directory after the quick profile's with-PLM budget is settled: `clickprompt "
                   f"experiment configs/table2_overall.yaml --dataset ml-100k --profile quick --seeds {' '.join(map(str, plan.seeds))} "
                   f"--out {out}`; this script then adds their rows and the paper's Rel.Impr (ClickPrompt with PLM over "
                   "each baseline).", ""]
        md += ["### Pretraining stages", ""] + pretraining_rows(plan, seeds) + [""]
    md += ["## The report's Table 2 (`clickprompt report`)", ""] + report_table2(out) + [""]
    md += ["## Latency per batch of 128 (Table 8's rows)", ""] + latency_rows(out) + [""]
    def name(r):
        return f"{r.stage}" + (f" ({r.cfg.ctr.model})" if r.stage == "train-ctr" else "") + f" seed {r.seed}"

    cp_stages = ("pretrain", "finetune-without-plm", "finetune-with-plm")
    study = [r for r in plan.runs if r.stage not in cp_stages]
    todo = [name(r) for r in study if not r.done]
    cp_done = [name(r) for r in plan.runs if r.stage in cp_stages and r.done]
    md += ["## Runs", "", f"The study: {len(study) - len(todo)} of {len(study)} runs finished"
           + (f"; not (yet) run: {', '.join(todo)}." if todo else ".")
           + f" ClickPrompt (the quick profile's Table 2 arms): {len(cp_done)} of "
           + f"{sum(r.stage in cp_stages for r in plan.runs)} finished"
           + (f" ({', '.join(cp_done)})." if cp_done else "."),
           "", f"Load average when summarised: {os.getloadavg()[0]:.1f}.", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(md))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
