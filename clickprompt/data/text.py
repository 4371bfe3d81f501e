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

import functools

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

    def __init__(self, tokenizer, displays: list[str], text_values: list[np.ndarray], max_length: int = 128,
                 pad_to_multiple: int = 1):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_to_multiple = max(1, int(pad_to_multiple))  # batch widths rounded up (static shapes)
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
    def for_dataset(cls, tokenizer, dataset, max_length: int = 128, pad_to_multiple: int = 1) -> "TokenCache":
        return cls(tokenizer, dataset.spec.displays, dataset.text_values, max_length, pad_to_multiple)

    def sample_lengths(self, text_index: np.ndarray) -> np.ndarray:
        """(N,) tokens per sample, special tokens included, after truncation: the unpadded length of
        `assemble`'s rows (what train.group_by_length sorts by)."""
        text_index = np.asarray(text_index)
        content = np.zeros(len(text_index), dtype=np.int64)
        for j in range(text_index.shape[1]):
            content += self.lengths[j][text_index[:, j]]
        return len(self.prefix) + np.minimum(content, self.budget) + len(self.suffix)

    def assemble(self, text_index: np.ndarray, with_fields: bool = False) -> dict[str, np.ndarray]:
        """text_index (N, F) -> input_ids, attention_mask (N, T) padded to the longest sample, truncated
        like `tokenizer(..., truncation=True, max_length=max_length)`. With `with_fields`, also
        token_field (N, T): the field each token belongs to (-1 for special tokens and padding) and
        value_mask (N, T): tokens of the field value (not its name, "is" or ".").

        Vectorised, no per-sample Python (DeviceTokenCache.assemble on the CPU): each field's padded
        segment matrix (N, L_j) is scattered into a flat buffer at the sample's running offset, fields
        left to right, so a segment's padding is overwritten by the next segment's tokens; whatever lies
        past the (truncated) content end is then replaced by the suffix and padding."""
        return {k: v.numpy() for k, v in self._cpu.assemble(text_index, with_fields).items()}

    @functools.cached_property
    def _cpu(self) -> "DeviceTokenCache":
        """The algorithm lives once, in torch (DeviceTokenCache); on the CPU its tensors share this cache's
        arrays and its outputs convert to numpy without a copy."""
        return DeviceTokenCache(self, "cpu")


class DeviceTokenCache:
    """A TokenCache's matrices as torch tensors on one device, and `assemble` (TokenCache.assemble's
    contract, as tensors) as torch ops there. On a GPU, text batches are gathered where the model runs
    (train.device_batches), with no host work or copy per batch beyond the (N, F) value indices; on the
    CPU it is the host cache's own implementation."""

    def __init__(self, cache: TokenCache, device):
        import torch

        self.device = torch.device(device)
        self.host = cache
        self.pad_id, self.budget, self.pad_to_multiple = cache.pad_id, cache.budget, cache.pad_to_multiple
        self.prefix = torch.tensor(cache.prefix, dtype=torch.int64, device=self.device)
        self.suffix = torch.tensor(cache.suffix, dtype=torch.int64, device=self.device)
        put = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        self.tokens = [put(t) for t in cache.tokens]
        self.lengths = [put(n) for n in cache.lengths]
        self.value_masks = [put(v) for v in cache.value_masks]

    def sample_lengths(self, text_index: np.ndarray) -> np.ndarray:
        return self.host.sample_lengths(text_index)

    def assemble(self, text_index, with_fields: bool = False) -> dict:
        """TokenCache.assemble's algorithm in torch on self.device; `text_index` (N, F), numpy or tensor."""
        import torch

        dev = self.device
        text_index = torch.as_tensor(text_index, dtype=torch.int64).to(dev)
        n, num_fields = text_index.shape
        P, S = len(self.prefix), len(self.suffix)
        lens = torch.stack([self.lengths[j][text_index[:, j]] for j in range(num_fields)], 1) if num_fields else \
            torch.zeros(n, 0, dtype=torch.int64, device=dev)
        starts = P + torch.cumsum(lens, 1) - lens  # (N, F) first position of each segment
        content = (torch.clamp(starts[:, -1] + lens[:, -1] - P, max=self.budget) if num_fields
                   else torch.zeros(n, dtype=torch.int64, device=dev))
        end = P + content
        T = P + (int(content.max()) if n else 0) + S  # one host read per batch: the batch's width
        width = max([T] + [int((starts[:, j] + self.tokens[j].shape[1]).max()) for j in range(num_fields) if n])
        buf = torch.full((n, width), self.pad_id, dtype=torch.int64, device=dev)
        buf[:, :P] = self.prefix
        flat_buf = buf.view(-1)
        row_base = (torch.arange(n, device=dev) * width)[:, None]
        if with_fields:
            fbuf = torch.full((n, width), -1, dtype=torch.int8, device=dev)
            vbuf = torch.zeros((n, width), dtype=torch.bool, device=dev)
            flat_f, flat_v = fbuf.view(-1), vbuf.view(-1)
        for j in range(num_fields):  # fields left to right: a segment's padding is overwritten by the next
            col = text_index[:, j]
            flat = (row_base + starts[:, j : j + 1]) + torch.arange(self.tokens[j].shape[1], device=dev)
            flat_buf[flat.reshape(-1)] = self.tokens[j][col].reshape(-1)
            if with_fields:
                flat_f[flat.reshape(-1)] = j
                flat_v[flat.reshape(-1)] = self.value_masks[j][col].reshape(-1)
        ids = buf[:, :T].contiguous()
        if S:
            rows = torch.arange(n, device=dev)[:, None]
            ids[rows, end[:, None] + torch.arange(S, device=dev)] = self.suffix
        positions = torch.arange(T, device=dev)[None, :]
        out = {"input_ids": ids, "attention_mask": (positions < (end + S)[:, None]).long()}
        if with_fields:
            past_end = positions >= end[:, None]
            out["token_field"] = torch.where(past_end, torch.tensor(-1, dtype=torch.int8, device=dev), fbuf[:, :T])
            out["value_mask"] = vbuf[:, :T] & ~past_end
        extra = -T % self.pad_to_multiple
        if extra:
            fill = {"input_ids": self.pad_id, "attention_mask": 0, "token_field": -1, "value_mask": False}
            out = {k: torch.cat([v, torch.full((n, extra), fill[k], dtype=v.dtype, device=dev)], 1) for k, v in out.items()}
        return out
