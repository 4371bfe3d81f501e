"""FM: Factorization Machines (Rendle, ICDM 2010; ref. [53] of the paper, Table 2).

Classic FM logit: w_0 + sum_i w_{x_i} + sum_{i<j} <v_i, v_j>.

To fit the zoo's contract (q, then ONE linear head; App. B.1), both terms are folded into q:

    q = [ sum_i w_{x_i} ,  sum_{i<j} v_i * v_j ]          output_dim = 1 + d

where the second part is the bi-interaction vector (its element sum is the pairwise FM term). The
head is initialised to weights 1 and bias 0, so at initialisation `forward` IS the classic FM logit
(w_0 = head bias); training may then re-weight the d bi-interaction components. First-order weights
w live in their own one-column FieldEmbedding (`self.linear`), initialised to zero.

Defaults: embed_dim from CTRConfig (App. B.1: 32 for MovieLens/BookCrossing, 16 otherwise). FM has
no other hyper-parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import FieldEmbedding, bi_interaction
from clickprompt.data.schema import FeatureSpec


@register_ctr("fm")
class FM(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        self.linear = FieldEmbedding(spec.vocab_sizes, 1, init_std=None)  # first-order weights w
        self.post_init(1 + cfg.embed_dim)
        nn.init.ones_(self.head.weight)  # classic FM at initialisation
        nn.init.zeros_(self.head.bias)

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids)  # (B, F, d)
        first = self.linear(ids).sum(dim=1)  # (B, F, 1) -> (B, 1)
        return torch.cat([first, bi_interaction(emb)], dim=-1)  # (B, 1 + d)
