"""The ten CTR backbones of Table 2 trained from scratch on prepared ML-100K: test AUC, log loss, epochs
and training samples/s, one row per model (mean ± sd over seeds).

    .venv/bin/python benchmarks/ctr_zoo.py                                  # all ten, seeds 1 2 3
    .venv/bin/python benchmarks/ctr_zoo.py --models dcnv2 dnn --seeds 1 2 3

Each run is exactly `clickprompt train-ctr --dataset ml-100k --model NAME --set train.seed=S
--out RUNS/NAME/seed-S` (library call `clickprompt.pipeline.train_ctr`), with the App. B.1 defaults of
`CTRConfig`/`TrainConfig`: embedding 32, DNN 3 x 256, dropout 0.1, batch 256, AdamW lr 1e-3, BCE,
at most 10 epochs, early stopping on validation AUC with patience 2, best weights restored.
Finished runs (results.json present) are reused, so an interrupted benchmark continues where it stopped.
Writes benchmarks/results/ctr_zoo.md (+ .json with every run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name  # noqa: E402

from clickprompt import paper_numbers  # noqa: E402





def fuxictr_reference() -> dict[str, str]:
    """FuxiCTR 2.3.10 on the same prepared data and protocol, as measured by ctr_throughput_fuxictr.py
    (DCNv2 only: no committed command runs FuxiCTR's other models)."""
    path = REPO / "benchmarks" / "results" / "ctr_throughput_fuxictr.json"
    if not path.exists():
        return {}
    aucs = [r["test_auc"] for r in json.loads(path.read_text()) if r["impl"] == "fuxictr"]
    return {"dcnv2": f"{fmt(aucs)} ({len(aucs)} seeds, ctr_throughput_fuxictr.py)"} if aucs else {}
# The paper's Table 2 (MovieLens-1M, not ML-100K: a different dataset, shown only for the ordering).
PAPER_ML1M_AUC = {m: paper_numbers.TABLE2[label]["ml-1m"][0] for m, label in paper_numbers.CTR_LABELS.items()}


def run_one(args, model: str, seed: int) -> dict:
    import torch

    from clickprompt.config import load_config
    from clickprompt.pipeline import train_ctr

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, {
        "data.dataset": args.dataset, "data.processed_dir": args.processed_dir, "ctr.model": model,
        "train.seed": seed, "train.device": "cpu", "train.precision": "fp32", **dict(kv.split("=", 1) for kv in args.set),
    })
    run_dir = Path(args.runs) / model / f"seed-{seed}"
    reused = (run_dir / "results.json").exists() and not args.force
    t = time.perf_counter()
    res = train_ctr(cfg, run_dir, force=args.force, progress=False)
    wall = None if reused else round(time.perf_counter() - t, 1)
    return {**res, "model": model, "seed": seed, "run_dir": str(run_dir), "wall_s": wall, "reused": reused}


def fmt(xs: list[float], digits: int = 4) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.{digits}f}"
    return f"{statistics.mean(xs):.{digits}f} ± {statistics.stdev(xs):.{digits}f}"


