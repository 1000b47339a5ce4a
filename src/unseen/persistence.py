"""Saving and loading detectors without pickle.

A saved detector is a JSON manifest (detector name, hyperparameters, scalar state, format and library
versions, a SHA-256 checksum of every array and of the manifest itself, optionally an HMAC-SHA256 signature)
plus the arrays in an ``.npz``. It is one file (a zip holding ``manifest.json`` and ``arrays.npz``) or one
directory holding the same two files.

Loading executes nothing from the file and trusts nothing in it before checking it, in this order:

1. the container: only the two members, stored uncompressed, the manifest at most 16 MiB;
2. the manifest: strict JSON (no NaN, no duplicate keys), a known format and version, the signature when a
   key is given, the manifest digest (format 2), then a schema: only known fields, of their types;
3. each object: its class resolved through the registry (or marked :func:`savable`), its hyperparameters
   only the constructor's, validated by the class; its state only the names the class declares
   (``state_spec``), of the declared types and mutually consistent shapes, before any array byte is read;
4. the arrays: the ``.npz`` size against the declared shapes, each member's ``.npy`` header against its
   declaration, then exactly the declared bytes and their checksum (no ``np.load``, no pickle);
5. the loaded detector scores one probe row, so an inconsistent state fails here and not in production.

A tampered, truncated, oversized, foreign or newer-format file is refused with a message that says which.
What the checksums do and do not protect against is in the README ("Trust model of saved files"): without a
key they catch corruption and careless edits; only a signature (``key=``) proves who wrote the file.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import io
import json
import math
import os
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._schema import SchemaError, array_dtype, check_state, spec_of
from .exceptions import InputError, NotFittedError, PersistenceError

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_MANIFEST_BYTES", "load", "savable", "save"]

FORMAT = "unseen-detector"
#: 2: the manifest carries its own digest (``manifest_sha256``) and optionally a signature; NaN is refused.
#: Files of version 1 (no manifest digest) still load, with every other check.
FORMAT_VERSION = 2
_MANIFEST = "manifest.json"
_ARRAYS = "arrays.npz"
#: The largest manifest read (hyperparameters and scalars; arrays live in the .npz).
MAX_MANIFEST_BYTES = 16 << 20
#: Room for each .npz member's zip headers and .npy header beyond its declared data.
_MEMBER_OVERHEAD = 4096
#: Bytes per read when hashing and reading the arrays (bounded extra memory while loading).
_CHUNK = 16 << 20
#: Deepest nesting of saved objects (a flagger holding an ensemble holding members).
_MAX_DEPTH = 8
_SIGNATURE_ALGORITHM = "HMAC-SHA256"
_MIN_KEY_BYTES = 16
_TOP_FIELDS = {"format", "format_version", "library_version", "arrays_sha256", "manifest_sha256", "signature"}
_ENTRY_FIELDS = {"detector", "class", "params", "state", "arrays", "nested"}
_ARRAY_FIELDS = {"key", "sha256", "dtype", "shape"}
_DETECTOR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
_STATE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}_$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _digest(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def savable(cls: type) -> type:
    """Mark a class that is not a registered detector (the open-set classifier, the conformal flagger) as one
    that :func:`load` may create. It keeps the detector contract's persistence protocol: ``name``,
    ``get_params()``, ``_get_state()`` and ``_set_state(state)``, and should declare ``state_spec``. Usable as
    a class decorator."""
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


# ------------------------------------------------------------------------------------------------ writing


def _jsonable(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        if not math.isfinite(value):
            raise PersistenceError(
                f"Cannot save {prefix.rstrip('.') or 'a value'} = {float(value)}: a saved detector's numbers must be "
                "finite. Refit (a non-finite fitted value means the fit went wrong) or fix the hyperparameter."
            )
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{prefix}{i}.", arrays) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{prefix}{k}.", arrays) for k, v in value.items()}
    if value is None or isinstance(value, (str, int)):
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
            array_refs[key] = {
                "key": name,
                "sha256": _digest(value),
                "dtype": value.dtype.str,
                "shape": list(value.shape),
            }
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


def _canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes the digest and the signature cover: the manifest without them, as canonical JSON."""
    body = {k: v for k, v in manifest.items() if k not in ("manifest_sha256", "signature")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _manifest_digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(b"unseen-manifest\x00" + _canonical(manifest)).hexdigest()


def _signature(manifest: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, b"unseen-signature\x00" + _canonical(manifest), hashlib.sha256).hexdigest()


def _key_bytes(key: Any, where: str) -> bytes:
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, (bytes, bytearray)):
        raise InputError(f"{where}: key must be bytes or a str, got {type(key).__name__}.")
    if len(key) < _MIN_KEY_BYTES:
        raise InputError(
            f"{where}: key has {len(key)} bytes; a signing key needs at least {_MIN_KEY_BYTES} (generate one with "
            "secrets.token_bytes(32) and keep it out of the repository, e.g. in an environment variable)."
        )
    return bytes(key)


