"""Which detectors can run on a data set, with which default hyperparameters, and which small grids to tune.

Defaults follow each method's reference where it fits the data, and are scaled to the data where the
reference assumes a wide backbone:

* ViM / Residual ``dim``: the original ViM repository's rule (1000 for D >= 2048, 512 for D >= 768, else D/2);
* neighbour counts (KNN, NNGuide, SAGE, DEUP) are capped by the number of training rows;
* OpenMax's tail size is capped by the smallest class;
* the ensemble's members are KNN + ViM + Energy with a head, KNN + Mahalanobis with labels only, else
  KNN + Gaussian.

Tuning grids (small, on purpose; every point costs a fit per validation task). Each is searched on
validation data only (:func:`unseen.bench.select`), never on test OOD sets:

=============  ==============================  ==============================================
detector       parameter                       grid
=============  ==============================  ==============================================
knn            ``k``                           1, 5, 10, 50 (those below the number of rows)
react          ``percentile``                  85, 90, 95, 99
ash_p/b/s      ``percentile``                  65, 80, 90
scale          ``percentile``                  65, 80, 90
dice           ``percentile``                  50, 70, 90
vim, residual  ``dim``                         D/4, the ViM rule, 3D/4
neco           ``dim``                         None (90 % variance), D/4, D/2
=============  ==============================  ==============================================

Temperature scaling (``temp_msp``) is fitted by NLL on the labelled validation split, as the references do;
the other detectors keep their reference defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import InputError
from ..registry import DetectorInfo, list_detectors

__all__ = ["DataShape", "Planned", "Registry", "plan_detectors"]

# Detectors whose reference fits a parameter on held-out labelled data: fitted on the validation split.
FIT_ON_VAL = frozenset({"temp_msp"})


class Registry:
    """The registered detectors, read once: name -> info and class.

    ``unseen.get_detector`` looks the name up in the registry on every call (entry points included, a few
    milliseconds); a benchmark creates thousands of detectors, so it reads the table once.
    """

    def __init__(self) -> None:
        import importlib

        self.infos: dict[str, DetectorInfo] = {i.name: i for i in list_detectors()}
        self.classes: dict[str, type] = {}
        for name, info in self.infos.items():
            module, _, cls = info.cls_path.partition(":")
            self.classes[name] = getattr(importlib.import_module(module), cls)

    def make(self, name: str, params: dict[str, Any] | None = None) -> Any:
        """A new detector ``name`` with ``params`` (like :func:`unseen.get_detector`)."""
        try:
            return self.classes[name](**(params or {}))
        except TypeError as exc:
            raise InputError(f"Bad parameters for detector {name!r}: {exc}") from None

    def key(self, name: str) -> str:
        """The registry name for ``name`` (case and dashes forgiven), or an InputError listing the names."""
        key = str(name).lower().replace("-", "_")
        if key not in self.infos:
            raise InputError(f"Unknown detector {name!r}. Available: {', '.join(sorted(self.infos))}.")
        return key


@dataclass(frozen=True)
class DataShape:
    """What the plan needs to know about the data."""

    n_features: int
    n_train: int
    has_labels: bool
    has_head: bool
    n_classes: int = 0
    min_class_count: int = 0
    features_are_logits: bool = False

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray | None, head: Any, *, features_are_logits: bool = False) -> DataShape:
        counts = np.bincount(np.asarray(y, dtype=np.int64)) if y is not None else np.zeros(0, int)
        counts = counts[counts > 0]
        return cls(
            n_features=int(X.shape[1]),
            n_train=int(X.shape[0]),
            has_labels=y is not None,
            has_head=head is not None,
            n_classes=int(counts.size),
            min_class_count=int(counts.min()) if counts.size else 0,
            features_are_logits=features_are_logits,
        )


@dataclass
class Planned:
    """One detector to run: its defaults, its tuning grid (possibly one point), how it consumes data."""

    name: str
    params: dict[str, Any]
    grid: list[dict[str, Any]] = field(default_factory=list)
    uses_head: bool = False
    uses_labels: bool = False
    fit_on_val: bool = False
    experimental: bool = False


def vim_dim(d: int) -> int:
    """The original ViM repository's principal dimension for ``d``-dimensional features."""
    if d >= 2048:
        return 1000
    if d >= 768:
        return 512
    return max(1, d // 2)


def default_params(name: str, shape: DataShape) -> dict[str, Any]:
    """Defaults for ``name`` on data of this shape (empty: the class's own defaults)."""
    d, n = shape.n_features, shape.n_train
    if name in ("vim", "residual"):
        return {"dim": vim_dim(d)}
    if name in ("knn", "sage"):
        return {"k": max(1, min(50, n // 4))}
    if name == "nnguide":
        return {"k": max(1, min(100, n // 4))}
    if name == "deup":
        return {"k": max(1, min(20, n // 10))}
    if name == "openmax" and shape.min_class_count:
        return {"tailsize": max(2, min(20, shape.min_class_count // 2))}
    if name == "ensemble":
        if shape.has_head:
            return {"members": ["knn", ["vim", {"dim": vim_dim(d)}], "energy"]}
        return {"members": ["knn", "mahalanobis" if shape.has_labels else "gaussian"]}
    return {}


def tuning_grid(name: str, shape: DataShape) -> list[dict[str, Any]]:
    """The small validation grid of ``name`` (empty: nothing to tune)."""
    d, n = shape.n_features, shape.n_train
    if name == "knn":
        ks = [k for k in (1, 5, 10, 50) if k <= max(1, n // 4)]
        return [{"k": k} for k in ks]
    if name == "react":
        return [{"percentile": p} for p in (85, 90, 95, 99)]
    if name in ("ash_p", "ash_b", "ash_s", "scale"):
        return [{"percentile": p} for p in (65, 80, 90)]
    if name == "dice":
        return [{"percentile": p} for p in (50, 70, 90)]
    if name in ("vim", "residual"):
        dims = sorted({max(1, d // 4), vim_dim(d), max(1, (3 * d) // 4)})
        return [{"dim": k} for k in dims if k < d]
    if name == "neco":
        return [{"dim": None}, *({"dim": k} for k in sorted({max(1, d // 4), max(1, d // 2)}))]
    return []


def plan_detectors(
    shape: DataShape,
    detectors: list[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    *,
    tune: bool = True,
    registry: Registry | None = None,
) -> tuple[list[Planned], dict[str, str]]:
    """The detectors to run on data of ``shape``, and the ones skipped with the reason.

    Parameters
    ----------
    shape : DataShape
    detectors : list of str, optional
        Registry names; default every registered detector that can run, experimental ones excluded.
    params : dict, optional
        Fixed hyperparameters per detector; they override the defaults and switch tuning off for it.
    tune : bool, default True
        Attach the tuning grid (else every detector runs with its defaults).
    registry : Registry, optional
        A registry snapshot (read anew when not given).

    Returns
    -------
    planned, skipped : list of Planned, dict of str to str
    """
    params = {k.lower().replace("-", "_"): dict(v) for k, v in (params or {}).items()}
    registry = registry or Registry()
    infos = registry.infos
    explicit = detectors is not None
    names = [registry.key(n) for n in detectors] if explicit else sorted(infos)
    planned, skipped = [], {}
    for name in names:
        info = infos[name]
        experimental = bool(getattr(registry.classes[name], "experimental", False))
        if experimental and not explicit:
            skipped[name] = "experimental (formula unverified); excluded by default, name it in detectors= to run it"
            continue
        uses_head = info.requires_head or info.input_kind == "logits" or info.family == "ensemble"
        if info.requires_head and not shape.has_head:
            skipped[name] = "needs the classifier head (W, b), and the data has none"
            continue
        if info.input_kind == "logits" and not (shape.has_head or shape.features_are_logits):
            skipped[name] = "runs on logits: needs the classifier head (W, b) or logits as the features"
            continue
        if info.requires_labels and not shape.has_labels:
            skipped[name] = "needs class labels of the training rows, and the data has none"
            continue
        if name == "openmax" and shape.min_class_count < 2:
            skipped[name] = "needs at least two training rows per class"
            continue
        defaults = default_params(name, shape)
        fixed = name in params
        chosen = {**defaults, **params.get(name, {})}
        grid = [] if fixed or not tune else [{**chosen, **point} for point in tuning_grid(name, shape)]
        planned.append(
            Planned(
                name=name,
                params=chosen,
                grid=grid or [chosen],
                uses_head=uses_head and shape.has_head,
                uses_labels=shape.has_labels,
                fit_on_val=name in FIT_ON_VAL,
                experimental=experimental,
            )
        )
    return planned, skipped
