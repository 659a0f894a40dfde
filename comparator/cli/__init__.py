"""The command line (DESIGN.md, "The house, next"): argparse -> request values -> run -> report.

The only room that knows argparse or raises the CLI's usage errors; one module per command
family (``app`` builds the parser and dispatches).  May import every other room; nothing
imports ``cli``.
"""

from comparator.cli.app import main

__all__ = ["main"]
