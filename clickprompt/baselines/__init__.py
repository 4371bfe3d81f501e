"""The PLM-based baselines of the paper's Table 2 (Sec 4.1.3, App. B.2), one module each, one registry.

    method     stages                        model (checkpoint kind)          module
    ctr-bert   ctr-bert                      CTRBertForCTR (ctr-bert)          ctr_bert.py
    ptab       ptab-pretrain, ptab-finetune  PTabForPretraining, PTabForCTR    ptab.py
    p5         p5                            P5ForCTR (p5)                     p5.py
    ctrl       ctrl-pretrain, ctrl-finetune  CTRLForPretraining, CTRClassifier ctrl.py

    clickprompt baseline ptab --profile quick --dataset ml-100k --seeds 1 2 3     # both stages, per seed
    clickprompt experiment configs/table2_overall.yaml --dataset ml-1m            # the arms of Table 2

Every stage validates its settings, then writes one run directory (clickprompt.rundir.RunDir: lock, reuse
rule, manifests), trains with the one loop (clickprompt.training.train: checkpoints, resume, DDP) and
finishes like the ClickPrompt stages (pipeline.finish_run: test predictions, results.json). Settings:
clickprompt.baselines.common (the profile's block for the stage, the `paper` profile holding App. B.2's).
A scoring run's results.json names the method ("model": "CTR-BERT", ...), which is how the report places
it in Table 2. Importing this package registers the four methods and their checkpoint kinds
(clickprompt.model.MODEL_CLASSES), so `RunDir(run).load_model()` reloads any of them.
"""

from __future__ import annotations

from clickprompt.baselines.registry import (
    Method, baseline_stages, get_method, is_baseline_stage, list_methods, method_of_stage, register_method, run_stage,
)
from clickprompt.baselines.common import stage_config, user_item_fields  # noqa: E402
from clickprompt.baselines import ctr_bert, ctrl, p5, ptab  # noqa: E402  (registers the four methods)
from clickprompt.model import MODEL_CLASSES  # noqa: E402
from clickprompt.rundir import ModelKind  # noqa: E402

_KINDS = {cls.kind: cls for cls in (ctr_bert.CTRBertForCTR, ptab.PTabForPretraining, ptab.PTabForCTR, p5.P5ForCTR,
                                    ctrl.CTRLForPretraining)}
for _kind, _cls in _KINDS.items():
    if MODEL_CLASSES.setdefault(_kind, _cls) is not _cls:
        raise RuntimeError(f"checkpoint kind {_kind} is already taken by {MODEL_CLASSES[_kind].__name__}")


def unavailable(stage, cfg) -> str | None:
    """Why a baseline stage cannot run with `cfg` on this machine (one line, "not run: ..."), or None."""
    return method_of_stage(stage).unavailable(cfg)


__all__ = ["Method", "baseline_stages", "get_method", "is_baseline_stage", "list_methods",
           "method_of_stage", "register_method", "run_stage", "stage_config", "unavailable", "user_item_fields"]
