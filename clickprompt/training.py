"""The one training loop every stage uses (CTR from scratch, PA-MLM pretraining, finetuning).

Contract: `model(**batch)` returns a dict with "loss" (training) and "logits" (prediction); batches are
built by a `make_batch(indices)` function from in-memory arrays, so there is no per-sample Python in
the hot loop. The loop owns the optimizer (AdamW, Sec 4.1.4), the schedule, the device and precision
(bf16 autocast on CUDA, or on request on CPUs with bf16 units), gradient accumulation, early stopping
on a validation metric keeping the best weights, progress and JSON-lines metrics (per epoch and every
`log_every` steps; clickprompt.progress), NaN guards, and resumable state. Under `torchrun` it runs
data-parallel (DDP; gloo on CPU, nccl on CUDA): each rank takes its share of every global batch and only
rank 0 writes files.

Resuming: the shuffle order of epoch e is a pure function of (seed, e), and the trainer state (model,
optimizer, schedule, RNG, best weights, position in the epoch) is saved atomically every
`save_every` steps and at each epoch end, so a run killed at any point continues from its last save
and follows the same trajectory as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from clickprompt.checkpoint import (
    check_fingerprint, load_verified_tensors, read_tensor_header, save_checkpoint, save_verified_tensors,
)
from clickprompt.config import TrainConfig
from clickprompt.errors import CheckpointError, ClickPromptError
from clickprompt.progress import TrainLog, mean_over_ranks
from clickprompt.rundir import RunDir


class TrainingError(ClickPromptError):
    pass


# ---------------------------------------------------------------- devices, precision, seeds


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if dist.is_available() and dist.is_initialized() and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None = fp32. "auto": bf16 on CUDA devices that support it, fp32 on CPU. "bf16" on a CPU is
    honoured even without bf16 units (correct, only slower there): an explicit request is never
    silently turned into fp32."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if precision == "bf16":
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


# ---------------------------------------------------------------- distributed


def init_distributed() -> tuple[int, int]:
    """(rank, world_size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """Rank 0, or a single process. Under torchrun the answer is right before the process group exists
    too (RANK is set), so stages that write files before `train` starts (config.json, the tokenizer)
    write them from rank 0 only."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


# ---------------------------------------------------------------- batching helpers


def epoch_order(n: int, seed: int, epoch: int, lengths: np.ndarray | None = None, batch_size: int = 1,
                megabatch: int = 50) -> np.ndarray:
    """The epoch's sample order: a permutation that depends only on (seed, epoch).

    With `lengths` (tokens per sample, train.group_by_length), samples of similar length share a batch,
    so text batches (padded to their longest sample) carry little padding -- the idea of Hugging Face
    Trainer's group_by_length: the permutation is cut into megabatches of `megabatch` batches, each
    sorted by length, longest first; the full batches are then shuffled (the last, partial batch stays
    last, so `order[s * batch_size:(s + 1) * batch_size]` are still the batches)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    if lengths is None:
        return order
    lengths = np.asarray(lengths)[:n]
    size = megabatch * batch_size
    for start in range(0, n, size):
        chunk = order[start : start + size]
        order[start : start + size] = chunk[np.argsort(-lengths[chunk], kind="stable")]
    full = n // batch_size
    batches = rng.permutation(full)
    head = order[: full * batch_size].reshape(full, batch_size)[batches].reshape(-1)
    return np.concatenate([head, order[full * batch_size :]])


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on `device`; to a GPU from pinned host memory, without waiting for the copy."""
    pin = device.type == "cuda"
    return {k: ((v.pin_memory() if pin and v.device.type == "cpu" else v).to(device, non_blocking=True)
                if torch.is_tensor(v) else v) for k, v in batch.items()}


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    make_batch: Callable[[np.ndarray], dict],
    n: int,
    batch_size: int = 1024,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    output: str = "logits",
    progress: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Run the model over samples 0..n-1; returns the chosen output as float64 numpy, in sample order.

    A batcher with per-sample token `lengths` (text batches, padded to their longest sample) is fed in
    order of length, so its batches carry almost no padding (ML-100K test split: 21-23% fewer token
    positions than in sample order, benchmarks/padding.py); padding is masked, so the outputs are the same."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    lengths = getattr(make_batch, "lengths", None)
    order = np.argsort(np.asarray(lengths)[:n], kind="stable") if lengths is not None else np.arange(n)
    outs = []
    n_batches = math.ceil(n / batch_size)
    for start in tqdm(range(0, n, batch_size), desc="predict", disable=not progress, leave=False):
        batch = to_device(make_batch(order[start : start + batch_size]), device)
        batch.pop("labels", None)
        with autocast(device, dtype):
            out = model(**batch)[output]
        outs.append(out.float().cpu())
        if on_batch is not None:  # (batches done, batches in all): the dashboard's progress bar
            on_batch(len(outs), n_batches)
    model.train(was_training)
    if not outs:
        return np.zeros(0)
    ordered = torch.cat(outs).double().numpy()
    result = np.empty_like(ordered)
    result[order] = ordered
    return result


# ---------------------------------------------------------------- the loop


class StepLosses:
    """Each optimizer step's loss, kept on the device until the host needs it (`flush`: at log points,
    state saves and epoch ends), so a GPU step never waits for the host to read a number: `every` steps
    are read in one synchronisation. On a CPU `every` is 1 (reading is free there), which also keeps the
    non-finite-loss error at the exact step. The values land in `running`, the epoch's per-step losses."""

    def __init__(self, running: list[float], every: int = 1):
        self.running, self.every = running, max(1, every)
        self.pending: list[tuple[torch.Tensor, int, int, int]] = []

    def add(self, loss: torch.Tensor | float, epoch: int, step_in_epoch: int, global_step: int) -> None:
        self.pending.append((torch.as_tensor(loss), epoch, step_in_epoch, global_step))
        if self.every == 1:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        values = torch.stack([t.reshape(()) for t, *_ in self.pending]).double().cpu().tolist()
        for value, (_, epoch, step_in_epoch, global_step) in zip(values, self.pending):
            if not math.isfinite(value):
                self.pending.clear()
                raise TrainingError(
                    f"loss is {value} at epoch {epoch + 1}, step {step_in_epoch + 1} (global step {global_step + 1}); "
                    "lower the learning rate or check the data"
                )
        self.running.extend(values)
        self.pending.clear()



