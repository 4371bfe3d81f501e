"""P5 (Geng et al., RecSys 2022; ref. [11] of the paper, Table 2) for a single task, CTR, as App. B.2
runs it: T5 reads a prompt and the sample's text and generates "yes" or "no"; 10 epochs, batch 32, lr from
{5e-4, 1e-3} with linear decay, warmup 0.05, gradient clipping at 1.0 "following P5's official
implementation" (the `paper` profile: google-t5/t5-small, P5's small backbone, lr 1e-3).

    encoder input   "Will the user click the item ?" + the Eq. 4 text
    target          "yes </s>" for a click, "no </s>" otherwise: the seq2seq cross-entropy over the whole
                    vocabulary (P5's training loss)
    score           P(yes | x) / (P(yes | x) + P(no | x)) at the first decoding step
                    = sigma(l_yes - l_no), so the click logit is l_yes - l_no (two_word_logit)

The prompt is a buffer of the model (its token ids, saved in the checkpoint), so a P5 model reads the same
batches as every text model (batching.text_batcher) and scores through the same code. "yes" and "no" must
each be one token of the tokenizer (they are in T5's sentencepiece vocabulary: "▁yes", "▁no").

Gradient clipping: training.train has no clipping setting, so the P5 stage clips the global gradient norm
of its parameters in an optimizer step pre-hook registered for the duration of its `train` call
(`clip_grad_norm_during`); under DDP the gradients are already all-reduced there.

No T5 weights can be had offline here: a `plm.name` that is neither a local directory nor in the local
Hugging Face cache is refused (`unavailable` says why, and experiment tables print "not run: ..."), and
the tests use a tiny random T5 with a word-level tokenizer built offline (`make_tiny_t5`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from clickprompt.baselines import common
from clickprompt.baselines.registry import Method, register_method
from clickprompt.config import ConfigError, RunConfig
from clickprompt.model import PretrainedMixin
from clickprompt.rundir import ModelKind, RunDir, Stage

PROMPT = "Will the user click the item ?"
ANSWERS = ("yes", "no")
GRAD_CLIP = 1.0  # P5's official implementation (App. B.2)
T5_ALIASES = {"t5-small": "google-t5/t5-small", "t5-base": "google-t5/t5-base"}
NOT_RUN = "not run: no pretrained T5 available offline"


def two_word_logit(first_step_logits: torch.Tensor, yes_id: int, no_id: int) -> torch.Tensor:
    """(B, V) logits of the first decoding step -> (B,) l_yes - l_no: its sigmoid is P(yes) normalised over
    {yes, no}, P(yes) / (P(yes) + P(no)), whatever the other V - 2 words get."""
    return first_step_logits[:, yes_id] - first_step_logits[:, no_id]


class P5ForCTR(PretrainedMixin, nn.Module):
    kind = ModelKind.P5

    def __init__(self, seq2seq: nn.Module, prompt_ids: list[int], yes_id: int, no_id: int):
        super().__init__()
        self.model = seq2seq  # T5ForConditionalGeneration (any transformers seq2seq LM)
        self.register_buffer("prompt_ids", torch.tensor(prompt_ids, dtype=torch.long))  # (P,)
        self.yes_id, self.no_id = int(yes_id), int(no_id)
        self.eos_id = seq2seq.config.eos_token_id
        self.start_id = seq2seq.config.decoder_start_token_id

    @classmethod
    def from_config(cls, config: dict) -> "P5ForCTR":
        from transformers import AutoConfig, AutoModelForSeq2SeqLM

        seq2seq = AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model(**config["hf_config"]))
        return cls(seq2seq, config["prompt_ids"], config["yes_id"], config["no_id"])

    def forward(self, input_ids, attention_mask, labels=None, **_) -> dict:
        B = input_ids.shape[0]
        prompt = self.prompt_ids.expand(B, -1)  # (B, P)
        enc_ids = torch.cat([prompt, input_ids], dim=1)  # (B, P + Z)
        enc_mask = torch.cat([torch.ones_like(prompt, dtype=attention_mask.dtype), attention_mask], dim=1)
        if labels is None:  # scoring: the first decoding step only
            start = torch.full((B, 1), self.start_id, dtype=torch.long, device=input_ids.device)
            out = self.model(input_ids=enc_ids, attention_mask=enc_mask, decoder_input_ids=start)
            return {"logits": two_word_logit(out.logits[:, 0].float(), self.yes_id, self.no_id)}
        answer = torch.where(labels > 0.5, self.yes_id, self.no_id).long().unsqueeze(1)  # (B, 1)
        target = torch.cat([answer, torch.full_like(answer, self.eos_id)], dim=1)  # "yes </s>" / "no </s>", (B, 2)
        out = self.model(input_ids=enc_ids, attention_mask=enc_mask, labels=target)  # teacher forcing
        logits = two_word_logit(out.logits[:, 0].float(), self.yes_id, self.no_id)
        return {"logits": logits, "loss": out.loss}  # the seq2seq cross-entropy over the vocabulary


# ---------------------------------------------------------------- the T5 and its tokenizer


def resolve_t5(name: str) -> str:
    """t5-small / t5-base / a hub id / a local directory -> what from_pretrained loads (local only)."""
    from clickprompt.plm import resolve_plm

    return resolve_plm(T5_ALIASES.get(name, name))


def answer_ids(tokenizer) -> tuple[int, int]:
    ids = []
    for word in ANSWERS:
        got = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(got) != 1:
            raise ConfigError(f"P5 scores '{ANSWERS[0]}' against '{ANSWERS[1]}': the tokenizer splits {word!r} into "
                              f"{len(got)} tokens ({got}); it needs both as single tokens")
        ids.append(got[0])
    return ids[0], ids[1]


def prompt_ids(tokenizer) -> list[int]:
    return list(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])


def check_t5(cfg: RunConfig):
    """The PLM's config, refused (one line) unless it is an encoder-decoder (T5 family)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_t5(cfg.plm.name), local_files_only=True)
    if not getattr(config, "is_encoder_decoder", False):
        raise ConfigError(f"plm.name = {cfg.plm.name!r}: P5 needs a T5-family encoder-decoder (e.g. t5-small), not a "
                          f"{config.model_type!r} model")
    return config


