"""The text view (Eq. 4) and the token cache.

Eq. 4: x_i^text = [f_1^name "is" f_i1 "." ... f_F^name "is" f_iF "."] joined by spaces.

Tokenising millions of such sentences is slow and wasteful: a field has far fewer distinct values
than there are samples. The token cache tokenises each distinct (field, value) segment once per
tokenizer and builds a sample's ids by concatenating its F segments with a vectorised gather, adding
the tokenizer's own special tokens around them. Segments after the first are tokenised with their
leading space, so byte-level BPE tokenizers (RoBERTa, GPT-2) see exactly the characters of the full
sentence; tests check the ids equal tokenising the full text, for WordPiece and byte-level BPE.
"""

from __future__ import annotations

import numpy as np

TEMPLATE = "{display} is {value} ."


def segment(display: str, value: str, first: bool) -> str:
    return ("" if first else " ") + TEMPLATE.format(display=display, value=value)


def sample_text(displays, values) -> str:
    return "".join(segment(d, v, j == 0) for j, (d, v) in enumerate(zip(displays, values)))


def special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before and after a single sequence ([CLS] / [SEP], <s> / </s>)."""
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    raise ValueError("cannot locate the special tokens this tokenizer adds")


class TokenCache:
    """Per-field token matrices for every distinct value; `assemble` builds padded batches."""

    def __init__(self, tokenizer, displays: list[str], text_values: list[np.ndarray], max_length: int = 128):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.prefix, self.suffix = special_affixes(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.budget = max_length - len(self.prefix) - len(self.suffix)  # content tokens that fit
        if self.budget <= 0:
            raise ValueError(f"max_length {max_length} leaves no room for text")
        self.tokens, self.lengths, self.value_masks = [], [], []
        for j, (display, values) in enumerate(zip(displays, text_values)):
            texts = [segment(display, str(v), j == 0) for v in values]
            enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
            lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))
            width = max(int(lengths.max()) if len(lengths) else 0, 1)
            mat = np.full((len(texts), width), self.pad_id, dtype=np.int64)
            vmask = np.zeros((len(texts), width), dtype=bool)
            for r, (ids, offsets, text, value) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], texts, values)):
                mat[r, : len(ids)] = ids
                start = len(text) - len(" .") - len(str(value))  # the value's character span
                end = start + len(str(value))
                vmask[r, : len(ids)] = [(s < end and e > start) for s, e in offsets]
            self.tokens.append(mat)
            self.lengths.append(lengths)
            self.value_masks.append(vmask)

    @classmethod
    def for_dataset(cls, tokenizer, dataset, max_length: int = 128) -> "TokenCache":
        return cls(tokenizer, dataset.spec.displays, dataset.text_values, max_length)

    def assemble(self, text_index: np.ndarray, with_fields: bool = False) -> dict[str, np.ndarray]:
        """text_index (N, F) -> input_ids, attention_mask (N, T) padded to the longest sample, truncated
        like `tokenizer(..., truncation=True, max_length=max_length)`. With `with_fields`, also
        token_field (N, T): the field each token belongs to (-1 for special tokens and padding) and
        value_mask (N, T): tokens of the field value (not its name, "is" or ".")."""
        n, num_fields = text_index.shape
        P, S = len(self.prefix), len(self.suffix)
        lens = np.stack([self.lengths[j][text_index[:, j]] for j in range(num_fields)], axis=1)  # (N, F)
        content = np.minimum(lens.sum(axis=1), self.budget)  # (N,)
        T = P + int(content.max()) + S
        ids = np.full((n, T), self.pad_id, dtype=np.int64)
        ids[:, :P] = self.prefix
        field_of = np.full((n, T), -1, dtype=np.int8) if with_fields else None
        value_mask = np.zeros((n, T), dtype=bool) if with_fields else None
        starts = P + np.cumsum(lens, axis=1) - lens  # (N, F) first position of each segment
        end = P + content  # (N,) one past the last content token
        for j in range(num_fields):
            seg = self.tokens[j][text_index[:, j]]  # (N, L_j)
            t = np.arange(seg.shape[1])
            pos = starts[:, j : j + 1] + t  # (N, L_j)
            ok = (t < lens[:, j : j + 1]) & (pos < end[:, None])
            rows, cols = np.nonzero(ok)
            ids[rows, pos[rows, cols]] = seg[rows, cols]
            if with_fields:
                field_of[rows, pos[rows, cols]] = j
                value_mask[rows, pos[rows, cols]] = self.value_masks[j][text_index[rows, j], cols]
        if S:
            suffix_pos = end[:, None] + np.arange(S)  # (N, S)
            ids[np.arange(n)[:, None], suffix_pos] = self.suffix
        attention_mask = (np.arange(T)[None, :] < (end + S)[:, None]).astype(np.int64)
        out = {"input_ids": ids, "attention_mask": attention_mask}
        if with_fields:
            out["token_field"] = field_of
            out["value_mask"] = value_mask
        return out
