"""The library version, read from the installed package's metadata: pyproject.toml is the one place it is written."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("unseen")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