def unavailable(cfg: RunConfig) -> str | None:
    """Why P5 cannot run with these settings here, or None: no T5 at hand, or a PLM that is not one."""
    from clickprompt.plm import PLMNotFoundError

    try:
        check_t5(cfg)
    except PLMNotFoundError:
        return f"{NOT_RUN} ({cfg.plm.name} is neither a local directory nor in the local Hugging Face cache)"
    except ConfigError as e:
        return f"not run: {e}"
    return None


def t5_not_run(name: str = "t5-small") -> str | None:
    """NOT_RUN where no T5 (by default P5's T5-small) is at hand here, else None (the report's P5 row)."""
    from clickprompt.plm import PLMNotFoundError

    try:
        resolve_t5(name)
    except PLMNotFoundError:
        return NOT_RUN
    return None


def make_tiny_t5(out_dir, texts, *, d_model: int = 32, layers: int = 2, heads: int = 4, seed: int = 0) -> Path:
    """A tiny random T5 and a word-level tokenizer over `texts` (plus P5's prompt and answers), written
    as a local model directory (tests, smoke runs). Specials as T5's: <pad> 0 (also the decoder start),
    </s> 1 (appended to every text), <unk> 2."""
    import re

    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = sorted({w for t in [*texts, PROMPT, *ANSWERS] for w in re.findall(r"\w+|[^\w\s]+", t)})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    config = T5Config(vocab_size=len(vocab), d_model=d_model, d_kv=d_model // heads, d_ff=2 * d_model, num_layers=layers,
                      num_decoder_layers=layers, num_heads=heads, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0)
    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    T5ForConditionalGeneration(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# ---------------------------------------------------------------- gradient clipping for one train() call


@contextlib.contextmanager
def clip_grad_norm_during(parameters, max_norm: float):
    """Clip the global gradient norm of `parameters` to `max_norm` before every optimizer step taken
    inside the block (a global optimizer step pre-hook, removed on exit)."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    params = [p for p in parameters if p.requires_grad]

    def clip(optimizer, args, kwargs) -> None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    handle = register_optimizer_step_pre_hook(clip)
    try:
        yield
    finally:
        handle.remove()


# ---------------------------------------------------------------- the stage


def train_p5(cfg: RunConfig, run_dir, *, pretrained=None, resume: bool = False, force: bool = False,
             progress: bool = True) -> dict:
    """P5 finetuned on clicks from the pretrained T5 (all parameters at train.lr, clipped at GRAD_CLIP)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from clickprompt.batching import text_batcher
    from clickprompt.data.text import TokenCache
    from clickprompt.pipeline import training_cache
    from clickprompt.pipeline import evaluator, finish_run
    from clickprompt.training import seed_everything, train

    if pretrained:
        raise ConfigError("p5 starts from the published T5; it takes no --pretrained run")
    common.validate_stage(cfg, Stage.P5)
    check_t5(cfg)
    ds = common.load_dataset(cfg)
    with RunDir(run_dir).open(Stage.P5, common.run_settings(cfg, ds), force=force, resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        path = resolve_t5(cfg.plm.name)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        yes_id, no_id = answer_ids(tokenizer)
        seq2seq = AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        model = P5ForCTR(seq2seq, prompt_ids(tokenizer), yes_id, no_id)
        cache = training_cache(TokenCache.for_dataset(tokenizer, ds, cfg.data.max_length, cfg.data.pad_to_multiple), cfg)
        tok_dir = common.save_tokenizer(session, tokenizer)
        model.config = common.text_checkpoint_config(ModelKind.P5, ds, cfg, session, seq2seq.config.to_dict(), tok_dir,
                                                     prompt_ids=prompt_ids(tokenizer), yes_id=yes_id, no_id=no_id,
                                                     prompt=PROMPT)

        def make_batch(split):
            return text_batcher(split, cache)

        valid = ds.split("valid")
        with clip_grad_norm_during(model.parameters(), GRAD_CLIP):
            result = train(
                model, make_batch(ds.split("train")), len(ds.split("train")), cfg.train, session.run,
                evaluate=evaluator(make_batch(valid), valid, cfg), schedule="linear",
                checkpoint_config=model.config, resume=session.resume, progress=progress,
            )
        return finish_run(session, model, make_batch, ds, cfg, result,
                          {"model": "P5", "method": "p5", "plm": cfg.plm.name, "grad_clip": GRAD_CLIP})


register_method(Method(
    "p5", "P5", "a T5 encoder-decoder generating 'yes' / 'no' (single-task P5); score P(yes) over {yes, no}",
    stages={Stage.P5: train_p5}, unavailable=unavailable,
))
