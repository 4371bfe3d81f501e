"""Inference latency per batch of 128 for each of the ten CTR backbones (the measurement of the paper's
Table 8, App. C.2), on this machine.

    .venv/bin/python benchmarks/ctr_latency.py                      # writes benchmarks/results/ctr_latency.md

For each model (App. B.1 defaults, the architecture `clickprompt train-ctr` trains; latency does not
depend on the weights, so freshly initialised models are timed, or trained ones with --runs):
  * eval mode, `torch.inference_mode()`, click logits of the full CTR model (embedding, feature
    interaction, head) for a batch of 128 real ML-100K test samples, ids already in a tensor;
  * --warmup untimed batches, then --repeats timed batches cycling through distinct test batches,
    each timed alone with `time.perf_counter()`; reported: median, and the 10th/90th percentiles.
Models are measured in an interleaved order over several rounds (every round times every model),
so a change in the shared machine's load hits all models alike; a model's median is over all its
timed batches.

A second table times training steps the same way (batch 256 of real training samples, forward, BCE,
backward, fused AdamW step, dropout on): the per-model training speed under equal conditions, which
the samples/s of benchmarks/results/ctr_zoo.md (each run at its own moment on a shared machine) is not.
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

from clickprompt import paper_numbers  # noqa: E402


# Paper Table 8 (ms per batch of 128, one GeForce RTX 4090): ML-1M / BX / AZ-Toys / GD.
PAPER_TABLE8 = {
    m: " / ".join(f"{paper_numbers.table8_ms(label, d):g}" for d in paper_numbers.DATASETS)
    for m, label in paper_numbers.CTR_LABELS.items() if label in paper_numbers.TABLE8
}


def main(argv=None) -> int:
    import torch

    from clickprompt.config import load_config
    from clickprompt.ctr import create_ctr, list_ctr
    from clickprompt.data.dataset import PreparedDataset
    from clickprompt.model import CTRClassifier
    from clickprompt.training import autocast

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list_ctr())
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--processed-dir", default=str(REPO / "data" / "processed"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--repeats", type=int, default=300, help="timed batches per model (over all rounds)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--runs", help="time trained weights from RUNS/<model>/seed-1/best instead of fresh ones")
    p.add_argument("--train-batch-size", type=int, default=256)
    p.add_argument("--train-repeats", type=int, default=50, help="timed training steps per model (0: skip)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ctr_latency.md"))
    args = p.parse_args(argv)
    command = ("python benchmarks/ctr_latency.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()

    torch.set_num_threads(args.threads)
    ds = PreparedDataset(Path(args.processed_dir) / args.dataset)
    test = ds.split("test")
    n_batches = len(test) // args.batch_size
    ids = torch.from_numpy(test.ids[: n_batches * args.batch_size]).view(n_batches, args.batch_size, -1)
    device = torch.device("cpu")
    dtype = torch.bfloat16 if args.precision == "bf16" else None

    models = {}
    for name in args.models:
        if args.runs:
            from clickprompt.model import CTRClassifier

            models[name] = CTRClassifier.from_pretrained(Path(args.runs) / name / "seed-1" / "best", ds)
        else:
            torch.manual_seed(0)
            cfg = load_config(None, {"ctr.model": name})
            models[name] = CTRClassifier(create_ctr(name, ds.spec, cfg.ctr)).eval()

    def one(model, x) -> float:
        t = time.perf_counter()
        with torch.inference_mode(), autocast(device, dtype):
            model(ids=x)["logits"]
        return (time.perf_counter() - t) * 1e3

    load0 = os.getloadavg()[0]
    times = {name: [] for name in models}
    for name, model in models.items():
        for i in range(args.warmup):
            one(model, ids[i % n_batches])
    per_round = max(1, args.repeats // args.rounds)
    k = 0
    for _ in range(args.rounds):
        for name, model in models.items():
            for _ in range(per_round):
                times[name].append(one(model, ids[k % n_batches]))
                k += 1

    # training steps: forward + BCE + backward + fused AdamW, dropout on, interleaved rounds as above
    train_ids = torch.from_numpy(ds.split("train").ids)
    train_labels = torch.from_numpy(ds.split("train").labels)
    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(0))
    step_times = {name: [] for name in models}
    trainers = {}
    for name in models:
        torch.manual_seed(0)
        model = CTRClassifier(create_ctr(name, ds.spec, load_config(None, {"ctr.model": name}).ctr)).train()
        trainers[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True))
    bs, k = args.train_batch_size, 0

    def step(model, opt) -> float:
        nonlocal k
        idx = order[(k * bs) % (len(order) - bs):][:bs]
        k += 1
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = model(ids=train_ids[idx], labels=train_labels[idx])["loss"]
        loss.backward()
        opt.step()
        return (time.perf_counter() - t) * 1e3

    if args.train_repeats:
        for name, (model, opt) in trainers.items():
            for _ in range(5):
                step(model, opt)
        for _ in range(args.rounds):
            for name, (model, opt) in trainers.items():
                for _ in range(max(1, args.train_repeats // args.rounds)):
                    step_times[name].append(step(model, opt))

    rows = []
    for name, ts in times.items():
        ts = np.asarray(ts)
        params = sum(p.numel() for p in models[name].parameters())
        rows.append({"model": name, "median_ms": float(np.median(ts)), "p10_ms": float(np.percentile(ts, 10)),
                     "p90_ms": float(np.percentile(ts, 90)), "n": int(len(ts)), "params": int(params)})
        if step_times[name]:
            rows[-1]["train_step_median_ms"] = float(np.median(step_times[name]))
            rows[-1]["train_samples_per_s"] = args.train_batch_size / rows[-1]["train_step_median_ms"] * 1e3
        print(f"{name:8s} median {rows[-1]['median_ms']:.3f} ms  p10 {rows[-1]['p10_ms']:.3f}  p90 {rows[-1]['p90_ms']:.3f}",
              flush=True)

    lines = [
        f"# CTR inference latency per batch of {args.batch_size} on {args.dataset} (Table 8's measurement)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} CPU cores shared with other jobs "
        f"(1-min load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end), {args.threads} intra-op "
        f"thread(s), CPU {args.precision}, torch {torch.__version__}. "
        f"{'Trained weights from ' + args.runs if args.runs else 'Freshly initialised weights'} with the App. B.1 "
        "defaults (embedding 32, DNN 3 x 256, 3 cross/attention/graph/CIN layers).",
        "",
        f"Each number: {args.warmup} warm-up batches, then {per_round * args.rounds} timed batches of "
        f"{args.batch_size} real test samples (eval mode, inference_mode, logits of the full model, ids already "
        f"in a tensor), in {args.rounds} interleaved rounds over the models; median and 10th/90th percentiles "
        "of the per-batch wall times.",
        "",
        "| model | median ms / batch | p10 ms | p90 ms | parameters | paper Table 8 ms (RTX 4090; ML-1M / BX / AZ-Toys / GD) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['median_ms']:.3f} | {r['p10_ms']:.3f} | {r['p90_ms']:.3f} | "
                     f"{r['params']:,} | {PAPER_TABLE8.get(r['model'], '-')} |")
    lines += ["", "The paper's numbers are GPU times (RTX 4090) on other datasets and are not comparable with "
              "this CPU; they are shown for orientation."]
    med = {r["model"]: r["median_ms"] for r in rows}
    if "dcnv2" in med and "autoint" in med:
        faster = "faster" if med["dcnv2"] < med["autoint"] else "slower"
        lines[-1] += (
            f" On the paper's GPU DCNv2 is faster than AutoInt; on this CPU core it is {faster} "
            f"({med['dcnv2']:.3f} vs {med['autoint']:.3f} ms): per sample DCNv2's three 256 x 256 cross layers and "
            "3 x 256 DNN take about 0.39 M multiply-adds, AutoInt's three attention layers over 8 fields about "
            "0.11 M, and a CPU pays for arithmetic where a GPU at batch 128 mostly pays per kernel launch."
        )
    if args.train_repeats:
        lines += [
            "", f"## Training step throughput (batch {args.train_batch_size})", "",
            f"Same machine and order, 5 warm-up steps, then {max(1, args.train_repeats // args.rounds) * args.rounds} "
            "timed steps per model (real training batches; forward, BCE, backward, fused AdamW; dropout on).", "",
            "| model | median ms / step | samples/s |", "|---|---|---|",
        ]
        for r in rows:
            lines.append(f"| {r['model']} | {r['train_step_median_ms']:.2f} | {r['train_samples_per_s']:,.0f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
