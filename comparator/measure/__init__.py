"""Measurements on the device this runs on (DESIGN.md, "The house, next").

Owns ``calibrate`` (the microbenchmarks behind a device profile); issue 15 moves the
training-step bench and the validation of predictions here.  May import ``comparator.cost``,
``comparator.count`` and ``architectures``; never ``cli`` or ``report``.
"""
