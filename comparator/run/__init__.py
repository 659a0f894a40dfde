"""Running requests (DESIGN.md, "The house, next"): models and points, sweep planning,
the runner (local processes or Dask), the results store, configuration files, the
shared pricing options and unpriced rows (``costing``) and budgets asked backwards
(``budget``: tokens, model size, length and break-even for a budget, analytic).

Produces the JSON records of the record contract.  May import ``measure``, ``cost``,
``count``, ``architectures`` and ``kernels``; never ``claims``, ``report`` or ``cli``.
"""
