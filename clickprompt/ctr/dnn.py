"""DNN: a plain multi-layer perceptron over the concatenated field embeddings (the "DNN" row of the
paper's Table 2; the deep part of Wide&Deep / DeepFM, e.g. Covington et al. RecSys 2016).

    q = MLP(flatten(E))                                     output_dim = dnn_hidden

Defaults (App. B.1): width from {128, 256, 512} and depth from {3, 4, 5, 6}, default 256 x 3; ReLU;
dropout from {0.0, 0.1, 0.2}, default 0.1.
"""

from __future__ import annotations

import torch

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import MLP
from clickprompt.data.schema import FeatureSpec


@register_ctr("dnn")
class DNN(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        self.mlp = MLP(spec.num_fields * cfg.embed_dim, cfg.dnn_hidden, cfg.dnn_layers, cfg.dropout)
        self.post_init(self.mlp.output_dim)

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids)  # (B, F, d)
        return self.mlp(emb.flatten(1))  # (B, F*d) -> (B, H)
