"""Request values (comparator/run/requests.py): what a caller may write shorter is
normalised, a bad value is refused naming the field by its command-line option, the value
and what is allowed -- for library users as on the command line."""
import datetime

import pytest

import architectures
from comparator.cli import app as cli
from comparator.run.requests import (ClaimsRequest, CostRequest, Pricing, RequestError,
                                     SweepRequest, check_runner, priced, size_grid)


def refused(make, field, value=None):
    with pytest.raises(RequestError) as e:
        make()
    assert e.value.field == field, e.value
    if value is not None:
        assert e.value.value == value
    return str(e.value)


def test_short_forms_are_normalised():
    r = SweepRequest("all", 512, methods="both", presets="bert-base,gpt2-small")
    assert r.archs == tuple(architectures.NAMES) and r.seqs == (512,)
    assert r.methods == ("analytic", "traced") and r.presets == ("bert-base", "gpt2-small")
    assert SweepRequest(["transformer", "albert"], [64, 128]).archs == ("transformer", "albert")
    assert Pricing("a100-80gb,h100-sxm").accelerators == ("a100-80gb", "h100-sxm")
    assert Pricing("none").accelerators == () and Pricing(None).accelerators == ()
    # a price date as the command line writes it: a year, a month or a day
    assert Pricing(prices=2020).prices == "2020" and Pricing(prices=2020).as_of == \
        datetime.date(2020, 12, 31)
    assert Pricing(prices="2019-02").as_of == datetime.date(2019, 2, 28)
    assert Pricing(prices=datetime.date(2020, 6, 1)).prices == "2020-06-01"
    assert Pricing().as_of is None and Pricing().dtype == "auto"


def test_size_grid_is_every_combination():
    assert size_grid() is None
    assert size_grid(d_model=[256, 512], layers=4) == ((256, 4, None, None),
                                                        (512, 4, None, None))
    assert len(size_grid([1, 2], [3, 4], [5, 6], [7, 8])) == 2 ** 4


@pytest.mark.parametrize("make,field,value", [
    (lambda: SweepRequest("transfomer", 128), "--arch", "transfomer"),
    (lambda: SweepRequest((), 128), "--arch", None),
    (lambda: SweepRequest("transformer", 0), "--seq", 0),
    (lambda: SweepRequest("transformer", (1 << 24) + 1), "--seq", (1 << 24) + 1),
    (lambda: SweepRequest("transformer", 128, batch=0), "--batch", 0),
    (lambda: SweepRequest("transformer", 128, methods="exact"), "--method", "exact"),
    (lambda: SweepRequest("transformer", 128, scope="some"), "--scope", "some"),
    (lambda: SweepRequest("transformer", 128, trace="quick"), "--trace", "quick"),
    (lambda: SweepRequest("transformer", 128, convention="kaplann"), "--convention", "kaplann"),
    (lambda: SweepRequest("transformer", 128, convention="kaplan", methods="traced"),
     "--method", "traced"),
    (lambda: SweepRequest("transformer", 128, sizes=[(0, None, None, None)]), "--d-model", 0),
    (lambda: SweepRequest("transformer", 128, baseline="albert", with_baseline=False),
     "--baseline", "albert"),
    (lambda: SweepRequest("transformer", 128, jobs=2, scheduler="tcp://h:1"), "--jobs", 2),
    (lambda: SweepRequest("transformer", 128, scheduler="localhost:1"), "--scheduler",
     "localhost:1"),
    (lambda: SweepRequest("transformer", 128, worker_resources={"GPU": 1}),
     "--worker-resources", {"GPU": 1}),
    (lambda: SweepRequest("transformer", 128, db="r.sqlite", no_cache=True), "--db",
     "r.sqlite"),
    (lambda: SweepRequest("transformer", 128, pricing=Pricing(tokens=10 ** 9, steps=10)),
     "--tokens", 10 ** 9),
    (lambda: SweepRequest("transformer", 128, pricing=Pricing(time_model="roofline", mfu=0.4)),
     "--time-model", "roofline"),
    (lambda: SweepRequest("transformer", 128, convention="palm",
                          pricing=Pricing(time_model="roofline")), "--time-model", "roofline"),
    (lambda: Pricing(devices=0), "--devices", 0),
    (lambda: Pricing(policy="keep"), "--policy", "keep"),
    (lambda: Pricing(mfu="half"), "--mfu", "half"),
    (lambda: Pricing(prices="20x0"), "--prices", "20x0"),
    (lambda: Pricing(prices="2020-13"), "--prices", "2020-13"),
    (lambda: Pricing(prices=2020.5), "--prices", 2020.5),
    (lambda: Pricing(price_kind="cheap"), "--price-kind", "cheap"),
    (lambda: priced(None, tokens=10 ** 6), "--tokens", 10 ** 6),
    (lambda: CostRequest("transformer,albert", 128, Pricing(steps=1)), "--arch",
     "transformer,albert"),
    (lambda: CostRequest("all", 128, Pricing(steps=1)), "--arch", "all"),
    (lambda: CostRequest("transformer", 128, Pricing()), "--tokens", None),
    (lambda: CostRequest("reformer", 4096, Pricing(steps=1), convention="palm"),
     "--convention", "palm"),
    (lambda: ClaimsRequest(time_model="fast"), "--time-model", "fast"),
    (lambda: ClaimsRequest(bench=[1, 2]), "--bench", [1, 2]),
    (lambda: check_runner(no_cache=True, retry_failed=True), "--retry-failed", True),
])
def test_bad_values_are_refused_naming_the_option(make, field, value):
    text = refused(make, field, value)
    assert "is not allowed; " in text and text.startswith(field)


