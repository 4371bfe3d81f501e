"""Prompt generation layer (ClickPrompt, Lin et al., WWW'24, Sec 3.3, Eq. 6).

    p_{i,l,k} = g_{l,k}(q_i),   1 <= l <= L,  1 <= k <= K

q_i is the CTR model's compact representation (Eq. 5). Each g_{l,k} is a tanh-activated two-layer MLP
whose hidden size equals the PLM's hidden size H (Sec 4.1.4). All L*K networks are evaluated at once
with batched matrix products over stacked weights (one einsum per layer of the MLP), not L*K modules.

Strategies (Fig. 3):
* "layerwise" (default, Fig. 3 right): every g_{l,k} outputs 2H numbers, the key and the value of
  prompt k at layer l, as in the authors' P-tuning-v2-style code. Output (L, 2, B, heads, K, head_dim),
  the `prefix_kv` of `clickprompt.plm.prefix.PLMWithPrompts.encode`.
* "input" (Fig. 3 left): K networks output H numbers each, prompt embeddings for the input layer only.
  Output (B, K, H), the `prompt_embeds` of `encode`.

The authors' released code shares the hidden layer across all (l, k) (one Linear(d_q, H), tanh, one
Linear(H, L*K*2H)); `share_hidden=True` reproduces that. The default follows Eq. 6: independent g_{l,k}.

Initialisation: the first layer as `nn.Linear` (uniform in +-1/sqrt(d_q), weights and bias); the
second layer's weights ~ N(0, init_std^2) with init_std = 0.02 (BERT's initializer_range) and zero
bias. So an untrained generator emits prompts of about init_std * sqrt(H) * rms(tanh) per coordinate:
std ~0.18 for MiniLM (H = 384), whose own keys have std ~0.9-1.3 and values ~0.5-0.8 per layer
(measured on a template sentence). The prompts start as a mild perturbation (near-zero keys, small
values), the tanh bounds them whatever the scale of q, and every weight and q still receive gradient
from the first step (zero init of the second layer would cut q off until that layer moved).
"""

from __future__ import annotations

import math

import torch
from torch import nn

STRATEGIES = ("layerwise", "input")


class PromptGenerator(nn.Module):
    def __init__(
        self,
        input_dim: int,
        num_layers: int,
        num_prompts: int,
        hidden_size: int,
        num_heads: int,
        strategy: str = "layerwise",
        *,
        share_hidden: bool = False,
        init_std: float = 0.02,
    ):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"prompt strategy {strategy!r}: expected one of {STRATEGIES}")
        if hidden_size % num_heads != 0:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        if num_prompts < 1:
            raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
        self.input_dim = input_dim
        self.num_layers = num_layers  # L
        self.num_prompts = num_prompts  # K
        self.hidden_size = hidden_size  # H
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.strategy = strategy
        self.share_hidden = share_hidden
        self.init_std = init_std

        self.num_nets = num_layers * num_prompts if strategy == "layerwise" else num_prompts  # N networks g_{l,k}
        out_dim = 2 * hidden_size if strategy == "layerwise" else hidden_size  # key+value, or an embedding
        n_hidden = 1 if share_hidden else self.num_nets
        self.w1 = nn.Parameter(torch.empty(n_hidden, input_dim, hidden_size))  # (N or 1, d_q, H)
        self.b1 = nn.Parameter(torch.empty(n_hidden, hidden_size))  # (N or 1, H)
        self.w2 = nn.Parameter(torch.empty(self.num_nets, hidden_size, out_dim))  # (N, H, out)
        self.b2 = nn.Parameter(torch.empty(self.num_nets, out_dim))  # (N, out)
        self.reset_parameters()

    @classmethod
    def for_plm(cls, input_dim: int, plm, num_prompts: int, strategy: str = "layerwise", **kwargs) -> "PromptGenerator":
        """Sized for a `PLMWithPrompts` (or anything with num_layers / hidden_size / num_heads)."""
        return cls(input_dim, plm.num_layers, num_prompts, plm.hidden_size, plm.num_heads, strategy, **kwargs)

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.input_dim)  # nn.Linear's default range for fan_in = d_q
        nn.init.uniform_(self.w1, -bound, bound)
        nn.init.uniform_(self.b1, -bound, bound)
        nn.init.normal_(self.w2, std=self.init_std)
        nn.init.zeros_(self.b2)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """q (B, d_q) -> (L, 2, B, heads, K, head_dim) for "layerwise", (B, K, H) for "input"."""
        B = q.shape[0]
        h = torch.tanh(torch.einsum("bd,ndh->nbh", q, self.w1) + self.b1.unsqueeze(1))  # (N or 1, B, H)
        if self.share_hidden:
            p = torch.einsum("bh,nho->nbo", h[0], self.w2)  # (N, B, out)
        else:
            p = torch.bmm(h, self.w2)  # (N, B, out)
        p = p + self.b2.unsqueeze(1)  # (N, B, out)
        if self.strategy == "input":
            return p.transpose(0, 1)  # (B, K, H)
        L, K, heads, d = self.num_layers, self.num_prompts, self.num_heads, self.head_dim
        p = p.view(L, K, B, 2, heads, d)  # (L, K, B, 2, heads, head_dim); out = [key | value], heads-major
        return p.permute(0, 3, 2, 4, 1, 5)  # (L, 2, B, heads, K, head_dim)

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, L={self.num_layers}, K={self.num_prompts}, H={self.hidden_size}, "
            f"heads={self.num_heads}, strategy={self.strategy!r}, share_hidden={self.share_hidden}"
        )
