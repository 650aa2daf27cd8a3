"""`python -m saga_ops ...`: see saga_ops.cli."""

import sys

from saga_ops.cli import main

sys.exit(main())
