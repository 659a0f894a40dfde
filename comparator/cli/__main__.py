"""python -m comparator.cli: the command line."""
import sys

from comparator.cli.app import main

sys.exit(main())
