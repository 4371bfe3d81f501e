"""`clickprompt experiment CONFIG --dataset NAME`: run every arm of a paper experiment (clickprompt.experiments).

    clickprompt experiment configs/table5_fusion_ablation.yaml --dataset ml-100k [--seeds 1 2 3]
        [--out runs/exp] [--profile quick] [--set section.key=value ...] [--dry-run] [--summary-only]

Registered into `clickprompt.cli` like cli_stages. The run flags come from `add_run_args`; they
apply to EVERY run of the experiment, after the experiment file's own settings (--set, --epochs,
--batch-size, --max-steps, --device, --precision), and --config names a YAML of settings applied
right after the profile (before the experiment file's). `resolve_config` and `seed_dirs` are not
used: an experiment resolves one configuration per run (clickprompt.experiments.plan_experiment) and
lays out its own run directories.
"""

from __future__ import annotations

def register(sub, add_run_args, resolve_config=None, seed_dirs=None) -> None:
    p = sub.add_parser(
        "experiment",
        help="run a paper experiment from configs/*.yaml: every arm, reusing finished runs, then a summary table",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("experiment", metavar="CONFIG", help="experiment file, e.g. configs/table5_fusion_ablation.yaml")
    add_run_args(p, model_flag=False)
    p.add_argument("--dry-run", action="store_true", help="list the runs (done / todo) and stop")
    p.add_argument("--summary-only", action="store_true", help="only rebuild the summary from finished runs")

    def cmd_experiment(args) -> int:
        from clickprompt.experiments import run_experiment

        if not args.dataset:
            p.error("--dataset is required")
        from clickprompt.config import flag_overrides

        # dataset and processed_dir are passed on separately (the latter is not part of a run's identity)
        overrides = list(args.set) + [f"{key}={value}" for key, value in flag_overrides(args).items()
                                      if key not in ("data.dataset", "data.processed_dir")]
        run_experiment(
            args.experiment, args.dataset, seeds=args.seeds, out=args.out or "runs/exp", profile=args.profile,
            overrides=overrides, config_file=args.config, processed_dir=args.processed_dir, force=args.force,
            resume=args.resume, progress=not args.quiet, dry_run=args.dry_run, summary_only=args.summary_only,
        )
        return 0

    p.set_defaults(func=cmd_experiment)
