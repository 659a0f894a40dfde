"""Turning counts into time, dollars and energy (DESIGN.md, "The house, next").

Owns device profiles (measured or datasheet-derived, each saying whether it was
calibrated) and the time model of a traced training step.  May import ``architectures``,
``comparator.count`` and ``comparator.errors``; never ``cli`` or ``report``.  jax is
imported only inside the functions that compile a step.
"""
