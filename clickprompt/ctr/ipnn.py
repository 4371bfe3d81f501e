"""IPNN: inner-product PNN (Qu et al., ICDM 2016; ref. [49] of the paper, "PNN" in Table 2).

The product layer keeps the field embeddings (the linear signal z) and all pairwise inner products
p_ij = <v_i, v_j>, i < j; an MLP on top learns the higher-order interactions:

    q = MLP([ flatten(E) , (<v_i, v_j>)_{i<j} ])               output_dim = dnn_hidden
    MLP input size = F * d + F (F - 1) / 2

This concatenate-then-MLP form follows the authors' ClickPrompt code and FuxiCTR (the first MLP
layer plays the role of PNN's product-layer projection). Pairs come from one batched Gram matrix
gathered at an index buffer, so F may be any size >= 1 (F = 1 has no pairs).

Defaults (App. B.1): DNN width {128, 256, 512} x depth {3, 4, 5, 6}, default 256 x 3; ReLU;
dropout 0.1.
"""

from __future__ import annotations

import torch

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import MLP, InnerProduct
from clickprompt.data.schema import FeatureSpec


@register_ctr("ipnn")
class IPNN(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        self.product = InnerProduct(spec.num_fields)
        in_dim = spec.num_fields * cfg.embed_dim + self.product.num_pairs
        self.mlp = MLP(in_dim, cfg.dnn_hidden, cfg.dnn_layers, cfg.dropout)
        self.post_init(self.mlp.output_dim)

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids)  # (B, F, d)
        x = torch.cat([emb.flatten(1), self.product(emb)], dim=-1)  # (B, F*d + P)
        return self.mlp(x)  # (B, H)
