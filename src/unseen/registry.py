"""The detector registry: names, lazy imports, and an entry-point group for third-party detectors.

Third-party packages add detectors through the ``unseen.detectors`` entry-point group, e.g. in their
``pyproject.toml``::

    [project.entry-points."unseen.detectors"]
    my_detector = "my_package.module:MyDetector"
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from .exceptions import InputError, MissingDependencyError

__all__ = ["DetectorInfo", "get_detector", "list_detectors", "register"]

ENTRY_POINT_GROUP = "unseen.detectors"

# name -> (import target, pip extra needed or None). Core detectors need NumPy, SciPy, scikit-learn, faiss.
_BUILTIN: dict[str, tuple[str, str | None]] = {
    # logits
    "msp": ("unseen.detectors.logits:MSP", None),
    "temp_msp": ("unseen.detectors.logits:TemperatureScaledMSP", None),
    "maxlogit": ("unseen.detectors.logits:MaxLogit", None),
    "energy": ("unseen.detectors.logits:Energy", None),
    "entropy": ("unseen.detectors.logits:Entropy", None),
    "gen": ("unseen.detectors.logits:GEN", None),
    "klm": ("unseen.detectors.logits:KLMatching", None),
    "evidential": ("unseen.detectors.evidential:Evidential", None),
    # distance
    "mahalanobis": ("unseen.detectors.gaussian:Mahalanobis", None),
    "rmds": ("unseen.detectors.gaussian:RelativeMahalanobis", None),
    "gaussian": ("unseen.detectors.gaussian:Gaussian", None),
    "knn": ("unseen.detectors.neighbors:KNN", None),
    "nnguide": ("unseen.detectors.neighbors:NNGuide", None),
    "she": ("unseen.detectors.boundary:SHE", None),
    "fdbd": ("unseen.detectors.boundary:FDBD", None),
    # subspace
    "vim": ("unseen.detectors.subspace:ViM", None),
    "residual": ("unseen.detectors.subspace:Residual", None),
    "neco": ("unseen.detectors.subspace:NECO", None),
    # activation shaping
    "react": ("unseen.detectors.shaping:ReAct", None),
    "ash_p": ("unseen.detectors.shaping:ASHP", None),
    "ash_b": ("unseen.detectors.shaping:ASHB", None),
    "ash_s": ("unseen.detectors.shaping:ASHS", None),
    "scale": ("unseen.detectors.shaping:SCALE", None),
    "dice": ("unseen.detectors.shaping:DICE", None),
    # open set
    "openmax": ("unseen.detectors.openset:OpenMax", None),
    "sdm": ("unseen.detectors.sdm:SDM", None),
    # ensemble
    "ensemble": ("unseen.detectors.ensemble:Ensemble", None),
    "sage": ("unseen.detectors.sage:SAGE", None),
    # learned
    "deup": ("unseen.detectors.deup:DEUP", None),
    # open set, experimental (formula unverified)
    "costarr": ("unseen.detectors.costarr:COSTARR", None),
}

_EXTRA: dict[str, tuple[str, str | None]] = {}


@dataclass(frozen=True)
class DetectorInfo:
    """What a registered detector is and what it consumes; ``detector_class`` answers everything else
    (its capabilities: ``takes_head()``, ``default_params(shape)``, ``can_enroll``, ...)."""

    name: str
    cls_path: str
    family: str
    input_kind: str
    requires_labels: bool
    requires_head: bool
    supports_chunks: bool
    summary: str
    detector_class: type = field(repr=False, compare=False, default=object)

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
    if name in _BUILTIN:
        raise InputError(f"{name!r} is a built-in detector name; choose another.")
    _EXTRA[name] = (target, extra)


def _table() -> dict[str, tuple[str, str | None]]:
    table = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, (ep.value, None))
    table.update(_EXTRA)
    return table


def _load(name: str) -> type:
    table = _table()
    key = name.lower().replace("-", "_")
    if key not in table:
        raise InputError(f"Unknown detector {name!r}. Available: {', '.join(sorted(table))}.")
    target, extra = table[key]
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if key in _BUILTIN and extra is None:
            raise  # a built-in detector that does not import is a bug, not a missing extra
        raise MissingDependencyError(
            f'Detector {name!r} needs a package that is missing ({exc.name}). Install it with: pip install "unseen[{extra}]"'
        ) from exc
    return getattr(module, cls_name)


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
            detector_class=cls,
        )
        if family is not None and info.family != family:
            continue
        if input is not None and (info.input_kind != input or info.requires_head):
            continue
        infos.append(info)
    return infos
