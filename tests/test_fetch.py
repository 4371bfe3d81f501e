"""fetch(): files already there are kept, the recbole-wheel fallback works without the network, and
checksums are enforced. No test touches the network: urlopen and pip are replaced by monkeypatch."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import urllib.error
import urllib.request
import zipfile

import pytest

import clickprompt.data.fetch as fetch_mod
from clickprompt.data.fetch import RECBOLE_ML100K_SHA256, fetch
from clickprompt.data.sources import Source, SourceSpec
from clickprompt.errors import DataError


def _no_network(monkeypatch):
    """Any download attempt raises like an unreachable host; return the list of attempted URLs."""
    attempts = []

    def urlopen(url, *a, **k):
        attempts.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return attempts


def _forbid_pip(monkeypatch):
    def run(*a, **k):
        raise AssertionError(f"unexpected subprocess {a}")

    monkeypatch.setattr(subprocess, "run", run)


def _fake_pip(monkeypatch, wheel_bytes: bytes):
    """`pip download ... -d DIR recbole==...` that writes `wheel_bytes` as the wheel into DIR."""
    calls = []

    def run(cmd, *a, **k):
        calls.append(cmd)
        assert cmd[1:4] == ["-m", "pip", "download"] and fetch_mod.RECBOLE_WHEEL in cmd
        dest = cmd[cmd.index("-d") + 1]
        with open(f"{dest}/recbole-1.2.1-py3-none-any.whl", "wb") as f:
            f.write(wheel_bytes)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def _wheel(tmp_path, raw_dir, corrupt: str | None = None) -> bytes:
    """A wheel holding recbole/dataset_example/ml-100k/* from the real files (optionally one corrupted)."""
    path = tmp_path / "fake.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("recbole/__init__.py", "")
        for name in RECBOLE_ML100K_SHA256:
            data = (raw_dir / name).read_bytes()
            if name == corrupt:
                data = data.replace(b"Toy Story", b"Toy Storm", 1)
            zf.writestr(f"recbole/dataset_example/ml-100k/{name}", data)
    return path.read_bytes()


@pytest.mark.real
def test_real_files_match_pinned_checksums(real_raw_ml100k):
    for name, digest in RECBOLE_ML100K_SHA256.items():
        assert hashlib.sha256((real_raw_ml100k / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.real
def test_present_files_are_detected_not_downloaded(real_raw_ml100k, tmp_path, monkeypatch):
    attempts = _no_network(monkeypatch)
    _forbid_pip(monkeypatch)
    target = tmp_path / "ml-100k"
    target.mkdir()
    for name in RECBOLE_ML100K_SHA256:
        shutil.copy(real_raw_ml100k / name, target / name)
    before = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}
    logs = []
    assert fetch("ml-100k", tmp_path, log=logs.append) == target
    assert fetch("ml-100k", tmp_path, log=logs.append, offline=True) == target
    assert attempts == [] and logs == [f"ml-100k: raw files already present in {target}"] * 2
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == before


@pytest.mark.real
@pytest.mark.parametrize("offline", [True, False])
def test_no_network_falls_back_to_the_recbole_wheel(real_raw_ml100k, tmp_path, monkeypatch, offline):
    attempts = _no_network(monkeypatch)
    wheel = _wheel(tmp_path, real_raw_ml100k)
    monkeypatch.setattr(fetch_mod, "RECBOLE_WHEEL_SHA256", hashlib.sha256(wheel).hexdigest())
    calls = _fake_pip(monkeypatch, wheel)
    logs = []
    root = tmp_path / "raw"
    target = fetch("ml-100k", root, log=logs.append, offline=offline)
    assert target == root / "ml-100k" and len(calls) == 1
    assert attempts == ([] if offline else ["https://files.grouplens.org/datasets/movielens/ml-100k.zip"])
    assert sorted(p.name for p in target.iterdir()) == ["ml-100k.inter", "ml-100k.item", "ml-100k.user"]
    for name in RECBOLE_ML100K_SHA256:
        assert (target / name).read_bytes() == (real_raw_ml100k / name).read_bytes()
    assert any(m.startswith("network unreachable: taking ML-100K from the recbole==1.2.1 wheel") for m in logs)
    assert logs[-1].endswith("(SHA-256 verified)")
    # a second call finds the files and neither downloads nor runs pip again
    _forbid_pip(monkeypatch)
    assert fetch("ml-100k", root, log=logs.append) == target and len(attempts) <= 1


@pytest.mark.real
def test_wheel_member_checksum_mismatch_names_the_file(real_raw_ml100k, tmp_path, monkeypatch):
    _no_network(monkeypatch)
    wheel = _wheel(tmp_path, real_raw_ml100k, corrupt="ml-100k.item")
    monkeypatch.setattr(fetch_mod, "RECBOLE_WHEEL_SHA256", hashlib.sha256(wheel).hexdigest())
    _fake_pip(monkeypatch, wheel)
    with pytest.raises(DataError) as e:
        fetch("ml-100k", tmp_path / "raw", log=lambda m: None, offline=True)
    target = tmp_path / "raw" / "ml-100k"
    msg = str(e.value)
    expected = RECBOLE_ML100K_SHA256["ml-100k.item"]
    assert msg.startswith(f"{target / 'ml-100k.item'}: sha256 checksum mismatch: expected {expected}, got ")
    assert "recbole/dataset_example/ml-100k/ml-100k.item in recbole-1.2.1-py3-none-any.whl" in msg
    assert not (target / "ml-100k.item").exists() and not (target / "ml-100k.item.part").exists()


def test_wheel_checksum_mismatch(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    _fake_pip(monkeypatch, b"not the pinned wheel")
    wheel_error = r"recbole-1\.2\.1-py3-none-any\.whl: sha256 checksum mismatch: expected 9c9948.*; the package index served"
    with pytest.raises(DataError, match=wheel_error):
        fetch("ml-100k", tmp_path, log=lambda m: None, offline=True)


def test_no_network_and_no_package_index(tmp_path, monkeypatch):
    _no_network(monkeypatch)

    def run(cmd, *a, **k):
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: retrying\nERROR: No matching distribution found\n")

    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(DataError) as e:
        fetch("ml-100k", tmp_path, log=lambda m: None)
    assert str(e.value) == (
        "cannot reach GroupLens nor download recbole==1.2.1 from the package index "
        "(ERROR: No matching distribution found)"
    )


def test_archive_checksum_mismatch_names_the_archive(tmp_path, monkeypatch):
    attempts = _no_network(monkeypatch)
    target = tmp_path / "ml-1m"
    target.mkdir()
    (target / "ml-1m.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip, not GroupLens'
    with pytest.raises(DataError) as e:
        fetch("ml-1m", tmp_path, log=lambda m: None)
    expected = "c4d9eecfca2ab87c1945afe126590906"  # GroupLens' published MD5 of ml-1m.zip
    assert str(e.value).startswith(f"{target / 'ml-1m.zip'}: md5 checksum mismatch: expected {expected}, got ")
    assert str(e.value).endswith("; delete it and run `clickprompt data fetch ml-1m` again")
    assert attempts == []  # the archive was there: no download tried


def test_unreachable_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    attempts = _no_network(monkeypatch)
    _forbid_pip(monkeypatch)  # only ml-100k has the wheel fallback
    with pytest.raises(DataError) as e:
        fetch("ml-1m", tmp_path, log=lambda m: None)
    assert attempts == ["https://files.grouplens.org/datasets/movielens/ml-1m.zip"]
    msg = str(e.value)
    assert msg.startswith("cannot download https://files.grouplens.org/datasets/movielens/ml-1m.zip (")
    assert msg.endswith(f"download it by hand and put it in {tmp_path / 'ml-1m'}")
    assert "\n" not in msg


class _ManualSource(Source):
    name = "manual-test"
    spec = SourceSpec(fields=(("user_id", "User ID"),), rating_range=(0, 10), label_threshold=5)
    required_files = ("ratings.csv",)
    manual_instructions = "register at https://example.org/data and download ratings.csv"


def test_source_without_download_says_where_to_get_files(tmp_path, monkeypatch):
    from clickprompt.data import sources

    attempts = _no_network(monkeypatch)
    monkeypatch.setitem(sources._SOURCES, "manual-test", _ManualSource())
    with pytest.raises(DataError) as e:
        fetch("manual-test", tmp_path, log=lambda m: None)
    assert str(e.value) == (
        "manual-test needs a manual download: register at https://example.org/data and download ratings.csv; "
        f"put the files in {tmp_path / 'manual-test'}"
    )
    assert attempts == [] and not (tmp_path / "manual-test").exists()
    # once the files are there, fetch finds them
    (tmp_path / "manual-test").mkdir()
    (tmp_path / "manual-test" / "ratings.csv").write_text("u,i,r\n")
    assert fetch("manual-test", tmp_path, log=lambda m: None) == tmp_path / "manual-test"
