"""`clickprompt data fetch NAME`: download raw files from the official location, checked.

Official zips are downloaded with a progress bar and checked against the publisher's checksum.
Where the network is unreachable and NAME is ml-100k, the identical copy in RecBole's atomic-file
format is taken from the pinned `recbole` wheel on the package index (`pip download --no-deps`):
only the three data files are extracted, each checked by SHA-256; recbole is never imported.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from clickprompt.data.sources import get_source
from clickprompt.errors import DataError

RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_ML100K_SHA256 = {  # measured on recbole-1.2.1-py3-none-any.whl
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, checksum: str, hint: str = "", name: Path | str | None = None) -> None:
    """Raise a DataError naming the file (`name`, default `path`) when its digest is not `checksum`."""
    algorithm, _, expected = checksum.partition(":")
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(
            f"{algorithm} checksum mismatch: expected {expected}, got {actual}" + (f"; {hint}" if hint else ""),
            name if name is not None else path,
        )


def download(url: str, dest: Path, timeout: float = 20.0) -> None:
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                out.write(chunk)
                bar.update(len(chunk))
    tmp.rename(dest)


def _recbole_fallback(target: Path, log) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        log(f"network unreachable: taking ML-100K from the {RECBOLE_WHEEL} wheel on the package index")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp, RECBOLE_WHEEL]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if proc.returncode != 0 or not wheels:
            msg = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise DataError(f"cannot reach GroupLens nor download {RECBOLE_WHEEL} from the package index ({msg[0]})")
        verify(wheels[0], f"sha256:{RECBOLE_WHEEL_SHA256}", f"the package index served another {RECBOLE_WHEEL} wheel")
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as zf:
            for name, digest in RECBOLE_ML100K_SHA256.items():
                part = target / (name + ".part")
                member = f"recbole/dataset_example/ml-100k/{name}"
                with zf.open(member) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                hint = f"{member} in {wheels[0].name} differs from the pinned copy"
                try:
                    verify(part, f"sha256:{digest}", hint, name=target / name)
                except DataError:
                    part.unlink()
                    raise
                part.rename(target / name)
    log(f"wrote {', '.join(RECBOLE_ML100K_SHA256)} to {target} (SHA-256 verified)")
    return target


def fetch(name: str, raw_root: str | Path = "data/raw", log=print, offline: bool = False) -> Path:
    """Make the raw files of `name` available under `raw_root/name`; returns that directory."""
    source = get_source(name)
    target = Path(raw_root) / name
    try:
        source.locate(target)
        log(f"{name}: raw files already present in {target}")
        return target
    except DataError:
        pass
    if source.download is None:
        raise DataError(f"{name} needs a manual download: {source.manual_instructions}; put the files in {target}")
    target.mkdir(parents=True, exist_ok=True)
    archive = target / source.download.filename
    try:
        if offline:
            raise urllib.error.URLError("offline mode")
        if not archive.exists():
            log(f"downloading {source.download.url}")
            download(source.download.url, archive)
        verify(archive, source.download.checksum, f"delete it and run `clickprompt data fetch {name}` again")
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(target)
        log(f"{name}: extracted {archive.name} into {target} ({source.download.checksum.split(':')[0]} verified)")
        return target
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        if name != "ml-100k":
            raise DataError(
                f"cannot download {source.download.url} ({e}); download it by hand and put it in {target}"
            ) from None
        return _recbole_fallback(target, log)
