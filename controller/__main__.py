"""``python -m mlgate.controller`` runs the ``mlgate`` command line."""

import sys

from mlgate.controller.cli import main

sys.exit(main())
