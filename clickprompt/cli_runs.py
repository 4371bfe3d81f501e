"""`clickprompt runs verify DIR ...`: check run directories against their manifests (clickprompt.rundir).

    clickprompt runs verify runs/quick runs/exp      one line per run found under each DIR:
        ok         runs/quick/ctr
        damaged    runs/quick/pretrain: runs/quick/pretrain/best/model.safetensors: checksum mismatch (...)
        stale      runs/old/ctr: no manifest.json (written by an older version); ...
Exit status 0 when every run is ok, 1 otherwise (2: a DIR that does not exist).
"""

from __future__ import annotations

from pathlib import Path

from clickprompt.errors import ClickPromptError


def find_runs(root: Path) -> list[Path]:
    """Run directories at or under `root`: folders holding config.json or results.json, other than a
    run's own best/, state/ and tokenizer/ folders."""
    from clickprompt.rundir import RunDir

    if not root.is_dir():
        raise ClickPromptError(f"{root}: no such directory")
    inside = {"best", "state", "tokenizer"}
    found = []
    for path in sorted({p.parent for name in (RunDir.CONFIG, RunDir.RESULTS) for p in root.rglob(name)}):
        if inside & set(path.relative_to(root).parts):
            continue
        found.append(path)
    return found


def register(sub) -> None:
    r = sub.add_parser("runs", help="check run directories (manifests, locks, settings)")
    rsub = r.add_subparsers(dest="runs_cmd", required=True)
    v = rsub.add_parser("verify", help="one line per run: ok / damaged / stale / unfinished / running")
    v.add_argument("dirs", nargs="+", metavar="DIR", help="run directories, or folders holding runs")

    def cmd_verify(args) -> int:
        from clickprompt.rundir import RunDir

        all_ok, any_run = True, False
        for d in args.dirs:
            for path in find_runs(Path(d)):
                verdict = RunDir(path).verify()
                any_run = True
                all_ok &= verdict.ok
                print(verdict.line())
        if not any_run:
            print("no run directories found")
        return 0 if all_ok and any_run else 1

    v.set_defaults(func=cmd_verify)
