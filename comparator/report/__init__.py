"""Rendering (DESIGN.md, "The house, next"): tables (tabulate, LaTeX, CSV, JSON) and plots.

The only modules that turn records into text or figures.  May import ``comparator.run``,
``comparator.claims`` and the rooms below them for labels and series; nothing imports
``report`` except ``cli``.
"""
