"""No silent options (issue 17): an option that does nothing in the command as given is
refused with exit 2 and what it needs; training dtypes are a training step's; tokens that
are not whole steps are rounded up with a note; a length given twice is computed once,
with a note; every option of every command has help text."""
import argparse
import json

import pytest

import architectures
import comparator
from comparator.cli import app as cli
from comparator.run.requests import Pricing, RequestError, SweepRequest, priced
from comparator.run.steprequests import ExplainRequest, RooflineRequest

S = ["sweep", "--arch", "transformer", "--seq", "512"]
COUNTS = ["cost", "--arch", "transformer", "--seq", "512", "--tokens", "1000",
          "--accelerator", "none"]
# every option that prices, times or sizes a run on a device, with a value it would take
PRICE_OPTIONS = [("--mfu", "0.5"), ("--devices", "2"), ("--pue", "1.2"), ("--dtype", "bf16"),
                 ("--zero", None), ("--largest", None), ("--policy", "checkpoint"),
                 ("--prices", "2020"),
                 ("--price-kind", "spot"), ("--runs", "2"), ("--grid-intensity", "0.3"),
                 ("--calibration", "cal.json"), ("--time-model", "mfu"),
                 ("--profile", "p.json"), ("--accelerators", "a.toml")]


def run(args, capsys):
    rc = cli.main(list(args))
    got = capsys.readouterr()
    return rc, got.out, got.err


def _line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("flag,value", PRICE_OPTIONS + [("--tokens", "100"), ("--steps", "3"),
                                                        ("--point", None)])
def test_a_sweep_refuses_cost_options_without_an_accelerator(flag, value, capsys):
    rc, out, err = run(S + [flag] + ([value] if value else []), capsys)
    line = _line(err)
    assert rc == 2 and out == ""
    assert line.startswith(f"comparator sweep: error: {flag}: ") and "only with --accelerator" \
        in line, line


@pytest.mark.parametrize("flag,value", PRICE_OPTIONS)
def test_cost_counts_only_refuses_what_only_pricing_uses(flag, value, capsys):
    rc, _, err = run(COUNTS + [flag] + ([value] if value else []), capsys)
    line = _line(err)
    assert rc == 2 and line.startswith(f"comparator cost: error: {flag}: ")
    assert "not with --accelerator none" in line


def test_the_same_options_are_taken_with_an_accelerator(capsys):
    rc, out, err = run(S + ["--accelerator", "h100-sxm", "--mfu", "0.5", "--devices", "2",
                            "--pue", "1.2", "--dtype", "fp16", "--zero", "--point",
                            "--format", "json"], capsys)
    assert rc == 0, err
    a = json.loads(out)[0]["assumptions"]
    assert (a["mfu"], a["devices"], a["pue"], a["dtype"]) == (0.5, 2, 1.2, "fp16")


def test_the_python_api_refuses_them_too():
    with pytest.raises(RequestError) as e:
        comparator.sweep("transformer", [512], mfu=0.5)
    assert e.value.field == "--mfu"
    with pytest.raises(RequestError) as e:
        comparator.cost("transformer", 512, accelerators=None, tokens=1000, pue=1.2)
    assert e.value.field == "--pue"
    assert priced(None) is None and priced(None, counts=True, steps=3).steps == 3


@pytest.mark.parametrize("args", [
    ["cost", "--arch", "transformer", "--seq", "512", "--steps", "1", "--accelerator",
     "h100-sxm", "--dtype", "int8"],
    S + ["--accelerator", "h100-sxm", "--dtype", "fp8"],
    ["budget", "--dollars", "100", "--arch", "transformer", "--seq", "512", "--accelerator",
     "h100-sxm", "--dtype", "int8"],
    ["roofline", "--arch", "transformer", "--seq", "512", "--accelerator", "h100-sxm",
     "--dtype", "int8"],
    ["explain", "--arch", "transformer", "--seq", "512", "--accelerator", "h100-sxm",
     "--dtype", "int8"],
])
def test_a_dtype_no_training_step_uses_is_refused(args, capsys):
    rc, _, err = run(args, capsys)
    line = _line(err)
    assert rc == 2 and ": --dtype: " in line and "a training dtype" in line, line


