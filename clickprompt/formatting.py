"""How numbers people compare are written, in one place: the report, experiment summaries, the quick
summary and the dashboard all format AUC, Rel.Impr, p-values and "mean ± sd" with these helpers.

    fmt_num(0.78251)           '0.7825'        (None / NaN -> '—')
    fmt_pct(0.0074)            '+0.74%'        (a relative improvement, as the paper's Rel.Impr)
    fmt_p(0.00012)             '0.00012'       (two significant digits)
    fmt_mean_std(0.78, 0.002, n=3)  '0.7800 ± 0.0020'   (one seed: no spread)
"""

from __future__ import annotations

import math
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


def fmt_signed_ps(diffs, ps) -> str:
    """Per-seed p-values, each signed by the direction of that seed's difference: '+3e-08, -0.79'."""
    if not ps:
        return DASH
    return ", ".join(f"{'+' if d > 0 else '-' if d < 0 else ''}{p:.2g}" for d, p in zip(diffs, ps))


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(c) for c in r) + " |" for r in rows]


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
