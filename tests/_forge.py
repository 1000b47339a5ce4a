"""Rewrite saved files as an attacker who knows the format would: change the manifest or the arrays, then
recompute every checksum (and, given the key, the signature), so that only the deeper checks can refuse them."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unseen import persistence


def read_parts(path: Path) -> tuple[dict[str, Any], bytes]:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("manifest.json")), zf.read("arrays.npz")


def arrays_of(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob)) as npz:  # our own files, in a test
        return {k: npz[k] for k in npz.files}


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def reref(entry: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Recompute the per-array checksums, dtypes and shapes of ``entry`` (recursively) from ``arrays``."""
    for ref in entry["arrays"].values():
        if ref["key"] in arrays:
            arr = arrays[ref["key"]]
            ref.update(sha256=persistence._digest(arr), dtype=arr.dtype.str, shape=list(arr.shape))
    for value in entry.get("nested", {}).values():
        for member in value if isinstance(value, list) else [value]:
            reref(member, arrays)
    for value in entry["params"].values():
        if isinstance(value, dict) and set(value) == {"saved"}:
            reref(value["saved"], arrays)


def write_parts(
    path: Path,
    manifest: dict[str, Any],
    blob: bytes,
    *,
    forge: bool = True,
    key: bytes | None = None,
    text: str | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> None:
    """Write ``manifest`` and ``blob`` back; with ``forge`` recompute the file and manifest checksums (and sign
    with ``key``), as someone who read persistence.py would."""
    if forge:  # a signature stays as it was: without the key it cannot be recomputed
        manifest["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
        manifest["manifest_sha256"] = persistence._manifest_digest(manifest)
        if key is not None:
            manifest["signature"] = {"algorithm": "HMAC-SHA256", "value": persistence._signature(manifest, key)}
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        zf.writestr("manifest.json", text if text is not None else json.dumps(manifest))
        zf.writestr("arrays.npz", blob)


def rewrite(
    path: Path,
    manifest: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    arrays: Callable[[bytes], bytes] | None = None,
    **kwargs: Any,
) -> None:
    m, a = read_parts(path)
    write_parts(path, manifest(m) if manifest else m, arrays(a) if arrays else a, **kwargs)
