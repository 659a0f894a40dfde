"""Traced counting (DESIGN.md, "The house, next").

Owns the additive cost value (``value.Cost``) that primitive rules return; issue 15 moves
the jaxpr walk, primitive rules, symbolic lengths, step and memory here.  May import
``architectures`` and the standard library; never ``comparator.cli`` or ``report``.
"""
