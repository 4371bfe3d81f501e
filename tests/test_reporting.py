"""One reporting layer: the report, experiment summaries, the quick summary and the dashboard write
numbers with the same helpers (clickprompt.formatting), analyses have one JSON format defined next to
them (clickprompt.analysis.to_payload / from_payload) that the CLI writes, the report reads and the
dashboard caches, and the latency measure is consistent (end-to-end never below model-only)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis_helpers import tiny_runs
from clickprompt import analysis as A
from clickprompt import formatting as F
from clickprompt.rundir import RunDir


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    e = tiny_runs(tmp_path_factory)
    ds = RunDir(e["runs"] / "dcnv2").dataset()
    e["ds"] = ds
    e["models"] = {"DCNv2": RunDir(e["runs"] / "dcnv2").load_model(ds),
                   "ClickPrompt": RunDir(e["runs"] / "with-plm").load_model(ds)}
    return e


def test_one_set_of_formatters_everywhere():
    from clickprompt import app_support, experiments, report

    assert (report.fmt_num, report.fmt_pct, report.fmt_p, report.fmt_paper_pct) == (F.fmt_num, F.fmt_pct, F.fmt_p, F.fmt_paper_pct)
    assert report.DASH == F.DASH
    assert experiments.fmt_p is F.fmt_p and experiments.fmt_mean_std is F.fmt_mean_std
    assert app_support._fmt_p(1.234e-5) == "DeLong p = 1.2e-05" and app_support._fmt_p(None) == "p not available"
    assert F.fmt_pct(0.0074) == "+0.74%" and F.fmt_p(0.00012) == "0.00012" and F.fmt_num(None) == "—"
    assert F.fmt_mean_std(0.78, 0.002, n=3) == "0.7800 ± 0.0020" and F.fmt_mean_std(0.78, None, n=1) == "0.7800"
    assert F.column_formatter("DeLong p")(3e-9) == "3e-09" and F.column_formatter("Rel.Impr")(float("nan")) == "—"
    assert F.column_formatter("ctr p")(0.5812) == "0.5812"  # a click probability, not a p-value
    assert F.column_formatter("seeds")("1, 2, 3") == "1, 2, 3"


def test_describe_comparison_reads_like_the_report():
    from clickprompt.app_support import describe_comparison

    table = pd.DataFrame({"test AUC": [0.78, 0.7858], "test log loss": [0.5, 0.49], "Rel.Impr": [np.nan, 0.0074],
                          "DeLong p": [np.nan, 0.0031]}, index=["base", "cp"])
    table.attrs["baseline"] = "base"
    text = describe_comparison(table)
    assert "cp: test AUC 0.7858 (+0.74% Rel.Impr, DeLong p = 0.0031)" in text


def _round_trip(kind, table, **meta):
    payload = json.loads(json.dumps(A.to_payload(kind, table, **meta), allow_nan=False))  # NaN written as null
    assert payload["analysis"] == kind and payload["format"] == A.ANALYSIS_FORMAT
    return payload, A.from_payload(payload)


def test_analysis_payloads_round_trip(env):
    ds, models = env["ds"], env["models"]
    test = ds.split("test")
    rng = np.random.default_rng(0)
    lt = A.long_tail_table(ds, {"a": rng.random(len(test)), "b": rng.random(len(test))}, baseline="a")
    payload, back = _round_trip("long_tail", lt, dataset=ds.name, models={"a": "runs/a", "b": "runs/b"})
    pd.testing.assert_frame_equal(back, lt, check_dtype=False)
    assert back.attrs["definition"] == lt.attrs["definition"] and back.attrs["baseline"] == "a"

    model, _, tok = models["ClickPrompt"]
    att = A.prompt_attention(model, tok, ds, "test", 0)
    payload, back = _round_trip("attention", att, dataset=ds.name, run="runs/with-plm")
    pd.testing.assert_frame_equal(back, att, check_dtype=False)
    assert back.attrs["prompt_mass"].keys() == att.attrs["prompt_mass"].keys() and back.attrs["layer"] == -1

    model, config, tok = models["ClickPrompt"]
    fields = A.field_attributions(model, config, tok, ds, "test", [0, 1], n_steps=4)
    _, back = _round_trip("field_attributions", fields, dataset=ds.name, run="runs/with-plm")
    pd.testing.assert_frame_equal(back, fields, check_dtype=False, check_index_type=False, rtol=1e-6)
    toks = A.token_attributions(model, config, tok, ds, "test", [0], n_steps=4)
    _, back = _round_trip("token_attributions", toks, dataset=ds.name, run="runs/with-plm")
    pd.testing.assert_frame_equal(back, toks, check_dtype=False, rtol=1e-6)
    assert back.attrs["rows"].keys() == toks.attrs["rows"].keys()

    lat = A.latency(models, ds, batch_size=8, warmup=1, repeats=2)
    _, back = _round_trip("latency", lat, dataset=ds.name)
    pd.testing.assert_frame_equal(back, lat, check_dtype=False)
    assert back.attrs["definition"] == lat.attrs["definition"]


def test_older_payloads_without_a_format_key_still_read():
    old = {"analysis": "attention", "dataset": "ml-1m", "fields": ["User ID"], "prompts": ["prompt 1", "prompt 2"],
           "table": [[0.25, 0.75]], "prompt_mass": {"User ID": None}}
    table = A.from_payload(old)
    assert table.loc["User ID", "prompt 2"] == 0.75 and np.isnan(table.attrs["prompt_mass"]["User ID"])


def test_latency_end_to_end_is_never_below_model_only(env):
    table = A.latency(env["models"], env["ds"], batch_size=16, warmup=1, repeats=5)
    assert (table["ms_e2e_median"] >= table["ms_model_median"]).all()
    assert (table["ms_e2e_p90"] >= table["ms_model_p90"]).all()
    assert (table["ms_assembly_median"] > 0).all()
    definition = table.attrs["definition"]
    assert "assembly" in definition and "e2e = assembly + model + copying the logits back" in definition


def test_progress_callbacks_count_every_batch(env):
    seen = []
    A.latency(env["models"], env["ds"], batch_size=8, warmup=1, repeats=2, on_batch=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 6) for i in range(1, 7)]
    calls = []
    model, config, tok = env["models"]["ClickPrompt"]
    probs = A.score_split(model, config, tok, env["ds"], "valid", batch_size=16, on_batch=lambda d, t: calls.append((d, t)))
    n = len(env["ds"].split("valid"))
    assert calls[-1] == (-(-n // 16), -(-n // 16)) and len(probs) == n


def test_analysis_cache_per_run_and_settings(env, tmp_path):
    cache = A.AnalysisCache(tmp_path / "cache")
    run = env["runs"] / "with-plm"
    key = cache.key([run], "predictions", {"split": "valid"})
    assert key == cache.key([run], "predictions", {"split": "valid"})
    assert key != cache.key([run], "predictions", {"split": "test"})
    assert key != cache.key([env["runs"] / "dcnv2"], "predictions", {"split": "valid"})
    probs, _ = A.run_predictions(run, "valid", cache=cache)
    stored = cache.get_array(cache.key([run], "predictions", {"split": "valid", "data": env["ds"].fingerprint}))
    np.testing.assert_array_equal(stored, probs)
    again, _ = A.run_predictions(run, "valid", cache=cache, on_batch=lambda d, t: pytest.fail("scored again"))
    np.testing.assert_array_equal(again, probs)

    calls = []

    def compute():
        calls.append(1)
        t = pd.DataFrame({"model": ["m"], "ms_model_median": [1.0]})
        t.attrs["definition"] = "d"
        return t

    k = cache.key([run], "latency", {"batch_size": 8})
    first, hit1 = cache.cached(k, "latency", compute)
    second, hit2 = cache.cached(k, "latency", compute)
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    pd.testing.assert_frame_equal(first, second)
    assert cache.key([tmp_path / "not-a-run"], "latency", {}) is None  # no manifest: never cached
