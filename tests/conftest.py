import jax

# Implicit rank promotion hides shape bugs; every kernel and model must broadcast explicitly.
jax.config.update("jax_numpy_rank_promotion", "raise")
