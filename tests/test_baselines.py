"""The PLM-based baselines of Table 2 (clickprompt.baselines): CTR-BERT, PTab, P5, CTRL.

On tiny data with tiny random PLMs built offline (a 2-layer BERT with MiniLM's WordPiece tokenizer, a
2+2-layer T5 with a word-level tokenizer): one optimisation step of each model, whose outputs are click
probabilities in (0, 1) and whose gradients reach exactly the parameters the method trains; CTRL's
InfoNCE is lowest for aligned pairs; P5's yes/no normalisation checked by hand; every stage end to end
through the run directory (reuse, reload, verify), a killed CTR-BERT run resuming to the same weights,
the settings route, the registry, the CLI, the experiment runner (P5 "not run" without a T5), the
report's Table 2 rows and the latency table.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from clickprompt.baselines import (
    get_method, list_methods, register_method, run_stage, stage_config, user_item_fields,
)
from clickprompt.baselines.common import encoder_from_config, load_encoder
from clickprompt.baselines.ctr_bert import CTRBertForCTR, TwoTowerText
from clickprompt.baselines.ctrl import CTRLForPretraining, info_nce
from clickprompt.baselines.p5 import P5ForCTR, answer_ids, make_tiny_t5, prompt_ids, two_word_logit
from clickprompt.baselines.ptab import PTabForCTR, PTabForPretraining
from clickprompt.batching import ctr_batcher, pretraining_batcher, text_batcher
from clickprompt.config import ConfigError, CTRConfig
from clickprompt.ctr import create_ctr
from clickprompt.data.dataset import PreparedDataset
from clickprompt.data.schema import Field, FeatureSpec
from clickprompt.data.text import TokenCache
from clickprompt.model import CTRClassifier
from clickprompt.plm.tiny import make_tiny_plm
from clickprompt.rundir import ModelKind, RunDir, Stage, identity
from clickprompt.training import make_optimizer

from analysis_helpers import prepare_tiny

STEP = ["train.epochs=1", "train.batch_size=32", "train.grad_accum=1", "train.max_steps=3", "train.lr=0.003",
        "train.plm_lr=0.003", "train.save_every=0"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    data = prepare_tiny(root / "data")
    ds = PreparedDataset(data / "tiny")
    texts = ds.texts("train") + ds.texts("valid") + ds.texts("test")
    return {"root": root, "data": data, "ds": ds, "bert": make_tiny_plm(root / "bert", "bert"),
            "t5": make_tiny_t5(root / "t5", texts)}


def _cfg(tiny, stage, plm=None, extra=()):
    cfg = stage_config("tiny", stage, overrides=[*STEP, *extra])
    cfg.data.dataset, cfg.data.processed_dir = "tiny", str(tiny["data"])
    cfg.plm.name = str(plm or (tiny["t5"] if stage == Stage.P5 else tiny["bert"]))
    return cfg


def _batch(make_batch, n=16):
    return make_batch(np.arange(n))


def _step(model, batch, trained, frozen=()):
    """One optimisation step: the outputs are probabilities in (0, 1); exactly `trained` get gradients."""
    model.train()
    out = model(**batch)
    probs = torch.sigmoid(out["logits"].detach()) if "logits" in out else None
    if probs is not None:
        assert probs.shape == (len(batch["labels"] if "labels" in batch else batch["ids"]),)
        assert bool(((probs > 0) & (probs < 1)).all())
    assert torch.isfinite(out["loss"])
    for p in frozen:
        p.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(**batch)
    out["loss"].backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None and float(p.grad.abs().sum()) > 0}
    assert got == set(trained), (sorted(set(trained) - got)[:5], sorted(got - set(trained))[:5])
    opt.step()
    moved = {n for n, p in model.named_parameters() if n in before and not torch.equal(before[n], p.detach())}
    assert moved == set(trained)
    return probs


# ---------------------------------------------------------------- one optimisation step of each model


def test_ctr_bert_step(tiny):
    ds = tiny["ds"]
    plm, tok, _ = load_encoder(str(tiny["bert"]))
    model = CTRBertForCTR(plm)
    u, i = user_item_fields(ds.spec)
    assert [ds.spec.names[j] for j in u] == ["user_id", "occupation"]
    assert [ds.spec.names[j] for j in i] == ["item_id", "title", "genre"]
    batch = _batch(TwoTowerText(tok, ds, 64, u, i).batcher(ds.split("train")))
    assert tok.decode(batch["user_input_ids"][0], skip_special_tokens=True).startswith("user id is")
    assert "movie id is" in tok.decode(batch["item_input_ids"][0], skip_special_tokens=True)
    assert "movie" not in tok.decode(batch["user_input_ids"][0])
    _step(model, batch, [n for n, _ in model.named_parameters()])  # the encoder (both towers) and the fusion MLP


def test_ptab_steps_pretraining_is_pa_mlm_without_prompts(tiny):
    from clickprompt.model import ClickPromptForPretraining

    ds = tiny["ds"]
    plm, tok, _ = load_encoder(str(tiny["bert"]), mlm_head=True)
    model = PTabForPretraining(plm)
    assert isinstance(model, ClickPromptForPretraining) and model.core.ctr is None and model.core.generator is None
    cache = TokenCache.for_dataset(tok, ds, 64)
    batch = _batch(pretraining_batcher(ds.split("train"), cache, tok, "mlm", seed=0))  # PA-MLM's masking
    assert (batch["mlm_labels"] != -100).any()
    _step(model, batch, [n for n, _ in model.named_parameters()])  # the PLM and its MLM head

    clf = PTabForCTR(encoder_from_config(plm.config.to_dict()))
    clf.plm.model.load_state_dict(model.core.plm.encoder.state_dict())  # what ptab-finetune does
    _step(clf, _batch(text_batcher(ds.split("train"), cache)), [n for n, _ in clf.named_parameters()])


def test_p5_step(tiny):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    ds = tiny["ds"]
    tok = AutoTokenizer.from_pretrained(tiny["t5"])
    yes, no = answer_ids(tok)
    model = P5ForCTR(AutoModelForSeq2SeqLM.from_pretrained(tiny["t5"]), prompt_ids(tok), yes, no)
    batch = _batch(text_batcher(ds.split("train"), TokenCache.for_dataset(tok, ds, 64)))
    _step(model, batch, [n for n, _ in model.named_parameters()])  # the whole T5


@pytest.mark.parametrize("plm_lr", [0.003, 0.0])
def test_ctrl_steps(tiny, plm_lr):
    ds = tiny["ds"]
    plm, tok, _ = load_encoder(str(tiny["bert"]))
    ctr = create_ctr("autoint", ds.spec, CTRConfig(model="autoint", embed_dim=8, attn_dim=8, attn_layers=2))
    model = CTRLForPretraining(ctr, plm)
    batch = _batch(text_batcher(ds.split("train"), TokenCache.for_dataset(tok, ds, 64)))
    names = [n for n, _ in model.named_parameters()]
    trained = [n for n in names if not n.startswith("ctr.head.") and (plm_lr or not n.startswith("plm."))]
    _step(model, batch, trained, frozen=[] if plm_lr else list(model.plm.parameters()))  # no head, PLM as asked

    finetuned = CTRClassifier(create_ctr("autoint", ds.spec, ctr.cfg))  # ctrl-finetune: the CTR model alone
    _step(finetuned, _batch(ctr_batcher(ds.split("train"))), [n for n, _ in finetuned.named_parameters()])


def test_ctrl_infonce_is_lowest_for_aligned_pairs():
    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    scale = torch.tensor(math.log(1 / 0.07))
    aligned, sim = info_nce(z, z, scale)
    assert sim.shape == (8, 8) and torch.allclose(sim.diagonal(), torch.full((8,), 1 / 0.07), atol=1e-4)
    for perm in (torch.roll(torch.arange(8), 1), torch.randperm(8), torch.arange(7, -1, -1)):
        assert float(info_nce(z, z[perm], scale)[0]) > float(aligned)
    noisy = torch.nn.functional.normalize(z + 0.5 * torch.randn(8, 16), dim=-1)
    assert float(info_nce(z, noisy, scale)[0]) > float(aligned)
    # symmetric in its two sides; orthonormal aligned pairs at a large scale: loss -> 0
    a, b = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1), z
    assert float(info_nce(a, b, scale)[0]) == pytest.approx(float(info_nce(b, a, scale)[0]), rel=1e-6)
    eye = torch.eye(8)
    assert float(info_nce(eye, eye, torch.tensor(math.log(100.0)))[0]) < 1e-6
    # gradient descent on the CTR side from random vectors lines them up with the text side
    w = torch.randn(8, 16, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.5)
    start = float(info_nce(torch.nn.functional.normalize(w.detach(), dim=-1), z, scale)[0])
    for _ in range(200):
        opt.zero_grad()
        loss, sim = info_nce(torch.nn.functional.normalize(w, dim=-1), z, scale)
        loss.backward()
        opt.step()
    assert bool((sim.argmax(dim=1) == torch.arange(8)).all()) and float(loss.detach()) < start / 100


def test_p5_two_word_normalisation_by_hand(tiny):
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])  # V = 5; "yes" = 3, "no" = 1
    by_hand = math.exp(3) / (math.exp(3) + math.exp(1))  # P(yes) / (P(yes) + P(no)) = 1 / (1 + e^-2)
    assert by_hand == pytest.approx(0.8807970779778823, abs=1e-12)
    assert float(torch.sigmoid(two_word_logit(logits, 3, 1))) == pytest.approx(by_hand, abs=1e-7)
    assert float(torch.sigmoid(two_word_logit(logits, 1, 3))) == pytest.approx(1 - 0.8807970779778823, abs=1e-7)

    # the model's score is exactly that, from the T5's first decoding step, whatever the other words get
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny["t5"])
    yes, no = answer_ids(tok)
    assert tok.convert_ids_to_tokens([yes, no]) == ["yes", "no"]
    model = P5ForCTR(AutoModelForSeq2SeqLM.from_pretrained(tiny["t5"]), prompt_ids(tok), yes, no).eval()
    batch = _batch(text_batcher(tiny["ds"].split("test"), TokenCache.for_dataset(tok, tiny["ds"], 64)), 4)
    with torch.no_grad():
        score = torch.sigmoid(model(batch["input_ids"], batch["attention_mask"])["logits"])
        enc = torch.cat([model.prompt_ids.expand(4, -1), batch["input_ids"]], dim=1)
        mask = torch.cat([torch.ones(4, len(model.prompt_ids), dtype=torch.long), batch["attention_mask"]], dim=1)
        first = model.model(input_ids=enc, attention_mask=mask, decoder_input_ids=torch.zeros(4, 1, dtype=torch.long)).logits[:, 0]
        full = torch.softmax(first, dim=-1)
    assert torch.allclose(score, full[:, yes] / (full[:, yes] + full[:, no]), atol=1e-6)
    assert tok.decode(enc[0]).startswith("Will the user click the item ?")


# ---------------------------------------------------------------- the field split, the registry, the settings


def test_user_item_fields_from_the_dataset():
    def spec(name, fields):
        return FeatureSpec(name, tuple(Field(f, f, 3) for f in fields))

    ml = ["user_id", "gender", "age", "occupation", "zipcode", "item_id", "title", "genre"]
    assert user_item_fields(spec("ml-100k", ml)) == ([0, 1, 2, 3, 4], [5, 6, 7])
    bx = ["user_id", "location", "age", "isbn", "title", "author", "year", "publisher"]
    assert user_item_fields(spec("bookcrossing", bx)) == ([0, 1, 2], [3, 4, 5, 6, 7])
    assert user_item_fields(spec("my-movies", ["userId", "age", "movieId", "title"])) == ([0, 1], [2, 3])
    with pytest.raises(ConfigError, match="cannot tell the user fields from the item fields"):
        user_item_fields(spec("mine", ["who", "what"]))
    with pytest.raises(ConfigError, match="cannot tell"):
        user_item_fields(spec("mine", ["item_id", "title"]))  # no user field before the item key


def test_registry():
    assert list_methods() == ["ctr-bert", "ctrl", "p5", "ptab"]
    assert get_method("PTab").stages.keys() == {Stage.PTAB_PRETRAIN, Stage.PTAB_FINETUNE}
    assert get_method("ctrl").pretraining_stage == Stage.CTRL_PRETRAIN and get_method("ctrl").scoring_stage == Stage.CTRL_FINETUNE
    assert get_method("CTR-BERT").pretraining_stage is None
    with pytest.raises(KeyError, match="known baselines: ctr-bert, ctrl, p5, ptab"):
        get_method("bert4rec")
    with pytest.raises(ValueError, match="already registered"):
        register_method(get_method("p5"))


def test_settings_route():
    paper = stage_config("paper", Stage.PTAB_FINETUNE)  # App. B.2
    assert (paper.train.epochs, paper.train.batch_size, paper.train.lr, paper.train.warmup_ratio) == (10, 1024, 5e-5, 0.01)
    assert paper.plm.name == "roberta-base" and paper.data.dataset == "ml-1m"
    ctrl = stage_config("paper", Stage.CTRL_PRETRAIN)
    assert (ctrl.ctr.model, ctrl.plm.name, ctrl.train.epochs) == ("autoint", "tinybert", 20)
    assert stage_config("paper", Stage.P5).plm.name == "google-t5/t5-small"
    quick = stage_config("quick", Stage.CTRL_PRETRAIN)  # no block: the recipe's train and ctr, quick's PLM and data
    assert (quick.ctr.model, quick.plm.name, quick.data.dataset, quick.train.epochs) == ("autoint", "minilm-l6", "ml-100k", 20)
    given = stage_config("quick", Stage.CTR_BERT, overrides=["train.max_steps=7"], flags={"plm.name": "x"})
    assert (given.train.max_steps, given.plm.name, given.train.lr) == (7, "x", 5e-5)
    assert given.explicit == {"train.max_steps", "plm.name"}
    with pytest.raises(ConfigError, match="unknown key"):
        stage_config("quick", Stage.CTR_BERT, overrides=["train.nope=1"])


def test_identity_leaves_out_what_a_baseline_never_reads():
    base = stage_config("quick", Stage.CTR_BERT).to_dict()
    other = {**base, "ctr": {**base["ctr"], "model": "fm"}, "prompt": {**base["prompt"], "num_prompts": 1}}
    assert identity(Stage.CTR_BERT, base) == identity(Stage.CTR_BERT, other)
    assert identity(Stage.CTRL_PRETRAIN, base) != identity(Stage.CTRL_PRETRAIN, other)  # CTRL reads ctr.*
    assert "plm" not in identity(Stage.CTRL_FINETUNE, base)  # the pretraining run fixes it


# ---------------------------------------------------------------- the stages end to end


@pytest.fixture(scope="module")
def runs(tiny):
    out = tiny["root"] / "runs"
    res = {
        "ctr-bert": run_stage(Stage.CTR_BERT, _cfg(tiny, Stage.CTR_BERT), out / "ctr-bert", progress=False),
        "ptab-pre": run_stage(Stage.PTAB_PRETRAIN, _cfg(tiny, Stage.PTAB_PRETRAIN), out / "ptab-pre", progress=False),
        "p5": run_stage(Stage.P5, _cfg(tiny, Stage.P5), out / "p5", progress=False),
        "ctrl-pre": run_stage(Stage.CTRL_PRETRAIN, _cfg(tiny, Stage.CTRL_PRETRAIN), out / "ctrl-pre", progress=False),
    }
    res["ptab"] = run_stage(Stage.PTAB_FINETUNE, _cfg(tiny, Stage.PTAB_FINETUNE), out / "ptab", pretrained=out / "ptab-pre",
                            progress=False)
    res["ctrl"] = run_stage(Stage.CTRL_FINETUNE, _cfg(tiny, Stage.CTRL_FINETUNE), out / "ctrl", pretrained=out / "ctrl-pre",
                            progress=False)
    return out, res


KINDS = {"ctr-bert": ModelKind.CTR_BERT, "ptab-pre": ModelKind.PTAB_PRETRAIN, "ptab": ModelKind.PTAB_CTR,
         "p5": ModelKind.P5, "ctrl-pre": ModelKind.CTRL_PRETRAIN, "ctrl": ModelKind.CTR}


def test_stages_write_verified_runs_that_reload_to_their_predictions(tiny, runs):
    out, res = runs
    ds = tiny["ds"]
    for name, kind in KINDS.items():
        run = RunDir(out / name)
        assert run.verify().ok, run.verify().line()
        assert res[name]["steps"] == 3 and run.kind() == kind
        model, config, tok = run.load_model(ds)
        assert (tok is None) == (kind == ModelKind.CTR)
        if not kind.scores_clicks:
            continue
        assert res[name]["model"] == {"ctr-bert": "CTR-BERT", "ptab": "PTab", "p5": "P5", "ctrl": "CTRL"}[name]
        assert 0 < res[name]["test"]["auc"] < 1 and res[name]["valid"]["auc"] is not None
        from clickprompt.batching import predict_probs
        from clickprompt.pipeline import evaluate_run

        probs = predict_probs(model, config, tok, ds, "test", batch_size=64)  # what evaluate, the dashboard use
        assert np.abs(probs - run.read_predictions()[1]).max() < 1e-5
        assert abs(evaluate_run(run.path)["auc"] - res[name]["test"]["auc"]) < 1e-6
        assert ((probs > 0) & (probs < 1)).all()
    assert res["ctr-bert"]["user_fields"] == ["user_id", "occupation"]
    assert res["ptab-pre"]["valid_mlm_loss"] > 0 and 0 <= res["ptab-pre"]["value_token_acc"] <= 1
    assert res["ctrl-pre"]["valid_infonce_loss"] > 0 and res["ctrl-pre"]["in_batch_negatives"] == 31
    assert res["p5"]["grad_clip"] == 1.0


def test_ptab_finetune_starts_from_its_pretraining_encoder_and_ctrl_from_its_ctr_model(tiny, runs):
    from clickprompt.checkpoint import load_checkpoint

    out, _ = runs
    _, pre = load_checkpoint(out / "ptab-pre" / "best")
    cfg = _cfg(tiny, Stage.PTAB_FINETUNE, extra=["train.lr=0.0000001", "train.max_steps=1"])  # barely moves
    run_stage(Stage.PTAB_FINETUNE, cfg, out / "ptab-tiny-lr", pretrained=out / "ptab-pre", progress=False)
    _, ft = load_checkpoint(out / "ptab-tiny-lr" / "best")
    key = "embeddings.word_embeddings.weight"
    assert torch.allclose(ft[f"plm.model.{key}"], pre[f"core.plm.model.bert.{key}"], atol=1e-4)
    assert not any(k.startswith("plm.model.cls") or "predictions" in k for k in ft)  # the MLM head stays behind
    _, ctrl_pre = load_checkpoint(out / "ctrl-pre" / "best")
    assert "ctr.head.weight" in ctrl_pre  # present but untrained; ctrl-finetune starts a fresh one
    assert json.loads((out / "ctrl" / "config.json").read_text())["pretrained"] == str(out / "ctrl-pre")


def test_a_finished_stage_is_reused_and_other_settings_refused(tiny, runs):
    from clickprompt.rundir import RunError

    out, res = runs
    again = run_stage(Stage.CTR_BERT, _cfg(tiny, Stage.CTR_BERT), out / "ctr-bert", progress=False)
    assert again["test"] == res["ctr-bert"]["test"]
    with pytest.raises(RunError, match="train.lr"):
        run_stage(Stage.CTR_BERT, _cfg(tiny, Stage.CTR_BERT, extra=["train.lr=0.01"]), out / "ctr-bert", progress=False)
    with pytest.raises(Exception, match="not a 'ctrl-pretrain' run"):
        run_stage(Stage.CTRL_FINETUNE, _cfg(tiny, Stage.CTRL_FINETUNE), out / "x", pretrained=out / "ptab-pre", progress=False)
    with pytest.raises(ConfigError, match="needs its pretraining run"):
        run_stage(Stage.PTAB_FINETUNE, _cfg(tiny, Stage.PTAB_FINETUNE), out / "x", progress=False)
    with pytest.raises(ConfigError, match="P5 needs a T5-family encoder-decoder"):
        run_stage(Stage.P5, _cfg(tiny, Stage.P5, plm=tiny["bert"]), out / "x", progress=False)
    with pytest.raises(ConfigError, match="reads text with a bert or roberta model, not 't5'"):
        run_stage(Stage.CTR_BERT, _cfg(tiny, Stage.CTR_BERT, plm=tiny["t5"]), out / "x", progress=False)
    assert not (out / "x").exists()  # refused before anything was written


def test_a_killed_ctr_bert_run_resumes_to_the_uninterrupted_weights(tiny, monkeypatch):
    from clickprompt.baselines import ctr_bert
    from clickprompt.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    extra = ["train.max_steps=4", "train.save_every=1"]
    out = tiny["root"] / "resume"
    run_stage(Stage.CTR_BERT, _cfg(tiny, Stage.CTR_BERT, extra=extra), out / "reference", progress=False)

    calls = {"n": 0}
    batcher = ctr_bert.TwoTowerText.batcher

    def dying(self, split):
        make_batch = batcher(self, split)

        def wrapped(idx):
            if split.name == "train":
                calls["n"] += 1
                if calls["n"] == 3:  # the third training batch: killed after two saved steps
                    raise KeyboardInterrupt
            return make_batch(idx)

        wrapped.lengths = make_batch.lengths
        return wrapped

    monkeypatch.setattr(ctr_bert.TwoTowerText, "batcher", dying)
    with pytest.raises(KeyboardInterrupt):
        run_stage(Stage.CTR_BERT, _cfg(tiny, Stage.CTR_BERT, extra=extra), out / "killed", progress=False)
    monkeypatch.setattr(ctr_bert.TwoTowerText, "batcher", batcher)
    assert RunDir(out / "killed").has_state and not RunDir(out / "killed").finished
    resumed = run_stage(Stage.CTR_BERT, _cfg(tiny, Stage.CTR_BERT, extra=extra), out / "killed", resume=True,
                        progress=False)
    reference = json.loads((out / "reference" / "results.json").read_text())
    assert resumed["test"]["auc"] == pytest.approx(reference["test"]["auc"], abs=1e-6)
    a, b = load_checkpoint(out / "killed" / "best")[1], load_checkpoint(out / "reference" / "best")[1]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# ---------------------------------------------------------------- CLI, experiments, report, latency


def test_cli_runs_both_stages_per_seed(tiny):
    from clickprompt.cli import main

    out = tiny["root"] / "cli-ptab"
    args = ["baseline", "ptab", "--profile", "tiny", "--dataset", "tiny", "--processed-dir", str(tiny["data"]),
            "--plm", str(tiny["bert"]), "--seeds", "1", "2", "--out", str(out), "--quiet",
            *[x for s in STEP for x in ("--set", s)], "--set", "ptab-pretrain/train.max_steps=2"]
    assert main(args) == 0
    for seed in (1, 2):
        assert json.loads((out / "ptab-pretrain" / f"seed-{seed}" / "results.json").read_text())["steps"] == 2
        fin = json.loads((out / "ptab-finetune" / f"seed-{seed}" / "config.json").read_text())
        assert fin["pretrained"] == str(out / "ptab-pretrain" / f"seed-{seed}") and fin["train"]["seed"] == seed
    assert (out / "ptab-finetune" / "summary.json").exists()
    assert main(["baseline", "--list"]) == 0
    with pytest.raises(SystemExit):  # argparse: ctr-bert has no pretraining stage
        main(["baseline", "ctr-bert", "--pretrained", "x", "--dataset", "tiny"])


def test_experiment_runs_the_baseline_arms_and_lists_p5_as_not_run(tiny, tmp_path):
    import yaml

    from clickprompt.experiments import run_experiment

    spec = {
        "experiment": "tiny_table2", "profile": "tiny", "seeds": [1, 2],
        "settings": {**{f"{s}/{k}": v for s in ("ctr-bert", "p5", "ptab-pretrain", "ptab-finetune", "ctrl-pretrain")
                        for k, v in (x.split("=") for x in STEP)}, "ctrl-finetune/train.epochs": 1,
                     "plm.name": str(tiny["bert"]), "p5/plm.name": str(tiny["t5"])},
        "pretrain": {"ptab-mlm": {"stage": "ptab-pretrain"},
                     "ctrl-contrastive": {"stage": "ctrl-pretrain", "set": {"ctr.model": "autoint"}}},
        "arms": {"dcnv2": {"stage": "train-ctr", "set": {"ctr.model": "dcnv2"}},
                 "autoint": {"stage": "train-ctr", "set": {"ctr.model": "autoint"}},
                 "ctr-bert": {"stage": "ctr-bert", "reference": "dcnv2", "label": "CTR-BERT"},
                 "p5": {"stage": "p5", "reference": "dcnv2", "label": "P5"},
                 "ptab": {"stage": "ptab-finetune", "pretrained": "ptab-mlm", "reference": "dcnv2", "label": "PTab"},
                 "ctrl": {"stage": "ctrl-finetune", "pretrained": "ctrl-contrastive", "set": {"ctr.model": "autoint"},
                          "reference": "autoint", "label": "CTRL"}},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    s = run_experiment(path, "tiny", out=tmp_path / "runs", processed_dir=tiny["data"], progress=False, log=lambda *a: None)
    rows = {r["arm"]: r for r in s["sections"][0]["groups"][0]["rows"]}
    assert all(len(rows[a]["test_auc"]) == 2 for a in ("ctr-bert", "p5", "ptab", "ctrl"))
    assert rows["ctrl"]["reference"] == "autoint" and "rel_impr" in rows["ptab"]
    pre = {p["pretrain"]: p for p in s["sections"][0]["groups"][0]["pretraining"]}
    assert not math.isnan(pre["ptab-mlm"]["valid_loss"][0]) and not math.isnan(pre["ctrl-contrastive"]["valid_loss"][0])

    # without a T5 at hand, P5 is listed as not run and everything else still runs and summarises
    spec["settings"]["p5/plm.name"] = "google-t5/t5-small"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    s = run_experiment(path, "tiny", out=tmp_path / "runs", processed_dir=tiny["data"], progress=False, log=lambda *a: None)
    rows = {r["arm"]: r for r in s["sections"][0]["groups"][0]["rows"]}
    assert rows["p5"]["not_run"].startswith("not run: no pretrained T5 available offline")
    assert "| P5 | p5 | not run: no pretrained T5 available offline" in s["markdown"]

    bad = {**spec, "arms": {**spec["arms"], "ptab": {"stage": "ptab-finetune", "pretrained": "ctrl-contrastive"}}}
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    from clickprompt.experiments import ExperimentError, load_experiment

    with pytest.raises(ExperimentError, match="a ptab-finetune arm starts from a ptab-pretrain one"):
        load_experiment(path)


def test_report_fills_table2_baseline_rows_and_latency_times_them(tiny, runs, tmp_path):
    from clickprompt.analysis import latency
    from clickprompt.report import build_report

    out, _ = runs
    md, _ = build_report([out], tmp_path / "report", compute=False, figures=False)
    text = md.read_text()
    table2 = text.split("Table 2")[1].split("Table 3")[0]
    for label in ("CTR-BERT", "PTab", "CTRL"):
        assert f"| {label} (" in table2, label
    assert "| P5 (" in table2  # the tiny T5 run
    from clickprompt.baselines.p5 import t5_not_run

    if t5_not_run():  # no T5 in this machine's cache: without a P5 run its row says why, not a random model's AUC
        md, _ = build_report([out / "ctr-bert", out / "ptab"], tmp_path / "no-p5", compute=False, figures=False)
        assert "| P5 | — | not run: no pretrained T5 available offline |" in md.read_text()

    ds = tiny["ds"]
    models = {name: RunDir(out / run).load_model(ds) for name, run in
              (("CTR-BERT", "ctr-bert"), ("PTab", "ptab"), ("P5", "p5"), ("CTRL", "ctrl"))}
    table = latency(models, ds, batch_size=8, warmup=1, repeats=2)
    assert list(table["model"]) == ["CTR-BERT", "PTab", "P5", "CTRL"] and (table["ms_model_median"] > 0).all()


def test_table2_config_plans_the_baseline_arms(tmp_path):
    from collections import Counter

    from clickprompt.experiments import load_experiment, plan_experiment

    plan = plan_experiment(load_experiment("configs/table2_overall.yaml"), "ml-1m", out=tmp_path)
    n = len(plan.seeds)
    stages = Counter(r.stage for r in plan.runs)
    assert {s: stages[s] for s in ("ctr-bert", "ptab-pretrain", "ptab-finetune", "ctrl-pretrain", "ctrl-finetune")} == \
        dict.fromkeys(("ctr-bert", "ptab-pretrain", "ptab-finetune", "ctrl-pretrain", "ctrl-finetune"), n)
    cell = {arm: plan.cells[(0, 0, arm, plan.seeds[0])].cfg for arm in ("ctr-bert", "ptab", "ctrl", "p5")}
    assert (cell["ctr-bert"].train.batch_size, cell["ctr-bert"].train.lr, cell["ctr-bert"].plm.name) == (1024, 5e-5, "roberta-base")
    assert (cell["ctrl"].ctr.model, cell["ctrl"].plm.name) == ("autoint", "tinybert")  # from its pretraining
    assert cell["p5"].plm.name == "google-t5/t5-small" and cell["p5"].train.batch_size == 32
    if "p5" in plan.skipped:  # no T5 in this machine's cache
        assert plan.skipped["p5"].startswith("not run: no pretrained T5 available offline")
    amazon = plan_experiment(load_experiment("configs/table2_overall.yaml"), "amazon-toys", out=tmp_path)
    assert amazon.cells[(0, 0, "ctrl", amazon.seeds[0])].cfg.train.batch_size == 1024  # App. B.1's per-dataset batch


def test_report_groups_seeds_whose_configs_predate_a_new_setting(tmp_path):
    """A setting added between two seeds' runs (absent from the older config.json) takes its default when the
    report groups seeds, as rundir.identity does: one Table 2 row with both seeds, not two rows."""
    import copy

    from clickprompt.report import Run, _group_key

    cfg = {**stage_config("quick", Stage.CTR_BERT).to_dict(), "stage": "ctr-bert"}
    old = copy.deepcopy(cfg)
    old["train"].pop("group_by_length")  # written before the setting existed
    res = {"stage": "ctr-bert", "model": "CTR-BERT", "plm": "minilm-l6", "dataset": "ml-100k"}
    assert _group_key(Run(tmp_path, res, cfg), "baseline") == _group_key(Run(tmp_path, res, old), "baseline")
    other = copy.deepcopy(cfg)
    other["train"]["group_by_length"] = True
    assert _group_key(Run(tmp_path, res, cfg), "baseline") != _group_key(Run(tmp_path, res, other), "baseline")
    assert _group_key(Run(tmp_path, res, cfg), "baseline") != _group_key(Run(tmp_path, {**res, "plm": "x"}, cfg), "baseline")
