"""The experiment runner (clickprompt.experiments, `clickprompt experiment`): every paper config plans,
identical runs are shared, an experiment runs end to end on the tiny dataset, finished runs are reused,
and the summary's statistics are those of clickprompt.evaluation on the saved predictions."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clickprompt.cli import _add_run_args
from clickprompt.cli_experiments import register
from clickprompt.data.prepare import prepare
from clickprompt.evaluation import delong_test, paired_ttest
from clickprompt.experiments import ExperimentError, load_experiment, plan_experiment, run_experiment, summarize
from clickprompt.plm.tiny import make_tiny_plm
from test_clickprompt_pipeline import TinySource

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_is_one_config_per_paper_experiment():
    names = {p.stem for p in CONFIGS}
    assert {"table2_overall", "table3_compat", "table4_prompt_strategy", "table5_fusion_ablation",
            "c3_generalization", "hparam_sweep"} <= names


NOT_IN_THE_PAPER = {  # the studies of why results transfer or not: (seeds at least, runs planned for n seeds)
    "positive_control": (5, lambda n: {"train-ctr": n, "finetune-with-plm": n}),
    "pa_mlm_transfer": (5, lambda n: {"pretrain": 1, "train-ctr": n, "finetune-without-plm": 2 * n}),
    # one shared pretraining per sweep point (4), the baselines shared by every point
    "transfer_variants": (5, lambda n: {"pretrain": 2, "train-ctr": 2 * n, "finetune-without-plm": 2 * 2 * n}),
    "paper_budget": (10, lambda n: {"pretrain": 2, "train-ctr": n, "finetune-without-plm": 2 * n}),
    "paper_budget_with_plm": (2, lambda n: {"pretrain": 1, "train-ctr": n, "finetune-with-plm": n}),
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_plans(path, tmp_path):
    exp = load_experiment(path)
    plan = plan_experiment(exp, "ml-1m", out=tmp_path)
    stages = Counter(r.stage for r in plan.runs)
    n = len(plan.seeds)
    if path.stem in NOT_IN_THE_PAPER:  # budgets of their own on top of the quick profile
        least, planned = NOT_IN_THE_PAPER[path.stem]
        assert plan.profile == "quick" and n >= least
        assert stages == planned(n)
        return
    assert plan.profile == "paper" and len(plan.seeds) >= 1
    if path.stem == "table3_compat":  # N/A does not depend on the PLM: 3 CTR models, not 9
        assert stages == {"train-ctr": 3 * n, "pretrain": 9 * n, "finetune-without-plm": 9 * n, "finetune-with-plm": 9 * n}
    if path.stem == "table5_fusion_ablation":
        assert stages == {"pretrain": 3 * n, "finetune-with-plm": 12 * n}
    if path.stem == "hparam_sweep":  # pretraining depends on (K, warmup) only; the baseline on nothing swept
        assert stages == {"pretrain": 12 * n, "train-ctr": n, "finetune-with-plm": 36 * n}
    if path.stem == "c3_generalization":
        plms = {r.cfg.plm.name for r in plan.runs if r.stage == "pretrain"}
        assert plms == {"gpt2", "bart-base"}
    for r in plan.runs:  # the paper's settings (Sec 4.1.4)
        if r.stage == "pretrain":
            assert (r.cfg.train.batch_size, r.cfg.train.lr, r.cfg.train.epochs) == (1024, 5e-5, 20)
        if r.stage == "finetune-with-plm":
            assert r.cfg.train.lr == 1e-3 and r.cfg.train.batch_size == 256


def test_runs_are_shared_across_experiments(tmp_path):
    """Tables 2 and 5 share the DCNv2 + PLM pretraining and the ClickPrompt-with-PLM run."""
    p2 = plan_experiment(load_experiment(CONFIGS[0].parent / "table2_overall.yaml"), "ml-1m", out=tmp_path)
    p5 = plan_experiment(load_experiment(CONFIGS[0].parent / "table5_fusion_ablation.yaml"), "ml-1m", out=tmp_path)
    pre2 = {r.run_dir for r in p2.runs if r.stage == "pretrain"}
    pre5 = {r.run_dir for r in p5.runs if r.stage == "pretrain"}
    assert pre2 < pre5
    assert p2.cells[(0, 0, "clickprompt-with-plm", 42)].run_dir == p5.cells[(0, 0, "clickprompt", 42)].run_dir


def test_dataset_settings_and_overrides(tmp_path):
    exp = load_experiment(CONFIGS[0].parent / "table2_overall.yaml")
    plan = plan_experiment(exp, "amazon-toys", out=tmp_path, seeds=[1], overrides=["train.max_steps=3"])
    for r in plan.runs:
        assert r.cfg.ctr.embed_dim == 16 and r.cfg.train.max_steps == 3 and r.cfg.train.seed == 1
        if r.stage != "pretrain":
            assert r.cfg.train.batch_size == 1024


def test_a_set_of_a_matrix_key_narrows_the_matrix(tmp_path):
    """`--set ctr.model=dnn` runs Table 3's DNN row groups only, labelled as DNN, with a summary of its own."""
    exp = load_experiment(CONFIGS[0].parent / "table3_compat.yaml")
    full = plan_experiment(exp, "ml-1m", out=tmp_path, seeds=[1])
    plan = plan_experiment(exp, "ml-1m", out=tmp_path, seeds=[1], overrides=["ctr.model=dnn", "plm.name=tinybert"])
    assert len(full.instances) == 9
    assert plan.instances == [{"ctr.model": "dnn", "plm.name": "tinybert"}]
    assert {r.cfg.ctr.model for r in plan.runs} == {"dnn"} and len(plan.runs) == 4
    assert plan.summary_dir != full.summary_dir and plan.summary_dir.name.startswith(full.summary_dir.name)
    assert {r.run_dir for r in plan.runs} <= {r.run_dir for r in full.runs}  # the same runs, shared
    other = plan_experiment(exp, "ml-1m", out=tmp_path, seeds=[1], overrides=["ctr.model=autoint"])
    assert len(other.instances) == 3 and other.summary_dir != plan.summary_dir


