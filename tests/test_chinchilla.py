"""Hoffmann et al. 2022's FLOP accounting (the ``chinchilla`` convention, App. F) and the
claim that reproduces the ratio column of their Table A4 from the sizes in the table."""
import dataclasses
import json

import pytest

import architectures
from comparator.claims import registry as claims
from comparator.cli import app as cli
from comparator.count import conventions as cv
from comparator.claims.checks import A4_SEQ, A4_VOCAB, TABLE_A4, a4_params

TR = architectures.get("transformer")


def test_appendix_f_terms_by_arithmetic():
    cfg = TR.preset("gpt2-small")
    n, L, d, H, kH, f, V = 1024, 12, 768, 12, 12 * 64, 3072, 50257
    c = cv.flops("chinchilla", "transformer", cfg, n, 1, "all")
    b = c.breakdown
    assert b["embed/lookup"] == 2 * n * V * d                   # embeddings
    assert b["attn/qkv"] == L * 2 * 3 * n * d * kH              # key, query, value projections
    assert b["attn/scores"] == L * 2 * n * n * kH               # key @ query logits
    assert b["attn/softmax"] == L * 3 * H * n * n               # softmax
    assert b["attn/context"] == L * 2 * n * n * kH              # softmax @ query reductions
    assert b["attn/out"] == L * 2 * n * kH * d                  # final linear
    assert b["ffn/in"] + b["ffn/out"] == L * 2 * n * (d * f + d * f)   # dense block
    assert b["head/logits"] == 2 * n * d * V                    # final logits
    assert c.fwd == sum(b.values()) and c.train == 3 * c.fwd    # backward = 2 x forward
    # the softmax is the one element-wise term: the matmul scope leaves it out
    assert cv.flops("chinchilla", "transformer", cfg, n).fwd == c.fwd - L * 3 * H * n * n


def test_table_a4_parameters_count_what_the_paper_counts():
    # N of the 73M model: 10 layers of 4 d kH + 2 d d_ff weights, each layer's relative-
    # position projection d kH (Transformer-XL encodings), one 32,000 x 640 embedding
    _, cfg = claims.models()["chinchilla-73M"]
    assert a4_params("transformer", cfg) == 10 * (4 * 640 * 640 + 2 * 640 * 2560 + 640 * 640) \
        + 32_000 * 640 == 73_728_000
    for name, *_ in TABLE_A4:   # the published column, to its 2-3 significant digits
        published = float(name[:-1]) * (1e6 if name.endswith("M") else 1e9)
        n = a4_params(*claims.models()[f"chinchilla-{name}"])
        assert n == pytest.approx(published, rel=0.04)


@pytest.fixture(scope="module")
def a4():
    (r,) = claims.evaluate(["chinchilla-6nd-table"])
    return r


@pytest.mark.parametrize("row", TABLE_A4, ids=[r[0] for r in TABLE_A4])
def test_table_a4_ratio_reproduced_within_0_01(row, a4):
    name, *_, published = row
    got = a4["numbers"][name]
    assert got["published_ratio"] == published
    assert abs(got["ratio"] - published) <= 0.01
    # the ratio is the convention's own count: attention and dense terms per 2,048-token
    # sequence over 6 N x 2,048
    _, cfg = claims.models()[f"chinchilla-{name}"]
    c = cv.flops("chinchilla", "transformer", cfg, A4_SEQ, 1, "all")
    layers = sum(v for k, v in c.train_breakdown.items() if k.startswith(("attn/", "ffn/")))
    assert got["ratio"] == layers / (6 * got["N"] * A4_SEQ)
    # Appendix F's stated total adds the embeddings and logits, 2 x 2 n V d per sequence
    extra = 3 * 2 * (2 * A4_SEQ * A4_VOCAB * cfg.d_model)
    assert got["ratio_with_embeddings_and_logits"] == pytest.approx(
        (layers + extra) / (6 * got["N"] * A4_SEQ), rel=1e-12)


def test_table_a4_verdict_says_which_terms_reproduce_it(a4):
    assert a4["verdict"] == "holds only without the embedding and logit terms"
    assert a4["numbers"]["73M"]["ratio_with_embeddings_and_logits"] > 1.5
    assert "73M 1.026/1.03" in a4["detail"] and "6.8B 0.994/0.99" in a4["detail"]


def test_a4_claim_follows_the_model():
    m = claims.models()
    arch, cfg = m["chinchilla-73M"]
    m["chinchilla-73M"] = (arch, dataclasses.replace(cfg, ff_dim=4 * 2560))
    (r,) = claims.evaluate(["chinchilla-6nd-table"], m)
    assert abs(r["numbers"]["73M"]["ratio"] - 1.03) > 0.01
    assert r["verdict"] == "does not hold"


def test_chinchilla_through_the_cli(capsys):
    assert cli.main(["sweep", "--arch", "transformer", "--preset", "gpt2-small", "--seq",
                     "1024", "--convention", "chinchilla", "--scope", "all", "--no-baseline",
                     "--format", "json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    cfg = TR.preset("gpt2-small")
    assert r["convention"] == "chinchilla"
    assert r["train_flops"] == cv.flops("chinchilla", "transformer", cfg, 1024, 1, "all").train
    assert cli.main(["claims", "--id", "chinchilla-6nd-table", "--format", "json"]) == 0
    (c,) = json.loads(capsys.readouterr().out)
    assert c["source"].startswith("Hoffmann et al. 2022")
    assert cli.main(["conventions", "--preset", "gpt2-small", "--seq", "1024", "--format",
                     "markdown"]) == 0
    out = capsys.readouterr().out
    assert "chinchilla (Hoffmann et al. 2022, App. F)" in out and "3 x (2 n V d" in out
