"""Turning counts into time, dollars and energy (DESIGN.md, "The house, next").

Owns the accelerator catalogue (``catalogue``, sourced data in ``comparator/data``), device
profiles (measured or datasheet-derived, each saying whether it was calibrated), the time
model of a traced training step (compiled regions, ``timemodel``/``steptime``), the flat
MFU and price model (``pricing``, ``measured_mfu``; each device's training precision),
dated price snapshots (``prices``), the low/high ranges (``ranges``: Monte Carlo over the
catalogue's distributions, NumPy), the unfused roofline and scenarios, and the reading of
every data file a user names (``files``: bounded size, UTF-8, depth).
May import ``comparator.count``, ``comparator.errors`` and ``architectures``; never
``measure``, ``run``, ``claims``, ``report`` or ``cli``.  jax is imported only inside the
functions that compile a step.
"""
