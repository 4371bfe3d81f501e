"""Summary of the positive-control experiments (experiments/positive_control.sh): test AUC of every arm on
all test rows and on the planted "target" rows (new or rare items, where only the text can tell), next to
the ceiling (the AUC of the true click probabilities), with Rel.Impr, the paired t-test over seeds and
DeLong's test per seed, both on the target rows, against each arm's reference.

    python experiments/summarize_control.py --out runs/control --processed-dir data/processed \
        --run "positive_control:control-cold:1 2 3 4 5" --run "pa_mlm_transfer:control-rare:1 2 3 4 5" \
        --run "positive_control:control-heldout:1 2 3" > experiments/results/positive_control.md

Everything is read from the run directories and the datasets' control.json / oracle.parquet; nothing is
typed in.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

from clickprompt.data.control import control_metrics, read_control
from clickprompt.evaluation import delong_per_seed, mean_std, paired_ttest, rel_impr
from clickprompt.experiments import load_experiment, plan_experiment
from clickprompt.formatting import fmt_mean_std, fmt_num, fmt_p, fmt_pct, fmt_signed_ps, markdown_table
from clickprompt.rundir import RunDir

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _arm_rows(plan, dataset_dir: Path) -> list[dict]:
    _, oracle = read_control(dataset_dir)
    test = oracle[oracle["split"] == "test"].sort_values("row")
    target = test["target"].to_numpy()
    rows = []
    for arm in plan.experiment.arms:
        runs = [plan.cells[(0, 0, arm.name, s)] for s in plan.seeds]
        missing = [str(r.run_dir) for r in runs if not r.done]
        if missing:
            raise SystemExit(f"{len(missing)} run(s) of arm {arm.name} not finished, e.g. {missing[0]}")
        preds = [RunDir(r.run_dir).read_predictions() for r in runs]
        metrics = [control_metrics(dataset_dir, probs) for _, probs in preds]
        rows.append({"arm": arm, "runs": runs, "preds": preds, "metrics": metrics,
                     "all": [m["auc"]["all"] for m in metrics], "target": [m["auc"]["target"] for m in metrics],
                     "other": [m["auc"]["non_target"] for m in metrics], "target_mask": target,
                     "results": [RunDir(r.run_dir).read_results() for r in runs]})
    return rows


def _versus(row: dict, ref: dict) -> dict:
    """Target-row comparison of an arm with its reference, paired by seed."""
    tgt = row["target_mask"]
    pairs = [(labels[tgt], a[tgt], b[tgt]) for (labels, a), (_, b) in zip(row["preds"], ref["preds"])]
    seedwise = delong_per_seed(pairs)
    return {"rel": rel_impr(mean_std(row["target"])[0], mean_std(ref["target"])[0]),
            "t_p": paired_ttest(row["target"], ref["target"]), "delong": seedwise}


def section(name: str, dataset: str, out: Path, processed: Path, seeds) -> list[str]:
    exp = load_experiment(CONFIGS / f"{name}.yaml")
    plan = plan_experiment(exp, dataset, seeds=seeds, out=out, processed_dir=processed)
    dataset_dir = processed / dataset
    control, _ = read_control(dataset_dir)
    opts, test = control["options"], control["splits"]["test"]
    rows = _arm_rows(plan, dataset_dir)
    by_name = {r["arm"].name: r for r in rows}
    n = len(plan.seeds)
    what = {"cold": "new items (never in training)", "rare": "rare items (1-%d training rows each)" % opts["rare_max"]}
    md = [f"\n## {dataset}: {exp.name}\n",
          f"Data: `clickprompt data synth --item-mode {opts['item_mode']}"
          + (f" --heldout-words {opts['heldout_words']}" if opts["heldout_words"] else "") + f" --seed {opts['seed']}` "
          f"({opts['n']:,} rows, {opts['n_groups']} word groups, signal {opts['signal']}); test split {test['rows']:,} "
          f"rows, {100 * test['target_share']:.0f}% of them target rows = {what[opts['item_mode']]}"
          + (f", their title words held out of training (share {opts['heldout_words']})" if opts["heldout_words"] else "")
          + f". Ceiling (AUC of the true click probabilities): all rows {test['ceiling_auc']['all']:.4f}, "
          f"target rows {test['ceiling_auc']['target']:.4f}.",
          f"\nSeeds {plan.seeds}; test AUC mean ± sample std over seeds. Against the reference, on the target "
          "rows: Rel.Impr of the mean AUC, paired t-test over seeds, DeLong per seed (signed by the direction "
          "of that seed's difference) and combined (the largest p if every seed goes the same way, else 1).\n"]
    header = ["arm", "AUC all rows", "AUC target rows", "AUC other rows", "reference", "Rel.Impr (target)",
              "t-test p", "DeLong p", "DeLong p per seed"]
    table = []
    for r in rows:
        ref = by_name.get(r["arm"].reference)
        v = _versus(r, ref) if ref else None
        table.append([r["arm"].label or r["arm"].name, fmt_mean_std(*mean_std(r["all"]), n=n),
                      fmt_mean_std(*mean_std(r["target"]), n=n), fmt_mean_std(*mean_std(r["other"]), n=n),
                      r["arm"].reference or "—",
                      fmt_pct(v["rel"]) if v else "—", fmt_p(v["t_p"]) if v else "—",
                      fmt_p(v["delong"]["p_every_seed"]) if v else "—",
                      fmt_signed_ps(v["delong"]["auc_diff"], v["delong"]["p"]) if v else "—"])
    md += markdown_table(header, table)
    pre = [c for k, c in plan.cells.items() if k[2].startswith("pretrain:")]
    if pre:
        res = [RunDir(r.run_dir).read_results() for r in sorted({id(r): r for r in pre}.values(), key=lambda r: r.seed)]
        keys = ("valid_mlm_loss", "generalisation_gap", "value_token_acc_true", "value_token_acc_shuffled",
                "value_token_acc_none")
        md += ["\nPA-MLM runs (best epoch; value-token accuracy on validation rows with the sample's own, "
               "shuffled and no prompts):\n"]
        md += markdown_table(["pretraining", "epochs (best)", *keys],
                             [[f"seed {x['seed']}", f"{x['epochs_run']} ({x['best_epoch']})",
                               *[fmt_num(x.get(k)) for k in keys]] for x in res])
    budgets = {r["arm"].label or r["arm"].name: f"{np.mean([x['epochs_run'] for x in r['results']]):.1f} epochs, "
               f"{np.mean([x['steps'] for x in r['results']]):.0f} steps" for r in rows}
    md.append("\nTraining actually run (mean over seeds): " + "; ".join(f"{k}: {v}" for k, v in budgets.items()) + ".")
    return md


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/control")
    p.add_argument("--processed-dir", default="data/processed")
    p.add_argument("--run", action="append", required=True, metavar="EXPERIMENT:DATASET[:SEEDS]",
                   help="an experiment file's stem, the dataset, and optionally its seeds ('1 2 3')")
    args = p.parse_args(argv)
    md = ["# Positive control: where only the text can tell",
          "", f"Generated by `python {' '.join(['experiments/summarize_control.py', *sys.argv[1:]])}` "
          f"from the runs of `bash experiments/positive_control.sh` (Python {platform.python_version()}, "
          f"{platform.machine()}). Every number is read from the run directories."]
    for item in args.run:
        name, dataset, *seeds = item.split(":")
        md += section(name, dataset, Path(args.out), Path(args.processed_dir),
                      [int(s) for s in seeds[0].split()] if seeds else None)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
