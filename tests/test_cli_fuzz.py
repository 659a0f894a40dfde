"""Fuzz the command line: random argument lists (every command's own options, good and bad
values, stray tokens) never end in a traceback, only in exit status 0 or 2 -- and 2 comes
with one line on stderr.  Commands run in this process; lists that could start a trace or
a benchmark get `--method analytic` (or a bad --seq for roofline/bench, --show for
calibrate, --time-model mfu where the time model would compile a step), so the fuzz stays
on the validation and analytic paths and takes seconds.

Random configuration files (tests/fuzzgen.py: released configs with keys changed, random
JSON of any shape, nesting thousands deep, broken text and bytes, TOML with random
overrides) load or raise a FieldError naming the file, and sweep with exit 0 or 2; random
greetings of a stub server at --scheduler get exit 2 and one line in under 15 s.
benches/fuzz_faults.py runs the same strategies thousands of times."""
import argparse
import contextlib
import io
import time

import fuzzgen
import stubs
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from comparator.cli import app as cli
from comparator.errors import FieldError
from comparator.run import configs
from comparator.run.storeadmin import ACTIONS

VALUES = {
    "--arch": ["transformer", "reformer", "albert", "electra", "all", "transfomer", ",", "",
               "albert,electra"],
    "--preset": ["bert-base", "gpt2-small", "t5-small", "albert-base", "reformer-base", "x",
                 ",", "mixtral-8x7b", "pythia-160m"],
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
    "--trace": ["fast", "x"], "--db": ["r.sqlite", "afile/r.sqlite", "bad.json"], "--jobs": ["1", "0",
                                                                                  "x"],
    "--scheduler": ["x", "tcp://"], "--worker-resources": ["GPU=1", "GPU", "=0"],
    "--kernel": ["x"], "--hashes": ["1,2", "0"], "--chunk": ["0", "x"], "--memory-limit": ["0", "1e9", "x"],
    "--profile": ["missing.json", "bad.json"],
    "--older-than": ["1", "0", "-1", "x", "1e400", "nan"],
    "--max-unrolled-layers": ["1", "2048", "0", "x", "1e3"],
    "--version": ["other", "current", "0.1.0+abc", ",", ""],
    "--attention": ["flash", "dense,local", "linformer,performer", "lsh", "sliding", "x", ",", ""],
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
    if cmd == "store":                 # its action: info, check, prune, export (or a bad one)
        args.append(draw(st.sampled_from([*ACTIONS, "x"])))
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


def _run(args):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = cli.main(args)
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue()


def config_file(folder, name: str, text) -> str:
    """``text`` (or bytes; a lone surrogate becomes invalid UTF-8) written to ``name``."""
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return str(path)


def check_config_file(path: str) -> str:
    """``configs.load(path)`` loads, or raises a FieldError naming the file; a loaded file
    sweeps (analytic) with exit 0 or 2 and one line.  Returns what happened."""
    try:
        configs.load(path)
    except FieldError as err:
        assert path in str(err), err
        return "refused"
    rc, err = _run(["sweep", "--config", path, "--seq", "128"])
    assert rc in (0, 2) and "Traceback" not in err, (path, rc, err)
    assert rc == 0 or len(err.strip().splitlines()) == 1, err
    return f"sweep exit {rc}"


config_files = (st.tuples(st.just("config.json"), fuzzgen.hf_config_text())
                | st.tuples(st.just("model.toml"), fuzzgen.toml_config_text()))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(file=config_files)
def test_random_config_files_load_or_name_the_file(file, tmp_path_factory):
    path = config_file(tmp_path_factory.mktemp("cfg"), *file)
    event(check_config_file(path))


def check_greeting(greeting: bytes, limit_s: float = 15.0) -> float:
    """A stub sending ``greeting`` at --scheduler: exit 2, one line naming the address, in
    under ``limit_s``.  Returns the seconds taken."""
    with stubs.serve_greeting(greeting) as address:
        t = time.monotonic()
        rc, err = _run(["sweep", "--arch", "transformer", "--d-model", "64", "--layers", "1",
                        "--seq", "64", "--method", "traced", "--no-cache", "--scheduler",
                        address])
        took = time.monotonic() - t
    assert rc == 2 and took < limit_s, (greeting, rc, took, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"--scheduler: '{address}' is not allowed" in lines[0], err
    return took


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(greeting=fuzzgen.greetings)
def test_random_greetings_at_the_scheduler_address_are_named(greeting):
    check_greeting(greeting)
