"""Test-wide JAX configuration: no implicit rank promotion anywhere."""
import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
