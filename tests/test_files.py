"""comparator.cost.files: every data file a user names (a model config, catalogue overrides,
scenarios, a device profile, a calibration, kernel bench records) is read with bounded size,
UTF-8 and nesting depth; any failure is one FieldError naming the option and the file."""
import os

import pytest

from comparator.claims import registry
from comparator.cost import catalogue, files, measured_mfu, profile, scenario
from comparator.errors import FieldError
from comparator.run import configs

DEEP = "[" * 2000 + "]" * 2000          # json.loads: RecursionError before this module
# (reader, file name, what the error's field is)
READERS = [
    (configs.load, "config.json", "--config"), (configs.load, "model.toml", "--config"),
    (lambda p: catalogue.load(overrides=p), "acc.toml", "--accelerators"),
    (lambda p: catalogue.load(overrides=p), "acc.json", "--accelerators"),
    (scenario.load, "runs.toml", "--scenarios"), (profile.load, "profile.json", "--profile"),
    (measured_mfu.load, "cal.json", "--calibration"),
    (registry.load_bench, "bench.json", "--bench"),
]


def _refused(reader, path) -> FieldError:
    with pytest.raises(FieldError) as e:
        reader(str(path))
    assert e.value.value == str(path) and str(path) in str(e.value)
    return e.value


@pytest.mark.parametrize("reader,name,field", READERS)
def test_a_deep_file_is_refused_naming_the_file(tmp_path, reader, name, field):
    p = tmp_path / name
    p.write_text(DEEP if name.endswith(".json") else "a = " + DEEP + "\n")
    err = _refused(reader, p)
    assert err.field == field and "nest" in err.allowed


@pytest.mark.parametrize("reader,name,field", READERS)
def test_not_utf8_too_large_or_not_a_file_is_refused(tmp_path, reader, name, field):
    p = tmp_path / name
    p.write_bytes(b'{"a": "\xff"}')
    assert "not UTF-8 text: byte 0xff at offset 7" in _refused(reader, p).allowed
    with open(p, "wb") as fh:                       # sparse: no disk used
        fh.truncate(files.MAX_BYTES + 1)
    assert f"{files.MAX_BYTES + 1:,} bytes" in _refused(reader, p).allowed
    os.remove(p)
    os.mkfifo(p)                                    # reading it would wait for a writer
    assert "not a regular file" in _refused(reader, p).allowed


def test_depth_is_counted_without_recursion():
    assert files.depth(1) == 0 and files.depth([]) == 1 and files.depth({"a": [1]}) == 2
    nested = []
    for _ in range(100_000):
        nested = [nested]
    assert files.depth(nested) == files.MAX_DEPTH + 1     # stops once past the bound


def test_a_number_of_five_thousand_digits_is_invalid_json(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"model_type": "bert", "hidden_size": ' + "7" * 5000 + "}")
    err = _refused(configs.load, p)
    assert err.field == "--config" and "invalid JSON" in err.allowed
