"""Every bad input of TESTING.md, tried: exit status 2, one line on stderr naming the
field and the value, no traceback, and exactly the message TESTING.md shows.

Regenerate the list after changing a message:  python tests/test_bad_inputs.py
"""
import contextlib
import io
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bad_input_files import FILES  # noqa: E402
from comparator.cli import app as cli  # noqa: E402

S = ["sweep", "--arch", "transformer", "--seq", "128"]
M = ["--model", "mymodel.py:make"]
# (what is tried, the arguments); the field each message must name is its first token;
# the files they read: bad_input_files.FILES
CASES = [
    ("unknown architecture", ["sweep", "--arch", "transfomer", "--seq", "128"]),
    ("empty architecture list", ["sweep", "--arch", ",", "--seq", "128"]),
    ("unknown preset", ["sweep", "--arch", "transformer", "--preset", "bert-bsae", "--seq",
                        "128"]),
    ("unknown accelerator", [*S, "--accelerator", "a100"]),
    ("unknown command option value", [*S, "--scope", "some"]),
    ("unknown convention", [*S, "--convention", "kaplann"]),
    ("contradictory: a paper's convention, traced", [*S, "--convention", "kaplan", "--method",
                                                     "traced"]),
    ("zero length", ["sweep", "--arch", "transformer", "--seq", "0"]),
    ("non-integer length", ["sweep", "--arch", "transformer", "--seq", "12x"]),
    ("decreasing range", ["sweep", "--arch", "transformer", "--seq", "512:128:x2"]),
    ("length too large", ["sweep", "--arch", "transformer", "--seq", "99999999"]),
    ("zero batch", [*S, "--batch", "0"]),
    ("batch too large to represent", [*S, "--batch", "99999999999999999999"]),
    ("non-integer width", [*S, "--d-model", "1e3"]),
    ("width too large to represent", [*S, "--d-model", "3000000000"]),
    ("negative depth", [*S, "--layers", "-1"]),
    ("d_model not divisible by heads", [*S, "--d-model", "100", "--heads", "3"]),
    ("Reformer length not a chunk multiple", ["sweep", "--arch", "reformer", "--seq", "100"]),
    ("Reformer length below its bucket count",
     ["sweep", "--config", "buckets.toml", "--seq", "128"]),
    ("Reformer bucket list of three factors",
     ["sweep", "--config", "factors.toml", "--seq", "4096"]),
    ("Reformer odd bucket count", ["sweep", "--config", "odd.toml", "--seq", "4096"]),
    ("Reformer odd bucket factor (config.json)",
     ["sweep", "--config", "odd-factor.json", "--seq", "4096"]),
    ("ELECTRA generator fraction out of range", ["sweep", "--config", "gen.toml", "--seq",
                                                  "128"]),
    ("config value too large to represent", ["sweep", "--config", "huge.toml", "--seq",
                                              "128"]),
    ("unknown field in a TOML config", ["sweep", "--config", "typo.toml", "--seq", "128"]),
    ("unknown architecture in a TOML config", ["sweep", "--config", "arch.toml", "--seq",
                                                "128"]),
    ("malformed config.json", ["sweep", "--config", "bad.json", "--seq", "128"]),
    ("unknown Hugging Face model_type", ["sweep", "--config", "gtp2.json", "--seq", "128"]),
    ("zero heads in config.json", ["sweep", "--config", "heads.json", "--seq", "128"]),
    ("unreadable config file", ["sweep", "--config", "missing.json", "--seq", "128"]),
    ("config file of another format", ["sweep", "--config", "model.yaml", "--seq", "128"]),
    ("catalogue overrides unreadable", ["accelerators", "--accelerators", "missing.toml"]),
    ("catalogue override out of range", ["accelerators", "--accelerators", "peak.toml"]),
    ("unknown catalogue field", ["accelerators", "--accelerators", "field.toml"]),
    ("MFU out of range", [*S, "--accelerator", "a100-80gb", "--mfu", "2"]),
    ("token budget too large to represent", [*S, "--accelerator", "a100-80gb", "--tokens",
                                             "1e400"]),
    ("contradictory: --tokens and --steps", [*S, "--accelerator", "a100-80gb", "--tokens",
                                             "1e9", "--steps", "10"]),
    ("contradictory: --tokens without --accelerator", [*S, "--tokens", "1e9"]),
    ("contradictory: --baseline and --no-baseline", [*S, "--baseline", "transformer",
                                                     "--no-baseline"]),
    ("contradictory: --db and --no-cache", [*S, "--method", "traced", "--db", "r.sqlite",
                                            "--no-cache"]),
    ("contradictory: --jobs and --scheduler", [*S, "--method", "traced", "--jobs", "2",
                                               "--scheduler", "tcp://127.0.0.1:8786"]),
    ("--worker-resources without --scheduler", [*S, "--method", "traced",
                                                "--worker-resources", "GPU=1"]),
    ("zero jobs", [*S, "--method", "traced", "--jobs", "0"]),
    ("malformed scheduler address", [*S, "--method", "traced", "--scheduler",
                                     "localhost:8786"]),
    ("store path that cannot be created", [*S, "--method", "traced", "--db",
                                           "afile/r.sqlite"]),
    ("store file that is not a database", [*S, "--method", "traced", "--db", "bad.json"]),
    ("Reformer length not a chunk multiple, traced", ["sweep", "--arch", "reformer", "--seq",
                                                      "100", "--method", "traced"]),
    ("cost of several architectures", ["cost", "--arch", "transformer,albert", "--seq", "128",
                                       "--steps", "10"]),
    ("explain over several lengths", ["explain", "--arch", "transformer", "--seq",
                                      "64,128"]),
    ("plot into a missing folder", ["plot", "--arch", "transformer", "--seq", "128", "-o",
                                    "missing/f.png"]),
    ("plot to a non-image file", ["plot", "--arch", "transformer", "--seq", "128", "-o",
                                  "f.txt"]),
    ("benchmark in an unsupported dtype", ["bench", "--arch", "transformer", "--seq", "64",
                                           "--dtype", "int8"]),
    ("benchmark on a device without that dtype's peak",
     ["bench", "--arch", "transformer", "--seq", "64", "--dtype", "bf16", "--accelerator",
      "v100-32gb"]),
    ("unknown kernel", ["bench", "--kernel", "conv", "--seq", "64"]),
    ("non-numeric PUE", ["scenario", "--pue", "x"]),
    ("missing required option", ["sweep", "--arch", "transformer"]),
    ("unknown BERT head", ["sweep", "--config", "head.toml", "--seq", "128"]),
    ("BERT's pre-training head on a decoder", ["sweep", "--config", "gpt2-head.toml", "--seq",
                                               "128"]),
    ("a paper's convention for the Reformer's cost", ["cost", "--arch", "reformer", "--seq",
                                                      "4096", "--steps", "10", "--convention",
                                                      "palm"]),
    ("a paper's convention to explain the Reformer", ["explain", "--arch", "reformer", "--seq",
                                                      "4096", "--convention", "kaplan"]),
    ("a paper's convention for the Reformer's roofline",
     ["roofline", "--arch", "reformer", "--seq", "4096", "--accelerator", "h100-sxm",
      "--convention", "chinchilla"]),
    ("a plot with nothing a convention defines", ["plot", "--arch", "reformer", "--seq",
                                                  "512,1024", "--convention", "kaplan", "-o",
                                                  "f.png"]),
    ("a paper's convention for the attention kernels", ["bench", "--kernel", "attention",
                                                        "--seq", "64", "--convention",
                                                        "kaplan"]),
    ("a calibration measured under another convention",
     ["cost", "--arch", "transformer", "--seq", "512", "--steps", "10", "--accelerator",
      "a100-80gb", "--dtype", "fp32", "--calibration", "kaplan.json"]),
    ("device profile with a zero throughput", ["calibrate", "--show", "--profile",
                                               "zero.json"]),
    ("device profile with a negative matmul throughput", ["calibrate", "--show",
                                                          "--profile", "neg.json"]),
    ("device profile missing a field", ["calibrate", "--show", "--profile", "nosort.json"]),
    ("device profile field of the wrong type", ["calibrate", "--show", "--profile",
                                                "type.json"]),
    ("device profile that is not JSON", ["calibrate", "--show", "--profile", "bad.json"]),
    ("another device's profile", ["calibrate", "--show", "--accelerator", "h100-sxm",
                                  "--profile", "cpu.json"]),
    ("calibration in an unsupported dtype", ["calibrate", "--dtype", "int8"]),
    ("a profile file without --show", ["calibrate", "--profile", "cpu.json"]),
    ("device profile without --predict", ["bench", "--arch", "transformer", "--seq", "64",
                                          "--profile", "p.json"]),
    ("flat MFU fitted on a point not measured",
     ["bench", "--arch", "transformer", "--seq", "64", "--predict", "--mfu-fit", "reformer:64"]),
    ("another device's profile to predict this one's steps",
     ["bench", "--arch", "transformer", "--seq", "64", "--predict", "--profile", "cpu.json"]),
    ("unknown time model for the claims", ["claims", "--time-model", "fast"]),
    ("zero budget", ["budget", "--dollars", "0", "--arch", "transformer", "--seq", "512"]),
    ("negative budget", ["budget", "--kwh", "-5", "--arch", "transformer", "--seq", "512"]),
    ("two budgets at once", ["budget", "--dollars", "5", "--device-hours", "5", "--arch",
                             "transformer", "--seq", "512"]),
    ("unknown price kind", ["cost", "--arch", "transformer", "--seq", "512", "--steps", "10",
                            "--price-kind", "cheap"]),
    ("a date with no price snapshot", ["cost", "--arch", "transformer", "--seq", "512",
                                       "--steps", "10", "--accelerator", "h100-sxm",
                                       "--prices", "2019"]),
    ("a malformed price date", ["scenario", "--prices", "20x0"]),
    ("catalogue file with a negative price", ["accelerators", "--accelerators",
                                              "negprice.toml"]),
    ("catalogue distribution whose low exceeds its high", ["accelerators", "--accelerators",
                                                           "pue.toml"]),
    ("model file missing", ["sweep", "--model", "missing.py:make", "--seq", "128"]),
    ("model without its factory", ["sweep", "--model", "mymodel.py", "--seq", "128"]),
    ("model factory not in the file", ["sweep", "--model", "mymodel.py:mak", "--seq", "128"]),
    ("model file raising when imported", ["explain", "--model", "crash.py:make", "--seq",
                                          "128"]),
    ("model factory raising", ["explain", "--model", "mymodel.py:raising", "--seq", "128"]),
    ("model factory returning a tuple", ["cost", "--model", "mymodel.py:pair", "--seq", "128",
                                         "--steps", "10"]),
    ("model inputs not of length --seq", ["roofline", "--model", "mymodel.py:short", "--seq",
                                          "128", "--accelerator", "h100-sxm"]),
    ("contradictory: a user model, analytic", ["sweep", *M, "--seq", "128", "--method",
                                               "analytic"]),
    ("contradictory: a user model and an architecture", ["explain", *M, "--arch",
                                                         "transformer", "--seq", "128"]),
    ("a user model with per-layer checkpointing", ["cost", *M, "--seq", "128", "--steps", "10",
                                                   "--accelerator", "h100-sxm", "--policy",
                                                   "checkpoint"]),
    ("a user model's predicted steps", ["bench", *M, "--seq", "64", "--predict"]),
    ("absurd depth in a config.json", ["sweep", "--config", "layers.json", "--seq", "128"]),
    ("config range error: the file's key and ours", ["sweep", "--config", "width.json",
                                                     "--seq", "128"]),
    ("config width beyond the bound, second TOML model", ["sweep", "--config", "wide.toml",
                                                          "--seq", "128"]),
    ("config.json nested 2,000 deep", ["sweep", "--config", "deep.json", "--seq", "128"]),
    ("catalogue overrides nested 2,000 deep", ["accelerators", "--accelerators",
                                               "deep.toml"]),
    ("trace of more layers than one trace may unroll",
     [*S, "--layers", "100000", "--d-model", "64", "--method", "traced", "--no-cache"]),
    ("nothing listening at the scheduler address",
     [*S, "--method", "traced", "--no-cache", "--scheduler", "tcp://127.0.0.1:1"]),
    ("a trace limit on an analytic sweep", [*S, "--max-unrolled-layers", "10"]),
    ("store prune without a criterion", ["store", "prune"]),
    ("store option that does nothing for the action", ["store", "info", "--older-than",
                                                       "30"]),
    ("a cost option on a sweep without --accelerator", [*S, "--mfu", "0.5"]),
    ("single-number cost columns on a sweep without --accelerator", [*S, "--point"]),
    ("a pricing option with the run's counts only", ["cost", "--arch", "transformer", "--seq",
                                                     "512", "--tokens", "1000",
                                                     "--accelerator", "none", "--pue", "1.2"]),
    ("a dtype no training step runs in", ["cost", "--arch", "transformer", "--seq", "512",
                                          "--steps", "10", "--accelerator", "h100-sxm",
                                          "--dtype", "int8"]),
    ("explain's dtype without --accelerator", ["explain", "--arch", "transformer", "--seq",
                                               "512", "--dtype", "fp16"]),
    ("a policy the architecture does not have (memory)", ["memory", "--arch", "transformer",
                                                          "--seq", "128", "--policy",
                                                          "reversible"]),
    ("an unknown memory policy", ["memory", "--arch", "reformer", "--seq", "128", "--policy",
                                  "stored"]),
    ("a zero batch for the memory check", ["memory", "--arch", "transformer", "--seq", "128",
                                           "--batch", "0"]),
    ("a length the Reformer refuses (memory)", ["memory", "--arch", "reformer", "--seq",
                                                "100"]),
    ("a reversible policy for the Transformer's cost", ["cost", "--arch", "transformer",
                                                       "--seq", "512", "--steps", "10",
                                                       "--accelerator", "a100-80gb",
                                                       "--policy", "reversible"]),
    ("a training dtype the memory check does not know", ["memory", "--arch", "transformer",
                                                         "--seq", "128", "--dtype", "int8"]),
    ("unknown attention kernel", S + ["--attention", "dense,sparse"]),
    ("an attention kernel a causal model cannot use", ["sweep", "--arch", "transformer",
                                                       "--preset", "gpt2-small", "--seq", "512",
                                                       "--attention", "linformer"]),
    ("the Reformer's attention for ALBERT", ["sweep", "--arch", "albert", "--seq", "512",
                                             "--attention", "lsh"]),
    ("a length that does not fill flash blocks", ["sweep", "--arch", "transformer", "--seq",
                                                  "200", "--attention", "flash"]),
    ("an attention choice with the kernel bench", ["bench", "--kernel", "attention", "--seq",
                                                   "64", "--attention", "flash"]),
    ("a config file's unknown attention", ["sweep", "--config", "attn.toml", "--seq", "512"]),
    ("a config file's zero local window", ["sweep", "--config", "window.toml", "--seq", "512"]),
    ("an attention choice for the Reformer alone", ["sweep", "--arch", "reformer", "--seq",
                                                    "512", "--attention", "lsh"]),
    ("an attention choice with a user model", ["sweep", *M, "--seq", "128", "--attention",
                                               "flash"]),
    ("key/value heads that do not divide the heads", ["sweep", "--config", "kv.toml", "--seq",
                                                      "128"]),
    ("a mixture of one expert", ["sweep", "--config", "experts.toml", "--seq", "128"]),
    ("more experts a token than experts", ["sweep", "--config", "topk.toml", "--seq", "128"]),
    ("a zero capacity factor", ["sweep", "--config", "capacity.toml", "--seq", "128"]),
    ("a modern block on an encoder", ["sweep", "--config", "rope.toml", "--seq", "128"]),
    ("Mixtral's load-balancing loss (config.json)", ["sweep", "--config", "router.json",
                                                     "--seq", "128"]),
    ("Qwen2's per-layer sliding windows (config.json)", ["sweep", "--config", "qwen.json",
                                                         "--seq", "128"]),
    ("a length past Mistral's window, not a multiple of it",
     ["sweep", "--arch", "transformer", "--preset", "mistral-7b", "--seq", "5000"]),
    ("the sliding window for an encoder", [*S, "--attention", "sliding"]),
    ("the sliding window for ALBERT (an encoder)", ["sweep", "--arch", "albert", "--seq", "512",
                                                    "--attention", "sliding"]),
    ("a step time faster than the device's peak", ["conventions", "--preset", "bert-base",
                                                   "--seq", "512", "--accelerator", "tpu-v3",
                                                   "--step-time", "0.001"]),
    ("an MFU whose HFU passes 100% (reversible recomputation)",
     ["conventions", "--preset", "reformer-base", "--seq", "4096", "--accelerator", "tpu-v3",
      "--mfu", "0.9"]),
    ("an MFU without a device", ["conventions", "--preset", "bert-base", "--seq", "512",
                                 "--mfu", "0.4"]),
    ("checkpointing reversible layers", ["conventions", "--preset", "reformer-base", "--seq",
                                         "512", "--recompute", "checkpoint"]),
    ("a peak's dtype without a device", ["conventions", "--preset", "bert-base", "--seq",
                                         "512", "--dtype", "fp16"]),
    ("a plot of step times without a device", ["plot", "--arch", "transformer", "--seq",
                                               "512,1024", "--y", "step_time_s", "-o",
                                               "t.png"]),
    ("a plot's time option without a device", ["plot", "--arch", "transformer", "--seq",
                                               "512,1024", "--dtype", "bf16", "-o", "t.png"]),
    ("a paper's dense formula for grouped-query attention and SwiGLU",
     ["explain", "--arch", "transformer", "--preset", "mistral-7b", "--seq", "512",
      "--convention", "megatron"]),
    ("an attention kernel the Reformer does not take (memory)", ["memory", "--arch",
                                                                 "reformer", "--seq", "128",
                                                                 "--attention", "flash"]),
]


