"""Measurements on the device this runs on (DESIGN.md, "The house, next").

Owns the training-step bench (``bench``), the attention-kernel bench (``kernelbench``),
the microbenchmarks behind a device profile (``calibrate``, ``movement``) and the
validation of time predictions against measured steps (``validate``).  May import
``comparator.cost``, ``comparator.count``, ``architectures`` and ``kernels``; never
``run``, ``claims``, ``report`` or ``cli``.
"""
