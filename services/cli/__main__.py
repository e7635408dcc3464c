"""``python -m services.cli``: the ``looper`` command (supervisors, tests and the launcher use it)."""

import sys

from services.cli import main

sys.exit(main())
