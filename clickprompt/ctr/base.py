"""The one interface every CTR backbone implements (Sec 2.1 and Eq. 5 of the paper).

A CTR model is three layers: an embedding layer, a feature-interaction (FI) layer that produces a
compact representation q, and a prediction layer. ClickPrompt feeds q to its prompt generator
(Eq. 6) and keeps the prediction layer as the CTR head, so the split is part of the contract:

    ids (B, F) --self.embedding--> E (B, F, d) --FI layer--> q (B, output_dim)   # represent(ids)
    q --self.head (one nn.Linear, App. B.1)--> logit (B,)                        # forward(ids)

`forward` returns logits, never probabilities: losses use `BCEWithLogitsLoss`.

Writing a model: subclass `CTRModel`, call `super().__init__(spec, cfg)`, build the FI layer from
`clickprompt.ctr.layers`, call `self.post_init(output_dim)` last (it creates the head), implement
`represent`, and register the class with `@register_ctr("name")` from `clickprompt.ctr`.
"""

from __future__ import annotations

import torch
from torch import nn

from clickprompt.config import CTRConfig
from clickprompt.ctr.layers import FieldEmbedding
from clickprompt.data.schema import FeatureSpec

EMBED_INIT_STD = 0.01  # N(0, 0.01^2) for the shared embedding table (small, as in FuxiCTR/DeepCTR)


class CTRModel(nn.Module):
    """Base class: `represent(ids) -> q` (Eq. 5), `head(q) -> logit`, `forward(ids) -> logits (B,)`.

    Attributes: `spec` (the FeatureSpec), `cfg` (the CTRConfig), `embedding` (one table over all
    fields, local ids in [0, vocab_size_f), id 0 = OOV), `output_dim` (size of q), `head`.
    """

    name: str = ""  # set by @register_ctr

    def __init__(self, spec: FeatureSpec, cfg: CTRConfig):
        super().__init__()
        if spec.num_fields < 1:
            raise ValueError("a CTR model needs a FeatureSpec with at least one field")
        self.spec = spec
        self.cfg = cfg
        self.num_fields = spec.num_fields
        self.embed_dim = cfg.embed_dim
        self.embedding = FieldEmbedding(spec.vocab_sizes, cfg.embed_dim, init_std=EMBED_INIT_STD)

    def post_init(self, output_dim: int) -> None:
        """Finish construction once the FI layer is built: record `output_dim` and create the head."""
        self.output_dim = int(output_dim)
        self.head = nn.Linear(self.output_dim, 1)  # the prediction layer (App. B.1)

    def represent(self, ids: torch.Tensor) -> torch.Tensor:
        """Embedding layer + feature-interaction layer (Eq. 5): ids (B, F) -> q (B, output_dim)."""
        raise NotImplementedError

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Click logits (B,), no sigmoid."""
        return self.head(self.represent(ids)).squeeze(-1)  # (B, 1) -> (B,)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, fields={self.num_fields}, embed_dim={self.embed_dim}"
