"""ClickPrompt step costs on this machine: MiniLM-L6 + DCNv2, K = 10 prompts per layer, ML-100K batches.

Measures (each configuration in its own subprocess, so peak RSS is that configuration's alone):
  1. PA-MLM training step vs the same PLM's plain MLM step on the same masked batch (target <= 1.15x)
  2. PA-MLM samples/s and peak memory, vocabulary projection at masked positions only (ours) and at
     every position (as the authors' code does), for comparison
  3. finetuning with the PLM (Eq. 9), batch 128, PLM lr 5e-5 and frozen (lr 0)
  4. inference latency per batch of 128 (Table 8's measurement): DCNv2, ClickPrompt w/o PLM (the
     same DCNv2 graph), ClickPrompt with PLM — mean of timed batches after warm-up
  5. for fp32: FLOPs per sample and a GEMM-rate ceiling on samples/s (see `roofline`)

    python benchmarks/clickprompt_step.py [--steps 8] [--out benchmarks/results/clickprompt_step.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The authors' public code on this machine, as issue 5 reports its measurement (fp32, vocabulary projection at
# every position, batch 128); the targets are multiples of these.
AUTHORS = {"pa_samples_s": 17, "pa_gib": 6.9, "ft_samples_s": 31, "latency_s": 0.9}
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name  # noqa: E402


def worker(kind: str, steps: int, batch: int, precision: str) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from clickprompt.config import load_stage_config
    from clickprompt.data.text import TokenCache
    from clickprompt.model import ClickPromptForCTR, ClickPromptForPretraining, CTRClassifier
    from clickprompt.batching import ctr_batcher, mlm_settings, text_batcher
    from clickprompt.model import build_clickprompt
    from clickprompt.pipeline import load_dataset
    from clickprompt.training import plm_param_groups
    from clickprompt.training import epoch_order, make_optimizer

    torch.manual_seed(0)
    cfg = load_stage_config("quick", "pretrain")
    cfg.prompt.num_prompts = 10
    ds = load_dataset(cfg)
    core, tok, _ = build_clickprompt(cfg, ds.spec)
    cache = TokenCache.for_dataset(tok, ds, cfg.data.max_length)
    train = ds.split("train")
    dtype = torch.bfloat16 if precision == "bf16" else None
    grouped = kind.endswith("-grouped")  # batches as the trainer forms them with train.group_by_length
    rows = (epoch_order(len(train), 0, 0, cache.sample_lengths(train.text_index), batch) if grouped
            else np.random.default_rng(0).permutation(len(train)))
    def optimizer(model, plm_lr):  # the training loop's own optimizer (fused AdamW) and parameter groups
        return make_optimizer(model, cfg.train, plm_param_groups(model, core.plm, 1e-3, plm_lr))

    def timed(step_fn, n):  # mean seconds per step after two warm-up steps (an epoch's throughput)
        times = []
        for i in range(n + 2):
            idx = rows[(i * batch) % len(rows):][:batch]
            t0 = time.perf_counter()
            step_fn(idx)
            times.append(time.perf_counter() - t0)
        return float(np.mean(times[2:]))

    if kind.startswith(("pa-mlm", "plain-mlm")):
        model = ClickPromptForPretraining(core)
        opt = optimizer(model, 5e-5)
        mb = text_batcher(train, cache, mlm=mlm_settings(tok))

        def step(idx):
            b = mb(idx)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                if kind == "plain-mlm":
                    hidden = core.plm.encode(b["input_ids"], b["attention_mask"])
                    loss = core.plm.mlm_loss(hidden, b["mlm_labels"])
                elif kind == "pa-mlm-full-vocab":  # the vocabulary projection at every position (authors' code)
                    _, hidden = core(b["ids"], b["input_ids"], b["attention_mask"])
                    logits = core.plm.mlm_head(hidden)  # (B, Z, V)
                    loss = F.cross_entropy(logits.flatten(0, 1).float(), b["mlm_labels"].flatten(), ignore_index=-100)
                else:
                    loss = model(**b)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    elif kind.startswith("finetune"):
        model = ClickPromptForCTR(core)
        opt = optimizer(model, 0.0 if kind == "finetune-frozen-plm" else 5e-5)  # lr 0 freezes the PLM
        mb = text_batcher(train, cache)

        def step(idx):
            b = mb(idx)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                loss = model(**b)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    elif kind.startswith("latency-"):
        test = ds.split("test")
        rows = np.arange(len(test))
        if kind == "latency-with-plm":
            model = ClickPromptForCTR(core).eval()
            mb = text_batcher(test, cache)
        else:  # DCNv2 and ClickPrompt w/o PLM run the same graph: a CTRClassifier around DCNv2
            model = CTRClassifier(core.ctr).eval()
            mb = ctr_batcher(test)

        def step(idx):
            b = mb(idx)
            b.pop("labels")
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                model(**b)

        steps = max(steps, 20)
    else:
        raise ValueError(kind)
    sec = timed(step, steps)
    out = {"kind": kind, "precision": precision, "batch": batch, "sec_per_step": sec, "samples_per_s": batch / sec,
           "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # ru_maxrss: KiB on Linux
           "threads": torch.get_num_threads()}
    if precision == "fp32" and kind in ("pa-mlm", "finetune-plm", "latency-with-plm"):
        out.update(roofline(step, rows[:batch], mb, core.plm.config))
    return out


def roofline(step, idx, mb, plm_config) -> dict:
    """FLOPs of one step on a random batch (torch's FlopCounterMode: matrix products and attention) and
    this machine's fp32 matrix-product rate at the step's largest GEMM shape: the samples/s the step
    would reach if every FLOP ran at that rate and nothing else cost anything."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(idx)
    flops = counter.get_total_flops()
    tokens = int(mb(idx)["attention_mask"].numel())  # B x Z of this batch
    hidden, ffn = plm_config.hidden_size, plm_config.intermediate_size
    a, b = torch.randn(tokens, hidden), torch.randn(hidden, ffn)  # the FFN's first GEMM, the widest
    for _ in range(3):
        a @ b
    t0, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    gemm = 2 * tokens * hidden * ffn * reps / (time.perf_counter() - t0)
    return {"flops_per_sample": flops / len(idx), "gemm_flops_per_s": gemm,
            "ceiling_samples_per_s": gemm / (flops / len(idx))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "clickprompt_step.md"))
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "BATCH", "PRECISION"))
    args = ap.parse_args()
    if args.worker:
        kind, batch, precision = args.worker
        print(json.dumps(worker(kind, args.steps, int(batch), precision)))
        return
    kinds = ["plain-mlm", "pa-mlm", "pa-mlm-grouped", "pa-mlm-full-vocab", "finetune-plm", "finetune-plm-grouped",
             "finetune-frozen-plm", "latency-ctr", "latency-with-plm"]
    results = []
    for precision in args.precisions:
        for kind in kinds:
            if precision != "fp32" and kind.endswith("-grouped"):
                continue
            cmd = [sys.executable, __file__, "--steps", str(args.steps), "--worker", kind, str(args.batch), precision]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(r, flush=True)
            results.append(r)
    by = {(r["kind"], r["precision"]): r for r in results}
    load = os.getloadavg()
    lines = [
        "# ClickPrompt step costs (MiniLM-L6 + DCNv2, K = 10, ML-100K, batch %d)" % args.batch,
        "",
        f"Command: `python benchmarks/clickprompt_step.py --steps {args.steps}`; {cpu_name()}; each row in its own "
        f"process; mean over {args.steps} steps after 2 warm-up steps (latency: 20 batches); "
        f"{results[0]['threads']} threads; the training loop's optimizer (fused AdamW, CTR part lr 1e-3, PLM 5e-5 "
        f"or frozen); load average at the end {load[0]:.1f}. Random batches are padded to their longest sample; "
        "`-grouped` rows draw the batches as the training loop does with `train.group_by_length` (similar lengths "
        "together). Ceiling = this machine's fp32 GEMM rate at the step's widest matrix product divided by the "
        "step's FLOPs per sample (torch FlopCounterMode): the throughput if every FLOP ran at GEMM speed and "
        "nothing else cost anything.",
        "",
        "| measurement | precision | s/step | samples/s | peak RSS GiB | GFLOP/sample | GEMM GFLOP/s | ceiling samples/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        roof = (f"{r['flops_per_sample'] / 1e9:.2f} | {r['gemm_flops_per_s'] / 1e9:.0f} | {r['ceiling_samples_per_s']:.0f}"
                if "flops_per_sample" in r else "| |")
        lines.append(f"| {r['kind']} | {r['precision']} | {r['sec_per_step']:.3f} | {r['samples_per_s']:.1f} | "
                     f"{r['peak_rss_gib']:.2f} | {roof} |")
    need = {"pa": 5 * AUTHORS["pa_samples_s"], "ft": 3 * AUTHORS["ft_samples_s"], "lat": AUTHORS["latency_s"] / 3}
    lines += ["", f"Against the issue's targets. The authors' public code on this machine, as issue 5 states its "
              f"measurement (not rerun here): PA-MLM ~{AUTHORS['pa_samples_s']} samples/s at {AUTHORS['pa_gib']} GiB, "
              f"finetuning with PLM ~{AUTHORS['ft_samples_s']} samples/s, inference ~{AUTHORS['latency_s']} s per batch "
              f"of 128. Targets: PA-MLM >= {need['pa']:.0f} samples/s at <= 3 GiB, finetuning >= {need['ft']:.0f}, "
              f"inference <= {1000 * need['lat']:.0f} ms."]
    for p in args.precisions:
        pa, plain = by[("pa-mlm", p)], by[("plain-mlm", p)]
        full, ft = by[("pa-mlm-full-vocab", p)], by[("finetune-plm", p)]
        ctr, wp = by[("latency-ctr", p)], by[("latency-with-plm", p)]
        pa_g, ft_g = by.get(("pa-mlm-grouped", p)), by.get(("finetune-plm-grouped", p))
        best_pa, best_ft = pa_g or pa, ft_g or ft
        lines.append(
            f"- {p}: PA-MLM / plain MLM step = {pa['sec_per_step'] / plain['sec_per_step']:.2f}x (target <= 1.15x); "
            f"projection at every position costs {full['sec_per_step'] / pa['sec_per_step']:.2f}x ours; "
            f"PA-MLM {pa['samples_per_s']:.1f} samples/s random ({pa['peak_rss_gib']:.2f} GiB)"
            + (f" / {pa_g['samples_per_s']:.1f} grouped ({pa_g['peak_rss_gib']:.2f} GiB)" if pa_g else "")
            + f" = {best_pa['samples_per_s'] / AUTHORS['pa_samples_s']:.1f}x the authors' (target >= 5x); "
            f"finetune with PLM {ft['samples_per_s']:.1f}"
            + (f" / {ft_g['samples_per_s']:.1f} grouped" if ft_g else "")
            + f" = {best_ft['samples_per_s'] / AUTHORS['ft_samples_s']:.1f}x the authors' (target >= 3x); latency per "
            f"batch: DCNv2 = ClickPrompt w/o PLM {1000 * ctr['sec_per_step']:.2f} ms (the same graph: 1.00x), with PLM "
            f"{1000 * wp['sec_per_step']:.0f} ms = {AUTHORS['latency_s'] / wp['sec_per_step']:.1f}x faster than the "
            "authors' (target >= 3x)."
        )
    if ("pa-mlm", "fp32") in by and "ceiling_samples_per_s" in by[("pa-mlm", "fp32")]:
        pa, ft, wp = by[("pa-mlm", "fp32")], by[("finetune-plm", "fp32")], by[("latency-with-plm", "fp32")]
        lines.append(
            f"- Ceilings (fp32, random batches; grouped batches carry fewer padding positions, so theirs is higher by "
            f"that ratio): PA-MLM {pa['ceiling_samples_per_s']:.0f} samples/s against the {need['pa']:.0f} the 5x target "
            f"needs; finetuning with PLM {ft['ceiling_samples_per_s']:.0f} against {need['ft']:.0f} (3x); inference with "
            f"PLM {1000 * args.batch / wp['ceiling_samples_per_s']:.0f} ms per batch against {1000 * need['lat']:.0f} ms "
            "(3x). A target above its ceiling cannot be met in fp32 on this CPU by any scheduling of the same arithmetic."
        )
    if ("pa-mlm", "bf16") in by and ("pa-mlm", "fp32") in by:
        ratio = by[("pa-mlm", "bf16")]["samples_per_s"] / by[("pa-mlm", "fp32")]["samples_per_s"]
        lines.append(f"- bf16 autocast runs PA-MLM at {ratio:.2f}x the fp32 throughput on this CPU.")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
