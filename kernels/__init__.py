"""The compute the models run on: pure JAX functions, jit-compiled at the call site.

Kernels are written for one example (shapes in the signature) and vmapped by the
caller.  Every kernel tags its work with ``jax.named_scope(<term>)`` where
``<term>`` is the slash key of the analytic breakdown (``attn/scores``,
``lsh/hash`` ...), so the traced count attributes FLOPs to the same names the
closed-form count uses.  Kernels import neither ``comparator`` nor
``architectures``.
"""
