"""Ensembles of detectors: each member's score mapped to its in-distribution empirical CDF, then combined."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import base as _base
from .._validation import check_param
from ..base import DataShape, Detector, Signals
from ..exceptions import DegenerateFitError, DegenerateFitWarning, InputError

__all__ = ["Ensemble"]

_COMBINE = ("mean", "min", "product")


def _member_specs(members: Any, owner: str = "Ensemble") -> list[tuple[str, dict[str, Any]]]:
    """Normalise ``members`` to ``[(name, params), ...]``; accepts names and ``(name, params)`` pairs or lists."""
    hint = "e.g. members=('knn', ('mahalanobis', {}), ['energy', {'temperature': 2.0}])"
    if isinstance(members, (str, bytes)) or not isinstance(members, (list, tuple)):
        raise InputError(
            f"{owner}: members must be a list or tuple of detector names or (name, params) pairs, "
            f"got {members!r}; {hint}."
        )
    if len(members) == 0:
        raise InputError(f"{owner}: members is empty; give at least one detector, {hint}.")
    specs: list[tuple[str, dict[str, Any]]] = []
    for i, member in enumerate(members):
        if isinstance(member, str):
            specs.append((member, {}))
        elif (
            isinstance(member, (list, tuple))
            and len(member) == 2
            and isinstance(member[0], str)
            and isinstance(member[1], dict)
        ):
            specs.append((member[0], dict(member[1])))
        else:
            raise InputError(
                f"{owner}: member {i} is {member!r}; each member must be a registry name such as 'knn' or a "
                f"(name, params) pair such as ('knn', {{'k': 10}}). Pass names, not detector objects, so the "
                "ensemble can be saved."
            )
    return specs


@contextmanager
def _naming(i: int, name: str) -> Iterator[None]:
    """Prefix a member's input errors with its position and name."""
    try:
        yield
    except InputError as exc:
        raise InputError(f"Ensemble member {i} ({name!r}): {exc}") from None


def _make_member(name: str, params: dict[str, Any], i: int) -> Detector:
    from ..registry import get_detector

    with _naming(i, name):
        return get_detector(name, **params)


def combine_probabilities(probs: list[np.ndarray], rule: str) -> np.ndarray:
    """Per-row combination of member probabilities: ``"mean"``, ``"min"`` or ``"product"`` (geometric mean)."""
    P = np.column_stack(probs)
    if rule == "mean":
        return P.mean(axis=1)
    if rule == "min":
        return P.min(axis=1)
    return np.exp(np.log(P).mean(axis=1))  # geometric mean; P > 0 always


