"""Training and inference speed on the current device (a GPU where there is one, else the CPU, and it says
so): PA-MLM, finetuning with and without the PLM through the real training loop (`clickprompt.pipeline`
stages, so batching, the optimizer and the loop's own overheads count), and inference latency per batch
of 128; each with its FLOPs per sample (torch's FlopCounterMode, forward + backward for training) and the
share of the device's measured bf16 matrix-product rate it achieves.

    python benchmarks/device_step.py [--steps 200] [--batch 256] [--compile] [--pad 16] [--device-batches]
        [--out benchmarks/results/device_step_<device>.md]

On the device machine of the project (one H200, no network): `bash experiments/device/make_carry.sh` here,
then run with carry [".carry"]: `PYTHONPATH=.carry python3 benchmarks/device_step.py --processed-dir
.carry/processed` after installing the carried transformers wheel (as experiments/paper_budget.sh does).
Targets (issue "Speed where users train and serve", H200): PA-MLM >= 30k samples/s at batch 256 with
MiniLM-L6, finetuning with the PLM >= 20k samples/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name  # noqa: E402


def matmul_rate(device) -> float:
    """Measured bf16 matrix-product rate of the device, FLOP/s (8192^3 on a GPU, 2048^3 on a CPU)."""
    import torch

    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 10 if device.type == "cuda" else 3
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_flops(model, batch: dict, train: bool) -> float:
    """FLOPs of one forward (+ backward when `train`) pass over `batch`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        if train:
            model(**batch)["loss"].backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(**{k: v for k, v in batch.items() if k != "labels"})
    return float(counter.get_total_flops())


def main() -> None:
    import torch

    from clickprompt.config import load_stage_config
    from clickprompt.pipeline import finetune, pretrain, train_ctr
    from clickprompt.rundir import RunDir
    from clickprompt.training import resolve_device, to_device

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per measurement (GPU 200, CPU 6)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--processed-dir", default="data/processed")
    ap.add_argument("--compile", action="store_true", help="train.compile (torch.compile the training step)")
    ap.add_argument("--pad", type=int, default=1, help="data.pad_to_multiple (static text widths)")
    ap.add_argument("--device-batches", action="store_true",
                    help="train.device_batches (text batches gathered on the device from a device-resident token cache)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = resolve_device("auto")
    steps = args.steps or (200 if device.type == "cuda" else 6)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {cpu_name()}"
    peak = matmul_rate(device)
    flags = {"data.dataset": "ml-100k", "data.processed_dir": args.processed_dir, "train.batch_size": args.batch,
             "train.max_steps": steps, "train.epochs": 1, "train.save_every": 0, "train.compile": args.compile,
             "train.device_batches": args.device_batches,
             "data.pad_to_multiple": args.pad, "train.device": str(device)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for stage, label in (("pretrain", "PA-MLM"), ("finetune-with-plm", "finetune with PLM"),
                             ("finetune-without-plm", "finetune w/o PLM (= DCNv2)")):
            cfg = load_stage_config("quick", stage, flags={**flags, **({"train.plm_lr": 5e-5} if stage != "pretrain" else {})})
            t0 = time.perf_counter()
            if stage == "pretrain":
                r = pretrain(cfg, tmp / "pre", progress=False)
            elif stage == "finetune-with-plm":
                r = finetune(cfg, tmp / "with", pretrained=tmp / "pre", with_plm=True, progress=False)
            else:
                r = finetune(cfg, tmp / "wo", pretrained=tmp / "pre", with_plm=False, progress=False)
            wall = time.perf_counter() - t0
            rows.append({"what": label, "samples_per_s": r["train_samples_per_s"], "wall_s": wall, "stage": stage})
        # FLOPs per sample and inference latency, on the trained models
        from clickprompt.analysis import _batcher_for, latency

        ds = RunDir(tmp / "with").dataset()
        for row, run_name, train_flag in ((rows[0], "pre", True), (rows[1], "with", True), (rows[2], "wo", True)):
            model, config, tok = RunDir(tmp / run_name).load_model(ds)
            model.to(device).train()
            if run_name == "pre":
                from clickprompt.batching import pretraining_batcher
                from clickprompt.data.text import TokenCache

                cache = TokenCache.for_dataset(tok, ds, 128)
                mb = pretraining_batcher(ds.split("train"), cache, tok, model.core.plm.objective)
            else:
                mb = _batcher_for(model, config, tok, ds, "train")
            batch = to_device(mb(list(range(args.batch))), device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                row["gflop_per_sample"] = step_flops(model, batch, train_flag) / args.batch / 1e9
        lat = latency({"DCNv2 / w/o PLM": RunDir(tmp / "wo").load_model(ds),
                       "ClickPrompt with PLM": RunDir(tmp / "with").load_model(ds)}, ds, "test", 128,
                      warmup=3, repeats=20, dtype=torch.bfloat16 if device.type == "cuda" else None)
    for r in rows:
        r["share"] = r["samples_per_s"] * r["gflop_per_sample"] * 1e9 / peak
    md = [f"# Training and inference speed on {name}", "",
          f"Command: `python benchmarks/device_step.py --steps {steps} --batch {args.batch}"
          + (" --compile" if args.compile else "") + (f" --pad {args.pad}" if args.pad > 1 else "")
          + (" --device-batches" if args.device_batches else "") + "`; "
          f"torch {torch.__version__}, precision {'bf16 autocast' if device.type == 'cuda' else 'fp32'}, "
          f"{torch.get_num_threads()} CPU threads, load average {os.getloadavg()[0]:.1f}. Measured bf16 matrix-product "
          f"rate of this device: {peak / 1e12:.1f} TFLOP/s."
          + ("" if device.type == "cuda" else " No GPU here: these are CPU figures (the GPU targets are not measured)."),
          "", "| measurement | samples/s | GFLOP/sample (fwd+bwd) | share of the bf16 rate | wall s |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['what']} (batch {args.batch}, {steps} steps) | {r['samples_per_s']:,.0f} | "
                  f"{r['gflop_per_sample']:.2f} | {100 * r['share']:.1f}% | {r['wall_s']:.1f} |")
    md += ["", "| inference, batch of 128 | ms (model) | ms (end to end) |", "|---|---|---|"]
    for _, t in lat.iterrows():
        md.append(f"| {t['model']} | {t['ms_model_median']:.2f} | {t['ms_e2e_median']:.2f} |")
    text = "\n".join(md) + "\n"
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"device_step_{device.type}.md")
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
