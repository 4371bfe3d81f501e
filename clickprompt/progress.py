"""What a training run tells people while it runs, and what it records for later (used by training.train).

    log = TrainLog(run, cfg, ...)        one per train() call
    log.start(...)                       the stage banner: what runs, how many steps, what stops it
    log.epoch_start(...) / log.step(...) progress: a bar whose total is the steps that will really run
                                         (train.max_steps caps included), or off a terminal a compact line
                                         every train.log_every steps (and at least every 30 s)
    log.epoch_end(record, ...)           a readable line per epoch (not a raw dict), the best so far marked
    log.finish(...)                      how it ended: all epochs, train.max_steps, or stopped early and why

Records. Every `train.log_every` optimizer steps (and at the end of an epoch for the steps since the last
record) a step record goes to metrics.jsonl beside the epoch records:

    {"kind": "step", "epoch": 1, "step": 50, "train_loss": 0.4312, "lr": 0.001, "elapsed_s": 12.3}

`train_loss` is the mean loss of the optimizer steps since the previous step record (averaged over all
ranks under DDP). Epoch records keep their keys (epoch, step, train_loss, valid_*, ..., elapsed_s) and
have no "kind" key: readers that want epochs take `r.get("kind", "epoch") == "epoch"`. Step records are
a function of the trajectory only (elapsed_s aside), so a resumed run writes the same lines as an
uninterrupted one: on resume the step lines up to the saved step are kept and the epoch lines are
rewritten from the saved history (`resume_metrics`).

TensorBoard. Where the `tensorboard` package is installed, the same numbers also go to
`<run>/tensorboard/` as event files (`tensorboard --logdir runs/quick`): scalars `train/loss`, `train/lr`
per step record and `epoch/<key>` per epoch, against the optimizer step. Off with
CLICKPROMPT_TENSORBOARD=0 (or train(..., tensorboard=False)). Nothing here draws random numbers.

Progress mode: CLICKPROMPT_PROGRESS=bar|lines|off overrides the choice (bar in a terminal or a Jupyter
notebook, lines otherwise: a log file or a pipe gets one line per N steps, not thousands of
carriage-return frames).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from clickprompt.formatting import fmt_duration, fmt_int, fmt_num, metric_short

LINE_SECONDS = 30.0  # lines mode: at most this long without a line


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - any failure means "not a notebook"
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_mode(progress: bool = True) -> str:
    """'bar' (a terminal or a notebook), 'lines' (output is a file or a pipe) or 'off'."""
    if not progress:
        return "off"
    env = os.environ.get("CLICKPROMPT_PROGRESS", "").strip().lower()
    if env in ("bar", "lines", "off"):
        return env
    if _in_notebook():
        return "bar"
    try:
        return "bar" if sys.stderr.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


def quiet_library_bars(mode: str) -> None:
    """Off a terminal (lines mode), transformers' and huggingface_hub's own bars (loading and writing
    weights) are carriage-return frames in a log file: switch them off. Nothing changes in a terminal."""
    if mode == "bar":
        return
    try:
        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils.logging import disable_progress_bar

        disable_progress_bar()
        disable_progress_bars()
    except ImportError:  # pragma: no cover - both are dependencies
        pass


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401 - only whether it is there
    except ImportError:
        return False
    return True


def tensorboard_wanted(flag: bool | None) -> bool:
    """train(..., tensorboard=None): on when the package is importable, unless CLICKPROMPT_TENSORBOARD=0."""
    if flag is not None:
        return flag and tensorboard_available()
    if os.environ.get("CLICKPROMPT_TENSORBOARD", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return tensorboard_available()


def read_records(path: Path) -> list[dict]:
    """metrics.jsonl as records; a line cut short by a kill (the last one) is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def is_step_record(r: dict) -> bool:
    return r.get("kind") == "step"


