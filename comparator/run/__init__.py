"""Running requests (DESIGN.md, "The house, next"): the request values (``requests``),
a request in and records out (``execute``; pricing: ``costing``), models and points,
sweep planning, the limits a point must stay under before work (``limits``), the runner
(local processes or Dask, reached within a bounded time: ``cluster``), the results store
(``store``, its file's faults: ``storefile``, what it keeps: ``storeadmin``),
configuration files, and ``records.Record``, a JSON record as a value.

Produces the JSON records of the record contract.  May import ``measure``, ``cost``,
``count``, ``architectures`` and ``kernels``; never ``claims``, ``report`` or ``cli``.
"""
