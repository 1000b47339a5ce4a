"""Which detectors can run on a data set, with which default hyperparameters, and which small grids to tune.

Every answer comes from the detector class (:class:`unseen.Detector`'s capabilities): ``unavailable(shape)``
says why it cannot run, ``default_params(shape)`` scales the reference defaults to the data where the
reference assumes a wide backbone (ViM's principal dimension, neighbour counts capped by the rows, OpenMax's
tail size capped by the smallest class, the ensemble's members), ``tuning_grid(shape)`` gives the small grid
searched on validation data only (:func:`unseen.bench.select`, never on test OOD sets), ``takes_head()`` and
``fits_on_validation`` say how it consumes the data. A detector from another package takes part by declaring
the same. docs/methods.md lists each detector's defaults and grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..base import DataShape, Detector
from ..exceptions import InputError
from ..registry import DetectorInfo, list_detectors

__all__ = ["Planned", "Registry", "plan_detectors"]


class Registry:
    """The registered detectors, read once: name -> info and class.

    ``unseen.get_detector`` looks the name up in the registry on every call (entry points included, a few
    milliseconds); a benchmark creates thousands of detectors, so it reads the table once.
    """

    def __init__(self) -> None:
        self.infos: dict[str, DetectorInfo] = {i.name: i for i in list_detectors()}
        self.classes: dict[str, type[Detector]] = {name: info.detector_class for name, info in self.infos.items()}

    def make(self, name: str, params: dict[str, Any] | None = None) -> Detector:
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
    explicit = detectors is not None
    names = [registry.key(n) for n in detectors] if detectors is not None else sorted(registry.infos)
    planned, skipped = [], {}
    for name in names:
        cls = registry.classes[name]
        if cls.experimental and not explicit:
            skipped[name] = "experimental (formula unverified); excluded by default, name it in detectors= to run it"
            continue
        reason = cls.unavailable(shape)
        if reason is not None:
            skipped[name] = reason
            continue
        fixed = name in params
        chosen = {**cls.default_params(shape), **params.get(name, {})}
        grid = [] if fixed or not tune else [{**chosen, **point} for point in cls.tuning_grid(shape)]
        planned.append(
            Planned(
                name=name,
                params=chosen,
                grid=grid or [chosen],
                uses_head=cls.takes_head() and shape.has_head,
                uses_labels=shape.has_labels,
                fit_on_val=cls.fits_on_validation,
                experimental=cls.experimental,
            )
        )
    return planned, skipped
