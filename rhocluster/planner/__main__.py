"""``python -m rhocluster.planner``: print (and with --out write) the resource plan of a config."""

import sys

from rhocluster.planner.cli import main

sys.exit(main())
