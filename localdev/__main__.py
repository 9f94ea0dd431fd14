"""`python -m localdev ...`: see localdev/cli.py."""

import sys

from localdev.cli import main

sys.exit(main())
