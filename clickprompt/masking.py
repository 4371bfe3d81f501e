"""Token masking for prompt-augmented masked language modelling (PA-MLM, ClickPrompt Sec 3.5.1).

"Following [BERT, RoBERTa], we uniformly sample 15% tokens for each input x_i^text, and perform three
different operations with ratio 8:1:1, i.e. (1) [MASK] replacement, (2) random word replacement, and
(3) keeping unchanged."

Choices made here:
* Per sequence, the number of selected tokens is 15% of its eligible tokens (real, non-special),
  stochastically rounded: n = floor(0.15 * n_eligible + u), u ~ U[0, 1). The expected rate is exactly
  15% for every length (plain rounding would bias short texts), and the chosen tokens are a uniform
  sample without replacement. A very short text can get n = 0 (e.g. 3 eligible tokens: 45% chance).
* The 8:1:1 split is drawn independently per selected token, as in BERT.
* Random replacements are drawn uniformly from the non-special ids in [0, vocab_size).
* Everything is vectorised and, given a `torch.Generator`, deterministic (the generator must live on
  the same device as `input_ids`).
* Or the random numbers come from `hashed_uniforms(seed, epoch, rows, Z)`: a counter-based hash of
  (seed, epoch, sample index, position), so a sample's masking depends on nothing else -- not on the
  batch it shares, the micro-batch split, nor the number of data-parallel processes. Training uses
  this (clickprompt.batching.text_batcher): 1 and N processes then mask every sample identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IGNORE_INDEX = -100
_STREAMS = 4  # uniforms per position: selection score, 8:1:1 choice, replacement id, row rounding (position 0)
_MASK64 = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic): a well-mixed 64-bit hash."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hashed_uniforms(seed: int, epoch: int, rows: np.ndarray, length: int) -> torch.Tensor:
    """(4, N, length) float32 uniforms in [0, 1): a pure function of (seed, epoch, rows[i], position).

    rows: the samples' indices in their split. Positions are counted from the row's start, so the
    numbers of a sample do not depend on how long the other samples of its batch are."""
    key = _splitmix64(np.array([(seed * 0x2545F4914F6CDD1D + epoch * 0x9E3779B9 + 1) & _MASK64], dtype=np.uint64))
    rows = np.asarray(rows, dtype=np.uint64).reshape(1, -1, 1)  # (1, N, 1)
    stream = np.arange(_STREAMS, dtype=np.uint64).reshape(-1, 1, 1)  # (4, 1, 1)
    pos = np.arange(length, dtype=np.uint64).reshape(1, 1, -1)  # (1, 1, Z)
    with np.errstate(over="ignore"):
        counter = ((rows * np.uint64(_STREAMS) + stream) << np.uint64(20)) + pos  # (4, N, Z), Z < 2^20
        bits = _splitmix64(counter ^ key)
    return torch.from_numpy(((bits >> np.uint64(40)).astype(np.float32)) * np.float32(2.0**-24))  # 24-bit uniforms


def _rand(shape, generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device)


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    prob: float = 0.15,
    generator: torch.Generator | None = None,
    *,
    special_ids: Sequence[int] | torch.Tensor = (),
    eligible_mask: torch.Tensor | None = None,
    mask_ratio: float = 0.8,
    random_ratio: float = 0.1,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic BERT-style masking. Returns `(masked_ids, labels)`, both (B, Z).

    input_ids, attention_mask, special_tokens_mask: (B, Z); special_tokens_mask is 1 at [CLS]/[SEP]/...
    (e.g. from the tokenizer's `return_special_tokens_mask=True`). labels hold the original id at
    selected positions and -100 elsewhere. special_ids: ids never used as random replacements (pass
    `tokenizer.all_special_ids`); mask_token_id is always excluded. eligible_mask (B, Z): optional
    further restriction of which positions may be selected (e.g. one field's tokens). uniforms: optional
    (4, B, Z) random numbers in [0, 1) to use instead of drawing (`hashed_uniforms`); then `generator`
    is not used.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"masking prob must be in [0, 1], got {prob}")
    if mask_ratio < 0 or random_ratio < 0 or mask_ratio + random_ratio > 1:
        raise ValueError(f"mask_ratio={mask_ratio}, random_ratio={random_ratio}: need both >= 0 and sum <= 1")
    device = input_ids.device
    B, Z = input_ids.shape
    eligible = attention_mask.bool() & ~special_tokens_mask.bool()  # (B, Z)
    if eligible_mask is not None:
        eligible &= eligible_mask.bool()

    # How many per row: stochastic rounding of prob * n_eligible.
    if uniforms is not None:
        if tuple(uniforms.shape) != (_STREAMS, B, Z):
            raise ValueError(f"uniforms has shape {tuple(uniforms.shape)}, expected {(_STREAMS, B, Z)}")
        uniforms = uniforms.to(device)
        draw = iter((uniforms[0], uniforms[1]))  # selection scores, then the 8:1:1 choice
    n_eligible = eligible.sum(dim=1)  # (B,)
    u_row = _rand((B,), generator, device) if uniforms is None else uniforms[3, :, 0]
    n_select = torch.floor(prob * n_eligible + u_row).long()  # (B,)
    n_select = torch.minimum(n_select, n_eligible)

    # Which: a uniform random ranking of the eligible positions; take the n_select first.
    scores = (_rand((B, Z), generator, device) if uniforms is None else next(draw)).masked_fill(~eligible, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # (B, Z): rank of each position in its row
    selected = (ranks < n_select.unsqueeze(1)) & eligible  # (B, Z)

    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    # What: 80% [MASK], 10% random normal token, 10% unchanged.
    u = _rand((B, Z), generator, device) if uniforms is None else next(draw)
    to_mask = selected & (u < mask_ratio)
    to_random = selected & (u >= mask_ratio) & (u < mask_ratio + random_ratio)

    excluded = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    special = torch.as_tensor(special_ids if torch.is_tensor(special_ids) else list(special_ids), dtype=torch.long)
    excluded[special.to(device)] = True
    excluded[mask_token_id] = True
    normal_ids = (~excluded).nonzero().squeeze(1)  # (V_normal,)
    if uniforms is None:
        pick = torch.randint(len(normal_ids), (B, Z), generator=generator, device=device)
    else:
        pick = (uniforms[2] * len(normal_ids)).long().clamp(max=len(normal_ids) - 1)  # (B, Z)
    random_ids = normal_ids[pick]  # (B, Z)

    masked = input_ids.clone()
    masked[to_mask] = mask_token_id
    masked[to_random] = random_ids[to_random]
    return masked, labels


def mask_positions(
    input_ids: torch.Tensor, positions_mask: torch.Tensor, mask_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace every position where `positions_mask` (B, Z) is true with [MASK] (no random/keep).

    For analysis (e.g. Table 7: mask one field's tokens and read the attention over the prompts).
    Returns `(masked_ids, labels)` with labels = original ids there, -100 elsewhere.
    """
    sel = positions_mask.bool()
    masked = input_ids.masked_fill(sel, mask_token_id)
    labels = torch.where(sel, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels
