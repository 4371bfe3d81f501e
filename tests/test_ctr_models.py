"""The CTR model zoo contract: one parametrized test over `list_ctr()` plus the registry's rules."""

from __future__ import annotations

import itertools

import pytest
import torch

from clickprompt.config import ConfigError, CTRConfig
from clickprompt.ctr import CTRModel, create_ctr, list_ctr, register_ctr
from clickprompt.data.schema import FeatureSpec

PAPER_MODELS = ["autoint", "dcn", "dcnv2", "deepfm", "dnn", "fgcnn", "fignn", "fm", "ipnn", "xdeepfm"]
SPEC8 = FeatureSpec.synthetic([7, 3, 11, 5, 20, 4, 9, 6])  # 8 fields, like MovieLens
SPEC3 = FeatureSpec.synthetic([4, 6, 5])  # few fields: field-dependent shapes (FGCNN, IPNN, CIN)
SPECS = {"f8": SPEC8, "f3": SPEC3}
# Small but non-degenerate sizes; embed_dim != heads * attn_dim exercises the AutoInt residual projection.
SMALL = dict(embed_dim=8, dnn_hidden=16, dnn_layers=2, cin_layers=2, cin_units=5, attn_layers=2,
             attn_dim=6, attn_heads=2, gnn_layers=2, fgcnn_channels=(2, 3), fgcnn_recombine=2)
B = 12


def random_ids(spec: FeatureSpec, batch: int = B, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (batch,), generator=g) for v in spec.vocab_sizes], dim=1)


def build(name: str, spec: FeatureSpec, seed: int = 0, **overrides) -> CTRModel:
    torch.manual_seed(seed)
    return create_ctr(name, spec, **{**SMALL, **overrides})


def test_registry_has_the_ten_paper_models():
    assert list_ctr() == PAPER_MODELS


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize("name", list_ctr())
def test_model_contract(name, spec_name):
    spec = SPECS[spec_name]
    model = build(name, spec, dropout=0.0)
    assert isinstance(model, CTRModel) and model.name == name and model.cfg.model == name
    ids = random_ids(spec)

    q = model.represent(ids)
    assert q.shape == (B, model.output_dim)
    assert model.head.in_features == model.output_dim and model.head.out_features == 1
    logits = model(ids)
    assert logits.shape == (B,) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all() and torch.isfinite(q).all()
    torch.testing.assert_close(logits, model.head(q).squeeze(-1))  # forward = head(represent)

    # backward: every parameter gets a finite gradient; every embedding row in the batch a nonzero one
    labels = torch.randint(0, 2, (B,), generator=torch.Generator().manual_seed(1)).float()
    torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
    row_grad = model.embedding.weight.grad.abs().sum(dim=-1)  # (num_features,)
    used_rows = ids + model.embedding.offsets  # (B, F)
    for f in range(spec.num_fields):
        assert (row_grad[used_rows[:, f]] > 0).all(), f"{name}: zero gradient on field {f}'s rows"

    # all-OOV ids (local id 0 in every field) are ordinary rows
    oov = model(torch.zeros(3, spec.num_fields, dtype=torch.long))
    assert oov.shape == (3,) and torch.isfinite(oov).all()

    # bf16 autocast on CPU
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids)
    assert low.shape == (B,) and torch.isfinite(low.float()).all()


@pytest.mark.parametrize("name", list_ctr())
def test_determinism_and_paper_defaults(name):
    ids = random_ids(SPEC8, batch=4)
    a, b = build(name, SPEC8, seed=3, dropout=0.2), build(name, SPEC8, seed=3, dropout=0.2)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), f"{name}: {ka} differs across equal seeds"
    torch.manual_seed(5)
    out_a = a.train()(ids)  # dropout draws from the seeded RNG
    torch.manual_seed(5)
    out_b = b.train()(ids)
    assert torch.equal(out_a, out_b)

    torch.manual_seed(0)
    full = create_ctr(name, SPEC8)  # App. B.1 defaults
    assert full.cfg == CTRConfig(model=name)
    out = full.eval()(ids)
    assert out.shape == (4,) and torch.isfinite(out).all()


def test_output_dim_formulas():
    d, h, F = 8, 16, SPEC8.num_fields
    dims = {name: build(name, SPEC8).output_dim for name in list_ctr()}
    assert dims == {
        "fm": 1 + d, "dnn": h, "deepfm": 1 + d + h, "xdeepfm": 1 + 2 * 5 + h, "ipnn": h,
        "dcn": F * d + h, "dcnv2": F * d + h, "autoint": F * 2 * 6, "fignn": F * d, "fgcnn": h,
    }
    assert build("dcnv2", SPEC8, dcnv2_structure="stacked").output_dim == h
    with pytest.raises(ValueError, match="dcnv2_structure"):
        build("dcnv2", SPEC8, dcnv2_structure="mixture")


def test_fm_and_deepfm_heads_start_as_the_classic_logit():
    ids = random_ids(SPEC8, batch=5)
    fm = build("fm", SPEC8)
    torch.nn.init.normal_(fm.linear.weight, std=0.1)
    v, w = fm.embedding(ids), fm.linear(ids).squeeze(-1)  # (B, F, d), (B, F)
    pairs = sum((v[:, i] * v[:, j]).sum(-1) for i, j in itertools.combinations(range(SPEC8.num_fields), 2))
    torch.testing.assert_close(fm(ids), fm.head.bias + w.sum(1) + pairs)

    deepfm = build("deepfm", SPEC8, dropout=0.0).eval()
    deep = deepfm.represent(ids)[:, 1 + 8:] @ deepfm.head.weight[0, 1 + 8:]  # (B,)
    fm_part = deepfm.linear(ids).sum((1, 2)) + torch.stack(
        [(deepfm.embedding(ids)[:, i] * deepfm.embedding(ids)[:, j]).sum(-1)
         for i, j in itertools.combinations(range(SPEC8.num_fields), 2)]).sum(0)
    torch.testing.assert_close(deepfm(ids), fm_part + deep + deepfm.head.bias)


def test_registry_miss_lists_known_names():
    with pytest.raises(KeyError) as err:
        create_ctr("DCNv2", SPEC8)
    for name in PAPER_MODELS:
        assert name in str(err.value)


def test_duplicate_registration_is_refused():
    class Impostor(CTRModel):
        pass

    before = list_ctr()
    with pytest.raises(ValueError, match="already registered"):
        register_ctr("dcnv2")(Impostor)
    with pytest.raises(ValueError, match="lowercase"):
        register_ctr("DCNv2")
    assert list_ctr() == before and create_ctr("dcnv2", SPEC8).__class__ is not Impostor


def test_create_ctr_overrides():
    cfg = CTRConfig(embed_dim=4, dnn_hidden=8)
    model = create_ctr("dnn", SPEC8, cfg, dnn_hidden=12, dnn_layers="2")  # strings are coerced
    assert model.output_dim == 12 and model.cfg.dnn_layers == 2 and model.cfg.embed_dim == 4
    assert model.embedding.weight.shape == (SPEC8.num_features, 4)
    assert cfg.dnn_hidden == 8 and cfg.model == "dcnv2"  # the caller's config is untouched
    assert len(create_ctr("dcn", SPEC8, cfg, cross_layers=1).cross.weights) == 1
    with pytest.raises(ConfigError, match="dnn_width"):
        create_ctr("dnn", SPEC8, dnn_width=64)
    with pytest.raises(ConfigError, match="embed_dim"):
        create_ctr("dnn", SPEC8, embed_dim="wide")