def message(args) -> tuple[int, str]:
    """(exit status, stderr) of the command line, run here."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(list(args))
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue()


def _in(folder):
    for name, text in FILES.items():
        with open(os.path.join(folder, name), "w") as fh:
            fh.write(text)
    os.chdir(folder)


def table(folder) -> str:
    lines = ["| bad input | command | message (exit status 2) |", "|---|---|---|"]
    _in(folder)
    for what, args in CASES:
        rc, err = message(args)
        assert rc == 2, (args, rc, err)
        cmd = " ".join(a if a and " " not in a else repr(a) for a in args)
        msg = err.strip().replace("|", "\\|")
        lines.append(f"| {what} | `comparator {cmd}` | `{msg}` |")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- bad inputs: begin -->\n", "<!-- bad inputs: end -->\n"


def _section() -> str:
    text = open(os.path.join(ROOT, "TESTING.md")).read()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)]


@pytest.mark.parametrize("what,args", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_message_naming_field_and_value(what, args, tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    _in(str(tmp_path))
    rc, err = message(args)
    assert rc == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"comparator {args[0]}: error: ") or line.startswith("comparator")
    assert "not allowed" in line or "argument" in line or "required" in line
    assert line.replace("\\", "") in _section().replace("\\", "") or \
        line.replace("|", "\\|") in _section(), \
        "TESTING.md is out of date: python tests/test_bad_inputs.py"


def test_debug_shows_the_traceback():
    with pytest.raises(Exception) as e:
        cli.main(["--debug", "sweep", "--arch", "transformer", "--seq", "128", "--batch", "0"])
    assert getattr(e.value, "field", None) == "--batch"


if __name__ == "__main__":
    import tempfile
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.environ["COMPARATOR_CACHE_DIR"] = d   # not the user's results store
        body = table(d)
    os.chdir(here)
    path = os.path.join(ROOT, "TESTING.md")
    text = open(path).read()
    text = text[:text.index(BEGIN) + len(BEGIN)] + body + text[text.index(END):]
    open(path, "w").write(text)
    print(f"wrote {len(CASES)} cases to {path}")
