import math

import pytest

pytest.importorskip("matplotlib")

from comparator.report import plots  # noqa: E402
from comparator.run import series, sweep  # noqa: E402

SEQS = [256, 512, 1024, 2048, 4096]
C_QUAD, C_LIN = 3.0, 7.5e3            # y = 3 n^2 and y = 7500 n cross at n = 7500 / 3 = 2500


def rec(arch, preset, n, y, **extra):
    return {"arch": arch, "preset": preset, "seq_len": n, "batch": 1, "params": 1000,
            "method": "analytic", "scope": "matmul", "fwd_flops": y, "train_flops": y, **extra}


def synthetic():
    return ([rec("quad", "q", n, C_QUAD * n * n) for n in SEQS]
            + [rec("lin", "l", n, C_LIN * n) for n in SEQS])


def test_exponents_and_crossover_are_exact_for_power_laws():
    r = series.analyse(synthetic())
    assert r["exponents"]["quad:q"] == pytest.approx(2.0, abs=1e-9)
    assert r["exponents"]["lin:l"] == pytest.approx(1.0, abs=1e-9)
    assert r["local_exponents"]["quad:q"] == pytest.approx(2.0, abs=1e-9)
    [c] = r["crossovers"]
    # 3 n^2 = 7500 n  <=>  n = 7500 / 3; there y = 7500 * 2500
    assert (c["a"], c["b"]) == ("lin:l", "quad:q")      # a is the one that ends up below
    assert c["x"] == pytest.approx(C_LIN / C_QUAD, rel=1e-6)
    assert c["y"] == pytest.approx(C_LIN * C_LIN / C_QUAD, rel=1e-6)


def test_crossover_in_the_other_direction_and_at_a_shared_point():
    # y = n^2 / 1024 meets y = n at n = 1024 exactly, a shared x value
    recs = ([rec("a", "p", n, n * n / 1024) for n in SEQS]
            + [rec("b", "p", n, float(n)) for n in SEQS])
    [c] = series.analyse(recs)["crossovers"]
    assert (c["a"], c["b"], c["x"], c["y"]) == ("b:p", "a:p", 1024, 1024.0)


def test_no_crossover_when_one_series_stays_below():
    recs = [rec("a", "p", n, n ** 2) for n in SEQS] + [rec("b", "p", n, n ** 2 / 2) for n in SEQS]
    assert series.analyse(recs)["crossovers"] == []


def test_any_numeric_y_and_params_x():
    # a size sweep: one series per architecture and base preset, the @size tag varies along it
    recs = [dict(rec("t", f"base@d{d}", 512, 0.0), params=n, step_time_s=1e-12 * n ** 1.5)
            for d, n in ((256, 10 ** 7), (512, 10 ** 8), (1024, 10 ** 9))]
    recs.append(dict(rec("t", "base", 1024, 0.0), params=10 ** 9, step_time_s=1.0))
    r = series.analyse(recs, x="params", y="step_time_s")
    assert list(r["exponents"]) == ["t:base (seq_len=512)", "t:base (seq_len=1024)"]
    assert r["exponents"]["t:base (seq_len=512)"] == pytest.approx(1.5, abs=1e-9)
    assert r["exponents"]["t:base (seq_len=1024)"] is None       # one point: no fit
    assert plots.axis_label("step_time_s") == "step time (s)"


@pytest.mark.parametrize("kwargs,match", [
    ({"x": "batch"}, "x: 'batch'"), ({"y": "dollars"}, "y: 'dollars'"),
    ({"y": "arch"}, "y: 'arch'")])
def test_bad_axes_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        series.analyse(synthetic(), **kwargs)


def test_nonpositive_values_are_refused_on_log_axes():
    with pytest.raises(ValueError, match="positive"):
        series.analyse([rec("a", "p", 512, 0)])


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<svg"),
                                          (".pdf", b"%PDF")])
def test_files_are_written(tmp_path, suffix, magic):
    out = tmp_path / f"fig{suffix}"
    r = plots.plot(synthetic(), str(out), title="synthetic", caption="1 multiply-add = 2 FLOPs")
    data = out.read_bytes()
    assert data and (data.startswith(magic) if suffix != ".svg" else magic in data)
    assert r["path"] == str(out) and len(r["crossovers"]) == 1


@pytest.mark.parametrize("name,suffix", [("fig.jpg", "'.jpg'"), ("fig", "(none)"),
                                         ("fig.png.txt", "'.txt'")])
def test_unknown_suffix_is_refused(tmp_path, name, suffix):
    with pytest.raises(ValueError, match=r"\.png, \.pdf, \.svg") as err:
        plots.plot(synthetic(), str(tmp_path / name))
    assert suffix in str(err.value) and not (tmp_path / name).exists()


def test_real_analytic_records_transformer_against_reformer(tmp_path):
    recs = sweep.run(sweep.points(sweep.models(["transformer", "reformer"]),
                                  [1024, 2048, 4096, 8192, 16384, 32768], 1),
                     ("analytic",), "matmul", with_baseline=False)
    r = plots.plot(recs, str(tmp_path / "real.png"))
    g, loc = r["exponents"], r["local_exponents"]
    bert, reformer = "transformer:bert-base", "reformer:reformer-base"
    # attention (n^2) takes over from the n-linear projections and FFN as n grows
    assert 1 < g[bert] < 2 and loc[bert] > g[bert]
    assert 0.9 < g[reformer] < 1.3
    [c] = r["crossovers"]
    # reformer costs more than bert-base at 1024 tokens, less at 2048 (about 1.9k tokens)
    assert (c["a"], c["b"]) == (reformer, bert)
    assert 1024 < c["x"] < 2048 and math.isfinite(c["y"]), c
