"""CPU inference with the PLM in fp32 and with its linear layers in int8 (clickprompt.quantize): milliseconds
per batch of 128 and the AUC change on the test split, for a finished ClickPrompt-with-PLM run.

    python benchmarks/int8_inference.py --run runs/quick/finetune-with-plm [--repeats 20] \
        [--out benchmarks/results/int8_inference.md]

Both models time the same batches through `clickprompt.analysis.latency` (model = forward pass alone, e2e
= batch assembly from the prepared split + forward + logits to the host), interleaved so that a change
in the machine's load hits both; then each scores the whole test split once (AUC, and the largest
change of a click probability). Targets (issue "Speed where users train and serve"): <= 300 ms per batch
of 128 on 2 cores, AUC within 0.001 of fp32.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name  # noqa: E402

TARGET_MS, TARGET_AUC = 300.0, 0.001


def main() -> None:
    import torch

    from clickprompt.analysis import latency
    from clickprompt.batching import predict_probs
    from clickprompt.evaluation import ctr_metrics
    from clickprompt.formatting import fmt_num, markdown_table
    from clickprompt.rundir import RunDir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a finished finetune-with-plm run directory")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="alternate fp32 / int8 timing this many times")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_inference.md"))
    args = ap.parse_args()

    run = RunDir(args.run)
    ds = run.dataset()
    models = {"fp32": run.load_model(ds), "int8": run.load_model(ds, int8=True)}
    tables = []
    for _ in range(args.rounds):  # interleaved rounds: each model sees the same machine state
        for name, m in models.items():
            tables.append(latency({name: m}, ds, "test", args.batch_size, warmup=3, repeats=args.repeats))
    import pandas as pd

    t = pd.concat(tables).groupby("model", sort=False)[["ms_model_median", "ms_e2e_median"]].median()
    test = ds.split("test")
    probs = {name: predict_probs(m, c, tok, ds, "test") for name, (m, c, tok) in models.items()}
    auc = {name: ctr_metrics(test.labels, p)["auc"] for name, p in probs.items()}
    d_auc = auc["int8"] - auc["fp32"]
    max_dp = float(np.abs(probs["int8"] - probs["fp32"]).max())
    speedup = t.loc["fp32", "ms_model_median"] / t.loc["int8", "ms_model_median"]
    rows = [[name, fmt_num(t.loc[name, "ms_model_median"], 1), fmt_num(t.loc[name, "ms_e2e_median"], 1),
             fmt_num(auc[name])] for name in models]
    load = os.getloadavg()[0]
    md = [
        "# ClickPrompt with PLM on the CPU: fp32 vs int8 linear layers",
        "",
        f"Command: `python benchmarks/int8_inference.py --run {args.run} --repeats {args.repeats} --rounds "
        f"{args.rounds}`; {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__} "
        f"(quantized engine {torch.backends.quantized.engine}); load average at the end {load:.1f}. Run: "
        f"{run.read_config()['plm']['name']} + {run.read_config()['ctr']['model']}, dataset {ds.name}, test split "
        f"{len(test):,} rows. Median over {args.rounds} interleaved rounds of the per-round median of "
        f"{args.repeats} batches of {args.batch_size} (3 warm-up batches each).",
        "",
        *markdown_table(["model", "ms per batch (model)", "ms per batch (e2e)", "test AUC"], rows),
        "",
        f"int8 / fp32: {speedup:.2f}x faster (model-only); test AUC change {d_auc:+.5f}; largest change of a click "
        f"probability {max_dp:.4f}.",
        f"Targets: <= {TARGET_MS:.0f} ms per batch: {'met' if t.loc['int8', 'ms_model_median'] <= TARGET_MS else 'NOT met'} "
        f"({t.loc['int8', 'ms_model_median']:.0f} ms); AUC within {TARGET_AUC}: "
        f"{'met' if abs(d_auc) <= TARGET_AUC else 'NOT met'} ({d_auc:+.5f}).",
    ]
    Path(args.out).write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
