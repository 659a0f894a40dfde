"""Claims of speed (comparator/claims/speed.py): the Long Range Arena comparison, the
time-model line of the claims about speed or cost, their verdict logic on hand-made step
times, and the CLI's --time-model.  Time-model runs use tiny models at short lengths;
no wall-clock time is asserted."""
import dataclasses
import json

import pytest

import architectures
from comparator.claims import registry as claims
from comparator.cli import app as cli
from comparator.claims import speed as cs
from comparator.cost.timemodel import StepTime

LENGTHS = (1024, 2048, 3072, 4096)


def test_lra_table_is_the_published_one():
    # Tay et al. 2021, Table 2: steps per second, Transformer and Reformer, 1K-4K tokens
    assert cs.LRA_TABLE == ((1024, 8.1, 4.4), (2048, 4.9, 2.2), (3072, 2.3, 1.5),
                            (4096, 1.4, 1.1))
    # App. A.1.2 sizes; batch 32 over 4x4 TPU v3 chips = 2 sequences a chip
    assert cs.LRA_SIZES == {"d_model": 512, "n_layers": 6, "n_heads": 8, "d_ff": 2048}
    assert cs.LRA_BATCH // cs.LRA_CHIPS == 2
    _, ref = cs.lra_models()["lra-reformer"]
    _, dense = cs.lra_models()["lra-transformer"]
    for c in (ref, dense):
        assert (c.d_model, c.n_layers, c.n_heads, c.d_ff) == (512, 6, 8, 2048)
    assert (ref.n_hashes, ref.n_buckets) == (1, 10)


def test_range_and_measured_verdicts_on_hand_made_ratios():
    rv = cs.range_verdict
    assert rv(LENGTHS, [True] * 4) == "holds"
    assert rv(LENGTHS, [False] * 4) == "does not hold"
    assert rv(LENGTHS, [True, False, False, False]) == "holds only below 2,048 tokens"
    assert rv(LENGTHS, [False, False, True, True]) == "holds only beyond 2,048 tokens"
    assert rv(LENGTHS, [True, False, True, False]) == "holds only at 1,024, 3,072 tokens"
    slower = [1.8, 2.2, 1.5, 1.3]
    mv = cs.measured_verdict
    assert mv(LENGTHS, slower, [1.0, 0.9, 0.8, 0.7]) == "holds in measured time, not in FLOPs"
    assert mv(LENGTHS, slower, [1.2, 1.1, 1.05, 1.01]) == "holds in measured time and in FLOPs"
    assert mv(LENGTHS, slower, [1.2, 0.9, 0.8, 0.7]) == \
        "holds in measured time, in FLOPs only below 2,048 tokens"
    assert mv(LENGTHS, [0.9] * 4, [0.8] * 4) == "does not hold in measured time, not in FLOPs"


def test_lra_check_in_flops_at_the_papers_sizes():
    (r,) = claims.evaluate(["lra-reformer-speed"])
    n = r["numbers"]
    # published step-time ratio = Transformer steps/s over the Reformer's
    assert n["published_time_ratio"] == [8.1 / 4.4, 4.9 / 2.2, 2.3 / 1.5, 1.4 / 1.1]
    assert n["flops_ratio"] == [a / b for a, b in zip(n["reformer_train_flops"],
                                                      n["transformer_train_flops"])]
    assert n["lengths"] == list(LENGTHS) and n["batch_per_chip"] == 2
    # 3K is no power of two: chunks of 3072 / 8 = 384 divide it
    R = architectures.get("reformer")
    cfg = cs.lra_reformer_at(claims.models()["lra-reformer"][1], 3072)
    assert cfg.lsh_chunk == 384
    cfg.check_seq(3072)
    # measured slower everywhere; fewer FLOPs from 2K (the verdict follows the numbers)
    assert r["verdict"] == cs.measured_verdict(LENGTHS, n["published_time_ratio"],
                                               n["flops_ratio"])
    assert r["verdict"].startswith("holds in measured time")
    assert n["flops_ratio"][-1] < 1 and r["time_verdict"] is None
    assert R.flops(cfg, 3072, 2, scope="all").train == n["reformer_train_flops"][2]


