"""FiGNN: Fi-GNN, feature interactions via graph neural networks (Li et al., CIKM 2019; ref. [31] of
the paper, Table 2).

Fields are nodes of a fully connected feature graph. Edge weights come from attention over node
pairs (softmax over j != i of LeakyReLU(w^T [e_i || e_j]), Li et al. Eq. 3); each propagation step
aggregates neighbours through per-node output/input matrices (Eqs. 4-5), updates node states with a
shared GRU (Eq. 6) and adds a residual connection to the initial embeddings (Eq. 7; App. B.1:
"apply residual connection for the graph layers").

    q = flatten(h^L)                         output_dim = F * d

Li et al. score nodes with an attentional MLP; following App. B.1 ("one linear layer after the
feature interaction layer", as in the authors' prompt path) the head is a linear layer on q instead.
Li et al.'s optional multi-head self-attention before the graph is left out, as in the authors' code.
Needs at least 2 fields.

Defaults (App. B.1): graph layers from {3, 4, 5, 6}, default 3 (CTRConfig.gnn_layers); residual on.
"""

from __future__ import annotations

import torch

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import FiGNNBlock
from clickprompt.data.schema import FeatureSpec


@register_ctr("fignn")
class FiGNN(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        self.gnn = FiGNNBlock(spec.num_fields, cfg.embed_dim, cfg.gnn_layers)
        self.post_init(spec.num_fields * cfg.embed_dim)

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids)  # (B, F, d)
        return self.gnn(emb).flatten(1)  # (B, F, d) -> (B, F*d)
