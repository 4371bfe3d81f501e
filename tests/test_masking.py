"""PA-MLM dynamic masking (ClickPrompt Sec 3.5.1): 15% of text tokens, 80/10/10, never special or padding."""

from __future__ import annotations

import pytest
import torch

from clickprompt.masking import IGNORE_INDEX, mask_positions, mask_tokens

V, MASK, PAD, CLS, SEP = 1000, 103, 0, 101, 102
SPECIAL = (PAD, 100, CLS, SEP, MASK)


def _batch(B=2000, Z=40, seed=0):
    """Rows [CLS] w_1 .. w_n [SEP] pad..., n random in [5, Z-2], words from the non-special ids."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, Z - 1, (B,), generator=g)
    ids = torch.randint(200, V, (B, Z), generator=g)
    pos = torch.arange(Z).expand(B, Z)
    ids[:, 0] = CLS
    ids[pos == (lengths + 1).unsqueeze(1)] = SEP
    attention = (pos <= (lengths + 1).unsqueeze(1)).long()
    ids[attention == 0] = PAD
    special = ((ids == CLS) | (ids == SEP) | (ids == PAD)).long()
    return ids, attention, special


def _mask(ids, attention, special, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return mask_tokens(ids, attention, special, MASK, V, generator=g, special_ids=SPECIAL, **kw)


def test_rate_and_split():
    ids, attention, special = _batch()
    masked, labels = _mask(ids, attention, special)
    selected = labels != IGNORE_INDEX
    eligible = attention.bool() & ~special.bool()
    rate = selected.sum() / eligible.sum()
    assert abs(rate.item() - 0.15) < 0.005
    assert torch.equal(labels[selected], ids[selected])
    n = selected.sum().item()
    as_mask = (masked[selected] == MASK).sum().item() / n
    unchanged = (masked[selected] == ids[selected]).sum().item() / n
    randomised = 1 - as_mask - unchanged
    assert abs(as_mask - 0.8) < 0.02
    assert abs(randomised - 0.1) < 0.015  # (a random draw can hit the original id: ~0.1/800, negligible)
    assert abs(unchanged - 0.1) < 0.015
    assert torch.equal(masked[~selected], ids[~selected])  # nothing else is touched


def test_never_special_or_padding_and_random_ids_are_normal():
    ids, attention, special = _batch(B=500)
    masked, labels = _mask(ids, attention, special, prob=0.9)
    selected = labels != IGNORE_INDEX
    assert not (selected & special.bool()).any()
    assert not (selected & ~attention.bool()).any()
    replaced = selected & (masked != MASK) & (masked != ids)
    assert replaced.any()
    assert not torch.isin(masked[replaced], torch.tensor(SPECIAL)).any()
    assert (masked[replaced] < V).all() and (masked[replaced] >= 0).all()


def test_per_row_count_is_unbiased_rounding():
    ids, attention, special = _batch(B=4000, Z=12)
    _, labels = _mask(ids, attention, special)
    n_sel = (labels != IGNORE_INDEX).sum(1).float()
    n_el = (attention.bool() & ~special.bool()).sum(1).float()
    assert ((n_sel - 0.15 * n_el).abs() < 1).all()  # floor or ceil of 15%
    assert abs(n_sel.sum() / n_el.sum() - 0.15) < 0.01


def test_deterministic_with_generator():
    ids, attention, special = _batch(B=64)
    a = _mask(ids, attention, special, seed=7)
    b = _mask(ids, attention, special, seed=7)
    c = _mask(ids, attention, special, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_eligible_mask_restricts_selection():
    ids, attention, special = _batch(B=200)
    field = torch.zeros_like(ids, dtype=torch.bool)
    field[:, 1:4] = True  # the first three words only
    _, labels = _mask(ids, attention, special, prob=1.0, eligible_mask=field)
    selected = labels != IGNORE_INDEX
    assert torch.equal(selected, field & attention.bool() & ~special.bool())


def test_mask_positions():
    ids, attention, special = _batch(B=4)
    where = torch.zeros_like(ids, dtype=torch.bool)
    where[:, 2] = True
    masked, labels = mask_positions(ids, where, MASK)
    assert (masked[:, 2] == MASK).all() and torch.equal(labels[:, 2], ids[:, 2])
    assert torch.equal(masked[~where], ids[~where]) and (labels[~where] == IGNORE_INDEX).all()


def test_bad_arguments():
    ids, attention, special = _batch(B=4)
    with pytest.raises(ValueError):
        _mask(ids, attention, special, prob=1.5)
    with pytest.raises(ValueError):
        _mask(ids, attention, special, mask_ratio=0.95, random_ratio=0.1)


# ------------------------------------------------------------------ hashed (per-sample) randomness
def test_hashed_masking_depends_on_the_sample_only():
    """With hashed_uniforms a sample is masked the same whatever batch, order or padding width it comes
    in (what makes 1 and N data-parallel processes agree), and differently in another epoch."""
    import numpy as np

    from clickprompt.masking import hashed_uniforms

    ids, attention, special = _batch(B=3000, Z=40)

    def masked(rows, epoch=0, width=40):
        u = hashed_uniforms(7, epoch, rows, width)
        return mask_tokens(ids[rows, :width], attention[rows, :width], special[rows, :width], MASK, V,
                           special_ids=SPECIAL, uniforms=u)

    rows = np.arange(3000)
    full_ids, full_labels = masked(rows)
    part_ids, part_labels = masked(np.array([1000, 17, 2500]))  # other company, other order
    assert torch.equal(part_labels, full_labels[[1000, 17, 2500]]) and torch.equal(part_ids, full_ids[[1000, 17, 2500]])
    short = attention.sum(1) < 30
    r = np.nonzero(short.numpy())[0][:50]
    narrow_ids, narrow_labels = masked(r, width=30)  # narrower padding: same masks on the real tokens
    assert torch.equal(narrow_labels, full_labels[r, :30])
    other_epoch = masked(rows, epoch=1)[1]
    assert not torch.equal(other_epoch, full_labels)
    selected = full_labels.ne(IGNORE_INDEX)
    eligible = attention.bool() & ~special.bool()
    assert abs(selected.sum() / eligible.sum() - 0.15) < 0.01  # still 15%, 80/10/10
    changed = full_ids[selected] != ids[selected]
    assert abs((full_ids[selected] == MASK).float().mean() - 0.8) < 0.02 and abs(changed.float().mean() - 0.9) < 0.02
    with pytest.raises(ValueError, match="uniforms"):
        mask_tokens(ids[:2], attention[:2], special[:2], MASK, V, uniforms=torch.rand(4, 3, 40))
