"""``python -m mlgate.controller`` runs the ``mlgate`` command line."""

import sys

from .cli.main import main

sys.exit(main())