def test_a_good_request_keeps_its_values():
    p = Pricing("a100-80gb", tokens=10 ** 9, devices=8, dtype="fp32", mfu=0.4)
    r = SweepRequest("reformer", (1024, 4096), batch=4, pricing=p, convention="standard")
    assert r.pricing.time_model_for(r.convention) == "mfu"       # a flat MFU given
    assert r.pricing.mfu == 0.4 and r.pricing.devices == 8 and r.traced is False
    assert Pricing().time_model_for() == "roofline"
    assert Pricing().time_model_for("kaplan") == "mfu"           # a paper's convention


def test_the_cli_reports_a_whole_value_as_typed(capsys):
    """The request holds 2 and 10**9; the message shows '2' and '1e9' as the user wrote them
    (a part of a value, one name of a list, is shown as the request has it)."""
    assert cli.main(["sweep", "--arch", "transformer", "--seq", "128", "--jobs", "2",
                     "--scheduler", "tcp://h:1", "--method", "traced"]) == 2
    assert "--jobs: '2' is not allowed" in capsys.readouterr().err
    assert cli.main(["sweep", "--arch", "transformer", "--seq", "128", "--accelerator",
                     "a100-80gb", "--tokens", "1e9", "--steps", "10"]) == 2
    assert "--tokens: '1e9' is not allowed; either --tokens or --steps" in capsys.readouterr().err
    assert cli.main(["sweep", "--arch", "transformer,transfomer", "--seq", "128"]) == 2
    assert "--arch: 'transfomer' is not allowed" in capsys.readouterr().err


# -- the one-step, measuring and scenario requests, and a user's --model ----------------

from comparator.run.measurerequests import (BenchRequest, CalibrateRequest,  # noqa: E402
                                            KernelBenchRequest)
from comparator.run.steprequests import (ExplainRequest, RooflineRequest,  # noqa: E402
                                         ScenarioRequest)

M = "my_model.py:make"


