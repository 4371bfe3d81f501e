"""DeepFM (Guo et al., IJCAI 2017; ref. [13] of the paper, Table 2).

Classic DeepFM logit: sigmoid argument = y_FM + y_DNN, with y_FM = w_0 + sum_i w_{x_i} +
sum_{i<j} <v_i, v_j> and y_DNN = w^T MLP(flatten(E)) + b, both parts sharing the embeddings E.

Folded into q for the single linear head (App. B.1):

    q = [ sum_i w_{x_i} ,  sum_{i<j} v_i * v_j ,  MLP(flatten(E)) ]     output_dim = 1 + d + dnn_hidden

The head's weights on the first 1 + d entries are initialised to 1 (bias 0), so at initialisation
the logit is exactly y_FM + y_DNN; the DNN part keeps nn.Linear's default initialisation.

Defaults (App. B.1): DNN width {128, 256, 512} x depth {3, 4, 5, 6}, default 256 x 3; ReLU; dropout
0.1 from {0.0, 0.1, 0.2}.
"""

from __future__ import annotations

import torch
from torch import nn

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import MLP, FieldEmbedding, bi_interaction
from clickprompt.data.schema import FeatureSpec


@register_ctr("deepfm")
class DeepFM(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        self.linear = FieldEmbedding(spec.vocab_sizes, 1, init_std=None)  # first-order weights w
        self.mlp = MLP(spec.num_fields * cfg.embed_dim, cfg.dnn_hidden, cfg.dnn_layers, cfg.dropout)
        self.post_init(1 + cfg.embed_dim + self.mlp.output_dim)
        with torch.no_grad():
            nn.init.ones_(self.head.weight[:, : 1 + cfg.embed_dim])  # the FM part, as in classic DeepFM
            nn.init.zeros_(self.head.bias)

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids)  # (B, F, d)
        first = self.linear(ids).sum(dim=1)  # (B, F, 1) -> (B, 1)
        deep = self.mlp(emb.flatten(1))  # (B, F*d) -> (B, H)
        return torch.cat([first, bi_interaction(emb), deep], dim=-1)  # (B, 1 + d + H)
