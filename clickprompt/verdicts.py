"""The main job's summary in words a newcomer can repeat, written from the measured numbers (never typed):

    act_one(dataset_dir, runs, timings)   the positive control: AUC on new items beside the ceiling, DeLong
    act_two(summary, budgets)             ML-100K: each ClickPrompt variant against DCNv2, with its budget

A difference is called a win or a loss only when DeLong's test on the same test rows gives p < 0.05;
otherwise "no distinguishable difference". Budgets (samples trained on, share of an epoch) stand beside
every number, because on a CPU the with-PLM model sees a small fraction of what DCNv2 sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clickprompt.formatting import fmt_num, fmt_p, fmt_pct, markdown_table

SIGNIFICANCE = 0.05
OOV_FEW = 0.05  # a field whose test values are unseen in fewer than this share of rows: the ids know them


def compare_words(auc: float, base_auc: float, p: float | None) -> str:
    """'significantly above' / 'significantly below' / 'not distinguishable from' (DeLong, p < 0.05)."""
    if p is None or p != p or p >= SIGNIFICANCE:
        return "not distinguishable from"
    return "significantly above" if auc > base_auc else "significantly below"


def act_one(dataset_dir: str | Path, runs: dict[str, Path], timings: dict[str, float]) -> dict:
    """The positive control's table and verdict: each run's test AUC on all rows and on the target rows
    (new items: only the text can tell them apart), the ceiling, DeLong against the first run on the
    target rows."""
    from clickprompt.data.control import control_metrics, read_control
    from clickprompt.evaluation import delong_test
    from clickprompt.rundir import RunDir

    control, oracle = read_control(dataset_dir)
    test = control["splits"]["test"]
    target = oracle[oracle["split"] == "test"].sort_values("row")["target"].to_numpy()
    (base_name, base_dir), *_ = runs.items()
    labels, base_probs = RunDir(base_dir).read_predictions()
    rows = []
    for name, run_dir in runs.items():
        run = RunDir(run_dir)
        _, probs = run.read_predictions()
        m = control_metrics(dataset_dir, probs)
        res = run.read_results()
        p = None if name == base_name else delong_test(labels[target], probs[target], base_probs[target])[2]
        rows.append({"model": name, "auc": m["auc"]["all"], "auc_target": m["auc"]["target"],
                     "auc_other": m["auc"]["non_target"], "delong_p_target": p, "steps": res["steps"],
                     "epochs": res["epochs_run"], "wall_s": timings.get(name)})
    ceiling = test["ceiling_auc"]
    header = ["model", "AUC new items", "AUC other items", "AUC all rows", "DeLong p (new items)", "epochs", "steps",
              "wall s"]
    body = [[r["model"], fmt_num(r["auc_target"]), fmt_num(r["auc_other"]), fmt_num(r["auc"]), fmt_p(r["delong_p_target"]),
             r["epochs"], r["steps"], r["wall_s"]] for r in rows]
    body.append(["ceiling (the true click probabilities)", fmt_num(ceiling["target"]), fmt_num(ceiling["non_target"]),
                 fmt_num(ceiling["all"]), "", "", "", ""])
    table = markdown_table(header, body)
    best = max(rows[1:], key=lambda r: r["auc_target"]) if len(rows) > 1 else rows[0]
    base = rows[0]
    words = compare_words(best["auc_target"], base["auc_target"], best["delong_p_target"])
    gap = ceiling["target"] - best["auc_target"]
    if words == "significantly above" and gap < 0.05:
        outcome = ("Where the text carries the answer, the prompts, the PLM and the training loop deliver it: the "
                   "pipeline works.")
    elif words == "significantly above":
        outcome = (f"The text side wins, but {gap:.3f} short of the ceiling: the budget (or the model) leaves signal "
                   "on the table.")
    else:
        outcome = ("The model that reads the text does NOT beat the one that cannot, where it must: look at the budget, "
                   "the PLM (a random or tiny one cannot know what words mean) and the code before trusting act 2.")
    verdict = (
        f"Act 1, the positive control ({test['rows']:,} test rows, {100 * test['target_share']:.0f}% of them new items "
        f"whose id and title the CTR model has never seen): the click depends on whether the title's words belong "
        f"to the user's stated interest, which only the text carries. On the new items {best['model']} reaches AUC "
        f"{best['auc_target']:.3f} against a ceiling of {ceiling['target']:.3f}; {base['model']} reaches "
        f"{base['auc_target']:.3f} (0.5 is chance): {words} it (DeLong p = {fmt_p(best['delong_p_target'])}). {outcome}")
    return {"rows": rows, "ceiling": ceiling, "table": "\n".join(table), "verdict": verdict,
            "dataset": control["dataset"], "options": control["options"]}


def act_two(summary: dict, budgets: dict[str, dict], test_oov: dict[str, float] | None = None) -> str:
    """Verdict of the ML-100K act from `formatting.quick_table`'s rows and each run's budget
    ({model: {"samples": trained samples, "epoch_rows": training rows}}); `test_oov` (the prepared data's
    stats.json oov_rate.test: per field, the share of test rows whose value has no embedding of its own)
    says where unseen values are, which is where text could help the ids."""
    rows = summary["rows"]
    base = rows[0]
    lines = [f"Act 2, ML-100K (86% of test rows from users unseen in training): {base['model']} reaches test AUC "
             f"{base['test_auc']:.4f} after {_budget(budgets.get(base['model']))}."]
    for r in rows[1:]:
        words = compare_words(r["test_auc"], base["test_auc"], r["delong_p"])
        lines.append(f"{r['model']}: {r['test_auc']:.4f} ({fmt_pct(r['rel_impr'])}, DeLong p = {fmt_p(r['delong_p'])}), "
                     f"{words} {base['model']}, after {_budget(budgets.get(r['model']))}.")
    pre = summary.get("pretrain") or {}
    if pre:
        t, s, n = (pre.get(f"value_token_acc_{m}") for m in ("true", "shuffled", "none"))
        reads = t is not None and s is not None and t - max(s, n or 0) > 0.01
        lines.append(f"PA-MLM: value-token accuracy {fmt_num(t, 3)} with the sample's own prompts, {fmt_num(s, 3)} "
                     f"shuffled, {fmt_num(n, 3)} none: the PLM " + ("reads the prompts." if reads else
                                                                  "does not read the prompts yet at this budget."))
    text_wins = any(compare_words(r["test_auc"], base["test_auc"], r["delong_p"]) == "significantly above"
                    for r in rows[1:] if "with PLM" in r["model"])
    if test_oov and not text_wins:
        known = {f: v for f, v in test_oov.items() if v < OOV_FEW}
        new = {f: v for f, v in sorted(test_oov.items(), key=lambda kv: -kv[1]) if v >= OOV_FEW}
        top = max(known, key=known.get) if known else None
        lines.append(
            "Where the text could add to the ids, on unseen values, this data gives it little to do: on the test split "
            + (f"{', '.join(known)} have their own embedding for at least {100 * (1 - OOV_FEW):.0f}% of rows (most unseen: "
               f"{top} {100 * known[top]:.1f}%), so the text repeats what the ids say" if known else "")
            + (f"; the unseen values are {', '.join(f'{f} ({100 * v:.0f}% of rows)' for f, v in new.items())}" if new else "")
            + ". In act 1 most test items are new and only their titles tell what they are.")
    lines.append("One seed on a CPU budget: the README's multi-seed tables and experiments/results/ hold the evidence "
                 "for each claim, and the paper-budget study (experiments/paper_budget.sh) the GPU-scale runs.")
    return "\n".join(lines)


def _budget(b: dict | None) -> str:
    if not b:
        return "its budget"
    share = b["samples"] / max(b["epoch_rows"], 1)
    return f"{b['samples']:,} training samples ({share:.2f} epochs)" if share >= 1 else \
        f"{b['samples']:,} training samples ({100 * share:.0f}% of one epoch)"


def budget_of(results: dict, batch_size: int, epoch_rows: int) -> dict:
    """Samples a run trained on: its optimizer steps times its batch size (the last batch of an epoch may
    be smaller, so this is an upper bound within one batch per epoch)."""
    return {"samples": int(min(results["steps"] * batch_size, np.ceil(results["epochs_run"] * epoch_rows))),
            "epoch_rows": epoch_rows}