class Ensemble(Detector):
    """Ensemble of detectors: members' scores mapped to their ID empirical CDFs and combined (mean, min or product).

    Fit: each member is fitted on ``X`` (with ``y`` if it needs labels, with ``head`` if it needs one or
    takes logits), then scored on the fit rows (a uniform sample of at most 20 000) with its fit-row
    scorer, which for neighbour detectors such as KNN leaves each row's own match out, so the reference
    scores are not inflated by self-matches. Their sorted values ``r_m`` are stored as ``cdf_<m>_``.
    Score: per member the smoothed empirical CDF (the conformal p-value of the score among the references)

        ``p_m(x) = (1 + #{i : r_{m,i} <= s_m(x)}) / (n_m + 1)``,   in ``(0, 1]``,

    combined into ``s = mean_m p_m`` (``combine="mean"``), ``min_m p_m`` (``"min"``) or the geometric mean
    ``(prod_m p_m)^(1/M)`` (``"product"``); higher = more in-distribution. Mapping to the CDF puts members
    with unrelated scales on one scale (the fraction of fit samples no more familiar than ``x``), as the
    SAGE-style "ECDF ensemble" of docs/methods.md#sage does. With one member the score is that member's conformal
    p-value computed on the fit data; for p-values with a finite-sample guarantee, compute them on a separate
    ID calibration split instead (docs/decisions.md#conformal).

    Parameters
    ----------
    members : list or tuple, default ("knn", "energy")
        Registry names, or ``(name, params)`` pairs, e.g. ``("knn", ("vim", {"dim": 256}))``. Lists work
        too, so the value survives a round trip through JSON (saving).
    combine : {"mean", "min", "product"}, default "mean"
        How the members' CDF values are combined: arithmetic mean, minimum (flag when any member is
        unfamiliar), or geometric mean.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Attributes
    ----------
    members_ : list of Detector
        The fitted members, in the order of ``members``.
    cdf_0_, cdf_1_, ... : ndarray
        Each member's sorted reference scores on the fit rows.

    Notes
    -----
    ``X`` goes to every member unchanged. With ``head=(W, b)`` the logit members (MSP, Energy, ...) take
    the features and apply the head themselves; without a head, ``X`` is taken as the logits by logit
    members. Members that need labels or a head raise an error naming them when ``y``/``head`` is missing.
    Fitted members are in ``members_``. Fit and scoring cost the sum of the members' costs (each member
    also scores the fit sample once more for its reference scores).

    Examples
    --------
    >>> import numpy as np, unseen
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
    >>> X = rng.normal(size=(300, 8)) + 4 * np.eye(3, 8)[y]
    >>> W, b = np.eye(3, 8), np.zeros(3)
    >>> det = unseen.Ensemble(members=("mahalanobis", "energy")).fit(X, y, head=(W, b))
    >>> s = det.score_samples(np.vstack([X[:1], X[:1] + 20]))
    >>> bool(s[0] > s[1]), len(det.members_)
    (True, 2)
    """

    name = "ensemble"
    state_spec = {"members_": "detectors", "cdf_{i}_": "float[*]"}
    family = "ensemble"
    input_kind = "features"
    requires_labels = False
    requires_head = False
    ensemble_member = False

    @classmethod
    def takes_head(cls) -> bool:
        return True  # handed on to the members that take one

    @classmethod
    def default_params(cls, shape: DataShape) -> dict[str, Any]:
        if shape.has_head:
            from .subspace import vim_dim

            return {"members": ["knn", ["vim", {"dim": vim_dim(shape.n_features)}], "energy"]}
        return {"members": ["knn", "mahalanobis" if shape.has_labels else "gaussian"]}

    @classmethod
    def test_params(cls, shape: DataShape) -> dict[str, Any]:
        return {"members": ["knn", "energy"]}

    def __init__(self, members: Any = ("knn", "energy"), combine: str = "mean", *, tpr: float = 0.95):
        self.members = members
        self.combine = combine
        self.tpr = tpr

    def _check_params(self) -> None:
        check_param(self.combine, "combine", owner=type(self).__name__, choices=list(_COMBINE))
        _member_specs(self.members)

    # ------------------------------------------------------------------------------------ fitting

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        head = None if self.W_ is None else (self.W_, self.b_)
        members = [_make_member(name, params, i) for i, (name, params) in enumerate(_member_specs(self.members))]
        for i, det in enumerate(members):  # check every member's needs before fitting any
            cls = type(det)
            with _naming(i, cls.name):
                det._check_params()
            if cls.requires_labels and y is None:
                raise InputError(
                    f"Ensemble member {i} ({cls.name!r}, {cls.__name__}) needs class labels: call fit(X, y, ...) with "
                    "y the integer class of each row, or remove the member."
                )
            if cls.requires_head and head is None:
                raise InputError(
                    f"Ensemble member {i} ({cls.name!r}, {cls.__name__}) needs the classifier head: call "
                    "fit(X, y, head=(W, b)) with the last linear layer, or remove the member."
                )
        references = []
        for i, det in enumerate(members):
            cls = type(det)
            kwargs: dict[str, Any] = {}
            if cls.requires_labels:
                kwargs["y"] = y
            if head is not None and cls.takes_head():
                kwargs["head"] = head
            with _naming(i, cls.name):
                det.fit(X, **kwargs)
        self.members_ = members
        sample = self._threshold_rows(X)
        member_scores = self._member_fit_scores(sample)
        flat = [i for i, s in enumerate(member_scores) if s.shape[0] > 1 and s.min() == s.max()]
        if flat and len(flat) == len(members):
            raise DegenerateFitError(
                f"Ensemble cannot tell inputs apart after this fit: every member scores all {sample.shape[0]} fit "
                "rows alike, so each member's empirical CDF is a single step and the combined score takes at most "
                "two values. The fit rows are identical or constant (all-zero features?); fit on varied rows."
            )
        for i in flat:
            warnings.warn(
                f"Ensemble member {i} ({members[i].name!r}) scores all {sample.shape[0]} fit rows alike; its "
                "empirical CDF is a single step, so it only says whether an input scores at least that value.",
                DegenerateFitWarning,
                stacklevel=3,
            )
        for i, scores in enumerate(member_scores):
            setattr(self, f"cdf_{i}_", np.sort(scores))
            references.append(_ecdf(getattr(self, f"cdf_{i}_"), scores))
        self._fit_sample_scores = (sample.shape[0], self._combine(references))

    def _threshold_rows(self, X: np.ndarray) -> np.ndarray:
        """A seeded sample of fit rows no larger than any member's own cap on the rows it scores for its threshold
        (KNN's ``threshold_rows``), so that every member scores the same rows."""
        cap = min(
            [_base.THRESHOLD_SAMPLE]
            + [int(getattr(d, "threshold_rows", 0) or 0) or _base.THRESHOLD_SAMPLE for d in self.members_]
        )
        if X.shape[0] <= cap:
            return X
        return X[np.sort(np.random.default_rng(0).choice(X.shape[0], cap, replace=False))]

    def _member_fit_scores(self, sample: np.ndarray) -> list[np.ndarray]:
        """Each member's scores of the fit rows in ``sample`` as if they were new rows (``_score_fit_rows``:
        leave-one-out for neighbour detectors, SDM leaves each row's own support entry out). A member that returns
        another number of scores (a plugin's threshold sample) scores ``sample`` directly."""
        out = []
        for i, det in enumerate(self.members_):
            with _naming(i, type(det).name):
                s = np.asarray(det._score_fit_rows(sample), dtype=np.float64)
                if s.shape != (sample.shape[0],):
                    s = np.asarray(det._score_batched(sample), dtype=np.float64)
            out.append(s)
        return out

    def _score_fit_sample(self, X: np.ndarray) -> np.ndarray:
        sample = self._threshold_rows(X)
        cached = self.__dict__.pop("_fit_sample_scores", None)
        if cached is not None and cached[0] == sample.shape[0]:
            return cached[1]
        probs = [_ecdf(getattr(self, f"cdf_{i}_"), s) for i, s in enumerate(self._member_fit_scores(sample))]
        return self._combine(probs)

    # ------------------------------------------------------------------------------------ scoring

    def member_probabilities(self, X: Any) -> np.ndarray:
        """Each member's CDF value ``p_m(x)`` (columns in the order of ``members_``), before combining.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_members)
        """
        X = self._validate(X)
        rows = self.score_batch_rows
        return np.concatenate([np.column_stack(self._probs(X[i : i + rows])) for i in range(0, X.shape[0], rows)])

    def _probs(self, X: np.ndarray) -> list[np.ndarray]:
        return [_ecdf(getattr(self, f"cdf_{i}_"), det._score_batched(X)) for i, det in enumerate(self.members_)]

    def _combine(self, probs: list[np.ndarray]) -> np.ndarray:
        return combine_probabilities(probs, self.combine)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._combine(self._probs(X))

    def signals(self, X: np.ndarray) -> Signals:
        P = self.member_probabilities(X)
        names = [m.name for m in self.members_]
        names = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
        return Signals({n: P[:, i] for i, n in enumerate(names)}, {n: True for n in names}, already_probabilities=True)


def _ecdf(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(1 + #{reference <= s}) / (n + 1)`` for each score ``s`` (``reference`` sorted ascending)."""
    return (1.0 + np.searchsorted(reference, scores, side="right")) / (reference.shape[0] + 1.0)
