"""Running requests (DESIGN.md, "The house, next"): the request values (``requests``,
``steprequests``, ``measurerequests``; shared checks in ``values``), a request in and
records out (``execute``: sweep, cost, scenario; ``steps``: explain, roofline;
``conventions``: one model under every paper's convention, MFU and HFU; ``measuring``:
bench, calibrate; pricing, dated prices and the rows of devices not priced: ``costing``),
budgets asked backwards (``budget``: tokens, model size, length and break-even for a
budget, analytic), a user's ``--model`` factory (``usermodel``), models
and points, sweep planning, the limits a point must stay under before work (``limits``),
the runner (local processes or Dask, reached within a bounded time: ``cluster``), the
results store (``store``, its file's faults: ``storefile``, what it keeps: ``storeadmin``;
traced points answered from the programs in the length it keeps: ``programs``; where jax
is imported: ``jaxside``),
configuration files, and ``records.Record``, a JSON record as a value.

Produces the JSON records of the record contract.  May import ``measure``, ``cost``,
``count``, ``architectures`` and ``kernels``; never ``claims``, ``report`` or ``cli``.
"""
