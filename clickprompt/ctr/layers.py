"""Shared building blocks of the CTR model zoo (one file per model lives next to this one).

Every block works on whole batches: field pairs are index tensors, per-field weights are batched
einsums, and nothing loops over samples or pairs in Python. Shapes use B = batch, F = fields,
d = embedding size, P = F (F - 1) / 2 field pairs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FieldEmbedding(nn.Module):
    """Per-field embedding tables stored as ONE `nn.Embedding` over all fields (Sec 2.1, embedding layer).

    `ids` hold per-field local ids in [0, vocab_size_f); adding the registered `offsets` buffer turns
    them into rows of the shared table, so one lookup serves all fields. Local id 0 of each field is
    its out-of-vocabulary row and is an ordinary trainable row.
    """

    def __init__(self, vocab_sizes: list[int], dim: int, init_std: float | None = 0.01):
        super().__init__()
        self.vocab_sizes = list(vocab_sizes)
        self.dim = dim
        self.embedding = nn.Embedding(sum(self.vocab_sizes), dim)
        offsets = torch.tensor([0, *self.vocab_sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)  # (F,)
        if init_std is None:
            nn.init.zeros_(self.embedding.weight)
        else:
            nn.init.normal_(self.embedding.weight, std=init_std)

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids + self.offsets)  # (B, F) -> (B, F, dim)

    def extra_repr(self) -> str:
        return f"fields={len(self.vocab_sizes)}, rows={sum(self.vocab_sizes)}, dim={self.dim}"


class MLP(nn.Module):
    """`num_layers` x (Linear -> ReLU -> Dropout), all of width `hidden` (App. B.1: ReLU, one width).

    With `num_layers == 0` it is the identity and `output_dim == input_dim`.
    """

    def __init__(self, input_dim: int, hidden: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        dim = input_dim
        for _ in range(num_layers):
            layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
            dim = hidden
        self.net = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def bi_interaction(emb: torch.Tensor) -> torch.Tensor:
    """FM's pairwise term as a vector: sum_{i<j} v_i * v_j = ((sum v)^2 - sum v^2) / 2 (Rendle 2010).

    Summing the result over d gives the scalar FM term sum_{i<j} <v_i, v_j>. (B, F, d) -> (B, d).
    """
    square_of_sum = emb.sum(dim=1).square()  # (B, d)
    sum_of_square = emb.square().sum(dim=1)  # (B, d)
    return 0.5 * (square_of_sum - sum_of_square)


def pair_indices(num_fields: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column index tensors of the P = F (F - 1) / 2 field pairs i < j, in row-major order."""
    rows, cols = torch.triu_indices(num_fields, num_fields, offset=1)
    return rows, cols


class InnerProduct(nn.Module):
    """All pairwise inner products <v_i, v_j>, i < j (IPNN's product layer, Qu et al. ICDM'16).

    One batched Gram matrix E E^T, then a gather of its strict upper triangle by a flat index buffer.
    """

    def __init__(self, num_fields: int):
        super().__init__()
        rows, cols = pair_indices(num_fields)
        self.register_buffer("flat_index", rows * num_fields + cols, persistent=False)  # (P,)
        self.num_pairs = int(rows.numel())

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(emb, emb.transpose(1, 2))  # (B, F, F)
        return gram.flatten(1)[:, self.flat_index]  # (B, F*F) -> (B, P)


