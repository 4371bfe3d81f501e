"""How numbers people compare are written, in one place: the report, experiment summaries, the quick
summary and the dashboard all format AUC, Rel.Impr, p-values and "mean ± sd" with these helpers.

    fmt_num(0.78251)           '0.7825'        (None / NaN -> '—')
    fmt_pct(0.0074)            '+0.74%'        (a relative improvement, as the paper's Rel.Impr)
    fmt_p(0.00012)             '0.00012'       (two significant digits)
    fmt_mean_std(0.78, 0.002, n=3)  '0.7800 ± 0.0020'   (one seed: no spread)
    fmt_paper_pct(0.74)        '0.74%'         (the paper's Rel.Impr columns are already percentages)
    fmt_duration(146.2)        '2:26'
    metric_label("valid_mlm_loss")  'validation MLM loss (cross-entropy, nats)'   (axis titles, log lines)
    column_formatter("DeLong p")    fmt_p        (the dashboard's table cells, by column name)
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

DASH = "—"


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_num(x, digits: int = 4) -> str:
    return DASH if missing(x) else f"{x:.{digits}f}"


def fmt_pct(x, digits: int = 2) -> str:
    """A fraction as a signed percentage (Rel.Impr 0.0074 -> '+0.74%')."""
    return DASH if missing(x) else f"{100 * x:+.{digits}f}%"


def fmt_p(p) -> str:
    return DASH if missing(p) else f"{p:.2g}"


def fmt_mean_std(mean, std, n: int, digits: int = 4, mark: str = "") -> str:
    """'mean ± std' over n seeds (sample std); one seed has no spread to show."""
    if missing(mean):
        return DASH
    return f"{mean:.{digits}f}{mark}" + (f" ± {std:.{digits}f}" if n > 1 and not missing(std) else "")


def fmt_paper_pct(x) -> str:
    """A number that is already a percentage (the paper's Rel.Impr columns): 0.74 -> '0.74%'."""
    return DASH if missing(x) else f"{x:.2f}%"


def fmt_int(x) -> str:
    return DASH if missing(x) else f"{int(x):,}"


def fmt_duration(seconds) -> str:
    """Seconds as m:ss or h:mm:ss (progress lines, banners)."""
    if missing(seconds) or seconds < 0 or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def fmt_signed_ps(diffs, ps) -> str:
    """Per-seed p-values, each signed by the direction of that seed's difference: '+3e-08, -0.79'."""
    if not ps:
        return DASH
    return ", ".join(f"{'+' if d > 0 else '-' if d < 0 else ''}{p:.2g}" for d, p in zip(diffs, ps))


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(c) for c in r) + " |" for r in rows]


# ---------------------------------------------------------------- metric names (curves, progress lines)

# metrics.jsonl keys -> what an axis or a log line calls them, with the unit. Losses are mean cross-entropies
# in nats (BCE for clicks, softmax cross-entropy over the vocabulary for the language-model objectives).
METRIC_LABELS = {
    "train_loss": "training loss (BCE, nats)",
    "train_mlm_loss": "training MLM loss (cross-entropy, nats)",
    "train_clm_loss": "training CLM loss (cross-entropy, nats)",
    "valid_auc": "validation AUC",
    "valid_logloss": "validation log loss (BCE, nats)",
    "valid_mlm_loss": "validation MLM loss (cross-entropy, nats)",
    "valid_clm_loss": "validation CLM loss (cross-entropy, nats)",
    "train_eval_mlm_loss": "training-subset MLM loss (eval mode, nats)",
    "train_eval_clm_loss": "training-subset CLM loss (eval mode, nats)",
    "generalisation_gap": "generalisation gap (validation - training-subset LM loss, nats)",
    "value_token_acc_true": "masked value-token accuracy, own prompts (fraction)",
    "value_token_acc_shuffled": "masked value-token accuracy, shuffled prompts (fraction)",
    "value_token_acc_none": "masked value-token accuracy, no prompts (fraction)",
    "lr": "learning rate (first parameter group)",
    "elapsed_s": "training time (s)",
}
# the short form of a progress line
METRIC_SHORT = {"train_loss": "train loss", "valid_auc": "valid AUC", "valid_logloss": "valid log loss",
                "valid_mlm_loss": "valid MLM loss", "valid_clm_loss": "valid CLM loss",
                "train_eval_mlm_loss": "train-subset MLM loss", "train_eval_clm_loss": "train-subset CLM loss",
                "generalisation_gap": "gap", "value_token_acc_true": "value acc own",
                "value_token_acc_shuffled": "shuffled", "value_token_acc_none": "none"}


def metric_label(key: str) -> str:
    """Axis title of a metrics.jsonl key, with its unit (unknown keys: the key, spaced)."""
    return METRIC_LABELS.get(key, key.replace("_", " "))


def metric_short(key: str) -> str:
    return METRIC_SHORT.get(key, key.replace("_", " "))


