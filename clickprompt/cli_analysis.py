"""Sub-commands `clickprompt analyse ...` and `clickprompt report ...` (thin: clickprompt.analysis and
clickprompt.report do the work). Registered into `clickprompt.cli` by `register(sub)`.

    clickprompt analyse long-tail NAME=RUN [NAME=RUN ...] [--baseline NAME] [--tail-fraction 0.1] [--out DIR]
    clickprompt analyse attention RUN [--row 0] [--layer -1] [--mask value|segment] [--out DIR]
    clickprompt analyse attributions RUN [--rows 0 1 2] [--n-steps 32] [--tokens] [--out DIR]
    clickprompt analyse latency NAME=RUN [NAME=RUN ...] [--batch-size 128] [--baseline NAME] [--out DIR]
    clickprompt report RUN_DIR [RUN_DIR ...] [--out DIR]

With `--out DIR` each analysis writes a CSV and a JSON file (long_tail / attention / attributions /
latency) in the analysis JSON format defined in clickprompt.analysis (`to_payload`); `clickprompt report`
picks up the JSON files it finds under its run directories.
"""

from __future__ import annotations

import math
from pathlib import Path


def _named_runs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item.rstrip("/")).name, item
        if name in out:
            from clickprompt.errors import ClickPromptError

            raise ClickPromptError(f"model name {name!r} given twice; use NAME=RUN to tell runs apart")
        out[name] = path
    return out


def _write(out: str | None, stem: str, payload: dict, frame) -> None:
    """CSV + JSON in the analysis format (clickprompt.analysis.to_payload), which `clickprompt report` reads."""
    if not out:
        return
    from clickprompt.analysis import write_analysis

    csv, js = write_analysis(out, stem, payload, frame)
    print(f"wrote {csv} and {js}")


def _load(run: str, processed_dir, int8: bool = False):
    from clickprompt.rundir import RunDir

    run = RunDir(run)
    ds = run.dataset(processed_dir)  # config only: the weights load once, below
    return (*run.load_model(ds, int8=int8), ds)


def cmd_long_tail(args) -> int:
    import pandas as pd

    from clickprompt.analysis import long_tail_table, run_predictions, to_payload

    runs = _named_runs(args.runs)
    preds, ds = {}, None
    for name, run in runs.items():
        preds[name], this = run_predictions(run, args.split, args.processed_dir)
        if ds is not None and this.fingerprint != ds.fingerprint:
            from clickprompt.errors import ClickPromptError

            raise ClickPromptError(f"{run}: trained on other data than {runs[next(iter(runs))]}")
        ds = this
    table = long_tail_table(ds, preds, args.split, args.tail_fraction, args.baseline, user_field=args.user_field,
                            item_field=args.item_field, min_rows=args.min_rows)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(table.to_string(index=False))
    print("\n" + table.attrs["definition"])
    payload = to_payload("long_tail", table, dataset=ds.name, models=runs)
    _write(args.out, "long_tail", payload, table)
    return 0


def cmd_attention(args) -> int:
    from clickprompt.analysis import prompt_attention, to_payload

    model, config, tokenizer, ds = _load(args.run, args.processed_dir)
    table = prompt_attention(model, tokenizer, ds, args.split, args.row, args.layer, args.max_length, mask=args.mask)
    print(table.round(4).to_string())
    mass = table.attrs["prompt_mass"]
    print("share of attention on the prompts: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in mass.items()
                                                             if not math.isnan(v)))
    payload = to_payload("attention", table, dataset=ds.name, run=args.run)
    _write(args.out, "attention", payload, table)
    return 0


def cmd_attributions(args) -> int:
    from clickprompt.analysis import field_attributions, to_payload, token_attributions

    model, config, tokenizer, ds = _load(args.run, args.processed_dir)
    table = field_attributions(model, config, tokenizer, ds, args.split, args.rows, args.n_steps)
    print(table.round(5).to_string())
    payload = to_payload("field_attributions", table, dataset=ds.name, run=args.run)
    _write(args.out, "field_attributions", payload, table)
    if args.tokens:
        tok = token_attributions(model, config, tokenizer, ds, args.split, args.rows, args.n_steps, baseline=args.baseline)
        print(tok.groupby(["row", "field"], sort=False)["attribution"].sum().round(5).to_string())
        payload = to_payload("token_attributions", tok, dataset=ds.name, run=args.run)
        _write(args.out, "token_attributions", payload, tok)
    return 0


