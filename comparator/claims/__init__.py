"""Published efficiency claims and their checks (DESIGN.md, "The house, next").

Owns the claim registry (``registry``), the FLOP/parameter checks (``checks``) and the
time-model verdicts (``speed``).  May import ``comparator.run`` and the rooms below it
(``measure``, ``cost``, ``count``), ``architectures`` and ``kernels``; never ``cli`` or
``report``.
"""