class EpochProgress:
    """One epoch's progress: a tqdm bar (terminal, notebook) or a line every `every` steps (log files).
    The loss shown is the mean over the steps since the last line (bar: the last `every` steps)."""

    def __init__(self, mode: str, tag: str, desc: str, total: int, initial: int, every: int):
        self.mode, self.tag, self.desc, self.total, self.every = mode, tag, desc, total, max(1, every)
        self.n, self.start_n, self.t0 = initial, initial, time.perf_counter()
        self.last_line = self.t0
        self.window: list[float] = []
        self.bar = None
        if mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=f"[{tag}] {desc}", leave=False, unit="step",
                            dynamic_ncols=True)

    def update(self, loss: float | None) -> None:
        self.n += 1
        if loss is not None:  # None: not read from the device at this step (GPU)
            self.window = (self.window + [loss])[-self.every:] if self.mode == "bar" else self.window + [loss]
        if self.bar is not None:
            self.bar.update(1)
            if self.n % self.every == 0 or self.n == self.total:
                self.bar.set_postfix(loss=f"{sum(self.window) / len(self.window):.4f}")
        elif self.mode == "lines":
            now = time.perf_counter()
            if self.n % self.every == 0 or self.n == self.total or now - self.last_line >= LINE_SECONDS:
                self.last_line = now
                print(self.line(now), file=sys.stderr, flush=True)
                self.window = []

    def line(self, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        done = self.n - self.start_n
        rate = (now - self.t0) / done if done else float("nan")
        left = rate * (self.total - self.n) if done else float("nan")
        pct = 100 * self.n / self.total if self.total else 100.0
        loss = f" · loss {sum(self.window) / len(self.window):.4f}" if self.window else ""
        return (f"[{self.tag}] {self.desc} · step {self.n:,}/{self.total:,} ({pct:.0f}%){loss} · "
                f"{rate:.2f} s/step · {fmt_duration(now - self.t0)} elapsed, ~{fmt_duration(left)} left")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def say(text: str, mode: str) -> None:
    """A banner or summary line, printed so that a running bar is not broken."""
    if mode == "off":
        return
    if mode == "bar":
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()
    else:
        print(text, flush=True)


class TrainLog:
    """Progress, banners, step records and TensorBoard events of one train() call (module docstring).
    `main`: rank 0 (only it prints and writes); `reduce(x)`: the mean of a float over ranks (DDP), called
    on every rank at the same steps."""

    def __init__(self, run, cfg, *, main: bool, progress: bool, tensorboard: bool | None, steps_per_epoch: int,
                 n_train: int, monitor: str | None, mode: str, early_stopping: bool, patience: int,
                 checkpoint_config: dict | None, world: int, reduce=None):
        self.run, self.cfg, self.main = run, cfg, main
        self.mode = progress_mode(progress) if main else "off"
        self.steps_per_epoch, self.n_train, self.world = steps_per_epoch, n_train, world
        self.monitor, self.sign, self.early_stopping, self.patience = monitor, (1 if mode == "max" else -1), early_stopping, patience
        self.checkpoint_config = checkpoint_config or {}
        self.reduce = reduce
        self.every = max(1, int(cfg.log_every or 1))
        self.tb_wanted = main and run is not None and tensorboard_wanted(tensorboard)
        self.tb = None
        self.bar: EpochProgress | None = None
        self.tag = self._tag()

    # -- what is running
    def _tag(self) -> str:
        stage = getattr(self.run, "stage", None) if self.run is not None else None
        if stage:
            return str(stage)
        return {"ctr": "train", "clickprompt-pretrain": "pretrain",
                "clickprompt-ctr": "finetune"}.get(self.checkpoint_config.get("kind"), "train")

    def planned_steps(self) -> int:
        total = self.steps_per_epoch * self.cfg.epochs
        return total if self.cfg.max_steps is None else min(total, self.cfg.max_steps)

    def banner(self, device, dtype) -> list[str]:
        cfg, spe = self.cfg, self.steps_per_epoch
        dataset = self.checkpoint_config.get("dataset")
        where = f" on {dataset}" if dataset else ""
        planned = self.planned_steps()
        epochs = f"{cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''} of {spe:,} steps"
        if cfg.max_steps is not None and cfg.max_steps < spe * cfg.epochs:
            budget = f"{planned:,} optimizer steps ({epochs}, capped at {cfg.max_steps:,} by train.max_steps)"
        else:
            budget = f"{planned:,} optimizer steps ({'up to ' if self.early_stopping and self.monitor else ''}{epochs})"
        per = f"{cfg.batch_size:,} samples" + (f" in {cfg.grad_accum} micro-batches" if cfg.grad_accum > 1 else "")
        ranks = f", {self.world} processes" if self.world > 1 else ""
        precision = "bf16 autocast" if dtype is not None else "fp32"
        out = f" -> {self.run.path}" if self.run is not None else ""
        lines = [f"[{self.tag}]{where}: {budget} of {per} ({device}, {precision}{ranks}){out}"]
        if self.monitor:
            better = "higher" if self.sign > 0 else "lower"
            stop = (f"; stops early after {self.patience} epoch{'s' if self.patience != 1 else ''} without a "
                    f"better {self.monitor}" if self.early_stopping else "; no early stopping")
            lines.append(f"[{self.tag}] after each epoch: validation ({self.monitor}, {better} is better; the best "
                         f"epoch's weights are kept){stop}.")
        if self.mode == "lines":
            lines[-1] += f" Progress: a line every {self.every} steps (or {LINE_SECONDS:.0f} s)."
        return lines

    # -- the run
    def start(self, *, resumed: bool, epoch: int, step_in_epoch: int, global_step: int, history: list[dict],
              device=None, dtype=None) -> None:
        if self.main and self.run is not None:
            if resumed:
                self.resume_metrics(history, global_step)
            if self.tb_wanted:
                self._open_tensorboard(resumed, global_step)
        for line in self.banner(device, dtype):
            say(line, self.mode)
        if resumed and self.mode != "off":
            say(f"[{self.tag}] resumed from {self.run.state if self.run is not None else 'the saved state'}: "
                f"epoch {epoch + 1}, step {step_in_epoch}/{self.steps_per_epoch}", self.mode)

    def resume_metrics(self, history: list[dict], global_step: int) -> None:
        """metrics.jsonl as an uninterrupted run would have it at `global_step`: the step lines written up
        to the saved step (those after it are computed again), the epoch lines from the saved history."""
        steps = [r for r in read_records(self.run.metrics_path) if is_step_record(r) and r.get("step", 0) <= global_step]
        merged = sorted([(r["step"], 0, i, r) for i, r in enumerate(steps)]
                        + [(r["step"], 1, i, r) for i, r in enumerate(history)])
        self.run.rewrite_metrics([r for *_, r in merged])

    def _open_tensorboard(self, resumed: bool, global_step: int) -> None:
        log_dir = self.run.path / "tensorboard"
        if not resumed and log_dir.exists():
            shutil.rmtree(log_dir)  # an earlier attempt's events must not mix with this run's
        try:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: events after the saved step (written before a kill) are dropped, as metrics lines are
            self.tb = SummaryWriter(str(log_dir), purge_step=global_step + 1 if resumed else None, flush_secs=30)
        except Exception as e:  # noqa: BLE001 - an optional extra must never stop a training run
            print(f"note: no TensorBoard events for this run ({type(e).__name__}: {e})", file=sys.stderr)
            self.tb = None

    def epoch_start(self, epoch: int, step_in_epoch: int, global_step: int) -> None:
        """The bar's total is the steps this epoch will really run (train.max_steps included)."""
        steps = self.steps_per_epoch
        if self.cfg.max_steps is not None:
            steps = min(steps, step_in_epoch + max(0, self.cfg.max_steps - global_step))
        desc = f"epoch {epoch + 1}/{self.cfg.epochs}"
        self.bar = EpochProgress(self.mode, self.tag, desc, steps, step_in_epoch, self.every)

    def step(self, epoch: int, step_in_epoch: int, global_step: int, running: list[float], lrs, elapsed_s: float,
             fresh: bool = True) -> None:
        """After an optimizer step (every rank): the bar, and a step record every `log_every` steps.
        `fresh`: `running` holds this step's loss (on a GPU the losses are read only at log points)."""
        if global_step % self.every == 0:
            self._record(epoch, global_step, running[-min(self.every, step_in_epoch):], lrs, elapsed_s)
        if self.bar is not None:
            self.bar.update(running[-1] if fresh and running else None)

    def epoch_steps_done(self, epoch: int, step_in_epoch: int, global_step: int, running: list[float], lrs,
                         elapsed_s: float) -> None:
        """The epoch's last steps (every rank): a step record for those since the last one, if any."""
        since = global_step % self.every
        if running and 0 < since and step_in_epoch > 0:
            self._record(epoch, global_step, running[-min(since, step_in_epoch):], lrs, elapsed_s)
        if self.bar is not None:
            self.bar.close()

    def _record(self, epoch: int, global_step: int, losses: list[float], lrs, elapsed_s: float) -> float | None:
        if not losses:
            return None
        loss = float(sum(losses) / len(losses))
        if self.reduce is not None:
            loss = self.reduce(loss)
        if self.main and self.run is not None:
            record = {"kind": "step", "epoch": epoch + 1, "step": global_step, "train_loss": loss,
                      "lr": float(lrs[0]) if lrs else None, "elapsed_s": round(elapsed_s, 3)}
            self.run.append_metrics(record)
            if self.tb is not None:
                self.tb.add_scalar("train/loss", loss, global_step)
                if lrs:
                    self.tb.add_scalar("train/lr", float(lrs[0]), global_step)
        return loss

    def evaluating(self, epoch: int) -> None:
        if self.mode == "lines":
            say(f"[{self.tag}] epoch {epoch + 1}/{self.cfg.epochs}: evaluating on the validation split ...", self.mode)

    def epoch_end(self, record: dict, *, best: bool) -> None:
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("epoch", "step", "elapsed_s") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f"epoch/{k}", v, record["step"])
            self.tb.flush()
        if self.mode == "off":
            return
        parts = []
        for k, v in record.items():
            if k in ("epoch", "step", "elapsed_s") or v is None:
                continue
            text = fmt_num(v) if isinstance(v, float) else str(v)
            mark = " (best so far)" if best and k == self.monitor else ""
            parts.append(f"{metric_short(k)} {text}{mark}")
        say(f"[{self.tag}] epoch {record['epoch']}/{self.cfg.epochs} (step {record['step']:,}): " + " · ".join(parts)
            + f" · {fmt_duration(record.get('elapsed_s'))} of training so far", self.mode)

    def finish(self, *, epochs_run: int, global_step: int, stopped_early: bool, best_epoch, best_metric,
               bad_epochs: int, samples_per_s: float, train_seconds: float, hit_max_steps: bool) -> str:
        """How the run ended, in one line (also returned, for tests)."""
        best = (f"best epoch {best_epoch} ({self.monitor} {fmt_num(best_metric)}), its weights kept"
                if best_epoch is not None and self.monitor else "no validation")
        speed = f"{fmt_int(global_step)} steps, {fmt_duration(train_seconds)} of training ({samples_per_s:,.0f} samples/s)"
        if stopped_early:
            how = (f"stopped early after epoch {epochs_run}: no better {self.monitor} for {bad_epochs} "
                   f"epoch{'s' if bad_epochs != 1 else ''} (patience {self.patience})")
        elif hit_max_steps:
            how = f"stopped at step {global_step:,} in epoch {epochs_run} (train.max_steps = {self.cfg.max_steps:,})"
        else:
            how = f"finished all {epochs_run} epoch{'s' if epochs_run != 1 else ''}"
        line = f"[{self.tag}] {how}; {best}. {speed}."
        say(line, self.mode)
        self.close()
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def mean_over_ranks(device):
    """reduce(x) for TrainLog under DDP: the mean of a float over all ranks (one all-reduce)."""
    import torch
    import torch.distributed as dist

    def reduce(x: float) -> float:
        t = torch.tensor([x], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return float(t) / dist.get_world_size()

    return reduce