def column_formatter(name: str):
    """The cell formatter of a results-table column, by its name: Rel.Impr as a signed percentage,
    p-values with two significant digits, AUC / log loss / alpha / logits with 4 decimals, counts with
    thousands separators; missing values as a dash everywhere."""
    n = str(name)
    if n.endswith("Rel.Impr") or n == "auc_impr":
        return _numbers_only(fmt_pct)
    if n in ("p", "delong_p", "ttest_p") or n.endswith(("DeLong p", "t-test p", "p-value")):  # not "<model> p"
        return _numbers_only(fmt_p)
    if n == "delta":  # captum's convergence delta: ~1e-7, not 4 decimals
        return _numbers_only(lambda x: f"{x:.2g}")
    if n == "attribution":  # one token's IG attribution: ~1e-4 of a logit
        return _numbers_only(lambda x: f"{x:.3g}")
    if n in ("seed", "seeds", "epochs", "steps", "n", "runs", "rows", "best epoch", "batch_size"):
        return _numbers_only(fmt_int)
    if n.endswith("samples/s") or n.startswith("ms") or n.endswith("(ms)") or n.endswith(" s"):
        return _numbers_only(lambda x: f"{x:,.1f}")
    return fmt_cell


def _numbers_only(fmt):
    """`fmt` for real numbers; anything else (a list of seeds as text, a dash) as fmt_cell writes it."""
    def cell(x):
        if missing(x) or isinstance(x, bool) or not isinstance(x, numbers.Real) or str(x) in ("nan", "<NA>"):
            return fmt_cell(x)
        return fmt(x)

    return cell


def fmt_cell(x) -> str:
    """Any table cell: reals with 4 decimals, integers as they are, missing values (None, NaN, pandas' NA)
    as a dash, never 'None' or 'nan'."""
    if isinstance(x, bool) or type(x).__name__ == "bool_":
        return str(bool(x))
    if x is None or str(x) in ("nan", "<NA>", "NaT", "None"):
        return DASH
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if isinstance(x, numbers.Real):
        return fmt_num(float(x))
    return str(x)


# ---------------------------------------------------------------- the quick pipeline's summary


def quick_table(out: Path, results: dict, timings: dict, *, dataset: str, profile: str, ctr_name: str,
                pretrain_cfg) -> dict:
    """The comparison `clickprompt quick` prints: the CTR model from scratch, ClickPrompt w/o PLM and with
    PLM on the test split, Rel.Impr and DeLong's p against the first, with the budget each had."""
    from clickprompt.evaluation import delong_test, rel_impr
    from clickprompt.rundir import RunDir

    labels, base_probs = RunDir(out / "ctr").read_predictions()
    rows = []
    for name, label in (("ctr", f"{ctr_name} (from scratch)"), ("without-plm", "ClickPrompt w/o PLM"),
                        ("with-plm", "ClickPrompt with PLM")):
        r = results[name]
        if r.get("init_ctr"):  # not the paper's recipe: say so where the number is
            label += f" (CTR part from {Path(r['init_ctr']).name})"
        _, probs = RunDir(out / ("ctr" if name == "ctr" else f"finetune-{name}")).read_predictions()
        rows.append({
            "model": label, "test_auc": r["test"]["auc"], "test_logloss": r["test"]["logloss"],
            "rel_impr": None if name == "ctr" else rel_impr(r["test"]["auc"], results["ctr"]["test"]["auc"]),
            "delong_p": None if name == "ctr" else delong_test(labels, probs, base_probs)[2],
            "epochs": r["epochs_run"], "steps": r["steps"], "wall_s": timings[name],
        })
    pre = results["pretrain"]
    lines = [
        f"Dataset {dataset}, profile {profile!r}, PLM {pretrain_cfg.plm.name}, seed {pretrain_cfg.train.seed}.",
        f"PA-MLM: {pre['steps']} steps ({pre['train_samples_per_epoch']:,} samples/epoch), {timings['pretrain']} s; "
        f"masked value-token accuracy true {pre['value_token_acc_true']:.3f} / shuffled "
        f"{pre['value_token_acc_shuffled']:.3f} / none {pre['value_token_acc_none']:.3f}.",
        "",
        *markdown_table(["model", "test AUC", "test log loss", "Rel.Impr vs baseline", "DeLong p", "epochs", "steps",
                         "wall s"],
                        [[r["model"], fmt_num(r["test_auc"]), fmt_num(r["test_logloss"]), fmt_pct(r["rel_impr"]),
                          fmt_p(r["delong_p"]), r["epochs"], r["steps"], r["wall_s"]] for r in rows]),
        f"\nTotal wall time {sum(timings.values()):.0f} s. One seed: differences below ~0.004 AUC are within "
        "seed-to-seed noise on ML-100K; see the README for the multi-seed results.",
    ]
    table = "\n".join(lines)
    return {"rows": rows, "pretrain": pre, "timings_s": timings, "table": table}
