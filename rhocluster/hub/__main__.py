"""``python -m rhocluster.hub pin|check|local ...``: :func:`rhocluster.hub.download.main`."""

import sys

from rhocluster.hub.download import main

sys.exit(main())
