"""ClickPrompt itself: one backbone (CTR model -> prompt generator -> PLM) with thin heads.

    CTRClassifier              a CTR model alone: from scratch (baselines) or w/o PLM (Eq. 10)
    ClickPromptModel           the core: CTR model + prompt generator (Eq. 6) + PLM with prefixes (Eq. 7)
    ClickPromptForPretraining  PA-MLM head (Sec 3.5.1)
    ClickPromptForCTR          finetuning with PLM: alpha-weighted CTR and PLM logits (Eq. 9)

Every head returns a dict with "logits" and, when labels are given, "loss".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clickprompt.ctr.base import CTRModel


class CTRClassifier(nn.Module):
    """y = sigma(MLP(q)) (Eq. 10 / Sec 2.1): the CTR model with the BCE loss of Eq. 2.

    Its state dict is the bare CTR model's under the prefix `ctr.`, so a ClickPrompt w/o PLM
    checkpoint loads into the plain CTR model and the inference graph is exactly the backbone's."""

    def __init__(self, ctr: CTRModel):
        super().__init__()
        self.ctr = ctr

    def forward(self, ids: torch.Tensor, labels: torch.Tensor | None = None, **_) -> dict:
        logits = self.ctr(ids)  # (B,)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.binary_cross_entropy_with_logits(logits.float(), labels.float())  # Eq. 2
        return out
