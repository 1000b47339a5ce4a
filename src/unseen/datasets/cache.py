"""On-disk cache for the expensive parts of a benchmark: encoder features and trained heads.

Each entry is one ``.npz`` file (no pickle) whose name is a readable label plus a hash of its key.
The key is a JSON-able dict that names everything the arrays depend on: the data set, set, size
and seed, the encoder's name and version, the library version, and a digest of the *input content*
(the image bytes or the texts). A change of preprocessing therefore changes the inputs' digest and
misses, a new encoder version misses, and nothing stale is ever returned. The key is also stored
inside the file and compared on reading, so a hash collision or a foreign file cannot be served.

Files are written to a temporary name in the same folder and renamed into place (atomic on POSIX),
so a crash or a parallel writer never leaves a half-written entry behind; an unreadable entry is
recomputed and overwritten.

The folder is ``cache_dir`` when given, else ``$UNSEEN_CACHE``, else ``~/.cache/unseen/features``.

>>> import tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> calls = []
>>> def compute():
...     calls.append(1)
...     return {"x": np.arange(3.0)}
>>> cached({"what": "demo", "v": 1}, compute, cache_dir=d, label="demo")["x"]
array([0., 1., 2.])
>>> _ = cached({"what": "demo", "v": 1}, compute, cache_dir=d, label="demo"); len(calls)
1
>>> _ = cached({"what": "demo", "v": 2}, compute, cache_dir=d, label="demo"); len(calls)
2
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cached", "clear", "default_cache_dir", "lookup", "store"]

_KEY_FIELD = "__cache_key__"


def default_cache_dir() -> Path:
    """``$UNSEEN_CACHE`` if set, else ``~/.cache/unseen/features``.

    >>> isinstance(default_cache_dir(), Path)
    True
    """
    env = os.environ.get("UNSEEN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unseen" / "features"


def _key_json(key: Mapping[str, Any]) -> str:
    return json.dumps(dict(key), sort_keys=True, separators=(",", ":"), default=str)


def _read(path: Path, key_json: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if _KEY_FIELD not in z.files or str(z[_KEY_FIELD]) != key_json:
                return None
            return {k: z[k] for k in z.files if k != _KEY_FIELD}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def _write(path: Path, key_json: str, arrays: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_KEY_FIELD: np.array(key_json)}, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _path(key_json: str, cache_dir, label: str) -> Path:
    *folders, name = label.split("/")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    h = hashlib.sha256(key_json.encode()).hexdigest()[:24]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:120] or "entry"
    return root.joinpath(*folders) / f"{slug}-{h}.npz"


def lookup(
    key: Mapping[str, Any], *, cache_dir: str | os.PathLike | None = None, label: str = "entry"
) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``key``, or None when there is no readable entry for it."""
    key_json = _key_json(key)
    path = _path(key_json, cache_dir, label)
    return _read(path, key_json) if path.exists() else None


def store(
    key: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    cache_dir: str | os.PathLike | None = None,
    label: str = "entry",
) -> Path:
    """Write ``arrays`` under ``key`` (atomically); returns the file's path."""
    key_json = _key_json(key)
    path = _path(key_json, cache_dir, label)
    _write(path, key_json, {k: np.asarray(v) for k, v in arrays.items()})
    return path


def cached(
    key: Mapping[str, Any],
    compute: Callable[[], Mapping[str, np.ndarray]],
    *,
    cache_dir: str | os.PathLike | None = None,
    label: str = "entry",
) -> dict[str, np.ndarray]:
    """Return the arrays stored under ``key``, computing and storing them on a miss.

    Parameters
    ----------
    key : mapping
        JSON-able description of everything the arrays depend on (content digests included).
    compute : callable
        Returns a dict of name -> ndarray (numeric or unicode; no objects).
    cache_dir : path, optional
        Cache folder; see :func:`default_cache_dir`.
    label : str
        Readable prefix of the file name (e.g. ``"fashion-mnist/train-default-seed0"``); a ``/`` makes a
        sub-folder.

    Returns
    -------
    dict of str to ndarray
    """
    hit = lookup(key, cache_dir=cache_dir, label=label)
    if hit is not None:
        return hit
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    store(key, arrays, cache_dir=cache_dir, label=label)
    return arrays


def clear(cache_dir: str | os.PathLike | None = None) -> int:
    """Delete every cache entry (``*.npz``) under the folder; returns how many were removed."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    n = 0
    for p in root.rglob("*.npz") if root.exists() else []:
        p.unlink()
        n += 1
    return n
