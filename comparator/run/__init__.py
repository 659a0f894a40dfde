"""Running requests (DESIGN.md, "The house, next"): the request values (``requests``,
``steprequests``, ``measurerequests``; shared checks in ``values``), a request in and
records out (``execute``: sweep, cost, scenario; ``steps``: explain, roofline;
``measuring``: bench, calibrate; pricing: ``costing``), a user's ``--model`` factory
(``usermodel``), models and points, sweep planning, the runner (local processes or Dask),
the results store, configuration files, and ``records.Record``, a JSON record as a value.

Produces the JSON records of the record contract.  May import ``measure``, ``cost``,
``count``, ``architectures`` and ``kernels``; never ``claims``, ``report`` or ``cli``.
"""