def cmd_latency(args) -> int:
    import pandas as pd

    from clickprompt.analysis import latency, to_payload
    from clickprompt.rundir import ModelKind
    from clickprompt.training import resolve_device

    device = resolve_device(args.device)
    models, ds = {}, None
    unknown = set(args.int8 or ()) - set(_named_runs(args.runs))
    if unknown:
        from clickprompt.errors import ClickPromptError

        raise ClickPromptError(f"--int8 names {sorted(unknown)}, which are not among the runs ({', '.join(_named_runs(args.runs))})")
    for name, run in _named_runs(args.runs).items():
        model, config, tokenizer, this = _load(run, args.processed_dir, int8=name in (args.int8 or ()))
        if config["kind"] == ModelKind.PRETRAIN:
            from clickprompt.errors import ClickPromptError

            raise ClickPromptError(f"{run}: a PA-MLM pretraining run makes no click predictions; pass a finetuned run")
        models[name] = (model.to(device), config, tokenizer)
        ds = ds or this
    table = latency(models, ds, args.split, args.batch_size, args.warmup, args.repeats, baseline=args.baseline)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(table.round(3).to_string(index=False))
    payload = to_payload("latency", table, dataset=ds.name, models=_named_runs(args.runs))
    _write(args.out, "latency", payload, table)
    return 0


def cmd_report(args) -> int:
    from clickprompt.report import build_report

    md, html = build_report(args.run_dirs, args.out, processed_dir=args.processed_dir, compute=not args.no_compute,
                            figures=not args.no_figures, attention_row=args.attention_row,
                            **({"title": args.title} if args.title else {}))
    print(f"wrote {md} and {html}")
    return 0


def register(sub) -> None:
    a = sub.add_parser("analyse", aliases=["analyze"], help="long-tail, attention, attributions, latency")
    asub = a.add_subparsers(dest="analysis", required=True)

    def common(p, multi: bool):
        if multi:
            p.add_argument("runs", nargs="+", metavar="NAME=RUN", help="run directories, optionally named")
        else:
            p.add_argument("run", help="run directory (or its best/ checkpoint)")
        p.add_argument("--split", default="test", choices=["valid", "test"])
        p.add_argument("--processed-dir", default=None, help="where prepared datasets live (default: the run's)")
        p.add_argument("--out", default=None, help="write CSV + JSON here (picked up by `clickprompt report`)")

    lt = asub.add_parser("long-tail", help="Table 6: AUC per long-tail user/item subset, plus cold start")
    common(lt, True)
    lt.add_argument("--baseline", help="model name Rel.Impr is measured against (default: the first)")
    lt.add_argument("--tail-fraction", type=float, default=0.1)
    lt.add_argument("--user-field", default="user_id")
    lt.add_argument("--item-field", default="item_id")
    lt.add_argument("--min-rows", type=int, default=10, help="smaller subsets get no AUC")
    lt.set_defaults(func=cmd_long_tail)

    at = asub.add_parser("attention", help="Table 7: attention over the soft prompts when each field is masked")
    common(at, False)
    at.add_argument("--row", type=int, default=0, help="sample (row of the split)")
    at.add_argument("--layer", type=int, default=-1, help="PLM layer (default the last, as in the paper)")
    at.add_argument("--mask", choices=["value", "segment", "none"], default="value",
                    help="mask the field's value tokens (default), its whole 'name is value .' segment, or nothing (GPT-2)")
    at.add_argument("--max-length", type=int, default=None)
    at.set_defaults(func=cmd_attention)

    ig = asub.add_parser("attributions", help="Integrated Gradients per field (and per token with --tokens)")
    common(ig, False)
    ig.add_argument("--rows", type=int, nargs="+", default=[0])
    ig.add_argument("--n-steps", type=int, default=32)
    ig.add_argument("--tokens", action="store_true", help="also per-token attributions (with-PLM runs)")
    ig.add_argument("--baseline", choices=["mask", "pad"], default="mask", help="token baseline")
    ig.set_defaults(func=cmd_attributions)

    la = asub.add_parser("latency", help="Table 8: milliseconds per batch")
    common(la, True)
    la.add_argument("--batch-size", type=int, default=128)
    la.add_argument("--warmup", type=int, default=3)
    la.add_argument("--repeats", type=int, default=20)
    la.add_argument("--device", default="auto")
    la.add_argument("--baseline", help="model name for the AUC-improvement column (scores the split once)")
    la.add_argument("--int8", nargs="+", metavar="NAME", default=[],
                    help="score these models with the PLM's linear layers in int8 (name a run twice, NAME=RUN, to compare)")
    la.set_defaults(func=cmd_latency)

    r = sub.add_parser("report", help="Markdown + self-contained HTML report: Tables 2-8 beside the paper's numbers")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    r.add_argument("--out", default="reports/latest")
    r.add_argument("--processed-dir", default=None, help="where prepared datasets live (default: each run's)")
    r.add_argument("--no-compute", action="store_true", help="read saved files only (no long-tail/attention compute)")
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--attention-row", type=int, default=0)
    r.add_argument("--title", default=None)
    r.set_defaults(func=cmd_report)
