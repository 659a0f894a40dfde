"""Traced counting (DESIGN.md, "The house, next").

Owns the additive cost value (``value.Cost``), the jaxpr walk (``trace``), the primitive
rules (``rules``), symbolic lengths (``symbolic``, ``costprogram``, ``fasttrace``, its depth
plan ``depth`` and domains of lengths ``lengthdomains``), a traced count as a program in
the length that evaluates without jax (``lengthprogram``, over ``dims``; made for the
results store by ``tracedprograms``; the collector paused around tracing: ``quiet``), the
training step and its memory (``step``, ``memory``; the step's peak as XLA allocates it:
``xlagraph`` its fusion, ``liveness`` its schedules and live buffers, ``heap`` its heap
packing), other papers' counting conventions
(``conventions``; their formulas as terms: ``paperterms``), model and hardware FLOPs with
the utilisations they give (``utilisation``: MFU, HFU), and the counts of a user's own
function or Flax module (``targets``, ``usercount``, with closed forms in the length:
``polyfit``; the ``--model`` factory protocol, ``usermodel.UserModel``).  ``jaxcompat`` is
the one place that touches JAX's private internals (``jax._src``: symbolic dims, static
indexing, dead-code elimination), with a check that they behave and a public fallback
(``plainjax``: concrete traces, the same counts).  May import ``architectures``,
``kernels``, ``comparator.errors`` and the standard library; nothing above it (``cost``,
``measure``, ``run``, ``claims``, ``report``, ``cli``).
"""