def test_bad_files_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text, msg in [
        ("arms: {a: {stage: train-ctr}}\nbogus: 1\n", "unknown keys"),
        ("arms: {a: {stage: pretrain}}\n", "stage"),
        ("arms: {a: {stage: finetune-with-plm, pretrained: nope}}\n", "not in pretrain"),
        ("arms: {a: {stage: train-ctr, set: {ctr.nope: 1}}}\n", "unknown key"),
        ("arms: {a: {stage: train-ctr, reference: b}}\n", "not an arm"),
        ("settings: {warmup/train.lr: 1}\narms: {a: {stage: train-ctr}}\n", "unknown stage"),
    ]:
        bad.write_text(text)
        with pytest.raises(ExperimentError, match=msg):
            load_experiment(bad)


SMALL = """
experiment: small
paper: a tiny end-to-end experiment
profile: tiny
seeds: [1, 2]
pretrain:
  pa-mlm: {}
arms:
  ctr: {stage: train-ctr, label: DCNv2}
  wo-plm: {stage: finetune-without-plm, pretrained: pa-mlm, reference: ctr}
  with-plm: {stage: finetune-with-plm, pretrained: pa-mlm, reference: ctr}
contrasts: [{arm: with-plm, against: [wo-plm]}]
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    prepare("tiny", root / "processed", root / "processed" / "tiny", source=TinySource())
    make_tiny_plm(root / "bert", "bert")
    (root / "small.yaml").write_text(SMALL)
    return root


def _cli(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd"), _add_run_args)
    args = parser.parse_args(argv)
    return args.func(args)


def test_small_experiment_end_to_end_and_reuse(tiny, capsys):
    out = tiny / "runs"
    argv = ["experiment", str(tiny / "small.yaml"), "--dataset", "tiny", "--processed-dir", str(tiny / "processed"),
            "--set", f"plm.name={tiny / 'bert'}", "--out", str(out), "--quiet"]
    assert _cli(argv) == 0
    summary = json.loads((out / "tiny" / "small" / "summary.json").read_text())
    md = (out / "tiny" / "small" / "summary.md").read_text()
    assert "| DCNv2 | train-ctr |" in md and "with-plm vs wo-plm" in md and "pa-mlm" in md
    rows = {r["arm"]: r for r in summary["sections"][0]["groups"][0]["rows"]}
    assert set(rows) == {"ctr", "wo-plm", "with-plm"}
    # 2 pretrainings, 2 baselines, 2 + 2 finetunings: 8 run directories
    dirs = {d for r in rows.values() for d in r["runs"]} | set(summary["sections"][0]["groups"][0]["pretraining"][0]["runs"])
    assert len(dirs) == 8 and all((Path(d) / "results.json").exists() for d in dirs)
    # the statistics are those of clickprompt.evaluation on the runs' saved predictions
    w, c = rows["with-plm"], rows["ctr"]
    assert w["ttest_p"] == pytest.approx(paired_ttest(w["test_auc"], c["test_auc"]), nan_ok=True)
    assert w["rel_impr"] == pytest.approx((np.mean(w["test_auc"]) - np.mean(c["test_auc"])) / np.mean(c["test_auc"]))
    ps, diffs = [], []
    for a, b in zip(w["runs"], c["runs"]):
        pa, pb = (pd.read_parquet(Path(d) / "predictions_test.parquet") for d in (a, b))
        auc_a, auc_b, p = delong_test(pa["label"], pa["prob"], pb["prob"])
        ps.append(p)
        diffs.append(auc_a - auc_b)
    assert w["delong_p_per_seed"] == pytest.approx(ps)
    same_sign = all(np.sign(d) == np.sign(np.mean(diffs)) != 0 for d in diffs)
    assert w["delong_p_every_seed"] == pytest.approx(max(ps) if same_sign else 1.0)
    # a second call reuses every finished run
    stamps = {d: (Path(d) / "results.json").stat().st_mtime_ns for d in dirs}
    capsys.readouterr()
    assert _cli(argv) == 0
    assert "8 runs (8 finished)" in capsys.readouterr().out
    assert stamps == {d: (Path(d) / "results.json").stat().st_mtime_ns for d in dirs}
    # a one-value matrix plans the same runs; its row group is headed one level below the title
    (tiny / "matrix.yaml").write_text(SMALL + "matrix: {ctr.model: [dcnv2]}\n")
    plan = plan_experiment(load_experiment(tiny / "matrix.yaml"), "tiny", out=out,
                           overrides=[f"plm.name={tiny / 'bert'}"], processed_dir=tiny / "processed")
    assert all(r.done for r in plan.runs) and {str(r.run_dir) for r in plan.runs} <= dirs
    assert "\n## ctr.model=dcnv2\n" in summarize(plan)["markdown"]


def test_sweep_points_share_runs_and_select_on_validation(tiny):
    """A sweep over the finetuning PLM lr: the pretraining and the baseline are shared by both points."""
    text = SMALL.replace("seeds: [1, 2]", "seeds: [1]") + "sweep: {finetune-with-plm/train.plm_lr: [0.001, 0.0]}\n"
    (tiny / "sweep.yaml").write_text(text)
    exp = load_experiment(tiny / "sweep.yaml")
    plan = plan_experiment(exp, "tiny", out=tiny / "runs", overrides=[f"plm.name={tiny / 'bert'}"],
                           processed_dir=tiny / "processed")
    assert Counter(r.stage for r in plan.runs) == {"pretrain": 1, "train-ctr": 1, "finetune-without-plm": 1,
                                                   "finetune-with-plm": 2}
    assert plan.cells[(0, 0, "ctr", 1)] is plan.cells[(1, 0, "ctr", 1)]
    # seed 1 of the small experiment already ran the plm_lr = 0.001 point (the tiny profile's value)
    assert plan.cells[(0, 0, "with-plm", 1)].done and not plan.cells[(1, 0, "with-plm", 1)].done
    summary = run_experiment(exp, "tiny", out=tiny / "runs", overrides=[f"plm.name={tiny / 'bert'}"],
                             processed_dir=tiny / "processed", progress=False, log=lambda *a, **k: None)
    assert len(summary["selection"]) == 3  # one best point per arm
    # Markdown headings nest: each is at most one level below the one before it
    levels = [len(line) - len(line.lstrip("#")) for line in summary["markdown"].splitlines() if line.startswith("#")]
    assert levels[0] == 1 and all(b <= a + 1 for a, b in zip(levels, levels[1:])), levels


def test_a_later_setting_at_its_default_keeps_old_run_addresses():
    """train.group_by_length came after runs existed: False (default) must not move their directories."""
    from clickprompt.config import RunConfig
    from clickprompt.experiments import _hash, _identity

    cfg = RunConfig()
    legacy = cfg.to_dict()
    legacy["train"].pop("group_by_length")
    old = _identity("pretrain", RunConfig.from_dict(legacy), None)
    assert "group_by_length" not in old["settings"]["train"]
    assert _hash(_identity("pretrain", cfg, None)) == _hash(old)
    cfg.train.group_by_length = True
    assert _hash(_identity("pretrain", cfg, None)) != _hash(old)
