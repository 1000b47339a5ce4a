"""``python -m unseen.cli``: the ``unseen`` command."""

import sys

from . import main

sys.exit(main())
