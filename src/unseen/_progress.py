"""Progress bars for long jobs (streamed fits, large scoring): tqdm on a terminal, silent elsewhere.

``UNSEEN_PROGRESS=1`` forces them on, ``UNSEEN_PROGRESS=0`` off; by default they show when standard error
is a terminal and the job is large (at least ``MIN_ROWS`` rows).
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Jobs smaller than this show no bar (they finish before one helps).
MIN_ROWS = 1_000_000


def enabled() -> bool:
    """Whether progress bars show: ``UNSEEN_PROGRESS`` if set, else whether standard error is a terminal."""
    flag = os.environ.get("UNSEEN_PROGRESS", "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return False
    if flag in ("1", "true", "yes", "on"):
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int | None, desc: str, unit: str = "rows") -> Any:
    """A bar with ``update(n)`` and ``close()``: tqdm when :func:`enabled` and the job is large, else a no-op."""
    if not enabled() or (total is not None and total < MIN_ROWS):
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, dynamic_ncols=True)