@dataclass
class TrainResult:
    best_metric: float | None
    best_epoch: int | None
    epochs_run: int
    steps: int
    history: list[dict] = field(default_factory=list)
    samples_per_s: float = 0.0
    stopped_early: bool = False


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, param_groups: list[dict] | None):
    """AdamW (Sec 4.1.4). `param_groups` lets the PLM part have its own learning rate; lr 0 freezes."""
    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    kept = []
    for g in groups:
        params = [p for p in g["params"] if p.requires_grad]
        if g.get("lr", cfg.lr) == 0:
            for p in params:
                p.requires_grad_(False)  # lr 0 = frozen (Sec 4.1.4): no gradient work at all
            continue
        if params:
            kept.append({**g, "params": params})
    if not kept:
        raise TrainingError("nothing to train: every parameter group is frozen")
    # The fused kernel updates all tensors in one call instead of a per-tensor loop (same AdamW math).
    # It needs float tensors on CPU or CUDA.
    params = [p for g in kept for p in g["params"]]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(kept, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def plm_param_groups(model, plm, lr: float, plm_lr: float) -> list[dict]:
    """Optimizer groups (Sec 4.1.4): the CTR part (CTR model, prompt generator, heads) at `lr`, the PLM at
    `plm_lr` (0 freezes it: see make_optimizer)."""
    plm_ids = {id(p) for p in plm.parameters()}
    return [{"params": [p for p in model.parameters() if id(p) not in plm_ids], "lr": lr},
            {"params": list(plm.parameters()), "lr": plm_lr}]


def make_schedule(optimizer, total_steps: int, warmup_ratio: float, schedule: str):
    warmup = int(round(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "linear":
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _rng_states() -> dict[str, torch.Tensor]:
    """The random states dropout draws from: the CPU generator, and every CUDA device's where CUDA is in use
    (a resumed GPU run must draw the dropout masks the uninterrupted one would have)."""
    states = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def _restore_rng_states(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


TRAINER_STATE = "trainer.safetensors"


def _save_trainer_state(path: Path, model, best_state, optimizer, scheduler, info: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v.contiguous() for k, v in best_state.items()})
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for k, v in st.items():
            tensors[f"opt.{idx}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    tensors.update(_rng_states())
    path.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({**info, "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict()}, default=str)
    # ONE file holds tensors and counters (the JSON rides in the safetensors header) with the payload's
    # SHA-256, replaced in one rename: a kill at any instant leaves the previous state or the new one,
    # never a mix, and a damaged file is refused by name.
    save_verified_tensors(path / TRAINER_STATE, tensors, {"trainer_state": meta})


def read_trainer_meta(path: str | Path) -> dict | None:
    """The counters of a resumable state directory (epoch, step, best metric, history, dataset
    fingerprint), or None where there is no saved state. A damaged file: one-line CheckpointError."""
    file = Path(path) / TRAINER_STATE
    if not file.exists():
        return None
    meta = read_tensor_header(file).get("trainer_state")
    try:
        return json.loads(meta) if meta is not None else None
    except ValueError:
        raise CheckpointError(f"{file}: unreadable trainer counters (file damaged)") from None


def _load_trainer_state(path: Path, model, optimizer, scheduler) -> tuple[dict, dict | None]:
    tensors, _ = load_verified_tensors(path / TRAINER_STATE)
    meta = read_trainer_meta(path)
    saved = {k[6:]: tuple(v.shape) for k, v in tensors.items() if k.startswith("model.")}
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if saved != own:
        diff = sorted(set(saved.items()) ^ set(own.items()))[:3]
        raise CheckpointError(
            f"{path}: the saved training state belongs to a different model (differences such as {diff}); "
            "run without --resume, or give another --out"
        )
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    groups = meta["param_groups"]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    _restore_rng_states(tensors)
    return meta, best


def train(
    model: torch.nn.Module,
    make_batch: Callable[[np.ndarray], dict],
    n_train: int,
    cfg: TrainConfig,
    run: RunDir | str | Path | None = None,
    *,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    monitor: str = "valid_auc",
    mode: str = "max",
    param_groups: list[dict] | None = None,
    checkpoint_config: dict | None = None,
    schedule: str = "constant",
    resume: bool = False,
    progress: bool = True,
    early_stopping: bool = True,
    patience: int | None = None,
    tensorboard: bool | None = None,
) -> TrainResult:
    """Train `model`; evaluate after every epoch, keep the best weights (loaded back at the end).

    Progress, stage banners, step records in metrics.jsonl (every train.log_every steps) and TensorBoard
    events (`tensorboard`: None = on where the package is installed) come from clickprompt.progress."""
    rank, world = init_distributed()
    main = rank == 0
    device = resolve_device(cfg.device)
    dtype = autocast_dtype(cfg.precision, device)
    seed_everything(cfg.seed)
    model.to(device)
    optimizer = make_optimizer(model, cfg, param_groups)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = make_schedule(optimizer, total_steps, cfg.warmup_ratio, schedule)
    ddp_model = model
    if cfg.compile:  # the training steps through the compiled graph; state_dict, evaluation: the model itself
        ddp_model = torch.compile(model)
    if world > 1:
        # find_unused_parameters: some trainable parameters get no gradient in a stage (the CTR head during
        # PA-MLM, the PLM's MLM head during finetuning); without it DDP waits for them and fails.
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            ddp_model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )

    run = RunDir(run) if run is not None and not isinstance(run, RunDir) else run
    state_dir = run.state if run is not None else None
    sign = 1.0 if mode == "max" else -1.0
    epoch, step_in_epoch, global_step, bad_epochs = 0, 0, 0, 0
    best_metric, best_epoch, best_state, history = None, None, None, []
    data_id = {k: checkpoint_config.get(k) for k in ("dataset", "data_fingerprint")} if checkpoint_config else {}
    running: list[float] = []  # per-step losses of the current epoch (kept across a resume)
    counters = (0, 0.0)  # samples trained on and training seconds so far, summed across resumes
    saved_meta = read_trainer_meta(state_dir) if resume and state_dir is not None else None
    if saved_meta is not None:
        if data_id.get("data_fingerprint") is not None:  # refuse a state trained on other data
            check_fingerprint(saved_meta, data_id["data_fingerprint"], state_dir)
        meta, best_state = _load_trainer_state(state_dir, model, optimizer, scheduler)
        counters = (int(meta.get("samples_seen", 0)), float(meta.get("train_seconds", 0.0)))
        epoch, step_in_epoch, global_step = meta["epoch"], meta["step_in_epoch"], meta["global_step"]
        best_metric, best_epoch, bad_epochs, history = meta["best_metric"], meta["best_epoch"], meta["bad_epochs"], meta["history"]
        running = list(meta.get("running", [])) if step_in_epoch else []
        # metrics.jsonl goes back to the saved step in log.start (a kill between a metrics line and the
        # state save must leave no duplicates)
    elif run is not None and main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.metrics_path.unlink(missing_ok=True)
        if state_dir.exists():  # an older run's state must never be resumed into this one
            shutil.rmtree(state_dir)

    def save_state(seconds_in_epoch: float = 0.0):
        if state_dir is not None and main:
            info = dict(
                epoch=epoch, step_in_epoch=step_in_epoch, global_step=global_step, best_metric=best_metric,
                best_epoch=best_epoch, bad_epochs=bad_epochs, history=history, running=running,
                samples_seen=samples_seen, train_seconds=t_train + seconds_in_epoch, **data_id,
            )
            _save_trainer_state(state_dir, model, best_state, optimizer, scheduler, info)

    micro = max(1, cfg.batch_size // cfg.grad_accum)
    # group_by_length needs per-sample token counts from the batcher (text batchers have them); CTR-only
    # batches have one fixed width, so for them there is nothing to group and the order is the plain one
    lengths = getattr(make_batch, "lengths", None) if cfg.group_by_length else None
    stopped_early, (samples_seen, t_train) = False, counters  # elapsed_s and samples/s span the whole run
    done = cfg.max_steps is not None and global_step >= cfg.max_steps
    patience = cfg.patience if patience is None else patience  # epochs without a better monitor value
    if early_stopping and evaluate is not None and bad_epochs >= patience:
        stopped_early = done = True  # resumed after the run had already stopped early
    losses = StepLosses(running, every=1 if device.type == "cpu" else cfg.log_every)
    log = TrainLog(run, cfg, main=main, progress=progress, tensorboard=tensorboard, steps_per_epoch=steps_per_epoch,
                   n_train=n_train, monitor=monitor if evaluate is not None else None, mode=mode,
                   early_stopping=early_stopping and evaluate is not None, patience=patience,
                   checkpoint_config=checkpoint_config, world=world, reduce=mean_over_ranks(device) if world > 1 else None)
    log.start(resumed=saved_meta is not None, epoch=epoch, step_in_epoch=step_in_epoch, global_step=global_step,
              history=history, device=device, dtype=dtype)
    while epoch < cfg.epochs and not done:
        order = epoch_order(n_train, cfg.seed, epoch, lengths, cfg.batch_size)
        if hasattr(make_batch, "set_epoch"):  # per-epoch randomness of the batcher (PA-MLM masking)
            make_batch.set_epoch(epoch)
        ddp_model.train()
        log.epoch_start(epoch, step_in_epoch, global_step)  # a bar over the steps that will really run
        t0 = time.perf_counter()
        while step_in_epoch < steps_per_epoch:
            batch_idx = order[step_in_epoch * cfg.batch_size : (step_in_epoch + 1) * cfg.batch_size]
            shard = batch_idx[rank::world]  # this rank's part of the global batch
            weight = world / len(batch_idx)  # DDP averages over ranks: len(part) * weight sums to the global mean
            if len(shard) == 0:  # fewer samples than ranks: join the all-reduce with a zero-weight sample
                shard, weight = batch_idx[:1], 0.0
            optimizer.zero_grad(set_to_none=True)
            loss_sum = 0.0  # mean loss over this rank's samples of the batch (all of them in one process)
            for m in range(0, len(shard), micro):
                part = shard[m : m + micro]
                batch = to_device(make_batch(part), device)
                with autocast(device, dtype):
                    loss = ddp_model(**batch)["loss"]
                (loss * (len(part) * weight)).backward()
                loss_sum = loss_sum + loss.detach().double() * (len(part) / len(shard))  # stays on the device
            losses.add(loss_sum, epoch, step_in_epoch, global_step)
            optimizer.step()
            scheduler.step()
            step_in_epoch += 1
            global_step += 1
            samples_seen += len(batch_idx)
            if global_step % losses.every == 0:
                losses.flush()  # the host reads the losses here, and only here
            log.step(epoch, step_in_epoch, global_step, running, scheduler.get_last_lr(),
                     t_train + time.perf_counter() - t0, fresh=not losses.pending)
            if cfg.save_every and global_step % cfg.save_every == 0:
                losses.flush()
                save_state(time.perf_counter() - t0)
            if cfg.max_steps is not None and global_step >= cfg.max_steps:
                done = True
                break
        losses.flush()
        log.epoch_steps_done(epoch, step_in_epoch, global_step, running, scheduler.get_last_lr(),
                             t_train + time.perf_counter() - t0)
        t_train += time.perf_counter() - t0
        train_loss = float(np.mean(running)) if running else None
        if world > 1 and running:  # the mean over all ranks' samples, not rank 0's half
            t = torch.tensor([train_loss], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            train_loss = float(t) / world
        record = {"epoch": epoch + 1, "step": global_step, "train_loss": train_loss}
        improved = False
        if evaluate is not None:
            log.evaluating(epoch)
            metrics = evaluate(model)  # named as they are recorded: valid_auc, valid_mlm_loss, ...
            record.update(metrics)
            value = metrics.get(monitor)
            if value is not None and (best_metric is None or sign * value > sign * best_metric):
                best_metric, best_epoch, bad_epochs, improved = value, epoch + 1, 0, True
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                if run is not None and main and checkpoint_config is not None:
                    save_checkpoint(run.best, best_state, {**checkpoint_config, "epoch": epoch + 1, monitor: value})
            else:
                bad_epochs += 1
        record["elapsed_s"] = round(t_train, 3)
        history.append(record)
        log.epoch_end(record, best=improved)
        if run is not None and main:
            run.append_metrics(record)
        epoch += 1
        step_in_epoch = 0
        running.clear()
        save_state()
        if early_stopping and evaluate is not None and bad_epochs >= patience:
            stopped_early = True
            break

    if best_state is not None:
        model.load_state_dict(best_state)
        best_dir = run.best if run is not None else None
        if best_dir is not None and main and checkpoint_config is not None and not (best_dir / "model.safetensors").exists():
            # killed while best/ was being swapped for a newer one: write it again from the trainer state
            save_checkpoint(best_dir, best_state, {**checkpoint_config, "epoch": best_epoch, monitor: best_metric})
    elif run is not None and main and checkpoint_config is not None:
        save_checkpoint(run.best, model.state_dict(), {**checkpoint_config, "epoch": epoch})
    log.finish(epochs_run=epoch, global_step=global_step, stopped_early=stopped_early, best_epoch=best_epoch,
               best_metric=best_metric, bad_epochs=bad_epochs, samples_per_s=samples_seen / t_train if t_train else 0.0,
               train_seconds=t_train, hit_max_steps=cfg.max_steps is not None and global_step >= cfg.max_steps)
    return TrainResult(
        best_metric=best_metric, best_epoch=best_epoch, epochs_run=epoch, steps=global_step, history=history,
        samples_per_s=samples_seen / t_train if t_train else 0.0, stopped_early=stopped_early,
    )
