"""FGCNN: Feature Generation by CNN (Liu et al., WWW 2019; ref. [38] of the paper, Table 2).

Feature generation: tanh convolutions (kernel k x 1) over the field axis of E, each followed by max
pooling (p x 1) and a tanh recombination layer that emits R new feature embeddings per pooled row.
The raw and the new features then go through an IPNN-style deep classifier (Liu et al. Sec 3.3):

    E' = [ E ; FeatureGeneration(E) ]                       (B, N, d), N = F + R * sum_i rows_i
    q  = MLP([ flatten(E') , (<e'_i, e'_j>)_{i<j} ])        output_dim = dnn_hidden
    rows_i = ceil(rows_{i-1} / p_i), rows_0 = F;  MLP input = N * d + N (N - 1) / 2

For F = 8 with the defaults, rows = 4, 2, 1, 1, so N = 8 + 3 * 8 = 32.

Defaults (App. B.1): 4 tanh convolutions with 6, 8, 10, 12 channels, kernel 7, pooling 2,
recombination 3 channels each; DNN width {128, 256, 512} x depth {3, 4, 5, 6}, default 256 x 3.
The kernel is clipped per layer to the largest odd size <= the rows it sees (7 -> 3 for 3 fields)
and the pool to the rows. Generation and classifier share the embedding table (the authors' code
allows both; sharing keeps one table per field). No batch norm, as App. B.1 describes the convolutions.
"""

from __future__ import annotations

import torch

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import MLP, FeatureGeneration, InnerProduct
from clickprompt.data.schema import FeatureSpec


@register_ctr("fgcnn")
class FGCNN(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        self.generation = FeatureGeneration(
            spec.num_fields, cfg.embed_dim, tuple(cfg.fgcnn_channels), cfg.fgcnn_kernel, cfg.fgcnn_pool,
            cfg.fgcnn_recombine,
        )
        self.num_features = spec.num_fields + self.generation.num_new  # N
        self.product = InnerProduct(self.num_features)
        in_dim = self.num_features * cfg.embed_dim + self.product.num_pairs
        self.mlp = MLP(in_dim, cfg.dnn_hidden, cfg.dnn_layers, cfg.dropout)
        self.post_init(self.mlp.output_dim)

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(ids)  # (B, F, d)
        feats = torch.cat([emb, self.generation(emb)], dim=1)  # (B, N, d)
        x = torch.cat([feats.flatten(1), self.product(feats)], dim=-1)  # (B, N*d + N(N-1)/2)
        return self.mlp(x)  # (B, H)
