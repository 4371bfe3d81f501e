"""Padding in text batches: token positions the PLM processes per epoch, random vs length-grouped batches.

    python benchmarks/padding.py [--batch-sizes 128 256] [--seed 1]

For ML-100K's training split with the packaged MiniLM tokenizer (the quick profile's max_length), counts
the real tokens and the positions of one epoch's batches padded to their longest sample, with the
training loop's order (`clickprompt.training.epoch_order`) without and with `train.group_by_length`.
Also the evaluation order `predict` uses (sorted by length) on the test split. Pure counting, no model.
Writes benchmarks/results/padding.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def padded_positions(order: np.ndarray, lengths: np.ndarray, batch_size: int) -> int:
    return sum(len(b) * int(lengths[b].max()) for b in np.array_split(order, range(batch_size, len(order), batch_size)))


def main() -> None:
    from transformers import AutoTokenizer

    from clickprompt.config import load_stage_config
    from clickprompt.data.text import TokenCache
    from clickprompt.pipeline import load_dataset
    from clickprompt.plm import resolve_plm
    from clickprompt.training import epoch_order

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "padding.md"))
    args = ap.parse_args()
    cfg = load_stage_config("quick", "pretrain")
    ds = load_dataset(cfg)
    cache = TokenCache.for_dataset(AutoTokenizer.from_pretrained(resolve_plm(cfg.plm.name)), ds, cfg.data.max_length)
    train = cache.sample_lengths(ds.split("train").text_index)
    test = cache.sample_lengths(ds.split("test").text_index)
    lines = [
        "# Padding in text batches (ML-100K, MiniLM tokenizer, max_length %d)" % cfg.data.max_length,
        "",
        f"Command: `python benchmarks/padding.py --batch-sizes {' '.join(map(str, args.batch_sizes))} --seed {args.seed}`. "
        f"Training split: {len(train):,} samples, {int(train.sum()):,} real tokens (mean {train.mean():.1f}, "
        f"min {train.min()}, max {train.max()}). Positions = batch size x longest sample, summed over one epoch.",
        "",
        "| split | batch | order | positions | / real tokens | saving vs random |",
        "|---|---|---|---|---|---|",
    ]
    for bs in args.batch_sizes:
        plain = padded_positions(epoch_order(len(train), args.seed, 0), train, bs)
        grouped = padded_positions(epoch_order(len(train), args.seed, 0, train, bs), train, bs)
        lines.append(f"| train | {bs} | random (default) | {plain:,} | {plain / train.sum():.3f} | - |")
        lines.append(f"| train | {bs} | group_by_length | {grouped:,} | {grouped / train.sum():.3f} | {1 - grouped / plain:.1%} |")
        in_order = padded_positions(np.arange(len(test)), test, bs)
        by_length = padded_positions(np.argsort(test, kind="stable"), test, bs)
        lines.append(f"| test | {bs} | sample order | {in_order:,} | {in_order / test.sum():.3f} | - |")
        lines.append(f"| test | {bs} | predict (by length) | {by_length:,} | {by_length / test.sum():.3f} | {1 - by_length / in_order:.1%} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
