"""The detector registry: the built-in detectors (found in :mod:`unseen.detectors`), lazy imports, and an
entry-point group for third-party detectors.

Third-party packages add detectors through the ``unseen.detectors`` entry-point group, e.g. in their
``pyproject.toml``::

    [project.entry-points."unseen.detectors"]
    my_detector = "my_package.module:MyDetector"
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from . import persistence
from .base import Detector
from .exceptions import InputError, MissingDependencyError

__all__ = ["DetectorInfo", "builtin_detectors", "get_detector", "list_detectors", "load_class", "register"]

ENTRY_POINT_GROUP = "unseen.detectors"

#: Third-party detectors added with :func:`register`: name -> (import target, pip extra needed or None).
_EXTRA: dict[str, tuple[str, str | None]] = {}
_BUILTIN: dict[str, type[Detector]] | None = None


def builtin_detectors() -> dict[str, type[Detector]]:
    """The built-in detectors, name -> class: every :class:`~unseen.Detector` subclass with a ``name`` defined in
    a module of :mod:`unseen.detectors`. The modules are the only list; they are imported on first use.

    Examples
    --------
    >>> builtin_detectors()["knn"].__name__
    'KNN'
    """
    global _BUILTIN
    if _BUILTIN is None:
        from . import detectors

        found: dict[str, type[Detector]] = {}
        for module_info in sorted(pkgutil.iter_modules(detectors.__path__), key=lambda m: m.name):
            if module_info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{detectors.__name__}.{module_info.name}")
            for obj in vars(module).values():
                if (
                    isinstance(obj, type)
                    and issubclass(obj, Detector)
                    and obj.__module__ == module.__name__
                    and obj.name
                ):
                    if obj.name in found and found[obj.name] is not obj:
                        raise RuntimeError(
                            f"two built-in detectors are named {obj.name!r}: {found[obj.name]} and {obj}"
                        )
                    found[obj.name] = obj
        _BUILTIN = dict(sorted(found.items()))
    return _BUILTIN


@dataclass(frozen=True)
class DetectorInfo:
    """What a registered detector is and what it consumes."""

    name: str
    cls_path: str
    family: str
    input_kind: str
    requires_labels: bool
    requires_head: bool
    supports_chunks: bool
    summary: str

    @property
    def detector_class(self) -> type[Detector]:
        """The class itself, which answers everything else (``takes_head()``, ``default_params(shape)``, ...)."""
        module, _, name = self.cls_path.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def inputs(self) -> str:
        """A short human-readable statement of the inputs ``fit`` needs."""
        parts = [self.input_kind]
        if self.requires_labels:
            parts.append("labels")
        if self.requires_head:
            parts.append("head (W, b)")
        return " + ".join(parts)


def register(name: str, target: str, extra: str | None = None) -> None:
    """Register a detector class under ``name`` (``target`` is ``"module:Class"``)."""
    if name in builtin_detectors():
        raise InputError(f"{name!r} is a built-in detector name; choose another.")
    _EXTRA[name] = (target, extra)


def _table() -> dict[str, type[Detector] | tuple[str, str | None]]:
    """Every name: a built-in class, or the ``(target, extra)`` of a plugin (imported when looked up)."""
    table: dict[str, type[Detector] | tuple[str, str | None]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, (ep.value, None))
    table.update(_EXTRA)
    table.update(builtin_detectors())
    return table


def _load(name: str) -> type[Detector]:
    table = _table()
    key = name.lower().replace("-", "_")
    if key not in table:
        raise InputError(f"Unknown detector {name!r}. Available: {', '.join(sorted(table))}.")
    entry = table[key]
    if isinstance(entry, type):
        return entry
    target, extra = entry
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f'pip install "unseen[{extra}]"' if extra else f"install the package that provides {module_name}"
        raise MissingDependencyError(
            f"Detector {name!r} needs a package that is missing ({exc.name}). Install it with: {hint}"
        ) from exc
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise InputError(f"Detector {name!r} is registered as {target!r}, which is not a subclass of unseen.Detector.")
    return cls


def load_class(path: str | None, name: str | None = None) -> type[Detector]:
    """The registered detector class stored as ``path`` (``"module:Class"``), or as ``name`` when ``path`` is
    None (files written before classes were stored); an InputError for anything else.

    Saved files name their class this way; loading checks it against the registry, so a file cannot make
    unseen import an arbitrary module.
    """
    if path is None:
        return _load(str(name))
    for key, entry in _table().items():
        target = f"{entry.__module__}:{entry.__name__}" if isinstance(entry, type) else entry[0]
        if target == path:
            return _load(key)
    raise InputError(f"{path!r} is not a registered unseen detector class.")


persistence.set_class_resolver(load_class)


def get_detector(name: str, **params: Any):
    """Create a detector by registry name.

    Parameters
    ----------
    name : str
        A name from :func:`list_detectors`, e.g. ``"knn"``.
    **params
        Hyperparameters passed to the detector's constructor.

    Examples
    --------
    >>> import unseen
    >>> unseen.get_detector("knn", k=10)
    KNN(k=10)
    """
    cls = _load(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise InputError(f"Bad parameters for detector {name!r}: {exc}") from None


def list_detectors(family: str | None = None, input: str | None = None) -> list[DetectorInfo]:  # noqa: A002
    """The registered detectors, optionally filtered.

    Parameters
    ----------
    family : str, optional
        Keep one family: ``"logits"``, ``"distance"``, ``"subspace"``, ``"shaping"``, ``"openset"``, ``"ensemble"``.
    input : str, optional
        Keep detectors that can run on this input: ``"logits"`` (no features or head needed),
        ``"features"`` (features only, no head).

    Examples
    --------
    >>> import unseen
    >>> {"msp", "energy"} <= {d.name for d in unseen.list_detectors(family="logits")}
    True
    """
    infos = []
    for name in sorted(_table()):
        try:
            cls = _load(name)
        except MissingDependencyError:
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        info = DetectorInfo(
            name=name,
            cls_path=f"{cls.__module__}:{cls.__name__}",
            family=cls.family,
            input_kind=cls.input_kind,
            requires_labels=cls.requires_labels,
            requires_head=cls.requires_head,
            supports_chunks=cls.supports_chunks,
            summary=doc[0] if doc else "",
        )
        if family is not None and info.family != family:
            continue
        if input is not None and (info.input_kind != input or info.requires_head):
            continue
        infos.append(info)
    return infos
