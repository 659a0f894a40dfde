"""The claims registry (comparator/claims/registry.py): every verdict computed from counts, numbers
that follow a changed configuration, the measured crossover from bench records, the CLI."""
import dataclasses
import json

import pytest

from comparator.claims import registry as claims
from comparator.cli import app as cli

VERDICTS = ("holds", "does not hold", "holds only beyond", "holds only below",
            "holds in FLOPs but not in measured time", "does not hold in FLOPs",
            "holds only under", "holds only without", "holds in measured time",
            "does not hold in measured time", "not checked")


@pytest.fixture(scope="module")
def every():
    return {r["id"]: r for r in claims.evaluate()}


def test_every_claim_has_a_source_a_verdict_and_numbers(every):
    assert set(every) == set(claims.IDS) and len(every) >= 14
    for r in every.values():
        assert r["source"] and r["statement"] and r["check"] and r["detail"]
        assert r["verdict"].startswith(VERDICTS), r["verdict"]
        assert r["numbers"] or r["verdict"] == "not checked"


def test_reformer_claims_from_counts(every):
    s = every["reformer-lsh-scaling"]["numbers"]
    assert s["dense_exponent"] > 1.9 and s["lsh_exponent"] < s["dense_exponent"]
    # the reference's bucket rule keeps hashing small: near-linear to 65,536 tokens
    assert every["reformer-lsh-scaling"]["verdict"] == "holds"
    assert max(s["lsh_local_exponents"]) < 1.1
    assert "History" in every["reformer-lsh-scaling"]["detail"]
    # n log n's local exponent between n and 2n: log(2n log 2n / (n log n)) / log 2
    assert claims.nlogn_local(32768, 65536) == pytest.approx(1.093, abs=1e-3)
    c = every["reformer-crossover"]
    assert c["verdict"].startswith("holds only beyond")
    assert c["numbers"]["ratio"][0] > 1 > c["numbers"]["ratio"][-1]
    m = every["reformer-memory-depth"]["numbers"]
    # activation memory at the step's peak (the validated memory model): a reversible layer
    # adds at most the int32 buckets it keeps for the backward (heads x n_hashes x n) ...
    assert 0 <= m["bytes_per_layer"]["reformer"] <= 12 * 4 * 4096 * 4
    # ... a dense layer at least its exp(s) and probabilities (2 x heads x n^2 fp32) and at
    # most every residual autodiff keeps for it (XLA fuses some away)
    from architectures import reformer as rf, transformer as tr
    dense = rf.transformer_baseline(rf.preset("reformer-base"))
    layer = (tr.activation_bytes(dense, 4096) - tr.activation_bytes(
        dataclasses.replace(dense, n_layers=11), 4096))
    assert 2 * 12 * 4096 ** 2 * 4 <= m["bytes_per_layer"]["dense"] <= layer
    assert every["reformer-memory-depth"]["verdict"] == "holds"
    assert "validated memory model" in every["reformer-memory-depth"]["detail"]


def test_six_nd_uses_kaplans_n_and_shows_both(every):
    r = every["scaling-6nd"]
    for role, d, L, params in (("gpt2-small", 768, 12, 124_439_808),
                               ("gpt2-xl", 1600, 48, 1_557_611_200)):
        s = r["numbers"][role]
        # Kaplan et al. Sec. 2.1: N = 2 d_model n_layer (2 d_attn + d_ff), embeddings out
        assert s["non_embedding_params"] == 2 * d * L * (2 * d + 4 * d)
        assert s["params"] == params                      # all parameters, beside it
        # non-embedding compute over 6N: both attention products add n / (6 d_model)
        lengths = r["numbers"]["lengths"]
        assert s["error"] == pytest.approx([n / (6 * d) for n in lengths], rel=1e-12)
    # verdict from Kaplan's N: within 10% while n < 0.6 d_model (gpt2-small: to 256)
    assert r["verdict"] == "holds only below 512 tokens"
    # the check as first written (N = all parameters, full count) gave another range
    assert r["numbers"]["gpt2-small"]["first_outside_all_params"] == 1024
    assert "reads 'holds only below 1,024 tokens'" in r["detail"]


def test_albert_claims_from_counts(every):
    p = every["albert-params"]["numbers"]["large"]
    assert p["reduction"] == p["bert_same_widths"] / p["albert"] > 17.5
    s = every["albert-sharing-flops"]["numbers"]
    assert s["shared"]["train_flops_matmul"] == s["unshared"]["train_flops_matmul"]
    # the shared layer's 11 other gradients are summed: (L - 1) x its parameters, all scope
    layer = 4 * 768 * 768 + 4 * 768 + 2 * 768 * 3072 + 3072 + 768 + 4 * 768
    assert s["shared"]["train_flops_all"] - s["unshared"]["train_flops_all"] == 11 * layer
    x = every["albert-xxlarge-speed"]["numbers"]
    assert x["flops_ratio"] == x["albert_xxlarge_train_flops"] / x["bert_large_train_flops"]


