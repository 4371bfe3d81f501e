"""nbval runs the five staged notebooks (`pytest` collects notebooks/*.ipynb with --nbval-lax).

They run in file order (01 -> 05: pytest collects a folder's files sorted by name), each reading the
previous one's artefacts. For the test run:
* CLICKPROMPT_PROFILE defaults to "tiny" (real ML-100K, a tiny random PLM: seconds per stage);
  set CLICKPROMPT_PROFILE=quick to test the real quick profile (minutes).
* CLICKPROMPT_RUNS defaults to a fresh temporary folder, removed at the end of the session, so every
  session runs every stage instead of reusing finished runs of an earlier one (runs/notebooks* are
  left alone). Set CLICKPROMPT_RUNS yourself to keep the runs.
The notebook kernels inherit these variables from this process. (notebooks/__init__.py makes this
module `notebooks.conftest`, so it does not shadow tests/conftest.py.)
"""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("CLICKPROMPT_PROFILE", "tiny")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_TEMP_RUNS = None
if "CLICKPROMPT_RUNS" not in os.environ:
    _TEMP_RUNS = os.environ["CLICKPROMPT_RUNS"] = tempfile.mkdtemp(prefix="clickprompt-notebook-runs-")


def pytest_unconfigure(config):
    if _TEMP_RUNS is not None:
        shutil.rmtree(_TEMP_RUNS, ignore_errors=True)