def write_report(rows: list[dict], args, command: str, loads: tuple[float, float]) -> None:
    models = [m for m in args.models if any(r["model"] == m for r in rows)]
    reference = fuxictr_reference()
    lines = [
        f"# CTR model zoo on {args.dataset} (App. B.1 protocol)",
        "",
        f"Command: `{command}`",
        "",
        "Per run: `clickprompt train-ctr --dataset ml-100k --model NAME --set train.seed=S` (library: "
        "`clickprompt.pipeline.train_ctr`). Defaults from `CTRConfig`/`TrainConfig`: 8 fields (first genre), "
        "embedding 32, DNN 3 x 256, dropout 0.1, cross/attention/graph/CIN layers 3, batch 256, AdamW lr 1e-3 "
        "(weight decay 0), BCE on logits, at most 10 epochs, early stopping on validation AUC with patience 2, "
        "best weights restored; test AUC and log loss from sklearn on the held-out last 10% (global time split).",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} CPU cores shared with other jobs "
        f"(1-min load average {loads[0]:.1f} at start, {loads[1]:.1f} at end), {args.threads} intra-op thread(s), "
        "CPU fp32. Samples/s = training samples / wall time of the training epochs (validation excluded), "
        "mean over the seeds.",
        "",
        "| model | seeds | test AUC | test log loss | epochs run (best) | train samples/s | FuxiCTR 2.3.10 reference AUC | paper Table 2 AUC (ML-1M) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in models:
        rs = sorted((r for r in rows if r["model"] == m), key=lambda r: r["seed"])
        epochs = ", ".join(f"{r['epochs_run']} ({r['best_epoch']})" for r in rs)
        lines.append(
            f"| {m} | {', '.join(str(r['seed']) for r in rs)} | {fmt([r['test']['auc'] for r in rs])} | "
            f"{fmt([r['test']['logloss'] for r in rs])} | {epochs} | "
            f"{statistics.mean(r['train_samples_per_s'] for r in rs):,.0f} | {reference.get(m, '-')} | "
            f"{PAPER_ML1M_AUC.get(m, '-')} |"
        )
    reused = sorted({r["model"] for r in rows if r.get("reused")})
    sds = [statistics.stdev([r["test"]["auc"] for r in rows if r["model"] == m]) for m in models
           if sum(r["model"] == m for r in rows) > 1] or [0.0]
    spread = max(
        max(r["train_samples_per_s"] for r in rows if r["model"] == m) / min(r["train_samples_per_s"] for r in rows if r["model"] == m)
        for m in models
    )
    if reused:
        note = (f"Reused finished runs (trained earlier by this script into the same --runs directory, same code "
                f"path): {', '.join(reused)}. ")
    else:
        note = "Every run was trained by this invocation. "
    note += (f"Each run's samples/s is measured at its own time on a shared machine (one model's seeds differ by up "
             f"to {spread:.1f}x); benchmarks/results/ctr_latency.md times all models' training steps side by side.")
    lines += [
        "",
        note,
        "",
        f"mean ± sd: sample standard deviation over the seeds. Here the seed-to-seed sd of test AUC ranges from "
        f"{min(sds):.4f} to {max(sds):.4f} by model, so differences below ~0.005 between two models are not "
        "meaningful on ML-100K.",
        "",
        "Per-run metrics (every epoch) are in each run directory's metrics.jsonl; all rows are in ctr_zoo.json.",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    keep = ("model", "seed", "test", "valid", "best_epoch", "epochs_run", "steps", "train_samples_per_s", "wall_s", "reused",
            "run_dir")
    out.with_suffix(".json").write_text(json.dumps([{k: r.get(k) for k in keep} for r in rows], indent=2) + "\n")


def main(argv=None) -> int:
    from clickprompt.ctr import list_ctr

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list_ctr())
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--processed-dir", default=str(REPO / "data" / "processed"))
    p.add_argument("--config", help="YAML config applied before the overrides")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: the machine is shared)")
    p.add_argument("--runs", default=str(REPO / "runs" / "ctr_zoo"))
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ctr_zoo.md"))
    args = p.parse_args(argv)
    command = ("python benchmarks/ctr_zoo.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    load0 = os.getloadavg()[0]
    rows = []
    for model in args.models:
        for seed in args.seeds:
            r = run_one(args, model, seed)
            rows.append(r)
            print(f"{model:8s} seed {seed}: test AUC {r['test']['auc']:.4f}  log loss {r['test']['logloss']:.4f}  "
                  f"epochs {r['epochs_run']} (best {r['best_epoch']})  {r['train_samples_per_s']:,.0f} samples/s  "
                  f"{'reused' if r['reused'] else str(r['wall_s']) + ' s'}", flush=True)
            write_report(rows, args, command, (load0, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
