"""The one shape every built-in or user benchmark takes: ID train / val / test plus named OOD sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import UnseenError

__all__ = ["MissingDataError", "OpenSetData", "OOD_KINDS"]

# "covariate" sets hold known classes under a shift (corruptions); they are reported apart from near/far.
OOD_KINDS = ("near", "far", "covariate")


class MissingDataError(UnseenError):
    """A data set (or the package that ships it) is not on this machine; the message says how to get it."""


@dataclass
class OpenSetData:
    """Features of one open-set benchmark, ready for detectors.

    Parameters
    ----------
    name : str
        The benchmark, e.g. ``"fashion-mnist"``.
    representation : str
        What produced the features, e.g. ``"efficientnet-lite0"``, ``"classifier"``, ``"minilm"``, ``"raw"``.
    seed : int
        The seed of the split (and of any model trained for it).
    X_train, y_train, X_val, y_val, X_test, y_test : ndarray
        Known-class (ID) features ``(n, d)`` and integer labels ``0..C-1``.
    ood : dict of str to ndarray
        Named OOD sets (features ``(m, d)``), e.g. ``{"near: shirt": ..., "far: digits": ...}``.
    ood_kind : dict of str to str
        For each OOD set: ``"near"``, ``"far"`` or ``"covariate"`` (known classes under a shift).
    head : tuple (W, b) or None
        A linear classifier ``logits = X @ W.T + b`` over the known classes, when one exists.
    class_names : list of str
        Names of the known classes, indexed by label.
    ood_labels : dict of str to ndarray
        For covariate-shifted sets, the known-class labels of their rows (so accuracy can be measured).
    description : str
        One paragraph for reports.
    """

    name: str
    representation: str
    seed: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    ood: dict[str, np.ndarray]
    ood_kind: dict[str, str]
    head: tuple[np.ndarray, np.ndarray] | None = None
    class_names: list[str] = field(default_factory=list)
    ood_labels: dict[str, np.ndarray] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        d = self.X_train.shape[1]
        for what, X in [
            ("X_val", self.X_val),
            ("X_test", self.X_test),
            *((f"ood[{k!r}]", v) for k, v in self.ood.items()),
        ]:
            if X.ndim != 2 or X.shape[1] != d:
                raise ValueError(f"{self.name}: {what} has shape {X.shape}, expected (n, {d}) like X_train.")
        if set(self.ood) != set(self.ood_kind):
            raise ValueError(
                f"{self.name}: ood and ood_kind name different sets: {sorted(self.ood)} vs {sorted(self.ood_kind)}."
            )
        bad = {k: v for k, v in self.ood_kind.items() if v not in OOD_KINDS}
        if bad:
            raise ValueError(f"{self.name}: OOD kinds must be one of {OOD_KINDS}, got {bad}.")

    @classmethod
    def from_arrays(
        cls,
        name: str,
        *,
        train: Any,
        val: Any,
        test: Any,
        ood: dict[str, Any],
        ood_kind: dict[str, str] | None = None,
        head: tuple[Any, Any] | None = None,
        representation: str = "features",
        class_names: list[str] | None = None,
    ) -> OpenSetData:
        """Your own model's outputs as a benchmark for :func:`unseen.bench.run`.

        Parameters
        ----------
        name : str
        train, val, test : tuple (X, y) or an object with ``features`` and ``labels`` attributes
            ID features and labels, e.g. what ``unseen.adapters.TorchModel.extract`` returns.
        ood : dict of str to array or object with ``features``
            Named OOD sets.
        ood_kind : dict of str to str, optional
            ``"near"``, ``"far"`` or ``"covariate"`` per OOD set; unnamed sets are ``"far"``.
        head : tuple (W, b), optional
            The classifier's last linear layer.

        Examples
        --------
        >>> import numpy as np
        >>> from unseen.datasets import OpenSetData
        >>> rng = np.random.default_rng(0)
        >>> split = lambda n: (rng.normal(size=(n, 4)), rng.integers(0, 2, n))
        >>> OpenSetData.from_arrays("toy", train=split(50), val=split(20), test=split(20),
        ...                         ood={"noise": 5 + rng.normal(size=(20, 4))}).ood_kind
        {'noise': 'far'}
        """

        def xy(part: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
            X, y = (part.features, part.labels) if hasattr(part, "features") else part
            if y is None:
                raise ValueError(f"{name}: {what} has no labels; pass (X, y) with the known-class label of each row.")
            return np.asarray(X), np.asarray(y)

        (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = xy(train, "train"), xy(val, "val"), xy(test, "test")
        sets = {k: np.asarray(v.features if hasattr(v, "features") else v) for k, v in ood.items()}
        kinds = {k: (ood_kind or {}).get(k, "far") for k in sets}
        if head is not None:
            head = (np.asarray(head[0]), np.asarray(head[1]))
        return cls(
            name, representation, 0, X_tr, y_tr, X_va, y_va, X_te, y_te, sets, kinds, head, list(class_names or [])
        )

    @property
    def n_classes(self) -> int:
        """Number of known classes."""
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Logits of the known classes from the stored head."""
        if self.head is None:
            raise ValueError(f"{self.name} ({self.representation}) has no classifier head.")
        W, b = self.head
        return X @ W.T + b

    def __repr__(self) -> str:
        sets = ", ".join(f"{k} [{self.ood_kind[k]}] {len(v)}" for k, v in self.ood.items())
        return (
            f"OpenSetData({self.name!r}, {self.representation!r}, seed={self.seed}, d={self.X_train.shape[1]}, "
            f"train/val/test={len(self.X_train)}/{len(self.X_val)}/{len(self.X_test)}, ood: {sets})"
        )
