"""Fuzz the command line: random argument lists (every command's own options, good and bad
values, stray tokens) never end in a traceback, only in exit status 0 or 2 -- and 2 comes
with one line on stderr.  Commands run in this process; lists that could start a trace or
a benchmark get `--method analytic` (or a bad --seq for roofline/bench, --show for
calibrate, --time-model mfu where the time model would compile a step), so the fuzz stays
on the validation and analytic paths and takes seconds."""
import argparse
import contextlib
import io

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from comparator.cli import app as cli

VALUES = {
    "--arch": ["transformer", "reformer", "albert", "electra", "all", "transfomer", ",", "",
               "albert,electra"],
    "--preset": ["bert-base", "gpt2-small", "t5-small", "albert-base", "reformer-base", "x",
                 ","],
    "--seq": ["64", "128", "100", "0", "-5", "64:256:x2", "1e3", "99999999999", "64:32:x2",
              "64:128:2", ":::", ","],
    "--batch": ["1", "2", "0", "-1", "1.5", "x", "99999999999999999999"],
    "--scope": ["matmul", "all", "none"], "--format": ["text", "json", "csv", "latex", "x"],
    "--method": ["analytic", "x"], "--d-model": ["64", "128", "0", "x", "100", "3e9"],
    "--layers": ["1", "2", "0", "-1"], "--heads": ["1", "2", "3", "0"],
    "--d-ff": ["64", "0", "x"], "--baseline": ["transformer", "transformer:gpt2-small", "x",
                                              "reformer:x", ":"],
    "--per": ["sequence", "token", "x"], "--accelerator": ["a100-80gb", "all", "x", ""],
    "--tokens": ["1e9", "0", "x", "1e400"], "--steps": ["10", "0", "x"],
    "--devices": ["1", "0", "x"], "--dtype": ["bf16", "fp8", "fp32", "x"],
    "--mfu": ["0.5", "2", "nan", "0"], "--runs": ["1", "0"], "--pue": ["1.1", "0", "inf"],
    "--grid-intensity": ["0.4", "-1", "x"], "--policy": ["store_all", "checkpoint",
                                                         "reversible", "x"],
    "--config": ["missing.json", "bad.json", "ok.toml", "bad.toml"],
    "--calibration": ["missing.json", "bad.json"], "--accelerators": ["missing.toml",
                                                                      "bad.toml"],
    "--scenarios": ["missing.toml", "bad.toml"], "-o": ["missing/x.png", "out.txt",
                                                        "out.png"],
    "--x": ["seq_len", "params", "q"], "--y": ["train_flops", "x"], "--top": ["0", "3", "x"],
    "--trace": ["fast", "x"], "--db": ["r.sqlite", "afile/r.sqlite"], "--jobs": ["1", "0",
                                                                                  "x"],
    "--scheduler": ["x", "tcp://"], "--worker-resources": ["GPU=1", "GPU", "=0"],
    "--kernel": ["x"], "--hashes": ["1,2", "0"], "--chunk": ["0", "x"], "--memory-limit": ["0"],
    "--profile": ["missing.json", "bad.json"],
}
FILES = {"bad.json": "{", "bad.toml": "[model]\narch = 3\n",
         "ok.toml": '[model]\narch = "transformer"\n[model.config]\nd_model = 64\n'
                    'n_heads = 1\nn_layers = 1\n', "afile": ""}


def _options():
    ap = cli.build_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {o: a.nargs == 0 for a in p._actions for o in a.option_strings
                   if o not in ("-h", "--help")} for name, p in sub.choices.items()}


OPTIONS = _options()


@st.composite
def argv(draw):
    cmd = draw(st.sampled_from(sorted(OPTIONS)))
    opts = OPTIONS[cmd]
    args = [cmd]
    for _ in range(draw(st.integers(0, 7))):
        if draw(st.integers(0, 19)) == 0:   # now and then a stray token
            args.append(draw(st.text("-abcx01=:,", max_size=6)))
            continue
        opt = draw(st.sampled_from(sorted(opts)))
        args.append(opt)
        if not opts[opt]:
            args.append(draw(st.sampled_from(VALUES.get(opt, ["1", "x", ""]))))
    if "--method" in opts:
        args += ["--method", "analytic"]
    if cmd in ("roofline", "bench", "memory"):   # would trace, compile or time a model:
        #                                         stop at validation
        args += ["--seq", "0"]
    if cmd == "calibrate":             # would measure the machine: show a profile instead
        args += ["--show"]
    if "--time-model" in opts and cmd != "roofline":   # would compile steps: the flat model
        args += ["--time-model", "mfu"]
    if cmd == "explain" and "--accelerator" in args:   # would compile: stop at validation
        args += ["--seq", "0"]
    return args


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=argv())
def test_random_argument_lists_never_end_in_a_traceback(args, tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("fuzz")
    for name, text in FILES.items():
        (folder / name).write_text(text)
    monkeypatch.chdir(folder)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = cli.main(args)
        except SystemExit as e:
            rc = e.code
    event(f"exit {rc}")
    assert rc in (0, 2), (args, rc, err.getvalue())
    if rc == 2:
        assert len(err.getvalue().strip().splitlines()) == 1, (args, err.getvalue())
    assert "Traceback" not in err.getvalue()
