"""``python -m importstate``."""

import sys

from importstate.cli import main

sys.exit(main())
