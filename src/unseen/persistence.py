"""Saving and loading detectors without pickle.

A saved detector is a JSON manifest (detector name, hyperparameters, scalar state, format and library
versions, a SHA-256 checksum of every array) plus the arrays in an ``.npz`` read with
``allow_pickle=False``. It is one file (a zip holding ``manifest.json`` and ``arrays.npz``) or one
directory holding the same two files. Loading executes nothing from the file; a tampered, truncated,
foreign or newer-format file is refused with a message that says which.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import NotFittedError, PersistenceError

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "savable", "save"]

FORMAT = "unseen-detector"
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_ARRAYS = "arrays.npz"


def _digest(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def savable(cls: type) -> type:
    """Mark a class that is not a registered detector (the open-set classifier, the conformal flagger) as one
    that :func:`load` may create. It keeps the detector contract's persistence protocol: ``name``,
    ``get_params()``, ``_get_state()`` and ``_set_state(state)``. Usable as a class decorator."""
    _SAVABLE[f"{cls.__module__}:{cls.__name__}"] = cls
    return cls


_SAVABLE: dict[str, type] = {}
#: How a stored class path becomes a class; :mod:`unseen.registry` installs its checked lookup when imported
#: (this module stays below the registry: it knows the file format, not the detectors).
_resolvers: list[Any] = []


def set_class_resolver(resolve: Any) -> None:
    """Install the lookup ``resolve(class_path, name) -> class`` for classes not marked :func:`savable`; it must
    refuse (raise) anything that is not a registered detector. :mod:`unseen.registry` calls it."""
    _resolvers[:] = [resolve]


def _is_savable(value: Any) -> bool:
    return callable(getattr(value, "_get_state", None)) and callable(getattr(value, "get_params", None))


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}:{type(obj).__name__}"


def _jsonable(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{prefix}{i}.", arrays) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{prefix}{k}.", arrays) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if _is_savable(value):
        # A fitted object (the conformal flagger's detector) is saved whole; an unfitted one (the open-set
        # classifier's template detector) by its name and hyperparameters.
        try:
            return {"saved": _encode(value, prefix, arrays)}
        except NotFittedError:
            return {"detector": value.name, "params": _jsonable(value.get_params(), prefix, arrays)}
    raise PersistenceError(f"Cannot save a value of type {type(value).__name__} ({value!r}) in a manifest.")


def _encode(det: Any, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    array_refs: dict[str, dict[str, Any]] = {}
    nested: dict[str, Any] = {}
    for key, value in det._get_state().items():
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise PersistenceError(f"{type(det).__name__}.{key} holds Python objects and cannot be saved.")
            name = f"{prefix}{key}"
            arrays[name] = value
            array_refs[key] = {"key": name, "sha256": _digest(value), "dtype": value.dtype.str, "shape": list(value.shape)}
        elif _is_savable(value):  # one wrapped detector (the open-set classifier's detector_)
            nested[key] = _encode(value, f"{prefix}{key}.", arrays)
        elif isinstance(value, (list, tuple)) and value and all(_is_savable(v) for v in value):
            nested[key] = [_encode(v, f"{prefix}{key}.{i}.", arrays) for i, v in enumerate(value)]
        else:
            state[key] = _jsonable(value, f"{prefix}{key}.", arrays)
    return {
        "detector": det.name,
        "class": _class_path(det),
        "params": _jsonable(det.get_params(), f"{prefix}params.", arrays),
        "state": state,
        "arrays": array_refs,
        "nested": nested,
    }


def save(detector: Any, path: str | Path) -> Path:
    """Save a fitted detector (or :class:`unseen.OpenSetClassifier`, :class:`unseen.ConformalFlagger`) to ``path``: one file if it has a
    suffix (``knn.unseen``), else a directory.

    Examples
    --------
    >>> unseen.save(det, "knn.unseen")  # doctest: +SKIP
    """
    from ._version import __version__

    path = Path(path)
    as_dir = path.is_dir() or not path.suffix
    arrays: dict[str, np.ndarray] = {}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "library_version": __version__}
    if not _is_savable(detector):
        raise PersistenceError(f"Cannot save a {type(detector).__name__}: only unseen detectors, open-set classifiers "
                               "and conformal flaggers can be saved.")
    manifest.update(_encode(detector, "", arrays))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    manifest["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
    text = json.dumps(manifest, indent=2, sort_keys=True)
    try:
        if as_dir:
            path.mkdir(parents=True, exist_ok=True)
            (path / _ARRAYS).write_bytes(blob)
            (path / _MANIFEST).write_text(text)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr(_MANIFEST, text)
                zf.writestr(_ARRAYS, blob)
            tmp.replace(path)
    except OSError as exc:
        raise PersistenceError(f"Could not save the detector to {path}: {exc}") from exc
    return path


def _read(path: Path) -> tuple[bytes, bytes]:
    if path.is_dir():
        m, a = path / _MANIFEST, path / _ARRAYS
        if not m.is_file() or not a.is_file():
            raise PersistenceError(
                f"{path} is not a saved unseen detector (foreign): expected {_MANIFEST} and {_ARRAYS} inside."
            )
        return m.read_bytes(), a.read_bytes()
    if not path.exists():
        raise PersistenceError(f"No saved detector at {path}: the file does not exist.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not {_MANIFEST, _ARRAYS} <= names:
                raise PersistenceError(
                    f"{path} is not a saved unseen detector (foreign): it is a zip without {_MANIFEST}/{_ARRAYS}."
                )
            return zf.read(_MANIFEST), zf.read(_ARRAYS)
    except zipfile.BadZipFile:
        head = path.read_bytes()[:4]
        if head == b"PK\x03\x04":
            raise PersistenceError(f"{path} is truncated or corrupted: its zip structure is incomplete.") from None
        raise PersistenceError(f"{path} is not a saved unseen detector (foreign): not an unseen file.") from None
    except (zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise PersistenceError(f"{path} is truncated or corrupted: {exc}") from None
    except KeyError as exc:
        raise PersistenceError(f"{path} is truncated or corrupted: {exc}") from None


def _class(entry: dict[str, Any], path: Path) -> type:
    """The class a manifest entry names, if unseen may create it: a registered detector (checked against the
    registry, so a file cannot make unseen import an arbitrary module) or a class marked :func:`savable`."""
    target = entry.get("class")
    try:
        if isinstance(target, str) and target in _SAVABLE:
            cls = _SAVABLE[target]
        elif not _resolvers:
            raise PersistenceError("no detector registry is loaded (import unseen first)")
        else:
            cls = _resolvers[0](target, entry.get("detector"))
    except Exception as exc:
        raise PersistenceError(f"{path} holds detector {entry.get('detector')!r} ({target}), which cannot be loaded "
                               f"here: {exc}") from exc
    if getattr(cls, "name", None) != entry.get("detector"):
        raise PersistenceError(f"{path} was tampered with: it names detector {entry.get('detector')!r} but class {target}.")
    return cls


def _param(value: Any, npz: Any, path: Path) -> Any:
    if isinstance(value, dict) and set(value) == {"saved"}:
        return _decode(value["saved"], npz, path)
    if isinstance(value, dict) and set(value) == {"detector", "params"} and isinstance(value["detector"], str):
        return _class({"detector": value["detector"], "class": None}, path)(**value["params"])
    return value


def _decode(entry: dict[str, Any], npz: Any, path: Path) -> Any:
    cls = _class(entry, path)
    params = {k: _param(v, npz, path) for k, v in dict(entry["params"]).items()}
    det = cls(**params)
    state = dict(entry["state"])
    for key, ref in entry["arrays"].items():
        try:
            arr = npz[ref["key"]]
        except Exception as exc:
            raise PersistenceError(f"{path} is truncated or corrupted: array {ref['key']!r} unreadable ({exc}).") from None
        if _digest(arr) != ref["sha256"]:
            raise PersistenceError(f"{path} was tampered with: the checksum of array {ref['key']!r} does not match.")
        state[key] = arr
    for key, members in entry.get("nested", {}).items():
        state[key] = _decode(members, npz, path) if isinstance(members, dict) else [_decode(m, npz, path) for m in members]
    det._set_state(state)
    return det


def load(path: str | Path) -> Any:
    """Load a detector saved with :meth:`Detector.save` / :func:`save`.

    Raises
    ------
    PersistenceError
        If the file is missing, foreign (not an unseen file), truncated, tampered with, or written by a
        newer format version.

    Examples
    --------
    >>> det = unseen.load("knn.unseen")  # doctest: +SKIP
    """
    path = Path(path)
    raw_manifest, blob = _read(path)
    try:
        manifest = json.loads(raw_manifest)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PersistenceError(f"{path} is corrupted or tampered with: its manifest is not valid JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PersistenceError(f"{path} is not a saved unseen detector (foreign): its manifest has no '{FORMAT}' tag.")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise PersistenceError(f"{path} is corrupted: format_version is {version!r}.")
    if version > FORMAT_VERSION:
        raise PersistenceError(
            f"{path} uses format version {version}, newer than this unseen's {FORMAT_VERSION} "
            f"(written by unseen {manifest.get('library_version')}); upgrade unseen to load it."
        )
    if hashlib.sha256(blob).hexdigest() != manifest.get("arrays_sha256"):
        raise PersistenceError(f"{path} was tampered with or truncated: the arrays' checksum does not match the manifest.")
    try:
        npz = np.load(io.BytesIO(blob), allow_pickle=False)
    except Exception as exc:
        raise PersistenceError(f"{path} is truncated or corrupted: its arrays cannot be read ({exc}).") from None
    try:
        return _decode(manifest, npz, path)
    except PersistenceError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PersistenceError(f"{path} is corrupted or tampered with: its manifest is malformed ({exc}).") from None