class CrossNet(nn.Module):
    """DCN cross network (Wang et al. ADKDD'17, Eq. 3): x_{l+1} = x_0 (x_l . w_l) + b_l + x_l."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(dim)) for _ in range(num_layers))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(dim)) for _ in range(num_layers))
        bound = 1.0 / math.sqrt(dim)
        for w in self.weights:
            nn.init.uniform_(w, -bound, bound)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0  # (B, D)
        for w, b in zip(self.weights, self.biases):
            x = x0 * (x @ w).unsqueeze(-1) + b + x  # (B, 1) scalar per sample -> (B, D)
        return x


class CrossNetV2(nn.Module):
    """DCNv2 cross network with full-rank matrices (Wang et al. WWW'21, Eq. 1):
    x_{l+1} = x_0 * (W_l x_l + b_l) + x_l."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0  # (B, D)
        for linear in self.layers:
            x = x0 * linear(x) + x
        return x


class CIN(nn.Module):
    """Compressed Interaction Network (xDeepFM, Lian et al. KDD'18, Eqs. 6-9).

    Layer k: X^{k+1}_{h,*} = sum_{i,j} W^{k,h}_{ij} (X^k_{i,*} * X^0_{j,*}), identity activation and
    direct connections (no split-half), each layer sum-pooled over d. Returns (B, sum(units)).
    """

    def __init__(self, num_fields: int, units: list[int]):
        super().__init__()
        layers, in_rows = [], num_fields
        for h in units:
            layers.append(nn.Linear(in_rows * num_fields, h))  # the paper's 1x1 convolution
            in_rows = h
        self.layers = nn.ModuleList(layers)
        self.output_dim = sum(units)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        batch, _, dim = x0.shape
        x0 = x0.transpose(0, 1)  # (F, B, d): field-major, so each layer is ONE (H', H*F) x (H*F, B*d) GEMM
        x, pooled = x0, []
        for linear in self.layers:
            z = (x.unsqueeze(1) * x0.unsqueeze(0)).reshape(-1, batch * dim)  # (H_k, F, B, d) -> (H_k*F, B*d)
            x = torch.addmm(linear.bias.unsqueeze(1), linear.weight, z)  # W z + b: (H', B*d)
            x = x.view(-1, batch, dim)  # (H', B, d)
            pooled.append(x.sum(dim=-1).t())  # (B, H')
        return torch.cat(pooled, dim=-1)  # (B, sum H)


class SelfAttentionLayer(nn.Module):
    """AutoInt interacting layer (Song et al. CIKM'19, Eqs. 5-8): multi-head self-attention over fields,
    unscaled dot products as in the paper, a projected residual W_res e_m, then ReLU."""

    def __init__(self, input_dim: int, attn_dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.attn_dim, self.dropout = heads, attn_dim, dropout
        self.output_dim = heads * attn_dim
        self.qkv = nn.Linear(input_dim, 3 * self.output_dim, bias=False)
        self.residual = nn.Linear(input_dim, self.output_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, fields, _ = x.shape
        qkv = self.qkv(x).view(batch, fields, 3, self.heads, self.attn_dim)  # (B, F, 3, H, a)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, F, a)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, scale=1.0
        )  # (B, H, F, a)
        out = out.transpose(1, 2).reshape(batch, fields, self.output_dim)  # (B, F, H*a)
        return torch.relu(out + self.residual(x))


class FiGNNLayer(nn.Module):
    """One Fi-GNN propagation step (Li et al. CIKM'19, Eqs. 4-6): edge-wise transforms
    a_i = W_in^i sum_j A_ij W_out^j h_j + b, with per-field (node) matrices W_out, W_in."""

    def __init__(self, num_fields: int, dim: int):
        super().__init__()
        self.w_out = nn.Parameter(torch.empty(num_fields, dim, dim))
        self.w_in = nn.Parameter(torch.empty(num_fields, dim, dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        nn.init.xavier_normal_(self.w_out)
        nn.init.xavier_normal_(self.w_in)

    def forward(self, graph: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        msg = torch.einsum("bfd,fed->bfe", h, self.w_out)  # (B, F, d)
        agg = torch.bmm(graph.to(msg.dtype), msg)  # (B, F, F) @ (B, F, d) -> (B, F, d)
        return torch.einsum("bfd,fed->bfe", agg, self.w_in) + self.bias  # (B, F, d)


class FiGNNBlock(nn.Module):
    """Fi-GNN feature graph: attentional edge weights (softmax over j != i of
    LeakyReLU(w^T [e_i || e_j])), `num_layers` propagation steps, a shared GRU state update, and a
    residual connection to the initial node states after each step (App. B.1: residuals)."""

    def __init__(self, num_fields: int, dim: int, num_layers: int):
        super().__init__()
        if num_fields < 2:
            raise ValueError(f"FiGNN needs at least 2 fields to build a feature graph, got {num_fields}")
        self.layers = nn.ModuleList(FiGNNLayer(num_fields, dim) for _ in range(num_layers))
        self.gru = nn.GRUCell(dim, dim)
        self.attn_src = nn.Linear(dim, 1, bias=False)  # w^T [e_i || e_j] = w_src^T e_i + w_dst^T e_j
        self.attn_dst = nn.Linear(dim, 1, bias=False)
        self.register_buffer("self_loops", torch.eye(num_fields, dtype=torch.bool), persistent=False)

    def graph(self, emb: torch.Tensor) -> torch.Tensor:
        scores = self.attn_src(emb) + self.attn_dst(emb).transpose(1, 2)  # (B, F, 1) + (B, 1, F) -> (B, F, F)
        scores = F.leaky_relu(scores.float(), 0.01).masked_fill(self.self_loops, float("-inf"))
        return scores.softmax(dim=-1)  # (B, F, F), rows sum to 1, zero diagonal

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        batch, fields, dim = emb.shape
        graph = self.graph(emb)
        h = emb
        for layer in self.layers:
            a = layer(graph, h)  # (B, F, d)
            h = self.gru(a.reshape(-1, dim), h.reshape(-1, dim))  # (B*F, d): one GRU step per node
            h = h.view(batch, fields, dim) + emb  # (B, F, d), residual to the initial states
        return h


class FeatureGeneration(nn.Module):
    """FGCNN feature generation (Liu et al. WWW'19, Sec 3.2): tanh convolutions of kernel (k, 1) along
    the field axis, max pooling (p, 1), and a tanh recombination layer per convolution that emits
    `recombine` new feature embeddings per pooled row.

    The kernel is clipped to the largest odd size <= the current number of rows (so 'same' padding
    stays symmetric) and the pool to the number of rows; pooling uses ceil mode. Returns the new
    features, (B, num_new, d), with `num_new = recombine * sum_i rows_i`.
    """

    def __init__(self, num_fields: int, dim: int, channels: tuple[int, ...], kernel: int, pool: int,
                 recombine: int):
        super().__init__()
        self.dim = dim
        convs, recombs = [], []
        rows, in_ch = num_fields, 1
        self.num_new = 0
        for out_ch in channels:
            k = min(kernel, rows if rows % 2 else rows - 1)
            p = min(pool, rows)
            convs.append(nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=(k, 1), padding=((k - 1) // 2, 0)),
                nn.Tanh(),
                nn.MaxPool2d((p, 1), ceil_mode=True),
            ))
            rows = math.ceil(rows / p)
            recombs.append(nn.Sequential(nn.Linear(out_ch * rows * dim, recombine * rows * dim), nn.Tanh()))
            self.num_new += recombine * rows
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        self.recombine = nn.ModuleList(recombs)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        batch = emb.shape[0]
        x = emb.unsqueeze(1)  # (B, 1, F, d)
        new = []
        for conv, recombine in zip(self.convs, self.recombine):
            x = conv(x)  # (B, C_i, rows_i, d)
            flat = x.flatten(1)  # (B, C_i*rows_i*d)
            new.append(recombine(flat).view(batch, -1, self.dim))  # (B, R*rows_i*d) -> (B, R*rows_i, d)
        return torch.cat(new, dim=1)  # (B, num_new, d)
