"""DCN: Deep & Cross Network (Wang et al., ADKDD 2017; ref. [56] of the paper, Table 2).

A cross network x_{l+1} = x_0 (x_l . w_l) + b_l + x_l and a DNN run in parallel on x_0 = flatten(E);
the combination layer concatenates them (Wang et al. Sec 2.4) and the linear head is the output unit:

    q = [ CrossNet(x_0) , MLP(x_0) ]          output_dim = F * d + dnn_hidden   (F * d if dnn_layers = 0)

Defaults (App. B.1): DNN width {128, 256, 512} x depth {3, 4, 5, 6}, default 256 x 3; the cross
network has as many layers as the DNN (`cross_layers=None` means dnn_layers); dropout 0.1.
"""

from __future__ import annotations

import torch

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import MLP, CrossNet
from clickprompt.data.schema import FeatureSpec


@register_ctr("dcn")
class DCN(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        in_dim = spec.num_fields * cfg.embed_dim
        cross_layers = cfg.dnn_layers if cfg.cross_layers is None else cfg.cross_layers
        self.cross = CrossNet(in_dim, cross_layers)
        self.mlp = MLP(in_dim, cfg.dnn_hidden, cfg.dnn_layers, cfg.dropout) if cfg.dnn_layers > 0 else None
        self.post_init(in_dim + (self.mlp.output_dim if self.mlp is not None else 0))

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        x0 = self.embedding(ids).flatten(1)  # (B, F, d) -> (B, F*d)
        if self.mlp is None:
            return self.cross(x0)  # (B, F*d)
        return torch.cat([self.cross(x0), self.mlp(x0)], dim=-1)  # (B, F*d + H)