def _tiny():
    """Every role the time lines use, at d_model 64, 1 layer, 2 heads."""
    m = claims.models()
    out = {}
    for role in ("lra-reformer", "reformer", "albert-xxlarge", "bert-large", "electra-base",
                 "bert-base"):
        arch, cfg = m[role]
        out[role] = (arch, architectures.get(arch).resize(cfg, d_model=64, n_layers=1,
                                                          n_heads=2, d_ff=128))
    R = architectures.get("reformer")
    out["lra-transformer"] = ("transformer", dataclasses.replace(
        R.transformer_baseline(out["lra-reformer"][1]), type_vocab=0))
    return out


# the published 3K speeds at a sixteenth of the length (192 tokens, no power of two either):
# the check's arithmetic on compiled steps, not the paper's claim
TINY_TABLE = tuple((n // 16, t, r) for n, t, r in cs.LRA_TABLE[2:3])


@pytest.fixture(scope="module")
def tiny_lra():
    return cs.lra_speed_time(_tiny(), cs.Timing(), table=TINY_TABLE)


def test_lra_time_line_from_compiled_steps(tiny_lra):
    verdict, n, text = tiny_lra
    assert n["time_ratio"] == [r / d for r, d in zip(n["reformer_step_s"],
                                                     n["transformer_step_s"])]
    assert n["predicted_steps_per_s"]["transformer"] == [1 / d for d in n["transformer_step_s"]]
    assert n["published_time_ratio"] == [2.3 / 1.5]
    assert verdict == ("holds" if n["time_ratio"][0] > 1 else "does not hold")
    assert n["device"] == "tpu-v3" and n["calibrated"] is False
    assert "tpu-v3 (uncalibrated" in text and "roofline" in text


class Fake(cs.Timing):
    """Hand-made step times: ``times[(arch, seq, device)]`` seconds (default 1)."""

    def __init__(self, times=None, per_step=1.0):
        super().__init__()
        self.times, self.per_step, self.calls = times or {}, per_step, []

    def step(self, arch, cfg, seq, batch, device, dtype="bf16"):
        self.calls.append((arch, seq, device))
        return StepTime(total_s=self.times.get((arch, seq, device), 1.0), term_s={},
                        term_memory_share={}, bound_share={}, matmul_flops=0,
                        utilisation=0.0, device=device, calibrated=False)

    def seconds(self, mod, cfg, seq, batch, dtype, acc):
        self.calls.append((mod.NAME, seq, acc.name))
        return self.per_step, {"time_model": "roofline", "profile": acc.name,
                               "calibrated": False}


def test_crossover_time_line_on_hand_made_step_times():
    m = claims.models()
    # Reformer 2 s vs dense 1 s at 1,024; 1 s vs 2 s at 4,096: straight lines in log-log
    # cross halfway, at 1,024 x 4^(ln 2 / (ln 2 + ln 2)) = 2,048
    t = Fake({("reformer", 1024, "h100-sxm"): 2.0, ("transformer", 4096, "h100-sxm"): 2.0})
    verdict, n, text = cs.crossover_time(m, t, lengths=(1024, 4096), devices=("h100-sxm",))
    assert verdict == "holds only beyond 2,048 tokens"
    assert n["devices"]["h100-sxm"]["crossover"] == pytest.approx(2048)
    assert n["devices"]["h100-sxm"]["time_ratio"] == [2.0, 0.5]
    assert n["batch"] == [32768 // 1024, 32768 // 4096]
    # the FLOP crossover on the same grid, beside it
    assert n["flops_ratio"][0] > 1 > n["flops_ratio"][1] and n["flops_crossover"]
    # devices that disagree are named
    t = Fake({("reformer", 1024, "h100-sxm"): 2.0, ("transformer", 4096, "h100-sxm"): 2.0,
              ("reformer", 1024, "tpu-v3"): 0.5, ("reformer", 4096, "tpu-v3"): 0.5})
    verdict, _, _ = cs.crossover_time(m, t, lengths=(1024, 4096))
    assert verdict == "h100-sxm: holds only beyond 2,048 tokens; tpu-v3: holds"


def test_albert_and_electra_time_lines_judge_the_predicted_ratio():
    m = claims.models()
    ok = Fake({("albert", 512, "tpu-v3"): 3.2 * 1.2, ("albert", 512, "h100-sxm"): 7.4})
    verdict, n, text = cs.albert_time(m, ok)
    assert verdict == "tpu-v3: holds; h100-sxm: does not hold"     # 25% band around 3.2x
    assert n["devices"]["tpu-v3"]["time_ratio"] == pytest.approx(3.84)
    assert "3.84x (tpu-v3)" in text and "uncalibrated" in text
    # 1M / 766k = 1.305x needed, within 10%
    verdict, n, _ = cs.electra_time(m, Fake({("electra", 512, "tpu-v3"): 1.14}))
    assert n["needed_ratio"] == 1_000_000 / 766_000 and verdict == "does not hold"
    assert cs.electra_time(m, Fake({("electra", 512, "tpu-v3"): 1.3}))[0] == "holds"


def test_cost_time_line_prices_with_the_step_times():
    check = cs.cost_time("BERT-base")
    verdict, n, text = check({}, Fake(per_step=1.0))
    d1 = {k: v["dollars"] for k, v in n["devices"].items()}
    # dollars are linear in the step time: a step 10,000 / d1 as long costs $10,000
    scale = 10_000 / d1["tpu-v3"]
    verdict, n, text = check({}, Fake(per_step=scale))
    assert n["devices"]["tpu-v3"]["dollars"] == pytest.approx(10_000)
    assert verdict == "holds" and "within the published range on" in text
    verdict, n, text = check({}, Fake(per_step=1e-6))
    assert verdict == "does not hold" and "below the published $2,500" in text


def test_evaluate_runs_time_lines_only_when_given_a_timing():
    m = claims.models()
    t = Fake({("albert", 512, "tpu-v3"): 3.2})
    (r,) = claims.evaluate(["albert-xxlarge-speed"], m, timing=t)
    assert r["time_verdict"] == "tpu-v3: holds; h100-sxm: does not hold"
    assert r["numbers"]["time_model"]["reported_speed_ratio"] == 3.2
    assert f"Time model ({r['time_verdict']}): " in r["detail"]
    assert r["verdict"] == "does not hold in FLOPs"       # the FLOP verdict stays
    (r,) = claims.evaluate(["albert-xxlarge-speed"], m)
    assert r["time_verdict"] is None and "Time model" not in r["detail"]
    # a claim without a time line compiles nothing
    t = Fake()
    claims.evaluate(["albert-params", "scaling-6nd"], m, timing=t)
    assert t.calls == []
    # a time model that fails says so; the FLOP verdict stands
    class Broken(Fake):
        def step(self, *args, **kw):
            raise RuntimeError("no compiler here")
    (r,) = claims.evaluate(["albert-xxlarge-speed"], m, timing=Broken())
    assert r["time_verdict"] == "not checked" and r["verdict"] == "does not hold in FLOPs"
    assert "failed: RuntimeError: no compiler here" in r["detail"]
    timed = {c.id for c in claims.CLAIMS if c.timed}
    assert {"lra-reformer-speed", "reformer-crossover", "albert-xxlarge-speed",
            "electra-generator-share", "cost-bert-base", "cost-t5-11b"} <= timed


def test_claims_command_time_model_option(tmp_path, capsys):
    assert cli.main(["claims", "--id", "albert-params", "--time-model", "mfu",
                     "--format", "json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["time_verdict"] is None
    # an untimed claim under the default time model: no compile, no time line
    assert cli.main(["claims", "--id", "albert-params", "--db", str(tmp_path / "c.db")]) == 0
    out = capsys.readouterr().out
    assert "Time model" not in out and "holds" in out
    with pytest.raises(SystemExit) as e:              # argparse: one line, exit 2
        cli.main(["claims", "--time-model", "fast"])
    assert e.value.code == 2 and "--time-model" in capsys.readouterr().err