def test_changing_a_configuration_changes_the_claims_numbers():
    m = claims.models()
    base = {r["id"]: r for r in claims.evaluate(["albert-params", "electra-small-compute",
                                                 "scaling-6nd"], m)}
    arch, cfg = m["albert-large"]
    m2 = {**m, "albert-large": (arch, dataclasses.replace(cfg, emb_dim=1024))}
    arch, cfg = m["electra-small"]
    m2["electra-small"] = (arch, dataclasses.replace(cfg, gen_fraction=1 / 2))
    arch, cfg = m["gpt2-small"]
    m2["gpt2-small"] = (arch, dataclasses.replace(cfg, d_model=2048, n_heads=16))
    new = {r["id"]: r for r in claims.evaluate(list(base), m2)}
    # ALBERT-large with E = H saves by sharing only (7.3x): the claim no longer holds
    assert new["albert-params"]["numbers"]["large"]["reduction"] < 17.5
    assert new["albert-params"]["verdict"] == "does not hold"
    # a half-width generator brings ELECTRA-Small to BERT-Small's compute (paper's convention)
    old_r = base["electra-small-compute"]["numbers"]["electra"]["ratio"]
    new_r = new["electra-small-compute"]["numbers"]["electra"]["ratio"]
    assert abs(new_r - 1) < abs(old_r - 1)
    # a wider model keeps 6ND accurate to longer sequences
    err = lambda r: r["scaling-6nd"]["numbers"]["gpt2-small"]["error"][-1]
    assert err(new) < err(base)


def _bench(lsh_s, dense_s=(1.0, 2.0, 4.0), lsh_flops=(2, 2, 2), dense_flops=(1, 4, 16)):
    out = []
    for i, n in enumerate((1024, 2048, 4096)):
        out.append({"variant": "dense", "seq_len": n, "train_s": dense_s[i],
                    "train_flops": dense_flops[i], "skipped": None})
        out.append({"variant": "lsh-4", "seq_len": n, "train_s": lsh_s[i],
                    "train_flops": lsh_flops[i], "skipped": None})
    return out


def test_measured_crossover_needs_bench_results():
    (r,) = claims.evaluate(["reformer-measured-crossover"])
    assert r["verdict"] == "not checked" and "--bench" in r["detail"]
    (r,) = claims.evaluate(["reformer-measured-crossover"], bench=_bench((2.0, 1.5, 3.0)))
    assert r["verdict"] == "holds only beyond 2,048 tokens"
    (r,) = claims.evaluate(["reformer-measured-crossover"], bench=_bench((2.0, 3.0, 5.0)))
    assert r["verdict"] == "holds in FLOPs but not in measured time"
    assert r["numbers"]["crossovers"]["lsh-4"] == {"measured": None, "flops": 2048}


def test_claims_command_exports_for_papers(tmp_path, capsys):
    assert cli.main(["claims", "--id", "albert-sharing-flops", "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert "\\begin{table}" in out and "Lan et al. 2020" in out and "holds" in out
    assert cli.main(["claims", "--id", "scaling-6nd,albert-params", "--format",
                     "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| claim") and "| source" in out and "Kaplan et al. 2020" in out
    bench = tmp_path / "b.json"
    bench.write_text(json.dumps(_bench((2.0, 1.5, 3.0))))
    assert cli.main(["claims", "--id", "reformer-measured-crossover", "--bench", str(bench),
                     "--format", "json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["verdict"] == "holds only beyond 2,048 tokens"


@pytest.mark.parametrize("args,field", [
    (["claims", "--id", "albert-paramz"], "--id"),
    (["claims", "--bench", "/nonexistent/b.json"], "--bench"),
])
def test_bad_claims_input_is_one_message_and_exit_2(args, field, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"error: {field}:" in err and err.count("\n") == 1


def test_claims_and_conventions_import_no_jax():
    """FLOP claims and conventions answer without jax.  The memory claim is judged from
    the traced step (the validated memory model), so it is the one left out here."""
    import subprocess
    import sys
    from comparator.claims.registry import IDS
    flops = ",".join(i for i in IDS if i != "reformer-memory-depth")
    code = ("import sys, io, contextlib; from comparator import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    cli.main(['claims', '--time-model', 'mfu', '--id', '{flops}']); "
            "cli.main(['conventions', '--preset', 'gpt2-small', "
            "'--seq', '1024'])\n"
            "assert 'jax' not in sys.modules and 'flax' not in sys.modules, 'jax imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_measured_crossover_is_judged_for_the_reformers_own_hash_rounds():
    fast_one = [dict(r, variant="lsh-1", train_s=0.5) for r in _bench((2.0, 3.0, 5.0))
                if r["variant"] == "lsh-4"]
    (r,) = claims.evaluate(["reformer-measured-crossover"],
                           bench=_bench((2.0, 3.0, 5.0)) + fast_one)
    # lsh-1 is faster everywhere, but reformer-base hashes 4 times: lsh-4 is judged
    assert r["numbers"]["judged"] == "lsh-4"
    assert r["verdict"] == "holds in FLOPs but not in measured time"
