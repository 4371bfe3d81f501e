"""`clickprompt baseline METHOD`: the PLM-based baselines of Table 2 (clickprompt.baselines).

    clickprompt baseline ctr-bert --profile quick --dataset ml-100k --seeds 1 2 3 [--out runs/ml-100k/ctr-bert]
    clickprompt baseline ptab --profile paper --dataset ml-1m                  # MLM, then text classification
    clickprompt baseline ptab --profile quick --dataset ml-100k --pretrained RUN   # the finetuning only
    clickprompt baseline ctrl --profile quick --dataset ml-100k --set ctrl-pretrain/train.plm_lr=0
    clickprompt baseline p5 --plm t5-small                                      # a T5 from the local cache only
    clickprompt baseline --list

A method with two stages (ptab, ctrl) runs its pretraining into OUT/<first stage>[/seed-S], then its
finetuning from it into OUT/<second stage>[/seed-S]; one seed's pretraining feeds that seed's finetuning.
Settings per stage (clickprompt.baselines.common.stage_config): the profile's block for the stage (or the
paper profile's recipe), --config, --set, the flags. `--set STAGE/section.key=value` limits a setting to
one stage, as in experiment files. Registered into `clickprompt.cli` like cli_stages.
"""

from __future__ import annotations

from pathlib import Path


def _stage_overrides(items: list[str], stage: str) -> list[str]:
    """The --set items for `stage`: unprefixed ones, and "STAGE/key=value" ones naming this stage."""
    from clickprompt.baselines import baseline_stages
    from clickprompt.config import ConfigError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        only, slash, dotted = key.rpartition("/")
        if not slash:
            out.append(item)
            continue
        if only not in map(str, baseline_stages()):
            raise ConfigError(f"--set {item!r}: unknown baseline stage {only!r} (known: {', '.join(map(str, baseline_stages()))})")
        if only == stage:
            out.append(f"{dotted}{sep}{value}")
    return out


def register(sub, add_run_args, resolve_config=None, seed_dirs=None) -> None:
    p = sub.add_parser("baseline", help="a PLM-based baseline of Table 2: ctr-bert, ptab, p5, ctrl (App. B.2)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("method", nargs="?", help="ctr-bert, ptab, p5 or ctrl (see --list)")
    p.add_argument("--list", action="store_true", help="list the baselines and their stages")
    add_run_args(p)
    p.add_argument("--plm", help="PLM alias, hub id or local path (plm.name); with --pretrained: the pretraining run's")
    p.add_argument("--pretrained", help="a finished pretraining run of the method (ptab, ctrl): run the finetuning only")

    def cmd_baseline(args) -> int:
        from clickprompt.baselines import get_method, list_methods, stage_config
        from clickprompt.config import flag_overrides
        from clickprompt.pipeline import summarize_seeds

        if args.list or not args.method:
            for name in list_methods():
                m = get_method(name)
                print(f"{name:9s} {m.label:9s} stages: {', '.join(map(str, m.stages))}. {m.summary}")
            return 0
        method = get_method(args.method)
        stages = list(method.stages)
        if args.pretrained:
            if method.pretraining_stage is None:
                p.error(f"{method.name} has no pretraining stage; --pretrained does not apply")
            stages = stages[1:]
        cfgs = {s: stage_config(args.profile, s, args.config, _stage_overrides(args.set, str(s)), flag_overrides(args))
                for s in stages}
        final = method.scoring_stage
        base = Path(args.out or f"runs/{cfgs[final].data.dataset}/{method.name}")
        seeds = args.seeds or [cfgs[final].train.seed]
        several = len(seeds) > 1 or bool(args.seeds)
        dirs = []
        for seed in seeds:
            pretrained = args.pretrained
            for stage in stages:
                cfg = cfgs[stage]
                cfg.train.seed = seed
                run_dir = (base / str(stage) if len(method.stages) > 1 else base)
                run_dir = run_dir / f"seed-{seed}" if several else run_dir
                r = method.run(stage, cfg, run_dir, pretrained=pretrained if stage == final else None,
                               resume=args.resume, force=args.force, progress=not args.quiet)
                if stage == final:
                    print(f"{method.label} seed {seed}: test AUC {r['test']['auc']:.4f}  log loss "
                          f"{r['test']['logloss']:.4f} -> {run_dir}")
                    dirs.append(run_dir)
                else:
                    print(f"{method.label} {stage} seed {seed}: done -> {run_dir}")
                    pretrained = run_dir
        if len(dirs) > 1:
            s = summarize_seeds(dirs, dirs[0].parent / "summary.json")
            print(f"{method.label}: test AUC {s['test_auc_mean_std'][0]:.4f} ± {s['test_auc_mean_std'][1]:.4f}")
        return 0

    p.set_defaults(func=cmd_baseline)
