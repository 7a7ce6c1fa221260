"""``python -m skinnet`` runs the CLI."""

import sys

from skinnet.cli import main

sys.exit(main())
