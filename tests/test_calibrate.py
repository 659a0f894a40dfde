"""comparator calibrate end to end (--quick on this CPU): every throughput positive and
finite, every field there, the JSON file, the store and --show agree.  No timing is
asserted: the machine is shared."""
import json
import math

import pytest

from comparator.cli import app as cli
from comparator.cost.compiled import CPU_COMPILE_OPTIONS
from comparator.cost.profile import RATES, cpu_name, load
from comparator.measure.calibrate import QUICK_GRID
from comparator.measure.movement import FRESH_SIZES, TRANSPOSE_RUNS
from comparator.run.store import Store


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One quick calibration through the CLI: (stdout JSON, profile file, store path)."""
    folder = tmp_path_factory.mktemp("calibrate")
    out, db = folder / "cpu.json", folder / "r.sqlite"
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["calibrate", "--quick", "-o", str(out), "--db", str(db),
                       "--format", "json"])
    assert rc == 0
    return json.loads(buf.getvalue()), out, db


def test_quick_calibration_measures_every_field(calibrated):
    printed, out, _ = calibrated
    p = load(out)
    assert printed["device"] == p.device == cpu_name()
    assert p.kind == "cpu" and p.calibrated and p.date == printed["date"]
    for name in RATES + ("first_touch",):
        v = getattr(p, name)
        assert isinstance(v, float) and math.isfinite(v) and v > 0, name
    for v in (p.reduce, p.reduce_max):
        assert isinstance(v, float) and math.isfinite(v) and v > 0
    assert [run for run, _ in p.transpose] == list(TRANSPOSE_RUNS)
    assert all(math.isfinite(v) and v > 0 for _, v in p.transpose)
    # the least buffer taken afresh at every run: one of the sizes probed (None: no faults)
    assert p.first_touch_min_bytes is None or p.first_touch_min_bytes in FRESH_SIZES
    assert [(pt.m, pt.k, pt.n, pt.batch) for pt in p.matmul] == QUICK_GRID
    assert all(pt.dtype == "fp32" and math.isfinite(pt.flops_per_s) and pt.flops_per_s > 0
               for pt in p.matmul)
    assert {"jax", "jaxlib", "comparator", "xla_flags"} <= set(p.software)
    # compiled as the bench compiles training steps on CPU
    assert json.loads(p.software["compile_options"]) == CPU_COMPILE_OPTIONS
    assert "--quick" in p.source


def test_the_store_keeps_it_and_show_prints_it(calibrated, capsys):
    _, out, db = calibrated
    assert Store(db).get_profile(cpu_name()) == load(out)
    assert cli.main(["calibrate", "--show", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "calibrated" in text and "UNCALIBRATED" not in text and "512 x 64 x 64 x 128" in text
    assert cli.main(["calibrate", "--show", "--profile", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == cpu_name()


def test_show_a_datasheet_profile_and_export_it(tmp_path, capsys):
    path = tmp_path / "h100.json"
    assert cli.main(["calibrate", "--show", "--accelerator", "h100-sxm", "--dtype", "bf16",
                     "-o", str(path)]) == 0
    text = capsys.readouterr().out
    assert "UNCALIBRATED" in text and "Bekman" in text and "matmul bf16" in text
    p = load(path)
    assert not p.calibrated and p.device == "h100-sxm" and p.dtypes == ("bf16",)