def save(detector: Any, path: str | Path, *, key: bytes | str | None = None) -> Path:
    """Save a fitted detector (or :class:`unseen.OpenSetClassifier`, :class:`unseen.ConformalFlagger`) to ``path``:
    one file if it has a suffix (``knn.unseen``), else a directory.

    Parameters
    ----------
    detector : unseen.Detector, OpenSetClassifier or ConformalFlagger
        A fitted (calibrated) object.
    path : str or Path
    key : bytes or str, optional
        Sign the file with HMAC-SHA256 under this secret key (at least 16 bytes), so that
        ``load(path, key=key)`` refuses any file not written with it. Without a key the file carries
        checksums only, which catch corruption but not a deliberate forgery (see the README's trust model).

    Examples
    --------
    >>> unseen.save(det, "knn.unseen")  # doctest: +SKIP
    >>> unseen.save(det, "knn.unseen", key=os.environ["UNSEEN_KEY"])  # doctest: +SKIP
    """
    from ._version import __version__

    path = Path(path)
    signing_key = None if key is None else _key_bytes(key, "save")
    as_dir = path.is_dir() or not path.suffix
    arrays: dict[str, np.ndarray] = {}
    manifest: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "library_version": __version__}
    if not _is_savable(detector):
        raise PersistenceError(
            f"Cannot save a {type(detector).__name__}: only unseen detectors, open-set classifiers "
            "and conformal flaggers can be saved."
        )
    manifest.update(_encode(detector, "", arrays))
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    blob = buf.getvalue()
    manifest["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    if signing_key is not None:
        manifest["signature"] = {"algorithm": _SIGNATURE_ALGORITHM, "value": _signature(manifest, signing_key)}
    text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
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


# ------------------------------------------------------------------------------------------------ reading


def _stored(info: zipfile.ZipInfo, path: Path, limit: int) -> None:
    """A zip member unseen may read: stored (never compressed: no decompression bomb), of a bounded size."""
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise PersistenceError(
            f"{path} was tampered with: member {info.filename!r} is compressed, and unseen writes stored members "
            "only (a compressed member could expand without bound)."
        )
    if info.file_size > limit:
        raise PersistenceError(
            f"{path} is refused: member {info.filename!r} declares {info.file_size} bytes, "
            f"more than the {limit} allowed."
        )


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes of a file from ``start`` (the stored arrays member), so the
    arrays are read from the file one at a time instead of as one copy of all of them in memory."""

    def __init__(self, path: Path, start: int, size: int):
        super().__init__()
        self._fh = open(path, "rb", buffering=0)  # noqa: SIM115 (closed with the window)
        self.start, self.size, self.pos = start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        n = max(0, min(len(view), self.size - self.pos))
        got = os.preadv(self._fh.fileno(), [view[:n]], self.start + self.pos) if n else 0
        self.pos += got
        return got

    def close(self) -> None:
        self._fh.close()
        super().close()


def _member_start(path: Path, info: zipfile.ZipInfo) -> int:
    """File offset of a stored member's bytes: after its local header (whose name and extra lengths may differ
    from the central directory's)."""
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        head = fh.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise PersistenceError(f"{path} is truncated or corrupted: member {info.filename!r} has no local header.")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _read(path: Path) -> tuple[bytes, _Window]:
    if path.is_dir():
        m, a = path / _MANIFEST, path / _ARRAYS
        if not m.is_file() or not a.is_file():
            raise PersistenceError(
                f"{path} is not a saved unseen detector (foreign): expected {_MANIFEST} and {_ARRAYS} inside."
            )
        if m.stat().st_size > MAX_MANIFEST_BYTES:
            raise PersistenceError(f"{path} is refused: its manifest is larger than {MAX_MANIFEST_BYTES} bytes.")
        return m.read_bytes(), _Window(a, 0, a.stat().st_size)
    if not path.exists():
        raise PersistenceError(f"No saved detector at {path}: the file does not exist.")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if not {_MANIFEST, _ARRAYS} <= set(names):
                raise PersistenceError(
                    f"{path} is not a saved unseen detector (foreign): it is a zip without {_MANIFEST}/{_ARRAYS}."
                )
            if sorted(names) != sorted([_MANIFEST, _ARRAYS]):
                raise PersistenceError(
                    f"{path} was tampered with: it holds members {sorted(names)}, expected exactly "
                    f"{_MANIFEST} and {_ARRAYS}."
                )
            size = path.stat().st_size
            _stored(zf.getinfo(_MANIFEST), path, MAX_MANIFEST_BYTES)
            _stored(zf.getinfo(_ARRAYS), path, size)
            info = zf.getinfo(_ARRAYS)
            return zf.read(_MANIFEST), _Window(path, _member_start(path, info), info.file_size)
    except zipfile.BadZipFile:
        head = path.read_bytes()[:4]
        if head == b"PK\x03\x04":
            raise PersistenceError(f"{path} is truncated or corrupted: its zip structure is incomplete.") from None
        raise PersistenceError(f"{path} is not a saved unseen detector (foreign): not an unseen file.") from None
    except (zipfile.LargeZipFile, EOFError, OSError) as exc:
        if isinstance(exc, PersistenceError):
            raise
        raise PersistenceError(f"{path} is truncated or corrupted: {exc}") from None
    except KeyError as exc:
        raise PersistenceError(f"{path} is truncated or corrupted: {exc}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PersistenceError(
            f"{path} is corrupted or tampered with: its manifest is not valid JSON ({exc})."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PersistenceError(f"{path} is not a saved unseen detector (foreign): its manifest has no '{FORMAT}' tag.")
    return manifest


def _check_version(manifest: dict[str, Any], path: Path) -> int:
    version = manifest.get("format_version")
    if type(version) is not int or version < 1:
        raise PersistenceError(
            f"{path} is corrupted or tampered with: format_version is {version!r}, expected an "
            f"integer from 1 to {FORMAT_VERSION}."
        )
    if version > FORMAT_VERSION:
        raise PersistenceError(
            f"{path} uses format version {version}, newer than this unseen's {FORMAT_VERSION} "
            f"(written by unseen {manifest.get('library_version')}); upgrade unseen to load it."
        )
    return version


def _check_integrity(manifest: dict[str, Any], version: int, path: Path, key: bytes | None) -> None:
    """The signature (with a key) and the manifest digest (format 2), before anything else is trusted."""
    signature = manifest.get("signature")
    if key is not None:
        if signature is None:
            raise PersistenceError(
                f"{path} is not signed, and load() was given a key: it was saved without key= (or by an unseen "
                "before format 2), so where it comes from cannot be verified. Re-save it with save(..., key=key) "
                "from a trusted copy."
            )
        if not (
            isinstance(signature, dict)
            and set(signature) == {"algorithm", "value"}
            and signature["algorithm"] == _SIGNATURE_ALGORITHM
            and isinstance(signature["value"], str)
        ):
            raise PersistenceError(f"{path} was tampered with: its signature field is malformed.")
        try:
            expected = _signature(manifest, key)
        except ValueError:  # non-finite numbers cannot be canonical JSON
            expected = ""
        if not hmac.compare_digest(expected, signature["value"]):
            raise PersistenceError(
                f"{path} was tampered with or signed with another key: its HMAC-SHA256 signature does not match. "
                "Refusing to load it."
            )
    elif signature is not None and not isinstance(signature, dict):
        raise PersistenceError(f"{path} was tampered with: its signature field is malformed.")
    if version >= 2:
        stored = manifest.get("manifest_sha256")
        try:
            actual = _manifest_digest(manifest)
        except ValueError:
            actual = ""
        if not isinstance(stored, str) or not hmac.compare_digest(actual, stored):
            raise PersistenceError(
                f"{path} was tampered with or corrupted: the manifest's checksum does not match its content "
                "(a field was changed after saving)."
            )


def _fail(path: Path, where: str, why: str) -> PersistenceError:
    return PersistenceError(f"{path} is corrupted or tampered with: {where}: {why}.")


def _check_entry(entry: Any, path: Path, where: str, depth: int, keys: set[str]) -> None:
    """The structure of one saved object (types of every field), recursively; array keys unique in the file."""
    if depth > _MAX_DEPTH:
        raise _fail(path, where, f"objects are nested more than {_MAX_DEPTH} deep")
    if not isinstance(entry, dict):
        raise _fail(path, where, "a saved object must be a JSON object")
    extra = set(entry) - _ENTRY_FIELDS - (_TOP_FIELDS if depth == 0 else set())
    if extra:
        raise _fail(path, where, f"unknown field(s) {sorted(extra)}")
    missing = {"detector", "params", "state", "arrays"} - set(entry)
    if missing:
        raise _fail(path, where, f"missing field(s) {sorted(missing)}")
    if not isinstance(entry["detector"], str) or not _DETECTOR_NAME.match(entry["detector"]):
        raise _fail(path, where, f"detector is {entry['detector']!r}, expected a registry name")
    if entry.get("class") is not None and not isinstance(entry["class"], str):
        raise _fail(path, where, f"class is {entry['class']!r}, expected 'module:Class'")
    for field in ("params", "state", "arrays", "nested"):
        value = entry.get(field, {})
        if not isinstance(value, dict):
            raise _fail(path, where, f"{field} must be a JSON object, got {type(value).__name__}")
        for name in value:
            pattern = _NAME if field == "params" else _STATE_NAME
            if not pattern.match(name):
                raise _fail(
                    path, where, f"{field} name {name!r} is not allowed (fitted state is public and ends in '_')"
                )
    names = [*entry["state"], *entry["arrays"], *entry.get("nested", {})]
    if len(names) != len(set(names)):
        raise _fail(path, where, "a state name appears twice")
    for name, ref in entry["arrays"].items():
        if not isinstance(ref, dict) or set(ref) != _ARRAY_FIELDS:
            raise _fail(path, where, f"array {name} must have exactly the fields {sorted(_ARRAY_FIELDS)}")
        if not isinstance(ref["key"], str) or not ref["key"] or ref["key"] in keys or len(ref["key"]) > 500:
            raise _fail(path, where, f"array {name} has a missing or repeated key {ref['key']!r}")
        keys.add(ref["key"])
        if not isinstance(ref["sha256"], str) or not _HEX64.match(ref["sha256"]):
            raise _fail(path, where, f"array {name} has a malformed sha256")
        try:
            array_dtype(ref["dtype"])
        except SchemaError as exc:
            raise _fail(path, where, f"array {name}: {exc}") from None
        shape = ref["shape"]
        if not (isinstance(shape, list) and len(shape) <= 8 and all(type(s) is int and 0 <= s < 2**40 for s in shape)):
            raise _fail(path, where, f"array {name} has shape {shape!r}, expected a list of non-negative integers")
    for value in entry["params"].values():
        _check_param_value(value, path, where, depth, keys)
    for name, value in entry.get("nested", {}).items():
        members = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise _fail(path, where, f"nested {name} is an empty list")
        for i, member in enumerate(members):
            _check_entry(
                member, path, f"{where}.{name}" + (f"[{i}]" if isinstance(value, list) else ""), depth + 1, keys
            )


def _check_param_value(value: Any, path: Path, where: str, depth: int, keys: set[str]) -> None:
    if isinstance(value, dict) and set(value) == {"saved"}:
        _check_entry(value["saved"], path, f"{where}.params", depth + 1, keys)
    elif isinstance(value, dict) and set(value) == {"detector", "params"}:
        if not isinstance(value["detector"], str) or not isinstance(value["params"], dict):
            raise _fail(path, where, "a detector template needs a name and a params object")
        for v in value["params"].values():
            _check_param_value(v, path, where, depth + 1, keys)


def _declared_bytes(entry: dict[str, Any]) -> list[tuple[str, int]]:
    """(key, data bytes) of every array the entry and its nested objects declare."""
    out = []
    for ref in entry["arrays"].values():
        out.append((ref["key"], array_dtype(ref["dtype"]).itemsize * math.prod(ref["shape"])))
    for value in entry.get("nested", {}).values():
        for member in value if isinstance(value, list) else [value]:
            out.extend(_declared_bytes(member))
    for value in entry["params"].values():
        if isinstance(value, dict) and set(value) == {"saved"}:
            out.extend(_declared_bytes(value["saved"]))
    return out


class _Arrays:
    """The ``.npz`` members, read by unseen's own ``.npy`` reader: each header is checked against the manifest
    before its bytes are read, and exactly the declared bytes are read (no ``np.load``, no pickle)."""

    def __init__(self, blob: io.BufferedReader, declared: list[tuple[str, int]], path: Path):
        self.path = path
        try:
            self.zf = zipfile.ZipFile(blob)
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise PersistenceError(f"{path} is truncated or corrupted: its arrays cannot be read ({exc}).") from None
        names = [i.filename for i in infos]
        wanted = {f"{key}.npy": nbytes for key, nbytes in declared}
        if len(names) != len(set(names)) or set(names) != set(wanted):
            raise PersistenceError(
                f"{path} was tampered with: its arrays file holds {len(names)} member(s) that are not the "
                f"{len(wanted)} the manifest declares."
            )
        for info in infos:
            _stored(info, path, wanted[info.filename] + _MEMBER_OVERHEAD)
            if info.file_size < wanted[info.filename]:
                raise PersistenceError(
                    f"{path} is truncated or tampered with: array {info.filename!r} holds "
                    f"{info.file_size} bytes, fewer than its declared {wanted[info.filename]}."
                )

    def read(self, ref: dict[str, Any]) -> np.ndarray:
        path, key = self.path, ref["key"]
        dtype, shape = array_dtype(ref["dtype"]), tuple(ref["shape"])
        nbytes = dtype.itemsize * math.prod(shape)
        try:
            with self.zf.open(f"{key}.npy") as fh:
                version = np.lib.format.read_magic(fh)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f".npy version {version}")
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                got_shape, fortran, got_dtype = read_header(fh)
                if got_dtype != dtype or tuple(got_shape) != shape:
                    raise PersistenceError(
                        f"{path} was tampered with: array {key!r} is stored as {got_dtype.str} {tuple(got_shape)} "
                        f"but declared {dtype.str} {shape}."
                    )
                data = np.empty(nbytes, dtype=np.uint8)  # filled in chunks: no second copy of a large array
                got = 0
                while got < nbytes:
                    part = fh.read(min(_CHUNK, nbytes - got))
                    if not part:
                        break
                    data[got : got + len(part)] = np.frombuffer(part, dtype=np.uint8)
                    got += len(part)
                extra = fh.read(1)
        except PersistenceError:
            raise
        except Exception as exc:
            raise PersistenceError(f"{path} is truncated or corrupted: array {key!r} unreadable ({exc}).") from None
        if got != nbytes or extra:
            held = f"more than {nbytes}" if extra else str(got)
            raise PersistenceError(
                f"{path} is truncated or tampered with: array {key!r} holds {held} bytes, "
                f"not the {nbytes} its shape declares."
            )
        arr = data.view(dtype).reshape(shape, order="F" if fortran else "C")
        if _digest(arr) != ref["sha256"]:
            raise PersistenceError(f"{path} was tampered with: the checksum of array {key!r} does not match.")
        return arr


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
        raise PersistenceError(
            f"{path} holds detector {entry.get('detector')!r} ({target}), which cannot be loaded here: {exc}"
        ) from exc
    if getattr(cls, "name", None) != entry.get("detector"):
        raise PersistenceError(
            f"{path} was tampered with: it names detector {entry.get('detector')!r} but class {target}."
        )
    return cls


def _construct(cls: type, params: dict[str, Any], path: Path) -> Any:
    """``cls(**params)`` with only the constructor's parameters, validated as ``fit`` would validate them."""
    accepted = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise PersistenceError(f"{path} was tampered with: {cls.__name__} has no parameter(s) {unknown}.")
    try:
        obj = cls(**params)
        if "tpr" in accepted:  # every detector's acceptance rate (fit checks it before _check_params)
            from ._validation import check_param

            check_param(obj.tpr, "tpr", owner=cls.__name__, low=0.0, high=1.0, low_inclusive=False)
        check = getattr(obj, "_check_params", None)
        if callable(check):
            check()
    except (InputError, TypeError, ValueError) as exc:
        raise PersistenceError(
            f"{path} is corrupted or tampered with: its hyperparameters are invalid: {exc}"
        ) from None
    return obj


def _param(value: Any, arrays: _Arrays, path: Path, depth: int) -> Any:
    if isinstance(value, dict) and set(value) == {"saved"}:
        return _decode(value["saved"], arrays, path, depth + 1)
    if isinstance(value, dict) and set(value) == {"detector", "params"} and isinstance(value["detector"], str):
        cls = _class({"detector": value["detector"], "class": None}, path)
        params = {k: _param(v, arrays, path, depth + 1) for k, v in value["params"].items()}
        return _construct(cls, params, path)
    return value


def _declared_state(cls: type) -> dict[str, str] | None:
    declared = getattr(cls, "declared_state", None)
    return declared() if callable(declared) else spec_of(cls)


def _check_names(cls: type, entry: dict[str, Any], path: Path) -> None:
    """State names that cannot shadow anything: not a method, property or class attribute, not a parameter."""
    params = set(entry["params"])
    for name in [*entry["state"], *entry["arrays"], *entry.get("nested", {})]:
        if hasattr(cls, name) or name in params:
            raise PersistenceError(f"{path} was tampered with: state {name!r} would shadow {cls.__name__}.{name}.")


def _decode(entry: dict[str, Any], arrays: _Arrays, path: Path, depth: int = 0) -> Any:
    cls = _class(entry, path)
    _check_names(cls, entry, path)
    declared = _declared_state(cls)
    if declared is not None:
        try:
            check_state(
                {k: entry["arrays"][k] for k in entry["arrays"]}, entry.get("nested", {}), declared, entry["state"]
            )
        except SchemaError as exc:
            raise PersistenceError(f"{path} is corrupted or tampered with: {cls.__name__}: {exc}.") from None
    params = {k: _param(v, arrays, path, depth) for k, v in entry["params"].items()}
    obj = _construct(cls, params, path)
    state = dict(entry["state"])
    for key, ref in entry["arrays"].items():
        state[key] = arrays.read(ref)
    for key, members in entry.get("nested", {}).items():
        state[key] = (
            _decode(members, arrays, path, depth + 1)
            if isinstance(members, dict)
            else [_decode(m, arrays, path, depth + 1) for m in members]
        )
    obj._set_state(state)
    check = getattr(obj, "_check_loaded", None)
    if callable(check):
        try:
            check()
        except PersistenceError:
            raise
        except Exception as exc:  # whatever the inconsistent state makes the scoring code raise
            raise PersistenceError(
                f"{path} is corrupted or tampered with: the loaded {cls.__name__} fails on a probe row "
                f"({type(exc).__name__}: {exc})."
            ) from None
    return obj


def load(path: str | Path, *, key: bytes | str | None = None) -> Any:
    """Load a detector saved with :meth:`Detector.save` / :func:`save`.

    Parameters
    ----------
    path : str or Path
    key : bytes or str, optional
        The key the file was signed with (``save(..., key=key)``). With a key, an unsigned file or one whose
        signature does not match is refused: use it wherever files may come from someone else. Without a key a
        signed file loads like an unsigned one (its checksums are still checked).

    Raises
    ------
    PersistenceError
        If the file is missing, foreign (not an unseen file), truncated, oversized, tampered with, not signed
        with ``key``, or written by a newer format version.

    Examples
    --------
    >>> det = unseen.load("knn.unseen")  # doctest: +SKIP
    >>> det = unseen.load("knn.unseen", key=os.environ["UNSEEN_KEY"])  # doctest: +SKIP
    """
    path = Path(path)
    verify_key = None if key is None else _key_bytes(key, "load")
    raw_manifest, blob = _read(path)
    with blob:  # the arrays file stays open until every array is read
        manifest = _parse(raw_manifest, path)
        version = _check_version(manifest, path)
        _check_integrity(manifest, version, path, verify_key)
        if not isinstance(manifest.get("library_version"), str):
            raise _fail(path, "manifest", "library_version must be a string")
        _check_entry(manifest, path, "manifest", 0, set())
        if not isinstance(manifest.get("arrays_sha256"), str) or not _HEX64.match(manifest["arrays_sha256"]):
            raise _fail(path, "manifest", "arrays_sha256 is missing or malformed")
        declared = _declared_bytes(manifest)
        if blob.size > sum(n for _, n in declared) + _MEMBER_OVERHEAD * (len(declared) + 1):
            raise PersistenceError(
                f"{path} was tampered with: its arrays file ({blob.size} bytes) is larger than the "
                "arrays its manifest declares."
            )
        digest = hashlib.sha256()
        for chunk in iter(lambda: blob.read(_CHUNK), b""):
            digest.update(chunk)
        if not hmac.compare_digest(digest.hexdigest(), manifest["arrays_sha256"]):
            raise PersistenceError(
                f"{path} was tampered with or truncated: the arrays' checksum does not match the manifest."
            )
        blob.seek(0)
        arrays = _Arrays(io.BufferedReader(blob), declared, path)
        try:
            return _decode(manifest, arrays, path)
        except PersistenceError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PersistenceError(
                f"{path} is corrupted or tampered with: its manifest is malformed ({exc})."
            ) from None
