"""Declared fitted state: what a saved file may hold for a class, checked before anything is read or built.

A class declares its fitted state in ``state_spec``, a dict of attribute name -> spec string, merged along its
bases (a subclass adds to what its parent declares). A spec string is

``<type>[<dims>]`` for an array, ``<type>`` for a scalar, then optional modifiers:

* types of arrays: ``float`` (float32 or float64), ``float32``, ``float64``, ``int`` (signed or unsigned
  integers), ``uint8``, ``bool``, ``str`` (unicode), ``label`` (integers or unicode);
* types of scalars: ``float`` (a finite number), ``int``, ``bool``, ``str``, ``label`` (an int or a str),
  ``null`` (always None), ``json`` (any JSON value);
* nested objects: ``detector`` (one fitted detector), ``detectors`` (a list of them);
* ``dims``: comma-separated sizes, each a literal (``3``), a free size (``*``) or a symbol (an upper-case name,
  optionally ``2*D`` or ``C+1``); a symbol takes its value where it is first seen and every other use must
  agree. ``D`` is ``n_features_in_`` when the state has it;
* ``>=n`` after a scalar ``int``: its smallest value; ``=S`` after a scalar ``int``: it binds symbol ``S``;
* ``|None``: the value may be None; ``?``: the name may be absent (state saved by an older unseen).

A name may contain ``{i}`` for a run of numbered names (``cdf_{i}_`` matches ``cdf_0_``, ``cdf_1_``, ...).

Examples
--------
>>> spec = parse_spec("float[C, D]")
>>> spec.kind, spec.type, spec.dims
('array', 'float', ('C', 'D'))
>>> check_state({"means_": {"dtype": "<f8", "shape": [3, 4]}}, {}, {"means_": "float[C, D]", "n_features_in_": "int=D"},
...             {"n_features_in_": 4})
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SchemaError", "Spec", "array_dtype", "check_state", "match_name", "parse_spec", "spec_of"]

_SPEC = re.compile(
    r"^(?P<type>[a-z0-9]+)(?:\[(?P<dims>[^\]]*)\])?(?:>=(?P<low>-?\d+))?(?:=(?P<bind>[A-Z][A-Za-z0-9]*))?"
    r"(?P<none>\|None)?(?P<optional>\?)?$"
)
_DIM = re.compile(r"^(?:(?P<mul>\d+)\*)?(?P<base>[A-Z][A-Za-z0-9]*|\d+|\*)(?:\+(?P<add>\d+))?$")
_ARRAY_TYPES = {
    "float": "f",
    "float32": "f",
    "float64": "f",
    "int": "iu",
    "uint8": "u",
    "bool": "b",
    "str": "U",
    "label": "iU",
}
_EXACT = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64), "uint8": np.dtype(np.uint8)}
_SCALAR_TYPES = {"float", "int", "bool", "str", "label", "null", "json"}
_NESTED_TYPES = {"detector", "detectors"}
#: Array dtypes a saved file may declare: booleans, integers, floats and fixed-width unicode, never objects.
_DTYPE = re.compile(r"^[<|=]?(?:b1|i[1248]|u[1248]|f[248]|U\d{1,5})$")


class SchemaError(ValueError):
    """A value that does not match the declared state (persistence turns it into a PersistenceError)."""


@dataclass(frozen=True)
class Spec:
    """One parsed spec string (see the module docstring)."""

    kind: str  # "array", "scalar" or "nested"
    type: str
    dims: tuple[str, ...] = ()
    low: int | None = None
    bind: str | None = None
    nullable: bool = False
    optional: bool = False


def parse_spec(text: str) -> Spec:
    """Parse a spec string; a ValueError names what is wrong with it (for authors of detectors)."""
    m = _SPEC.match(text.replace(" ", ""))
    if m is None:
        raise ValueError(f"state spec {text!r} is not of the form type[dims] with optional >=n, =S, |None, ?")
    typ, dims = m["type"], m["dims"]
    nullable, optional = bool(m["none"]), bool(m["optional"])
    low = int(m["low"]) if m["low"] is not None else None
    if typ in _NESTED_TYPES:
        if dims is not None or low is not None or m["bind"]:
            raise ValueError(f"state spec {text!r}: a nested {typ} takes no dims or bounds")
        return Spec("nested", typ, nullable=nullable, optional=optional)
    if dims is not None:
        if typ not in _ARRAY_TYPES:
            raise ValueError(f"state spec {text!r}: arrays are one of {sorted(_ARRAY_TYPES)}")
        parts = tuple(d for d in dims.split(",")) if dims else ()
        for d in parts:
            if not _DIM.match(d):
                raise ValueError(f"state spec {text!r}: dimension {d!r} is not a size, '*', S, k*S or S+k")
        if low is not None or m["bind"]:
            raise ValueError(f"state spec {text!r}: >=n and =S apply to scalar ints only")
        return Spec("array", typ, parts, nullable=nullable, optional=optional)
    if typ not in _SCALAR_TYPES:
        raise ValueError(f"state spec {text!r}: scalars are one of {sorted(_SCALAR_TYPES)}")
    if (low is not None or m["bind"]) and typ != "int":
        raise ValueError(f"state spec {text!r}: >=n and =S apply to scalar ints only")
    return Spec("scalar", typ, low=low, bind=m["bind"], nullable=nullable, optional=optional)


def spec_of(cls: type) -> dict[str, str] | None:
    """The merged ``state_spec`` of ``cls`` and its bases, or None when no class in its MRO declares one."""
    merged: dict[str, str] = {}
    found = False
    for klass in reversed(cls.__mro__):
        spec = vars(klass).get("state_spec")
        if spec is not None:
            found = True
            merged.update(spec)
    return merged if found else None


def match_name(name: str, declared: dict[str, str]) -> str | None:
    """The declared name (or ``{i}`` pattern) that ``name`` matches, or None."""
    if name in declared:
        return name
    for key in declared:
        if "{i}" in key:
            pattern = "^" + re.escape(key).replace(re.escape("{i}"), r"(?:0|[1-9][0-9]{0,5})") + "$"
            if re.match(pattern, name):
                return key
    return None


def array_dtype(text: Any) -> np.dtype:
    """The numpy dtype a manifest declares, if it is one a saved file may hold (no objects, no structures)."""
    if not isinstance(text, str) or not _DTYPE.match(text):
        raise SchemaError(f"dtype {text!r} is not one unseen writes (booleans, integers, floats, unicode)")
    dt = np.dtype(text)
    if dt.byteorder == ">":
        raise SchemaError(f"dtype {text!r} is big-endian; unseen writes little-endian arrays")
    return dt


def _dim_value(token: str, symbols: dict[str, int], origin: dict[str, str], size: int, name: str, where: str) -> None:
    m = _DIM.match(token)
    assert m is not None  # parse_spec checked it
    base, mul, add = m["base"], int(m["mul"] or 1), int(m["add"] or 0)
    if base == "*":
        return
    if base.isdigit():
        expected, source = mul * int(base) + add, "the declaration"
    elif base in symbols:
        expected, source = mul * symbols[base] + add, f"{base} = {symbols[base]} from {origin[base]}"
    else:
        value = size - add
        if value < 0 or value % mul:
            raise SchemaError(f"{where}: size {size} cannot be {token}")
        symbols[base], origin[base] = value // mul, name
        return
    if size != expected:
        raise SchemaError(f"{where}: size {size} along {token}, but {source} makes it {expected}")


def _check_scalar(name: str, spec: Spec, value: Any, symbols: dict[str, int], origin: dict[str, str]) -> None:
    if value is None:
        if spec.nullable or spec.type in ("null", "json"):
            return
        raise SchemaError(f"state {name} is null, expected {spec.type}")
    typ = spec.type
    if typ == "json":
        return
    if typ == "null":
        raise SchemaError(f"state {name} must be null, got {value!r}")
    ok = {
        "float": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "label": (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str),
    }[typ]
    if not ok:
        what = "a finite number" if typ == "float" else typ
        raise SchemaError(f"state {name} must be {what}, got {value!r} ({type(value).__name__})")
    if spec.low is not None and value < spec.low:
        raise SchemaError(f"state {name} must be >= {spec.low}, got {value!r}")
    if spec.bind is not None:
        if spec.bind in symbols and symbols[spec.bind] != value:
            raise SchemaError(f"state {name} = {value} disagrees with {spec.bind} = {symbols[spec.bind]}")
        symbols[spec.bind] = value
        origin[spec.bind] = name


def check_state(
    arrays: dict[str, dict[str, Any]],
    nested: dict[str, Any],
    declared: dict[str, str],
    scalars: dict[str, Any],
) -> None:
    """Check a saved entry's state against ``declared``: every name declared, every required name present,
    scalars of their type and range, arrays of their dtype kind and with consistent shapes (``arrays`` holds the
    manifest's ``{"dtype", "shape"}`` of each array, before any byte is read). Raises :class:`SchemaError`."""
    specs = {key: parse_spec(text) for key, text in declared.items()}
    seen: set[str] = set()
    symbols: dict[str, int] = {}
    origin: dict[str, str] = {}
    if isinstance(scalars.get("n_features_in_"), int) and not isinstance(scalars.get("n_features_in_"), bool):
        symbols["D"], origin["D"] = scalars["n_features_in_"], "n_features_in_"
    groups = (("scalar", scalars), ("array", arrays), ("nested", nested))
    # Scalars first (they bind symbols such as D and C), then arrays, then nested objects.
    for kind, values in groups:
        for name, value in values.items():
            key = match_name(name, declared)
            if key is None:
                raise SchemaError(f"state {name!r} is not part of the declared state ({', '.join(sorted(declared))})")
            spec = specs[key]
            seen.add(key)
            if kind == "scalar":
                if spec.kind == "array" and value is None and spec.nullable:
                    continue
                if spec.kind != "scalar":
                    raise SchemaError(
                        f"state {name} is declared as {spec.kind} {declared[key]!r} but saved as a scalar"
                    )
                _check_scalar(name, spec, value, symbols, origin)
            elif kind == "array":
                if spec.kind != "array":
                    raise SchemaError(
                        f"state {name} is declared as {spec.kind} {declared[key]!r} but saved as an array"
                    )
                dt = array_dtype(value.get("dtype"))
                if dt.kind not in _ARRAY_TYPES[spec.type] or (spec.type in _EXACT and dt != _EXACT[spec.type]):
                    raise SchemaError(f"state {name} has dtype {dt.str}, declared {declared[key]!r}")
                shape = value.get("shape")
                if not isinstance(shape, list):
                    raise SchemaError(f"state {name} has no shape list, declared {declared[key]!r}")
                if len(shape) != len(spec.dims):
                    raise SchemaError(f"state {name} has shape {tuple(shape)}, declared {declared[key]!r}")
                for token, size in zip(spec.dims, shape):
                    _dim_value(
                        token,
                        symbols,
                        origin,
                        size,
                        name,
                        f"state {name} of shape {tuple(shape)} (declared {declared[key]!r})",
                    )
            elif spec.kind != "nested":
                raise SchemaError(f"state {name} is declared as {spec.kind} {declared[key]!r} but saved as an object")
            elif spec.type == "detectors" and not isinstance(value, list):
                raise SchemaError(f"state {name} must be a list of saved detectors")
            elif spec.type == "detector" and not isinstance(value, dict):
                raise SchemaError(f"state {name} must be one saved detector")
    missing = sorted(k for k, spec in specs.items() if k not in seen and not spec.optional and "{i}" not in k)
    if missing:
        raise SchemaError(f"state {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
