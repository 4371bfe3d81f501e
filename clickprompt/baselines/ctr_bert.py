"""CTR-BERT (Muhamed et al., NeurIPS 2021 ENLSP workshop; ref. [47] of the paper, Table 2), as App. B.2
runs it: "a two-tower model structure based on the BERT model to encode the user and item information,
respectively"; 10 epochs, batch 1024, lr 5e-5 with linear decay, warmup 0.05 (the `paper` profile).

    u = Pool(PLM(x_user)),  v = Pool(PLM(x_item)),  y = sigma(MLP([u; v; u * v]))

x_user / x_item: the Eq. 4 text of the user's fields / the item's fields ("User ID is 196 . Gender is male
. ..." / "Movie ID is 242 . Title is Kolya (1996) . ..."), split where the item key begins
(common.user_item_fields). The two towers share one encoder (a Siamese pair: the text of both sides is
the same kind of "field is value" prose; separate towers would double the parameters, not change what
is compared) and run as one batched forward pass. Late fusion: the towers meet only in the MLP over
[u; v; u * v] (hidden size H, tanh, the PLM's dropout), so item vectors can be cached, the point of
CTR-BERT's design. Pooling: plm.pooling ("auto" = [CLS] / <s>). All parameters at train.lr.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clickprompt.baselines import common
from clickprompt.baselines.registry import Method, register_method
from clickprompt.config import RunConfig
from clickprompt.model import PretrainedMixin
from clickprompt.rundir import ModelKind, RunDir, Stage


class CTRBertForCTR(PretrainedMixin, nn.Module):
    kind = ModelKind.CTR_BERT

    def __init__(self, plm, pooling: str = "auto", dropout: float | None = None):
        super().__init__()
        self.plm = plm  # PLMWithPrompts over the bare encoder, shared by both towers
        self.pooling = plm.resolve_pooling(pooling)
        H = plm.hidden_size
        self.head = common.ClassificationHead(3 * H, H, plm.hidden_dropout if dropout is None else dropout)

    @classmethod
    def from_config(cls, config: dict) -> "CTRBertForCTR":
        run_cfg = RunConfig.from_dict(config["run_config"])
        return cls(common.encoder_from_config(config["hf_config"]), pooling=run_cfg.plm.pooling)

    def towers(self, user_input_ids, user_attention_mask, item_input_ids, item_attention_mask):
        """(u, v), each (B, H): both texts through the encoder in one pass, padded to one length."""
        B = user_input_ids.shape[0]
        T = max(user_input_ids.shape[1], item_input_ids.shape[1])
        pad = self.plm.config.pad_token_id or 0
        ids = torch.cat([F.pad(user_input_ids, (0, T - user_input_ids.shape[1]), value=pad),
                         F.pad(item_input_ids, (0, T - item_input_ids.shape[1]), value=pad)])  # (2B, T)
        mask = torch.cat([F.pad(user_attention_mask, (0, T - user_attention_mask.shape[1])),
                          F.pad(item_attention_mask, (0, T - item_attention_mask.shape[1]))])  # (2B, T)
        pooled = self.plm.pool(self.plm.encode(ids, mask), mask, self.pooling)  # (2B, H)
        return pooled[:B], pooled[B:]

    def forward(self, user_input_ids, user_attention_mask, item_input_ids, item_attention_mask, labels=None,
                **_) -> dict:
        u, v = self.towers(user_input_ids, user_attention_mask, item_input_ids, item_attention_mask)
        logits = self.head(torch.cat([u, v, u * v], dim=-1)).squeeze(-1)  # late fusion, (B,)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.binary_cross_entropy_with_logits(logits.float(), labels.float())  # Eq. 2
        return out


# ---------------------------------------------------------------- batches


class TwoTowerText:
    """The token caches of the two towers: the user's fields and the item's fields of a dataset."""

    def __init__(self, tokenizer, ds, max_length: int, user_fields: list[int], item_fields: list[int]):
        from clickprompt.data.text import TokenCache

        self.user_fields, self.item_fields = list(user_fields), list(item_fields)
        displays, values = ds.spec.displays, ds.text_values
        self.user = TokenCache(tokenizer, [displays[j] for j in user_fields], [values[j] for j in user_fields], max_length)
        self.item = TokenCache(tokenizer, [displays[j] for j in item_fields], [values[j] for j in item_fields], max_length)

    def batcher(self, split):
        """make_batch(indices) -> user and item input ids / attention masks, labels (training.train's contract)."""
        labels = torch.from_numpy(split.labels)
        u_index, i_index = split.text_index[:, self.user_fields], split.text_index[:, self.item_fields]

        def make_batch(idx: np.ndarray) -> dict:
            idx = np.asarray(idx, dtype=np.int64)
            u, i = self.user.assemble(u_index[idx]), self.item.assemble(i_index[idx])
            return {"user_input_ids": torch.from_numpy(u["input_ids"]),
                    "user_attention_mask": torch.from_numpy(u["attention_mask"]),
                    "item_input_ids": torch.from_numpy(i["input_ids"]),
                    "item_attention_mask": torch.from_numpy(i["attention_mask"]),
                    "labels": labels[torch.from_numpy(idx)]}

        make_batch.lengths = self.user.sample_lengths(u_index) + self.item.sample_lengths(i_index)
        return make_batch


def batcher_for_checkpoint(config: dict, tokenizer, ds):
    """(split -> make_batch) for a CTR-BERT checkpoint, its field split read from the checkpoint."""
    run_cfg = RunConfig.from_dict(config["run_config"])
    text = TwoTowerText(tokenizer, ds, run_cfg.data.max_length, config["user_fields"], config["item_fields"])
    return text.batcher


# ---------------------------------------------------------------- the stage


def train_ctr_bert(cfg: RunConfig, run_dir, *, pretrained=None, resume: bool = False, force: bool = False,
                   progress: bool = True) -> dict:
    """CTR-BERT from the published PLM: the two towers and the fusion MLP trained on clicks (Eq. 2)."""
    from clickprompt.pipeline import evaluator, finish_run
    from clickprompt.training import seed_everything, train

    ds = common.begin_first_stage(cfg, Stage.CTR_BERT, "CTR-BERT", pretrained)
    user_fields, item_fields = common.user_item_fields(ds.spec)
    fields = {"user_fields": [ds.spec.names[j] for j in user_fields], "item_fields": [ds.spec.names[j] for j in item_fields]}
    with RunDir(run_dir).open(Stage.CTR_BERT, common.run_settings(cfg, ds), force=force, resume=resume) as session:
        if session.reused is not None:
            return session.reused
        seed_everything(cfg.train.seed)
        plm, tokenizer, _ = common.load_encoder(cfg.plm.name)
        model = CTRBertForCTR(plm, pooling=cfg.plm.pooling)
        text = TwoTowerText(tokenizer, ds, cfg.data.max_length, user_fields, item_fields)
        tok_dir = common.save_tokenizer(session, tokenizer)
        model.config = common.text_checkpoint_config(ModelKind.CTR_BERT, ds, cfg, session, plm.config.to_dict(), tok_dir,
                                                     user_fields=user_fields, item_fields=item_fields)
        valid = ds.split("valid")
        result = train(
            model, text.batcher(ds.split("train")), len(ds.split("train")), cfg.train, session.run,
            evaluate=evaluator(text.batcher(valid), valid, cfg), schedule="linear",
            checkpoint_config=model.config, resume=session.resume, progress=progress,
        )
        return finish_run(session, model, text.batcher, ds, cfg, result,
                          {"model": "CTR-BERT", "method": "ctr-bert", "plm": cfg.plm.name, **fields})


register_method(Method(
    "ctr-bert", "CTR-BERT", "two text towers (user fields, item fields) on one BERT-family encoder, late fusion",
    stages={Stage.CTR_BERT: train_ctr_bert},
))
