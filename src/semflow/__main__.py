"""``python -m semflow`` (also what ``accelerate launch -m semflow`` runs)."""

import sys

from semflow.cli.main import main

sys.exit(main())