@pytest.mark.parametrize("make,field,value", [
    (lambda: ExplainRequest(None, 128), "--arch", None),
    (lambda: ExplainRequest("all", 128), "--arch", "all"),
    (lambda: ExplainRequest("transformer,albert", 128), "--arch", "transformer,albert"),
    (lambda: ExplainRequest("transformer", [64, 128]), "--seq", [64, 128]),
    (lambda: ExplainRequest("transformer", 128, methods="exact"), "--method", "exact"),
    (lambda: ExplainRequest("reformer", 4096, convention="kaplan"), "--convention", "kaplan"),
    (lambda: RooflineRequest("transformer", 128), "--accelerator", None),
    (lambda: RooflineRequest("transformer", 128, "h100-sxm", top=0), "--top", 0),
    (lambda: RooflineRequest("transformer", 128, "h100-sxm", time_model="fused"),
     "--time-model", "fused"),
    (lambda: ScenarioRequest(runs=0), "--runs", 0),
    (lambda: ScenarioRequest(pue="x"), "--pue", "x"),
    (lambda: ScenarioRequest(prices="20x0"), "--prices", "20x0"),
    (lambda: ScenarioRequest(price_kind="cheap"), "--price-kind", "cheap"),
    (lambda: BenchRequest((), 64), "--arch", None),
    (lambda: BenchRequest("transformer", 64, dtype="int8"), "--dtype", "int8"),
    (lambda: BenchRequest("transformer", 64, mfu_fit="transformer:64"), "--mfu-fit",
     "transformer:64"),
    (lambda: BenchRequest("transformer", 64, predict=True, convention="kaplan"),
     "--convention", "kaplan"),
    (lambda: BenchRequest("transformer", 64, memory_limit=0), "--memory-limit", 0),
    (lambda: KernelBenchRequest(64, kernel="conv"), "--kernel", "conv"),
    (lambda: KernelBenchRequest(64, hashes=(1, 0)), "--hashes", 0),
    (lambda: CalibrateRequest(profile="p.json"), "--profile", "p.json"),
    (lambda: CalibrateRequest(show=True, accelerator="all"), "--accelerator", "all"),
    (lambda: CalibrateRequest(dtypes="int8"), "--dtype", "int8"),
    # a user's model: its form, and what it replaces
    (lambda: SweepRequest(seqs=128, model="my_model.py"), "--model", "my_model.py"),
    (lambda: SweepRequest("transformer", 128, model=M), "--arch", "transformer"),
    (lambda: SweepRequest(seqs=128, model=M, methods="both"), "--method", "both"),
    (lambda: SweepRequest(seqs=128, model=M, convention="kaplan"), "--convention", "kaplan"),
    (lambda: SweepRequest(seqs=128, model=M, jobs=2), "--jobs", 2),
    (lambda: SweepRequest(seqs=128, model=M, sizes=[(256, None, None, None)]), "--d-model",
     256),
    (lambda: CostRequest(None, 128, Pricing(steps=1, policy="checkpoint"), model=M),
     "--policy", "checkpoint"),
    (lambda: ExplainRequest(None, 128, model=M, methods="analytic"), "--method", "analytic"),
    (lambda: RooflineRequest(None, 128, "h100-sxm", model=M, preset="bert-base"), "--preset",
     "bert-base"),
    (lambda: BenchRequest(seqs=64, model=M, predict=True), "--predict", True),
])
def test_more_bad_values_are_refused_naming_the_option(make, field, value):
    text = refused(make, field, value)
    assert "is not allowed; " in text and text.startswith(field)


def test_defaults_follow_the_model_and_the_convention():
    assert ExplainRequest("transformer", 128).methods == ("analytic", "traced")
    assert ExplainRequest("transformer", 128, convention="kaplan").methods == ("analytic",)
    assert ExplainRequest(None, [128], model=M).methods == ("traced",)
    assert SweepRequest("transformer", 128).methods == ("analytic",)
    assert SweepRequest(seqs=128, model=M).methods == ("traced",)
    assert BenchRequest("all", 64).archs == tuple(architectures.NAMES)
    assert CalibrateRequest(dtypes="bf16,fp32,bf16").dtypes == ("bf16", "fp32")


def test_the_scenario_request_prices_as_pricing_does():
    """--prices and --price-kind of ``comparator scenario``: the date normalised as
    ``Pricing``'s, and each run priced at that date too (the same device-hours at the
    price listed then: the dollars scale by the two prices)."""
    from comparator.run import execute
    assert ScenarioRequest(prices=2020).prices == Pricing(prices=2020).prices == "2020"
    assert ScenarioRequest(prices=datetime.date(2020, 6, 1)).prices == "2020-06-01"
    assert ScenarioRequest().prices is None and ScenarioRequest().price_kind == "on-demand"
    res = execute.scenario(ScenarioRequest("v100-16gb", prices="2020", time_model="mfu"))
    assert res.prices == datetime.date(2020, 12, 31) and len(res.records) >= 1
    for r in res.records:
        assert r["prices_as_of"] == "2020-12-31" and r["dtype"] == "fp16"   # no bf16: fp16
        assert r["dollars_period"] / r["dollars"] == pytest.approx(
            r["period_price_per_hour"] / r["price_per_hour"])
    spot = execute.scenario(ScenarioRequest("tpu-v3", time_model="mfu", price_kind="spot"))
    assert spot.prices is None and {r["price_kind"] for r in spot.records} == {"spot"}
