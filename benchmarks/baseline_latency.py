"""Inference latency per batch of 128 of the PLM-based baselines beside AutoInt and DCNv2 (the paper's
Table 8, App. C.2), with clickprompt.analysis.latency, on this machine.

    .venv/bin/python benchmarks/baseline_latency.py [--out runs/ml100k-baselines] [--seed 1]
        [--run "ClickPrompt w/o PLM=RUN" --run "ClickPrompt with PLM=RUN"]

Timed: the seed-`--seed` runs of experiments/ml100k_baselines.yaml (DCNv2, AutoInt, CTR-BERT, PTab, CTRL:
trained checkpoints, reloaded from their run directories), any `--run NAME=RUN` given, and P5 as a T5-small
(T5Config's defaults: 6 + 6 layers, d_model 512, 8 heads, vocabulary 32,128) with RANDOM weights and a
word-level tokenizer over ML-100K's text (no pretrained T5 is available offline; latency does not depend
on the weights, the token count is close to but not exactly sentencepiece's). Each model is timed by
analysis.latency (eval mode, inference_mode, --warmup untimed batches then --repeats timed ones of 128
test rows; model = forward pass, e2e = batch assembly incl. the token-cache text + forward + logits back),
one intra-op thread. AUC Imprv.: Rel.Impr of the mean test AUC over the study's seeds against AutoInt's
(Table 8's last column is the same against AutoInt, averaged over the paper's four datasets).

Writes `<out>/latency/latency.{json,csv}` (read by `clickprompt report`) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name  # noqa: E402

ARMS = {"dcnv2": "DCNv2", "autoint": "AutoInt", "ctr-bert": "CTR-BERT", "ptab": "PTab", "ctrl": "CTRL"}


def p5_random_t5_small(ds, max_length: int = 128):
    """(P5ForCTR with a random T5-small, its config dict, a word-level tokenizer): latency only."""
    import tempfile

    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from clickprompt.baselines.p5 import P5ForCTR, answer_ids, make_tiny_t5, prompt_ids

    texts = ds.texts("train") + ds.texts("valid") + ds.texts("test")
    with tempfile.TemporaryDirectory() as d:  # only its tokenizer is used
        tok = AutoTokenizer.from_pretrained(make_tiny_t5(Path(d) / "t5", texts))
    torch.manual_seed(0)
    config = T5Config(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)  # t5-small's shape
    model = P5ForCTR(T5ForConditionalGeneration(config), prompt_ids(tok), *answer_ids(tok)).eval()
    return model, {"kind": "p5", "run_config": {"data": {"max_length": max_length}}}, tok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/ml100k-baselines", help="the study's experiment --out")
    ap.add_argument("--seed", type=int, default=1, help="whose checkpoints are timed")
    ap.add_argument("--run", action="append", default=[], metavar="NAME=RUN", help="another run to time")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-p5", action="store_true")
    args = ap.parse_args()

    import torch

    from clickprompt.analysis import latency, to_payload, write_analysis
    from clickprompt.experiments import load_experiment, plan_experiment
    from clickprompt.rundir import RunDir

    torch.set_num_threads(args.threads)
    exp = load_experiment(REPO / "experiments" / "ml100k_baselines.yaml")
    plan = plan_experiment(exp, "ml-100k", out=args.out)
    runs = {label: plan.cells[(0, 0, arm, args.seed)].run_dir for arm, label in ARMS.items()}
    runs.update(dict(item.split("=", 1) for item in args.run))
    ds, models, aucs = None, {}, {}
    for name, run in runs.items():
        rd = RunDir(run)
        ds = ds or rd.dataset()
        models[name] = rd.load_model(ds)
        group = [c for (pi, ii, arm, s), c in plan.cells.items() if ARMS.get(arm) == name]
        done = [c.results["test"]["auc"] for c in group if c.done] or [rd.read_results()["test"]["auc"]]
        aucs[name] = float(np.mean(done))
    if not args.no_p5:
        models["P5 (random T5-small)"] = p5_random_t5_small(ds)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    table = latency(models, ds, "test", args.batch_size, args.warmup, args.repeats, baseline="AutoInt", aucs=aucs)
    payload = to_payload("latency", table, dataset=ds.name, models={k: str(v) for k, v in runs.items()},
                         machine=f"{cpu_name()}, {args.threads} intra-op thread(s), torch {torch.__version__}",
                         note="P5: T5-small shape with random weights and a word-level tokenizer (latency only)")
    csv, js = write_analysis(Path(args.out) / "latency", "latency", payload, table)
    print(f"{cpu_name()}; {args.threads} thread(s); load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
          f"{time.perf_counter() - t0:.0f} s; -> {js}\n")
    print("| model | kind | params (M) | ms model (median) | ms model (p90) | ms end-to-end (median) | "
          "mean test AUC | AUC Imprv. vs AutoInt |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table.to_dict("records"):
        auc, imp = r.get("auc"), r.get("auc_impr")
        print(f"| {r['model']} | {r['kind']} | {r['params_m']:.2f} | {r['ms_model_median']:.2f} | {r['ms_model_p90']:.2f} | "
              f"{r['ms_e2e_median']:.2f} | " + ("-" if auc is None or auc != auc else f"{auc:.4f}") + " | "
              + ("-" if imp is None or imp != imp else f"{100 * imp:+.2f}%") + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
