"""DCNv2: DCN-V2 with full-rank cross layers (Wang et al., WWW 2021; ref. [57] of the paper, Table 2;
the paper's default CTR backbone, Sec 4.1.4).

Cross layer (DCN-V2 Eq. 1): x_{l+1} = x_0 * (W_l x_l + b_l) + x_l with a full-rank W_l (no low-rank
mixture). DCN-V2 Sec 3 offers two combinations with the DNN; `cfg.dcnv2_structure` picks one:

    "parallel" (default):  q = [ CrossNetV2(x_0) , MLP(x_0) ]    output_dim = F * d + dnn_hidden
    "stacked":             q = MLP(CrossNetV2(x_0))              output_dim = dnn_hidden

with x_0 = flatten(E). The default is "parallel" because the authors' ClickPrompt code builds DCNv2
that way (cross net and DNN side by side, concatenated before the output layer). With dnn_layers = 0
both reduce to q = CrossNetV2(x_0), output_dim = F * d.

Defaults (App. B.1): DNN width {128, 256, 512} x depth {3, 4, 5, 6}, default 256 x 3; the cross
network has as many layers as the DNN (`cross_layers=None` means dnn_layers); dropout 0.1.
"""

from __future__ import annotations

import torch

from clickprompt.config import CTRConfig
from clickprompt.ctr import register_ctr
from clickprompt.ctr.base import CTRModel
from clickprompt.ctr.layers import MLP, CrossNetV2
from clickprompt.data.schema import FeatureSpec

STRUCTURES = ("parallel", "stacked")


@register_ctr("dcnv2")
class DCNv2(CTRModel):
    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__(spec, cfg)
        if cfg.dcnv2_structure not in STRUCTURES:
            raise ValueError(f"dcnv2_structure must be one of {STRUCTURES}, got {cfg.dcnv2_structure!r}")
        self.structure = cfg.dcnv2_structure
        in_dim = spec.num_fields * cfg.embed_dim
        cross_layers = cfg.dnn_layers if cfg.cross_layers is None else cfg.cross_layers
        self.cross = CrossNetV2(in_dim, cross_layers)
        self.mlp = MLP(in_dim, cfg.dnn_hidden, cfg.dnn_layers, cfg.dropout) if cfg.dnn_layers > 0 else None
        if self.mlp is None:
            output_dim = in_dim
        elif self.structure == "parallel":
            output_dim = in_dim + self.mlp.output_dim
        else:
            output_dim = self.mlp.output_dim
        self.post_init(output_dim)

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        x0 = self.embedding(ids).flatten(1)  # (B, F, d) -> (B, F*d)
        cross = self.cross(x0)  # (B, F*d)
        if self.mlp is None:
            return cross
        if self.structure == "stacked":
            return self.mlp(cross)  # (B, H)
        return torch.cat([cross, self.mlp(x0)], dim=-1)  # (B, F*d + H)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, structure={self.structure!r}"
