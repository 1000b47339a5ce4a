"""What the encoders share: a cached content hash of their weight files (part of each encoder's ``version``)."""

from __future__ import annotations

import functools
import hashlib


@functools.cache
def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks; cached per path for the process."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
