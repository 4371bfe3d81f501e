"""xDeepFM (Lian et al., KDD 2018; ref. [33] of the paper, Table 2).

Classic xDeepFM logit (Eq. 11 of Lian et al.): w_lin^T a + w_cin^T p^+ + w_dnn^T x_dnn + b, i.e. a
linear (first-order) part, the sum-pooled CIN outputs p^+ and the DNN output, each with its own
weights. All three are folded into q so that the single linear head (App. B.1) is exactly that
output unit:

    q = [ sum_i w_{x_i} ,  CIN(E) ,  MLP(flatten(E)) ]
    output_dim = 1 + cin_layers * cin_units + dnn_hidden      (the DNN part is dropped if dnn_layers = 0)

The head weight on the first-order entry is initialised to 1 (the linear part enters unweighted,
as in the classic form); the rest use nn.Linear's default initialisation.

Defaults (App. B.1): CIN layers from {2, 3, 4, 5}, default 3; 25 units per CIN layer; DNN width
{128, 256, 512} x depth {3, 4, 5, 6}, default 256 x 3; dropout 0.1. CIN uses identity activation and
direct connections (no split-half), as in the authors' ClickPrompt code.
"""

from __future__ import annotations

import torch
from torch import nn

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import CIN, MLP, FieldEmbedding
from clickprompt.data.schema import FeatureSpec


@register_ctr("xdeepfm")
class XDeepFM(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        self.linear = FieldEmbedding(spec.vocab_sizes, 1, init_std=None)  # first-order weights w
        self.cin = CIN(spec.num_fields, [cfg.cin_units] * cfg.cin_layers)
        self.mlp = None
        dnn_dim = 0
        if cfg.dnn_layers > 0:
            self.mlp = MLP(spec.num_fields * cfg.embed_dim, cfg.dnn_hidden, cfg.dnn_layers, cfg.dropout)
            dnn_dim = self.mlp.output_dim
        self.post_init(1 + self.cin.output_dim + dnn_dim)
        with torch.no_grad():
            nn.init.ones_(self.head.weight[:, :1])  # first-order part enters unweighted

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids)  # (B, F, d)
        parts = [self.linear(ids).sum(dim=1), self.cin(emb)]  # (B, F, 1) -> (B, 1); (B, L*units)
        if self.mlp is not None:
            parts.append(self.mlp(emb.flatten(1)))  # (B, F*d) -> (B, H)
        return torch.cat(parts, dim=-1)  # (B, output_dim)
