"""Checkpoints as `config.json + model.safetensors` (never pickles), written atomically.

A checkpoint directory is written into a temporary sibling and renamed into place, so a crash leaves
either the old checkpoint or the new one, never half of one. `config.json` records what the weights
are (kind, model names, hyper-parameters) and the dataset fingerprint they were trained on, so a
checkpoint is refused on data with another id space.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from clickprompt.errors import CheckpointError


def _sibling_tmp(path: Path) -> Path:  # written first, then renamed over `path` (atomic on one filesystem)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = _sibling_tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def _contiguous_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage (tied weights): keep the first name of each storage."""
    out, seen = {}, {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)) if v.numel() else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen[key] = k
        out[k] = v.detach().contiguous().cpu()
    return out


def save_checkpoint(directory: str | Path, state: dict[str, torch.Tensor], config: dict) -> Path:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_contiguous_state(state), str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    if old.exists():
        shutil.rmtree(old)
    return directory


def checkpoint_dir(run_or_checkpoint: str | Path) -> Path:
    """A run directory's best/ checkpoint, or the checkpoint directory itself."""
    path = Path(run_or_checkpoint)
    return path / "best" if (path / "best").is_dir() else path


def read_checkpoint_config(directory: str | Path) -> dict:
    """A checkpoint's config.json alone (the weights stay on disk); `directory` may be a run directory."""
    directory = checkpoint_dir(directory)
    cfg_path, weights = directory / "config.json", directory / "model.safetensors"
    if not cfg_path.exists() or not weights.exists():
        raise CheckpointError(f"{directory}: not a checkpoint (needs config.json and model.safetensors)")
    return json.loads(cfg_path.read_text())


TEST_PREDICTIONS = "predictions_test.parquet"  # a scoring run's test labels and click probabilities


def write_test_predictions(run_dir: str | Path, labels, probs) -> None:
    """The test split's labels and predicted probabilities, for significance tests without the model."""
    import pandas as pd

    path = Path(run_dir) / TEST_PREDICTIONS
    tmp = _sibling_tmp(path)
    pd.DataFrame({"label": labels, "prob": probs.astype("float32")}).to_parquet(tmp, index=False)
    os.replace(tmp, path)


def read_test_predictions(run_dir: str | Path):
    """(labels, probs) as float64 arrays from a run's saved test predictions; None if it has none."""
    import pandas as pd

    path = Path(run_dir) / TEST_PREDICTIONS
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    return frame["label"].to_numpy(dtype="float64"), frame["prob"].to_numpy(dtype="float64")


def load_checkpoint(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    config = read_checkpoint_config(directory)
    return config, load_file(str(checkpoint_dir(directory) / "model.safetensors"))


def check_fingerprint(config: dict, fingerprint: str, directory) -> None:
    trained_on = config.get("data_fingerprint")
    if trained_on is not None and trained_on != fingerprint:
        raise CheckpointError(
            f"{directory}: trained on dataset {config.get('dataset')!r} with fingerprint {trained_on}, "
            f"but this data has fingerprint {fingerprint}; ids would not mean the same thing"
        )


def load_state_into(model: torch.nn.Module, state: dict[str, torch.Tensor], directory, strict: bool = True):
    """Load weights, re-tying shared tensors that safetensors stored once."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    really_missing = []
    for name in missing:
        # a tied weight saved under its twin's name
        twin = next((k for k, v in own.items() if k in state and v.data_ptr() == own[name].data_ptr()), None)
        if twin is None:
            really_missing.append(name)
    if strict and (really_missing or unexpected):
        raise CheckpointError(
            f"{directory}: weights do not fit the model (missing {really_missing[:5]}, unexpected {list(unexpected)[:5]})"
        )
    return really_missing, list(unexpected)
