import jax

# Implicit rank promotion hides shape bugs; every kernel and model must broadcast explicitly.
jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _results_store_in_tmp(tmp_path, monkeypatch):
    """Traced sweeps store their points (comparator.run.store); each test gets its own store,
    so no test writes the user's cache or reads another test's points."""
    monkeypatch.setenv("COMPARATOR_CACHE_DIR", str(tmp_path / "comparator-cache"))
