"""Checkpoints as `config.json + model.safetensors + manifest.json` (never pickles), written atomically
and verified on every load.

A checkpoint directory is written into a temporary sibling and renamed into place, so a crash leaves
either the old checkpoint or the new one, never half of one. `config.json` records what the weights
are (kind, model names, hyper-parameters) and the dataset fingerprint they were trained on, so a
checkpoint is refused on data with another id space. `manifest.json` records the SHA-256 and size of
every file beside it, the hash of the settings the weights were trained with, the data fingerprint,
the package versions and the code version: a file that was truncated, zeroed, replaced or emptied is
refused with one line naming it, before a single tensor is read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from clickprompt.errors import CheckpointError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def sibling_tmp(path: Path) -> Path:  # written first, then renamed over `path` (atomic on one filesystem)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = sibling_tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_write_json(path: str | Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


# ---------------------------------------------------------------- hashes and provenance


@functools.lru_cache(maxsize=4096)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:  # cached per (file, size, mtime): re-hashed when rewritten
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    st = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def file_record(path: Path) -> dict:
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def json_sha256(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str | None:
    """`git:<commit>` (`+dirty` with uncommitted changes) of the checkout the package runs from, else None."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"git:{commit}" + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import clickprompt

    out = {"python": platform.python_version(), "clickprompt": clickprompt.__version__}
    for name in ("torch", "transformers", "safetensors", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    return {"packages": package_versions(), "code_version": code_version(),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_manifest(directory: Path, files: list[str], **fields) -> dict:
    """manifest.json in `directory`: SHA-256 and size of each of `files` (relative paths), plus `fields`."""
    manifest = {"format": MANIFEST_FORMAT, **fields, **provenance(),
                "files": {name: file_record(directory / name) for name in files}}
    atomic_write_json(directory / MANIFEST, manifest)
    return manifest


def read_manifest(directory: Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise CheckpointError(f"{path}: missing (the files beside it cannot be verified; written by an older "
                              "version, or damaged) - recompute the run with --force")
    try:
        manifest = json.loads(path.read_text())
        manifest["files"].items()
    except (ValueError, KeyError, AttributeError, TypeError):
        raise CheckpointError(f"{path}: not a readable manifest (file damaged)") from None
    return manifest


def verify_files(directory: Path, manifest: dict | None = None) -> dict:
    """Check every file the manifest names against its size and SHA-256; one-line CheckpointError
    naming the first file that is missing, resized or changed. Returns the manifest."""
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    for name, record in manifest["files"].items():
        path = directory / name
        if not path.exists():
            raise CheckpointError(f"{path}: missing (listed in {directory / MANIFEST})")
        if path.stat().st_size != record.get("bytes"):
            raise CheckpointError(f"{path}: size {path.stat().st_size} bytes, manifest says {record.get('bytes')} "
                                  "(file truncated, damaged or replaced)")
        if file_sha256(path) != record.get("sha256"):
            raise CheckpointError(f"{path}: checksum mismatch (file damaged or replaced)")
    return manifest


# ---------------------------------------------------------------- weights


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
    """Write config.json, model.safetensors and manifest.json into `directory`, atomically. The manifest
    takes the kind, dataset, data fingerprint and settings hash (`settings_sha256`) from the config."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_tmp(directory)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_contiguous_state(state), str(tmp / WEIGHTS))
    (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    write_manifest(tmp, [CONFIG, WEIGHTS], kind=config.get("kind"), dataset=config.get("dataset"),
                   data_fingerprint=config.get("data_fingerprint"), config_sha256=config.get("settings_sha256"))
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
    """A checkpoint's config.json alone (the weights stay on disk); `directory` may be a run directory.
    The config file is checked against the manifest (the weights are checked when they are loaded)."""
    directory = checkpoint_dir(directory)
    cfg_path, weights = directory / CONFIG, directory / WEIGHTS
    if not cfg_path.exists() or not weights.exists():
        raise CheckpointError(f"{directory}: not a checkpoint (needs {CONFIG} and {WEIGHTS})")
    manifest = read_manifest(directory)
    verify_files(directory, {**manifest, "files": {k: v for k, v in manifest["files"].items() if k == CONFIG}})
    try:
        return json.loads(cfg_path.read_text())
    except ValueError:
        raise CheckpointError(f"{cfg_path}: not valid JSON (file damaged)") from None


def load_checkpoint(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, weights) of a checkpoint, after checking every file against its manifest."""
    directory = checkpoint_dir(directory)
    config = read_checkpoint_config(directory)
    verify_files(directory)
    try:
        return config, load_file(str(directory / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{directory / WEIGHTS}: cannot read the weights ({str(e).splitlines()[0]})") from None


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


# ---------------------------------------------------------------- resumable trainer state


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of a tensor dict, in name order: stored in the trainer
    state's own header, so the single file is verified without a second file that could fall out of step."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_verified_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """One safetensors file, written to a sibling and renamed into place, with the payload's SHA-256 in
    its header (`payload_sha256`)."""
    tmp = sibling_tmp(path)
    tensors = {k: v.clone() for k, v in tensors.items()}  # no shared storage (tied parameters appear once per name)
    save_file(tensors, str(tmp), metadata={**metadata, "payload_sha256": tensors_sha256(tensors)})
    os.replace(tmp, path)


def read_tensor_header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read ({str(e).splitlines()[0]}; file truncated or damaged)") from None


def load_verified_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of a file written by `save_verified_tensors`, checked against its
    payload hash; one-line CheckpointError naming the file otherwise."""
    header = read_tensor_header(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read ({str(e).splitlines()[0]}; file truncated or damaged)") from None
    expected = header.get("payload_sha256")
    if expected is not None and tensors_sha256(tensors) != expected:
        raise CheckpointError(f"{path}: checksum mismatch (file damaged or replaced)")
    return tensors, header
