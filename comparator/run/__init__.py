"""Running requests (DESIGN.md, "The house, next"): the request values (``requests``),
a request in and records out (``execute``; pricing, dated prices and the rows of devices
not priced: ``costing``), budgets asked backwards (``budget``: tokens, model size, length
and break-even for a budget, analytic), models and points, sweep planning, the runner
(local processes or Dask), the results store, configuration files, and
``records.Record``, a JSON record as a value.

Produces the JSON records of the record contract.  May import ``measure``, ``cost``,
``count``, ``architectures`` and ``kernels``; never ``claims``, ``report`` or ``cli``.
"""