def test_training_dtypes_by_any_of_their_names():
    for dtype in ("auto", "bf16", "bfloat16", "fp16", "half", "fp32", "tf32"):
        assert Pricing(("h100-sxm",), dtype=dtype).dtype == dtype
    for dtype in ("int8", "fp8", "e4m3", "fp64", 16):
        with pytest.raises(RequestError):
            Pricing(("h100-sxm",), dtype=dtype)
    with pytest.raises(RequestError):
        RooflineRequest("transformer", 512, "h100-sxm", dtype="int8")


def test_explain_refuses_dtype_and_profile_without_an_accelerator(capsys):
    for flag, value in (("--dtype", "fp16"), ("--profile", "p.json")):
        rc, _, err = run(["explain", "--arch", "transformer", "--seq", "512", flag, value],
                         capsys)
        assert rc == 2 and f": {flag}: " in _line(err) and "only with --accelerator" in err
    assert ExplainRequest("transformer", 512).dtype is None
    assert ExplainRequest("transformer", 512, accelerator="h100-sxm").dtype == "bf16"


def test_tokens_not_whole_steps_are_rounded_up_with_a_note(capsys):
    steps = -(-1000 // (1 * 512))                 # ceil(tokens / (batch x seq)) = 2
    rc, out, err = run(COUNTS + ["--format", "json"], capsys)
    assert rc == 0, err
    rec = json.loads(out)[0]
    assert rec["steps"] == steps and rec["total_tokens"] == steps * 512
    assert rec["assumptions"]["tokens"] == ("1,000 tokens are not whole steps of 512 (batch "
                                            "1 x seq 512): rounded up to 2 steps, 1,024 tokens")
    rc, out, _ = run(["cost", "--arch", "transformer", "--seq", "512", "--tokens", "1000",
                      "--accelerator", "h100-sxm", "--time-model", "mfu", "--format", "json"],
                     capsys)
    rec = json.loads(out)[0]
    assert rc == 0 and rec["steps"] == steps and "rounded up to 2 steps" in \
        rec["assumptions"]["tokens"]
    rc, out, _ = run(S + ["--accelerator", "h100-sxm", "--time-model", "mfu", "--tokens",
                          "1000", "--format", "json"], capsys)
    assert rc == 0 and all("rounded up" in r["assumptions"]["tokens"]
                           for r in json.loads(out))
    rc, out, _ = run(COUNTS[:6] + ["1024", "--accelerator", "none", "--format", "json"], capsys)
    assert rc == 0 and "assumptions" not in json.loads(out)[0]      # whole steps: no note
    rc, out, _ = run(COUNTS, capsys)
    assert rc == 0 and "rounded up to 2 steps, 1,024 tokens" in out


def test_a_length_given_twice_is_computed_once_with_a_note(capsys):
    req = SweepRequest(("transformer",), (512, 128, 512, 128, 64))
    assert req.seqs == (512, 128, 64)
    assert req.notes == ("length 128, 512 given more than once: each is computed once",)
    assert SweepRequest(("transformer",), (512, 128)).notes == ()
    rc, out, err = run(["sweep", "--arch", "transformer", "--seq", "512,512", "--format",
                        "json"], capsys)
    assert rc == 0 and [r["seq_len"] for r in json.loads(out)] == [512]
    assert err == "comparator sweep: note: length 512 given more than once: it is computed " \
                  "once\n"


def test_conventions_never_blames_an_option_not_typed(capsys):
    """``conventions`` has no --convention: every paper's row is shown, a convention that
    does not define the model says so in its row; a bad length names --seq's value."""
    for arch, preset, cfg, _ in architectures.all_presets():
        if arch != "reformer":
            continue
        rc, out, err = run(["conventions", "--preset", preset, "--seq", "4096"], capsys)
        assert rc == 0 and "--convention" not in err, err
        assert out.count("not defined by") == 5          # five papers' conventions
        rc, _, err = run(["conventions", "--preset", preset, "--seq", "100"], capsys)
        assert rc == 2 and "--convention" not in err and "seq: 100" in err


def _options(parser, name="comparator"):
    for act in parser._actions:
        if isinstance(act, argparse._SubParsersAction):
            for sub, p in act.choices.items():
                yield from _options(p, f"{name} {sub}")
        elif not isinstance(act, argparse._HelpAction):
            yield name, act


def test_every_option_of_every_command_has_help():
    seen = list(_options(cli.build_parser()))
    assert len({n for n, _ in seen}) >= 15 and len(seen) > 200     # the walk reached them
    missing = [f"{n} {'/'.join(a.option_strings) or a.dest}" for n, a in seen if not a.help]
    assert not missing, missing
