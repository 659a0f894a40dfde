"""The fault fuzz, at length: random configuration files and random command lines, each
run in this process under a time limit, none of which may end in a traceback, a hang, an
exit status other than 0 and 2, or (exit 2) more than one line on stderr.

    python benches/fuzz_faults.py [--configs 2000] [--commands 2000] [--seed 17]
                                  [--limit-s 20]

The strategies are those of tests/test_cli_fuzz.py and tests/fuzzgen.py (the normal test
run draws a few hundred of them): config files are released Hugging Face configs with keys
changed, random JSON, nesting thousands deep, broken text and bytes, TOML with random
overrides; command lines are every command's options with good and bad values (traces,
benchmarks and compilations stopped at validation, as in the test), one in ten a sweep of a
random config file and one in ten a traced sweep whose --scheduler is a stub server sending
random bytes.  The results store is a temporary folder.  Prints the counts, the outcomes,
the slowest case and every failure; exit status 1 when there is one.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]


class Overtime(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def ring(signum, frame):
        raise Overtime(f"over {seconds:g} s")
    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=2000)
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--limit-s", type=float, default=20.0, help="time limit of each case")
    a = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="fuzz-faults-")
    os.environ["COMPARATOR_CACHE_DIR"] = os.path.join(work, "cache")   # never the user's

    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    import fuzzgen
    import test_cli_fuzz as tf

    outcomes = collections.Counter()
    failures, slowest = [], {"configs": (0.0, None), "commands": (0.0, None)}
    n = {"configs": 0, "commands": 0}

    def case(kind: str, what, fn):
        n[kind] += 1
        t = time.monotonic()
        try:
            with time_limit(a.limit_s):
                outcome = fn()
        except Exception as err:  # noqa: BLE001 -- every failure is recorded, the run goes on
            outcome = "FAILED"
            failures.append((kind, what, f"{type(err).__name__}: {err}"[:400]))
        took = time.monotonic() - t
        outcomes[(kind, outcome)] += 1
        if took > slowest[kind][0]:
            slowest[kind] = (took, what)

    def folder(name):
        d = os.path.join(work, f"{name}-{n['configs'] + n['commands']}")
        os.makedirs(d)
        return d

    import pathlib

    def common(examples):
        return settings(database=None, deadline=None, phases=[Phase.generate],
                        suppress_health_check=list(HealthCheck), max_examples=examples)

    @seed(a.seed)
    @common(a.configs)
    @given(file=tf.config_files)
    def configs(file):
        path = tf.config_file(pathlib.Path(folder("cfg")), *file)
        case("configs", file[0] + ": " + repr(file[1])[:200],
             lambda: tf.check_config_file(path))

    def command(args, where):
        def run():
            here = os.getcwd()
            os.chdir(where)
            try:
                rc, err = tf._run(args)
            finally:
                os.chdir(here)
            assert rc in (0, 2), (rc, err[-400:])
            assert "Traceback" not in err, err[-400:]
            if rc == 2:
                assert len(err.strip().splitlines()) == 1, err[-400:]
            return f"exit {rc}"
        return run

    @seed(a.seed + 1)
    @common(a.commands)
    @given(kind=st.sampled_from(["options"] * 8 + ["config", "scheduler"]),
           args=tf.argv(), file=tf.config_files, greeting=fuzzgen.greetings)
    def commands(kind, args, file, greeting):
        where = folder("cmd")
        for name, text in tf.FILES.items():
            with open(os.path.join(where, name), "w") as fh:
                fh.write(text)
        if kind == "options":
            case("commands", " ".join(args), command(args, where))
        elif kind == "config":
            path = tf.config_file(pathlib.Path(where), *file)
            case("commands", f"sweep --config {file[0]}: {repr(file[1])[:150]}",
                 command(["sweep", "--config", path, "--seq", "128"], where))
        else:
            case("commands", f"--scheduler stub sending {greeting[:40]!r}",
                 lambda: f"scheduler refused in {tf.check_greeting(greeting, a.limit_s):.1f} s"
                 and "scheduler refused")

    t0 = time.monotonic()
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        configs()
        commands()
    wall = time.monotonic() - t0
    print(f"fuzz_faults: seed {a.seed} (configs) and {a.seed + 1} (command lines); time "
          f"limit {a.limit_s:g} s a case; {wall:.0f} s in all")
    for kind in ("configs", "commands"):
        print(f"  {kind}: {n[kind]} cases; slowest {slowest[kind][0]:.2f} s "
              f"({str(slowest[kind][1])[:100]})")
        for (k, outcome), count in sorted(outcomes.items()):
            if k == kind:
                print(f"    {outcome}: {count}")
    print(f"  failures: {len(failures)}")
    for kind, what, why in failures[:50]:
        print(f"    [{kind}] {what[:200]}\n        {why}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
