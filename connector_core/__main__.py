"""Allow ``python -m connector_core``."""

import sys

from connector_core.cli import main

sys.exit(main())
