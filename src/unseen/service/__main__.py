"""``python -m unseen.service``: serve, monitor, keys, migrate, prune (see :mod:`unseen.service.commands`)."""

from __future__ import annotations

import sys

from .commands import main

if __name__ == "__main__":
    sys.exit(main())
