"""Summarise the runs of experiments/ml100k_core.sh into experiments/results/ml100k_core.md.

    python experiments/summarize_ml100k_core.py [--runs runs/ml100k-core runs/ml100k-core-3ep]

One section per run directory (one pretraining budget each), whatever has finished so far: DCNv2 from
scratch; per pretraining seed s its PA-MLM run, ClickPrompt w/o PLM (10 finetuning seeds) and with PLM;
w/o PLM pooled over the pretraining seeds. Paired t-tests pair finetuning seeds (w/o PLM averaged over
the pretraining seeds); DeLong's test compares one with-PLM run with the DCNv2 run of the same seed on
the same test set.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from clickprompt.rundir import RunDir
from clickprompt.evaluation import delong_per_seed, mean_std, paired_ttest, rel_impr

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = [ROOT / "runs" / "ml100k-core", ROOT / "runs" / "ml100k-core-3ep"]


def seeds(group: Path) -> dict[int, dict]:
    out = {}
    for d in sorted(group.glob("seed-*")):
        if (d / "results.json").exists():
            out[int(d.name.split("-")[1])] = json.loads((d / "results.json").read_text()) | {"dir": d}
    return out


def pretraining_seeds(runs: Path) -> dict[int, dict]:
    out = {}
    for d in sorted(runs.glob("pretrain-seed*")):
        s = int(d.name.removeprefix("pretrain-seed"))
        res = d / f"seed-{s}" / "results.json"
        if res.exists():
            out[s] = json.loads(res.read_text()) | {"dir": d / f"seed-{s}"}
    return out


def group_dir(runs: Path, kind: str, s: int) -> Path:  # the script's layout: seed 1 unsuffixed
    return runs / (kind if s == 1 else f"{kind}-pretrain{s}")


def valid_auc(runs: dict[int, dict]) -> str:  # the early-stopping metric, at each run's best epoch
    m = mean_std([r["valid"]["auc"] for r in runs.values()])
    return f"{m[0]:.4f} ± {m[1]:.4f}" if len(runs) > 1 else f"{m[0]:.4f}"


def section(runs: Path) -> list[str]:
    base, pre = seeds(runs / "dcnv2"), pretraining_seeds(runs)
    if not base or not pre:
        return []
    base_auc = mean_std([r["test"]["auc"] for r in base.values()])
    epochs = sorted({r["epochs_run"] for r in pre.values()})
    lines = [
        f"## PA-MLM {'/'.join(map(str, epochs))} epoch(s), pretraining seed(s) {', '.join(map(str, pre))} (`{runs.relative_to(ROOT)}`)",
        "",
        "PA-MLM runs (K = 5 layer-wise prompts, batch 128, CTR part lr 1e-3, PLM lr 5e-5, 5% warm-up then linear "
        "decay, fp32). Value-token accuracy: masked value tokens of 2,048 validation samples with the true prompts / "
        "prompts shuffled across the batch / no prompts.",
        "",
        "| pretraining seed | epochs | steps | valid MLM loss per epoch | value-token acc true / shuffled / none | train samples/s | train s at the last epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, r in pre.items():
        hist = RunDir(r["dir"]).epoch_records()
        losses = ", ".join(f"{h['valid_mlm_loss']:.3f}" for h in hist)
        lines.append(
            f"| {s} | {r['epochs_run']} | {r['steps']} | {losses} | {r['value_token_acc_true']:.3f} / "
            f"{r['value_token_acc_shuffled']:.3f} / {r['value_token_acc_none']:.3f} | "
            f"{r['train_samples_per_s'] or 'n/a'} | {hist[-1]['elapsed_s']:.0f} |"
        )
    lines += [
        "",
        "Training seconds exclude validation. Runs made before the trainer kept its clock across resumes count "
        "only the last process's part, and a `--resume` of an already finished run reported 0 samples/s (n/a); "
        "the runs' logs say which were resumed.",
    ]
    lines += [
        "",
        "| model | runs | valid AUC (best epoch) | test AUC (mean ± std) | test log loss | Rel.Impr vs DCNv2 | p-value |",
        "|---|---|---|---|---|---|---|",
        f"| DCNv2 from scratch | {len(base)} | {valid_auc(base)} | {base_auc[0]:.4f} ± {base_auc[1]:.4f} | "
        f"{mean_std([r['test']['logloss'] for r in base.values()])[0]:.4f} | - | - |",
    ]
    wo_all: dict[int, list[float]] = {}  # finetuning seed -> AUCs over pretraining seeds
    per_seed_lines = ["Per-seed test AUC (finetuning seeds 1-10), DCNv2: " + ", ".join(f"{base[s]['test']['auc']:.4f}" for s in sorted(base)),
                      "Best epoch per seed (early stopping on valid AUC), DCNv2: " + ", ".join(str(base[s]["best_epoch"]) for s in sorted(base))]
    for s in pre:
        wo = seeds(group_dir(runs, "without-plm", s))
        if not wo:
            continue
        common = sorted(set(base) & set(wo))
        a, b = [wo[f]["test"]["auc"] for f in common], [base[f]["test"]["auc"] for f in common]
        m = mean_std(a)
        lines.append(
            f"| ClickPrompt w/o PLM (Eq. 10), pretraining seed {s} | {len(wo)} | {valid_auc(wo)} | {m[0]:.4f} ± {m[1]:.4f} | "
            f"{mean_std([r['test']['logloss'] for r in wo.values()])[0]:.4f} | {100 * rel_impr(m[0], base_auc[0]):+.2f}% | "
            f"paired t over {len(common)} seeds: {paired_ttest(a, b):.3f} |"
        )
        for f in common:
            wo_all.setdefault(f, []).append(wo[f]["test"]["auc"])
        per_seed_lines.append(f"w/o PLM from pretraining seed {s}: " + ", ".join(f"{x:.4f}" for x in a))
        per_seed_lines.append(f"Best epoch per seed, w/o PLM from pretraining seed {s}: "
                              + ", ".join(str(wo[f]["best_epoch"]) for f in common))
    n_pre = {len(v) for v in wo_all.values()}
    if len(pre) > 1 and n_pre == {len(pre)}:
        pooled = [x for v in wo_all.values() for x in v]
        m = mean_std(pooled)
        fs = sorted(wo_all)
        lines.append(
            f"| ClickPrompt w/o PLM, all pretraining seeds | {len(pooled)} | - | {m[0]:.4f} ± {m[1]:.4f} | - | "
            f"{100 * rel_impr(m[0], base_auc[0]):+.2f}% | paired t over {len(fs)} finetuning seeds (mean over "
            f"pretraining seeds): {paired_ttest([np.mean(wo_all[f]) for f in fs], [base[f]['test']['auc'] for f in fs]):.3f} |"
        )
    with_plm = [(s, f, r) for s in pre for f, r in seeds(group_dir(runs, "with-plm", s)).items()]
    # DeLong of each with-PLM run against the DCNv2 run of its finetuning seed, and all runs combined
    seedwise = delong_per_seed([(*RunDir(r["dir"]).read_predictions(), RunDir(base[f]["dir"]).read_predictions()[1])
                                for _, f, r in with_plm])
    for (s, f, r), p in zip(with_plm, seedwise["p"]):
        lines.append(
            f"| ClickPrompt with PLM (Eq. 9), pretraining seed {s}, finetuning seed {f} | 1 | {r['valid']['auc']:.4f} | {r['test']['auc']:.4f} | "
            f"{r['test']['logloss']:.4f} | {100 * rel_impr(r['test']['auc'], base[f]['test']['auc']):+.2f}% vs DCNv2 seed {f} | "
            f"DeLong vs DCNv2 seed {f}: {p:.2g} (alpha {r.get('alpha', float('nan')):.3f}) |"
        )
    if len(with_plm) > 1:
        m = mean_std([r["test"]["auc"] for _, _, r in with_plm])
        lines.append(f"| ClickPrompt with PLM, all runs | {len(with_plm)} | - | {m[0]:.4f} ± {m[1]:.4f} | - | "
                     f"{100 * rel_impr(m[0], base_auc[0]):+.2f}% | DeLong, same direction in every run: {seedwise['p_every_seed']:.2g} |")
    return lines + [""] + [line + "  " for line in per_seed_lines] + [""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", nargs="+", type=Path, default=DEFAULT_RUNS)
    ap.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "ml100k_core.md")
    args = ap.parse_args()
    lines = [
        "# ClickPrompt on ML-100K with MiniLM-L6 and DCNv2 (CPU budget)",
        "",
        "Commands: `bash experiments/ml100k_core.sh` (1 PA-MLM epoch) and `OUT=runs/ml100k-core-3ep PRETRAIN_EPOCHS=3 "
        "PRETRAIN_SEEDS=\"1 2\" bash experiments/ml100k_core.sh`, then `python experiments/summarize_ml100k_core.py`.",
        "",
        "Budget: 2 CPU cores, no GPU. DCNv2 and ClickPrompt w/o PLM: up to 10 epochs with early stopping "
        "(patience 2) on validation AUC, finetuning seeds 1-10 (App. B.1 protocol). ClickPrompt with PLM: 1 "
        "finetuning epoch, PLM frozen (lr 0, one of the paper's choices), finetuning seed 1 from each pretraining seed. The paper pretrains 20 "
        "epochs at batch 1024 with RoBERTa-base and tunes the PLM; this CPU cannot afford that.",
        "",
    ]
    for runs in args.runs:
        lines += section(runs.resolve())
    lines.append(f"_Load average when summarised: {os.getloadavg()[0]:.1f}._")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
