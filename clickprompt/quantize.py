"""Faster CPU inference with the PLM: dynamic int8 quantisation of its linear layers (torch's own).

    model, config, tok = RunDir("runs/quick/finetune-with-plm").load_model(ds, int8=True)
    clickprompt evaluate runs/quick/finetune-with-plm --int8
    clickprompt analyse latency fp32=RUN int8=RUN:int8 --batch-size 128

`torch.ao.quantization.quantize_dynamic` replaces every `nn.Linear` of the PLM (attention projections,
feed-forward layers, the MLM transform) by one that stores int8 weights (per-channel scales) and
quantises its input activations per batch on the fly: the matrix products run in int8 (oneDNN / fbgemm
VNNI kernels on x86), everything else (embeddings, LayerNorm, softmax, the attention score products,
the CTR model, the prompt generator) stays fp32. Inference only (weights are no longer trainable); CPU
only. Measured speed and the AUC change on ML-100K: benchmarks/results/int8_inference.md.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def quantize_plm(model: nn.Module) -> nn.Module:
    """A copy of a ClickPrompt model (pretraining or with-PLM head) whose PLM's linear layers compute in
    int8; the CTR model and the prompt generator are untouched. A model without a PLM is returned as is."""
    core = getattr(model, "core", None)
    if core is None or getattr(core, "plm", None) is None:
        return model
    model = copy.deepcopy(model).eval()
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        core_q = model.core
        core_q.plm.model = torch.ao.quantization.quantize_dynamic(core_q.plm.model, {nn.Linear}, dtype=torch.qint8)
    return model


def int8_linear_count(model: nn.Module) -> int:
    """How many linear layers of `model` run in int8 (a check that quantisation took place)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(isinstance(m, DynamicLinear) for m in model.modules())
