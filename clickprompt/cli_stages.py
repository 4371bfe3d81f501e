"""Sub-commands for the ClickPrompt stages: pretrain, finetune, evaluate, quick.

Registered into `clickprompt.cli` (kept apart so cli.py stays a short table of commands).
"""

from __future__ import annotations

import json
from pathlib import Path

def register(sub, add_run_args, resolve_config, seed_dirs) -> None:
    def resolve(args, stage: str):
        return resolve_config(args, stage)

    p = sub.add_parser("pretrain", help="PA-MLM pretraining (Sec 3.5.1)")
    add_run_args(p)
    _add_architecture_args(p)
    p.add_argument("--max-train-samples", type=int, help="pretrain on the first N shuffled training samples per epoch")

    def cmd_pretrain(args) -> int:
        from clickprompt.pipeline import pretrain

        cfg = resolve(args, "pretrain")
        for seed, run_dir in seed_dirs(args, cfg, f"runs/{cfg.data.dataset}/pretrain-{cfg.ctr.model}"):
            cfg.train.seed = seed
            r = pretrain(cfg, run_dir, resume=args.resume, force=args.force, progress=not args.quiet,
                         max_train_samples=args.max_train_samples)
            loss = r.get("valid_mlm_loss", r.get("valid_clm_loss"))  # PA-CLM for decoder-only PLMs (App. C.3)
            print(
                f"{r.get('objective', 'PA-MLM')} seed {seed}: valid LM loss {loss:.4f}; value-token accuracy "
                f"true {r['value_token_acc_true']:.3f} / shuffled {r['value_token_acc_shuffled']:.3f} / "
                f"none {r['value_token_acc_none']:.3f} -> {run_dir}"
            )
        return 0

    p.set_defaults(func=cmd_pretrain)

    f = sub.add_parser("finetune", help="finetune with PLM (Eq. 9) or without it (Eq. 10)")
    add_run_args(f)
    f.add_argument("--pretrained", help="PA-MLM run directory (omit for the w/o Pretrain ablation)")
    f.add_argument("--without-plm", action="store_true", help="tune the CTR model alone (Eq. 10)")
    f.add_argument("--init-ctr", metavar="RUN", help="with the PLM: take the CTR model and its head from this finished "
                   "train-ctr or finetune-without-plm run instead of the PA-MLM run (not the paper's recipe)")
    f.add_argument("--plm-lr", type=float, help="PLM learning rate; 0 freezes it (train.plm_lr)")
    f.add_argument("--no-prompts", dest="use_prompts", action="store_const", const=False,
                   help="the w/o Prompt ablation, two towers (prompt.use_prompts = false)")
    _add_architecture_args(f, " (with --pretrained: must match the pretraining run, which fixes it)")

    def cmd_finetune(args) -> int:
        from clickprompt.formatting import fmt_mean_std
        from clickprompt.pipeline import finetune, summarize_seeds

        cfg = resolve(args, "finetune-without-plm" if args.without_plm else "finetune-with-plm")
        kind = "without-plm" if args.without_plm else "with-plm"
        dirs = []
        for seed, run_dir in seed_dirs(args, cfg, f"runs/{cfg.data.dataset}/finetune-{kind}"):
            cfg.train.seed = seed
            r = finetune(cfg, run_dir, pretrained=args.pretrained, with_plm=not args.without_plm,
                         init_ctr=args.init_ctr, resume=args.resume, force=args.force, progress=not args.quiet)
            print(f"finetune {kind} seed {seed}: test AUC {r['test']['auc']:.4f}  log loss {r['test']['logloss']:.4f} -> {run_dir}")
            dirs.append(Path(run_dir))
        if len(dirs) > 1:
            s = summarize_seeds(dirs, dirs[0].parent / "summary.json")
            print(f"finetune {kind}: test AUC {fmt_mean_std(*s['test_auc_mean_std'], n=len(dirs))}")
        return 0

    f.set_defaults(func=cmd_finetune)

    e = sub.add_parser("evaluate", help="metrics of a run's best checkpoint on a split")
    e.add_argument("run", help="run directory or checkpoint directory")
    e.add_argument("--split", default="test", choices=["valid", "test"])
    e.add_argument("--baseline", help="a baseline run directory: adds Rel.Impr and DeLong's p-value")
    e.add_argument("--processed-dir", default=None)
    e.add_argument("--int8", action="store_true", help="the PLM's linear layers in int8 (CPU inference)")
    e.add_argument("--bf16", action="store_true", help="score under bf16 autocast (fast on CPUs with AMX or "
                   "AVX512-BF16: benchmarks/results/int8_inference.md)")

    def cmd_evaluate(args) -> int:
        from clickprompt.pipeline import evaluate_run

        r = evaluate_run(args.run, args.split, baseline=args.baseline, processed_dir=args.processed_dir,
                         int8=args.int8, bf16=args.bf16)
        print(json.dumps(r, indent=2))
        return 0

    e.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("quick", help="the main job: act 1, the positive control; act 2, DCNv2, PA-MLM and both finetunings")
    q.add_argument("--dataset", default="ml-100k")
    q.add_argument("--processed-dir", default=None)
    q.add_argument("--profile", default="quick", help="settings profile (quick: ~10 min on 2 CPU cores; tiny: seconds)")
    q.add_argument("--plm", default=None, help="PLM alias, hub id or local path (default: the profile's)")
    q.add_argument("--out", default="runs/quick")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--force", action="store_true")
    q.add_argument("--quiet", action="store_true")
    q.add_argument("--no-control", dest="control", action="store_false",
                   help="skip act 1, the positive control (synthetic data where only the text tells)")

    def cmd_quick(args) -> int:
        from clickprompt.pipeline import main_job

        summary = main_job(args.dataset, args.out, profile=args.profile, processed_dir=args.processed_dir,
                           plm=args.plm, seed=args.seed, force=args.force, progress=not args.quiet,
                           control=args.control)
        print(summary["table"])
        return 0

    q.set_defaults(func=cmd_quick)


def _add_architecture_args(p, note: str = "") -> None:
    p.add_argument("--plm", help="PLM alias, hub id or local path (plm.name)" + note)
    p.add_argument("--num-prompts", type=int, help="K prompts per layer (prompt.num_prompts)" + note)
    p.add_argument("--strategy", choices=["layerwise", "input"], help="prompt strategy, Fig. 3 (prompt.strategy)" + note)
