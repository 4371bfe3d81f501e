"""CPU inference with the PLM in fp32, with its linear layers in int8 (clickprompt.quantize), and under bf16
autocast: milliseconds per batch of 128 and the AUC change on the test split, for a finished
ClickPrompt-with-PLM run.

    python benchmarks/int8_inference.py --run runs/quick/finetune-with-plm [--repeats 20] \
        [--out benchmarks/results/int8_inference.md]

All three variants time the same batches through `clickprompt.analysis.latency` (model = forward pass alone, e2e
= batch assembly from the prepared split + forward + logits to the host), interleaved so that a change
in the machine's load hits all of them; then each scores the whole test split once (AUC, and the largest
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


def cpu_matrix_units() -> str:
    """The CPU's bf16/int8 matrix extensions (AMX tiles, AVX512-BF16, VNNI) as /proc/cpuinfo lists them."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni") if f in flags]
    return ", ".join(found) or "none of AMX / AVX512-BF16 / VNNI"


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
    fp32 = run.load_model(ds)
    # name -> (model, config, tokenizer), autocast dtype: fp32; int8 linear layers; fp32 weights under bf16
    # autocast (fast where the CPU has AMX or AVX512-BF16 matrix units)
    variants = {"fp32": (fp32, None), "int8": (run.load_model(ds, int8=True), None), "bf16": (fp32, torch.bfloat16)}
    tables = []
    for _ in range(args.rounds):  # interleaved rounds: each variant sees the same machine state
        for name, (m, dtype) in variants.items():
            tables.append(latency({name: m}, ds, "test", args.batch_size, warmup=3, repeats=args.repeats, dtype=dtype))
    import pandas as pd

    t = pd.concat(tables).groupby("model", sort=False)[["ms_model_median", "ms_e2e_median"]].median()
    test = ds.split("test")
    probs = {name: predict_probs(m, c, tok, ds, "test", dtype=dtype) for name, ((m, c, tok), dtype) in variants.items()}
    auc = {name: ctr_metrics(test.labels, p)["auc"] for name, p in probs.items()}
    rows = [[name, fmt_num(t.loc[name, "ms_model_median"], 1), fmt_num(t.loc[name, "ms_e2e_median"], 1),
             fmt_num(auc[name]), "—" if name == "fp32" else f"{auc[name] - auc['fp32']:+.5f}",
             "—" if name == "fp32" else f"{float(np.abs(probs[name] - probs['fp32']).max()):.4f}",
             "—" if name == "fp32" else f"{t.loc['fp32', 'ms_model_median'] / t.loc[name, 'ms_model_median']:.2f}x"]
            for name in variants]
    verdicts = []
    for name in ("int8", "bf16"):
        ms, d_auc = t.loc[name, "ms_model_median"], auc[name] - auc["fp32"]
        verdicts.append(f"- {name}: <= {TARGET_MS:.0f} ms per batch {'met' if ms <= TARGET_MS else 'NOT met'} ({ms:.0f} ms); "
                        f"AUC within {TARGET_AUC} of fp32 {'met' if abs(d_auc) <= TARGET_AUC else 'NOT met'} ({d_auc:+.5f}).")
    load = os.getloadavg()[0]
    md = [
        "# ClickPrompt with PLM on the CPU: fp32, int8 linear layers, bf16 autocast",
        "",
        f"Command: `python benchmarks/int8_inference.py --run {args.run} --repeats {args.repeats} --rounds "
        f"{args.rounds}`; {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__} "
        f"(quantized engine {torch.backends.quantized.engine}); CPU matrix units: {cpu_matrix_units()}; load "
        f"average at the end {load:.1f}. Run: {run.read_config()['plm']['name']} + {run.read_config()['ctr']['model']}, "
        f"dataset {ds.name}, test split {len(test):,} rows. Median over {args.rounds} interleaved rounds of the "
        f"per-round median of {args.repeats} batches of {args.batch_size} (3 warm-up batches each); AUC over the whole "
        "test split.",
        "",
        *markdown_table(["variant", "ms per batch (model)", "ms per batch (e2e)", "test AUC", "AUC change",
                         "largest change of a click probability", "speed-up (model)"], rows),
        "",
        f"Targets (issue 17): <= {TARGET_MS:.0f} ms per batch of {args.batch_size} on 2 cores, AUC within {TARGET_AUC} of fp32.",
        *verdicts,
    ]
    Path(args.out).write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
