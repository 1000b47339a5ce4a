"""Explanations: why a detector accepted or flagged each input.

:func:`explain` returns, for every input row, an :class:`Explanation`: the score, the decision and the verdict;
the nearest training exemplars (their row numbers in the training set, distances and labels); the per-class
distances or scores of detectors that have classes; the top logits where the detector sees logits; and
*which signal drove the verdict* — each signal the detector's score is made of (ViM: energy and the residual
term; RMDS: the class and background terms; NNGuide: energy and neighbour similarity; fDBD: boundary distances
and the feature's distance to the mean; SDM: similarity q, distance quantile delta and magnitude; SAGE and
Ensemble: each statistic's or member's ID probability; KNN: the k-th neighbour distance) compared with the same
signal on in-distribution data.

>>> import numpy as np, unseen
>>> rng = np.random.default_rng(0); y = rng.integers(0, 3, 300)
>>> X = rng.normal(size=(300, 8)) + 4 * np.eye(3, 8)[y]
>>> det = unseen.Mahalanobis().fit(X, y)
>>> ex = unseen.explain(det, X[:1] + 10, reference=X, reference_labels=y, k=3)
>>> ex[0].verdict, len(ex[0].exemplars), ex[0].classes[0].label in (0, 1, 2)
('unfamiliar', 3, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.special import log_softmax, logsumexp, xlogy

from ._validation import as_float_array, check_labels, check_param
from .base import Detector
from .exceptions import InputError, MissingDependencyError

__all__ = ["ClassValue", "Exemplar", "Explanation", "TopClass", "explain"]

#: ID rows (a seeded sample of the reference, or of a KNN bank) that give the signals' ID distribution.
BASELINE_ROWS = 2000
#: Rows searched per block, and the most float64 values the exact re-ranking of one block may hold (32 MB).
_BLOCK = 256
_RERANK_FLOATS = 4_000_000


@dataclass
class Exemplar:
    """A training row near the input: its row number in the training set, its distance and its label."""

    index: int
    distance: float
    label: int | None = None


@dataclass
class ClassValue:
    """A class and the detector's per-class distance or score for the input."""

    label: int | str
    value: float


@dataclass
class TopClass:
    """One of the classifier's top classes for the input: logit and softmax probability."""

    label: int
    logit: float
    probability: float


@dataclass
class Explanation:
    """Why one input was accepted or flagged.

    Attributes
    ----------
    row : int
        Row of the input in the explained array.
    detector : str
        Registry name of the detector.
    score, threshold, decision : float
        ``score_samples``, ``offset_`` and their difference (negative = flagged).
    verdict : str
        ``"known"`` (``decision >= 0``) or ``"unfamiliar"``.
    score_percentile : float or None
        Share of in-distribution reference rows scoring at most this score (None without reference data).
    exemplars : list of Exemplar
        The nearest training rows, closest first; ``exemplar_metric`` says which distance.
    classes : list of ClassValue
        The closest classes by the detector's own per-class quantity (``class_metric``), closest first.
    top_classes : list of TopClass
        The highest logits and their softmax probabilities (detectors that see logits).
    components : dict
        The signals the score is made of, at this input. ``component_higher_is_id`` gives each one's
        direction; ``additive`` says whether they sum to the score.
    component_baseline : dict or None
        Each signal's mean over in-distribution reference rows.
    component_percentile : dict or None
        Share of in-distribution rows whose signal is at most as typical as this input's (low = unusual).
    driver : str or None
        The signal that drove the verdict (see ``reason``).
    reason : str
        One sentence on the driver, with the numbers.
    """

    row: int
    detector: str
    score: float
    threshold: float
    decision: float
    verdict: str
    score_percentile: float | None = None
    exemplars: list[Exemplar] = field(default_factory=list)
    exemplar_metric: str | None = None
    classes: list[ClassValue] = field(default_factory=list)
    class_metric: str | None = None
    top_classes: list[TopClass] = field(default_factory=list)
    components: dict[str, float] = field(default_factory=dict)
    component_higher_is_id: dict[str, bool] = field(default_factory=dict)
    additive: bool = False
    component_baseline: dict[str, float] | None = None
    component_percentile: dict[str, float] | None = None
    driver: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (plain ints, floats, strings, lists and dicts)."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        """Rebuild an explanation from :meth:`to_dict` output (e.g. after a JSON round trip)."""
        data = dict(data)
        data["exemplars"] = [Exemplar(**e) for e in data.get("exemplars", [])]
        data["classes"] = [ClassValue(**c) for c in data.get("classes", [])]
        data["top_classes"] = [TopClass(**t) for t in data.get("top_classes", [])]
        return cls(**data)

    def __str__(self) -> str:
        lines = []
        cmp = ">=" if self.decision >= 0 else "<"
        pct = "" if self.score_percentile is None else f"; {self.score_percentile:.1%} of ID rows score at most this"
        lines.append(
            f"row {self.row}: {self.verdict.upper()} - {self.detector} score {self.score:.4g} {cmp} threshold "
            f"{self.threshold:.4g}{pct}"
        )
        if self.reason:
            lines.append(f"  why: {self.reason}")
        if self.exemplars:
            shown = " | ".join(
                f"#{e.index} d={e.distance:.4g}" + ("" if e.label is None else f" class {e.label}") for e in self.exemplars
            )
            lines.append(f"  nearest training rows ({self.exemplar_metric}): {shown}")
        else:
            lines.append("  nearest training rows: none (pass reference= the training features)")
        if self.classes:
            shown = " | ".join(f"{c.label}: {c.value:.4g}" for c in self.classes)
            lines.append(f"  classes ({self.class_metric}): {shown}")
        if self.top_classes:
            shown = " | ".join(f"{t.label}: {t.logit:.4g} (p={t.probability:.3f})" for t in self.top_classes)
            lines.append(f"  top logits: {shown}")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value


# ---------------------------------------------------------------------------------------------------- anatomy


@dataclass
class _Anatomy:
    """A detector's signals for a block of rows, and its per-class quantity."""

    components: dict[str, np.ndarray]
    higher_is_id: dict[str, bool]
    additive: bool = False
    already_probabilities: bool = False  # the signals are ID probabilities already (Ensemble, SAGE)
    class_labels: list[Any] | None = None
    class_values: np.ndarray | None = None
    class_metric: str | None = None
    lower_is_closer: bool = True


def _single(name: str, values: np.ndarray, higher_is_id: bool = True) -> _Anatomy:
    return _Anatomy({name: np.asarray(values, dtype=np.float64)}, {name: higher_is_id})


def _anatomy(det: Detector, X: np.ndarray, scores: np.ndarray) -> _Anatomy:
    """The signals behind ``scores`` (validated rows ``X``), by detector."""
    from .detectors import boundary, ensemble, gaussian, logits, neighbors, openset, subspace

    if isinstance(det, gaussian.RelativeMahalanobis):
        md, md0 = det._distances(X)
        rel = md - md0[:, None]
        nearest = md[np.arange(md.shape[0]), rel.argmin(axis=1)]
        out = _Anatomy({"class term": -nearest, "background term": md0}, {"class term": True, "background term": True})
        out.additive = True
        out.class_labels, out.class_values = det.classes_.tolist(), rel
        out.class_metric = "relative squared Mahalanobis distance MD^2_c - MD^2_0, lower = closer"
        return out
    if isinstance(det, gaussian.Mahalanobis):
        md = det.class_distances(X)
        out = _single("nearest-class MD^2", md.min(axis=1), higher_is_id=False)
        out.class_labels, out.class_values = det.classes_.tolist(), md
        out.class_metric = "squared Mahalanobis distance, lower = closer"
        return out
    if isinstance(det, gaussian.Gaussian):
        return _single("MD^2 to the mean", -scores, higher_is_id=False)
    if isinstance(det, subspace.ViM):
        energy = logsumexp(det._logits(X), axis=1)
        residual = -det.alpha_ * det._residual_norm(X)
        out = _Anatomy({"energy": energy, "residual": residual}, {"energy": True, "residual": True})
        out.additive = True
        return out
    if isinstance(det, subspace.Residual):
        return _single("residual norm", -scores, higher_is_id=False)
    if isinstance(det, neighbors.KNN):
        return _single("k-th neighbour distance", -scores, higher_is_id=False)
    if isinstance(det, neighbors.NNGuide):
        energy = logsumexp(det._logits(X), axis=1)
        sims = _nnguide_similarities(det, X, det.k)
        comps = {"energy": energy, "neighbour similarity": sims.mean(axis=1)}
        return _Anatomy(comps, {"energy": True, "neighbour similarity": True})
    if isinstance(det, boundary.SHE):
        out = _single("pattern similarity", scores)
        out.class_labels = list(range(det.patterns_.shape[0]))
        out.class_values = np.asarray(X, dtype=np.float64) @ det.patterns_.T
        out.class_metric = "inner product with the class pattern, higher = closer"
        out.lower_is_closer = False
        return out
    if isinstance(det, boundary.FDBD):
        X64 = np.asarray(X, dtype=np.float64)
        f = det._logits(X64)
        pred = f.argmax(axis=1)
        bd = np.abs(f[np.arange(f.shape[0]), pred][:, None] - f) / det.weight_dist_[pred]
        norm_name = "distance to the mean feature" if det.distance_as_normalizer else "feature norm"
        Z = X64 - det.train_mean_ if det.distance_as_normalizer else X64
        comps = {"boundary distance sum": bd.sum(axis=1), norm_name: np.sqrt(np.einsum("ij,ij->i", Z, Z))}
        out = _Anatomy(comps, {"boundary distance sum": True, norm_name: False})
        out.class_labels, out.class_values = list(range(f.shape[1])), bd
        out.class_metric = "distance to the decision boundary with each class (0 = predicted), lower = closer"
        return out
    if isinstance(det, logits.KLMatching):
        f = det._logits(X)
        logp = log_softmax(f, axis=1)
        p = np.exp(logp)
        log_d = np.log(np.maximum(det.templates_, np.finfo(np.float64).tiny))
        kl = np.sum(xlogy(p, p), axis=1)[:, None] - p @ log_d.T
        out = _single("smallest KL divergence", -scores, higher_is_id=False)
        out.class_labels, out.class_values = list(range(kl.shape[1])), kl
        out.class_metric = "KL(p || class template), lower = closer"
        return out
    if isinstance(det, openset.OpenMax):
        proba = det.predict_proba_openmax(X)
        out = _single("P(unknown)", -scores, higher_is_id=False)
        out.class_labels = ["unknown", *range(proba.shape[1] - 1)]
        out.class_values = proba
        out.class_metric = "OpenMax probability, higher = closer"
        out.lower_is_closer = False
        return out
    if isinstance(det, ensemble.Ensemble):
        P = det.member_probabilities(X)
        names = _unique([m.name for m in det.members_])
        out = _Anatomy({n: P[:, i] for i, n in enumerate(names)}, {n: True for n in names})
        out.already_probabilities = True
        return out
    special = _duck_anatomy(det, X)
    return special if special is not None else _single("score", scores)


def _duck_anatomy(det: Detector, X: np.ndarray) -> _Anatomy | None:
    """Signals of detectors that expose them by method (SDM, SAGE, Evidential); None when not available."""
    try:
        if det.name == "sdm" and hasattr(det, "components"):
            c = det.components(X)
            names = ["q", "delta", "magnitude"]
            out = _Anatomy({n: np.asarray(c[n], dtype=np.float64) for n in names}, {n: True for n in names})
            if hasattr(det, "predict_proba_sdm"):
                proba = np.asarray(det.predict_proba_sdm(X), dtype=np.float64)
                out.class_labels, out.class_values = list(range(proba.shape[1])), proba
                out.class_metric = "SDM probability, higher = closer"
                out.lower_is_closer = False
            return out
        if det.name == "sage" and hasattr(det, "components"):
            P = np.asarray(det.components(X), dtype=np.float64)
            names = _unique([str(n) for n in getattr(det, "component_names", range(P.shape[1]))])
            out = _Anatomy({n: P[:, i] for i, n in enumerate(names)}, {n: True for n in names})
            out.already_probabilities = True
            return out
        if det.name == "evidential" and hasattr(det, "uncertainty"):
            u = det.uncertainty(X)
            out = _single("vacuity", u["vacuity"], higher_is_id=False)
            belief = np.asarray(u["belief"], dtype=np.float64)
            out.class_labels, out.class_values = list(range(belief.shape[1])), belief
            out.class_metric = "evidential belief, higher = closer"
            out.lower_is_closer = False
            return out
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None
    return None


def _unique(names: list[str]) -> list[str]:
    return [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]


def _nnguide_similarities(det: Any, X: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` largest inner products ``<z_hat, g_i>`` with NNGuide's bank, descending (as its score uses)."""
    sims, _ = _nnguide_search(det, X, n)
    return sims


def _nnguide_search(det: Any, X: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    from .detectors.neighbors import _MARGIN, _exact_values, _faiss, _normalise

    faiss = _faiss()
    Q = _normalise(X)
    n = min(n, det.bank_.shape[0])
    n_cand = min(n + _MARGIN, det.bank_.shape[0])
    _, ids = faiss.knn(Q, det.bank_, n_cand, metric=faiss.METRIC_INNER_PRODUCT)
    sims = _exact_values(Q, det.bank_, ids, inner_product=True)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :n]
    return np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)


# ---------------------------------------------------------------------------------------------------- exemplars


def _nearest(Q: np.ndarray, R: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids and squared Euclidean distances (float64, ascending) of the ``n`` nearest rows of ``R`` to each query.

    Candidates come from faiss (exact flat search, float32) with a margin and are re-ranked with distances
    recomputed from the float64 rows; without faiss, a NumPy brute force proposes them.
    """
    from .detectors.neighbors import _MARGIN, _brute_ids, _faiss

    n = min(n, R.shape[0])
    n_cand = min(n + _MARGIN, R.shape[0])
    R32 = np.ascontiguousarray(R, dtype=np.float32)
    R64 = np.asarray(R, dtype=np.float64)
    d_out, i_out = [], []
    block = max(1, min(_BLOCK, _RERANK_FLOATS // (n_cand * R.shape[1])))
    for s in range(0, Q.shape[0], block):
        Qb = np.asarray(Q[s : s + block], dtype=np.float64)
        try:
            _, ids = _faiss().knn(np.ascontiguousarray(Qb, dtype=np.float32), R32, n_cand)
        except MissingDependencyError:
            ids = _brute_ids(Qb.astype(np.float32), R32, n_cand)
        valid = ids >= 0
        ids = np.where(valid, ids, 0)
        diff = Qb[:, None, :] - R64[ids]
        d = np.where(valid, np.einsum("ijk,ijk->ij", diff, diff), np.inf)
        order = np.lexsort((ids, d), axis=1)[:, :n]  # by distance, ties by the lower row number
        d_out.append(np.take_along_axis(d, order, 1))
        i_out.append(np.take_along_axis(ids, order, 1))
    return np.concatenate(i_out), np.concatenate(d_out)


def _exemplars(
    det: Detector, X: np.ndarray, reference: np.ndarray | None, labels: np.ndarray | None, k: int
) -> tuple[list[list[Exemplar]], str | None]:
    from .detectors.neighbors import KNN, NNGuide, _normalise

    def pack(ids: np.ndarray, dist: np.ndarray, index_map: np.ndarray | None, lab: np.ndarray | None):
        out = []
        for id_row, d_row in zip(ids, dist):
            row = []
            for i, d in zip(id_row, d_row):
                if not np.isfinite(d):
                    continue
                index = int(index_map[i]) if index_map is not None else int(i)
                label = None if lab is None else int(lab[index if index_map is not None else i])
                row.append(Exemplar(index, float(d), label))
            out.append(row)
        return out

    if isinstance(det, KNN):
        metric = "squared L2 distance between L2-normalised features, as KNN scores"
        if reference is None:
            bank_labels = getattr(det, "bank_labels_", None)
            lab = bank_labels if bank_labels is not None else labels
            d, ids, _ = det._search(_normalise(X), min(k, det.bank_.shape[0]))
            return pack(ids, d, None, lab), metric
        ids, d = _nearest(_normalise(X), _normalise(reference), k)
        return pack(ids, d, None, labels), metric
    if reference is not None:
        ids, d2 = _nearest(X, reference, k)
        return pack(ids, np.sqrt(d2), None, labels), "Euclidean distance in the detector's input space"
    if isinstance(det, NNGuide):
        sims, ids = _nnguide_search(det, X, k)
        metric = "-<z_hat, g_i>: NNGuide's similarity to its energy-scaled bank, negated (lower = closer)"
        return pack(ids, -sims, det.bank_index_, labels), metric
    return [[] for _ in range(X.shape[0])], None


# ---------------------------------------------------------------------------------------------------- baseline


def _baseline(det: Detector, reference: np.ndarray | None) -> tuple[np.ndarray, _Anatomy] | None:
    """Scores and signals of in-distribution rows: a seeded sample of the reference (KNN: of its bank, leave-one-out)."""
    from .detectors.neighbors import KNN

    rng = np.random.default_rng(0)
    if isinstance(det, KNN):
        bank = det.bank_
        rows = bank
        if bank.shape[0] > BASELINE_ROWS:
            rows = bank[np.sort(rng.choice(bank.shape[0], BASELINE_ROWS, replace=False))]
        n_nb = min(det.k + 1, bank.shape[0])
        d, _, _ = det._search(np.ascontiguousarray(rows), n_nb)
        # Each bank row finds itself at distance exactly 0: skip it (leave-one-out, as KNN's threshold).
        col = np.minimum(np.where(d[:, 0] == 0.0, det.k, det.k - 1), d.shape[1] - 1)
        dk = d[np.arange(d.shape[0]), col]
        return -dk, _single("k-th neighbour distance", dk, higher_is_id=False)
    if reference is None:
        return None
    R = reference
    if R.shape[0] > BASELINE_ROWS:
        R = R[np.sort(rng.choice(R.shape[0], BASELINE_ROWS, replace=False))]
    # The fit-row scorer: neighbour detectors (and ensembles of them) skip a row's exact self-match, so the
    # training set as reference does not look more familiar than it is; other rows are scored as usual.
    scores = np.asarray(det._score_fit_sample(R), dtype=np.float64)
    return scores, _anatomy(det, R, det._score_batched(R))


def _share_at_most(ref: np.ndarray, value: float, higher_is_id: bool) -> float:
    """Share of reference values at most as in-distribution as ``value``."""
    return float(np.mean(ref <= value)) if higher_is_id else float(np.mean(ref >= value))


def _attribute(
    names: list[str],
    values: dict[str, float],
    higher: dict[str, bool],
    additive: bool,
    baseline: dict[str, float] | None,
    percentile: dict[str, float] | None,
    flagged: bool,
) -> tuple[str | None, str]:
    """The driving signal and a sentence saying why."""
    if len(names) == 1:
        name = names[0]
        text = f"{name} = {values[name]:.4g}"
        if baseline is not None:
            text += f" (ID mean {baseline[name]:.4g}"
            text += f"; {percentile[name]:.1%} of ID rows are at most as typical)" if percentile else ")"
        return name, text + ", the detector's only signal"
    if additive and baseline is not None:
        dev = {n: values[n] - baseline[n] for n in names}
        driver = min(names, key=dev.get) if flagged else max(names, key=dev.get)
        verb = "pulled the score down most" if flagged else "held the score up most"
        parts = "; ".join(f"{n} {values[n]:.4g} vs ID mean {baseline[n]:.4g} ({dev[n]:+.4g})" for n in names)
        return driver, f"{driver} {verb} against its in-distribution average: {parts}"
    if percentile is not None:
        driver = min(names, key=percentile.get) if flagged else max(names, key=percentile.get)
        kind = "most unusual" if flagged else "most typical"
        parts = "; ".join(
            f"{n} {values[n]:.4g} ({'higher' if higher[n] else 'lower'} = ID, {percentile[n]:.1%} of ID rows at most as typical)"
            for n in names
        )
        return driver, f"{driver} is the {kind} signal: {parts}"
    parts = "; ".join(f"{n} {values[n]:.4g}" for n in names)
    return None, f"signals {parts}; pass reference= (in-distribution features) to compare them with the ID distribution"


# ---------------------------------------------------------------------------------------------------- explain


def explain(
    detector: Detector,
    X: Any,
    *,
    reference: Any = None,
    reference_labels: Any = None,
    k: int = 5,
    n_classes: int = 5,
) -> list[Explanation]:
    """Explain a fitted detector's verdict on each row of ``X``.

    Parameters
    ----------
    detector : Detector
        A fitted detector.
    X : array-like of shape (n_samples, n_features)
        Rows to explain, as the detector scores them (features, or logits for a logit detector without head).
    reference : array-like of shape (n_train, n_features), optional
        In-distribution rows in the same space as ``X`` — normally the training (fit) features. The exemplars
        are its nearest rows (``Exemplar.index`` is the row number in it), and a seeded sample of at most
        2000 of its rows gives each signal's ID distribution, against which the verdict is attributed.
        Without it, KNN takes its exemplars from its bank and NNGuide from its bank sample; other detectors
        then report no exemplars and no ID comparison. KNN always compares with the leave-one-out k-th
        neighbour distances of (up to 2000 of) its bank rows, as its threshold does.
    reference_labels : array-like of shape (n_train,), optional
        Class of each reference (or fit) row, shown with the exemplars. KNN fitted with ``y`` keeps its own.
    k : int, default 5
        Exemplars per row.
    n_classes : int, default 5
        Classes listed per row (the closest ones) in ``classes`` and ``top_classes``.

    Returns
    -------
    list of Explanation
        One per row of ``X``; ``str()`` gives a readable summary, ``to_dict()`` a JSON-friendly dict.

    Notes
    -----
    Exemplar distances are Euclidean in the detector's input space, except for KNN (the squared distance of
    L2-normalised features it scores with) and NNGuide without reference (its negated bank similarity).
    The driver: for additive scores (ViM = energy + residual term, RMDS = class term + background term) the
    signal whose value lies furthest below its ID mean when the input is flagged (above, when accepted); for
    other scores with several signals, the one with the smallest share of ID rows at most as typical (the
    largest, when accepted). Reference scores are computed leaving each row's exact self-match out (as the
    detectors' thresholds are), but the signals of NNGuide and of neighbour members inside other detectors
    still see the row itself when the reference is the training set: slightly optimistic ID baselines.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> X = np.abs(np.random.default_rng(0).normal(size=(300, 8)))
    >>> det = unseen.KNN(k=5).fit(X)
    >>> e = unseen.explain(det, -X[:1])[0]  # KNN: exemplars from its own bank
    >>> e.verdict, e.driver, len(e.exemplars)
    ('unfamiliar', 'k-th neighbour distance', 5)
    """
    if not isinstance(detector, Detector):
        raise InputError(f"explain needs a fitted unseen detector, got {type(detector).__name__}.")
    check_param(k, "k", owner="explain", kind=(int, np.integer), low=1)
    check_param(n_classes, "n_classes", owner="explain", kind=(int, np.integer), low=1)
    X = detector._validate(X)
    owner = f"explain({type(detector).__name__})"
    if reference is not None:
        reference = as_float_array(reference, owner=owner, what="reference")
        if reference.shape[1] != detector.n_features_in_:
            raise InputError(
                f"{owner}: reference has {reference.shape[1]} features but the detector was fitted on "
                f"{detector.n_features_in_}; pass the training rows in the detector's input space (same encoder, "
                "or logits for a logit detector without head)."
            )
    labels = None
    if reference_labels is not None:
        n_rows = reference.shape[0] if reference is not None else _fit_rows(detector)
        if n_rows is None:
            raise InputError(
                f"{owner}: reference_labels label the rows of reference; pass reference= (the training features) "
                "too. Only KNN can label its own bank without it."
            )
        labels = check_labels(reference_labels, n_rows, owner=owner)

    scores = detector._score_batched(X)
    offset = float(detector.offset_)
    anatomy = _anatomy(detector, X, scores)
    exemplars, metric = _exemplars(detector, X, reference, labels, int(k))
    base = _baseline(detector, reference)
    names = list(anatomy.components)
    ref_means = ref_comps = None
    ref_scores = None
    if base is not None:
        ref_scores, ref_anatomy = base
        ref_comps = {n: ref_anatomy.components[n] for n in names if n in ref_anatomy.components}
        if len(ref_comps) != len(names):
            ref_comps = None
        else:
            ref_means = {n: float(np.mean(v)) for n, v in ref_comps.items()}
    top = _top_classes(detector, X, int(n_classes))

    out = []
    for i in range(X.shape[0]):
        s = float(scores[i])
        decision = s - offset
        flagged = decision < 0
        values = {n: float(anatomy.components[n][i]) for n in names}
        if anatomy.already_probabilities:
            pct: dict[str, float] | None = dict(values)
        elif ref_comps is not None:
            pct = {n: _share_at_most(ref_comps[n], values[n], anatomy.higher_is_id[n]) for n in names}
        else:
            pct = None
        driver, reason = _attribute(names, values, anatomy.higher_is_id, anatomy.additive, ref_means, pct, flagged)
        out.append(
            Explanation(
                row=i,
                detector=detector.name or type(detector).__name__,
                score=s,
                threshold=offset,
                decision=decision,
                verdict="unfamiliar" if flagged else "known",
                score_percentile=None if ref_scores is None else float(np.mean(ref_scores <= s)),
                exemplars=exemplars[i],
                exemplar_metric=metric,
                classes=_closest_classes(anatomy, i, int(n_classes)),
                class_metric=anatomy.class_metric,
                top_classes=top[i] if top is not None else [],
                components=values,
                component_higher_is_id=dict(anatomy.higher_is_id),
                additive=anatomy.additive,
                component_baseline=ref_means,
                component_percentile=pct,
                driver=driver,
                reason=reason,
            )
        )
    return out


def _fit_rows(det: Detector) -> int | None:
    """Rows of a KNN bank (the only detector whose own rows can be labelled without reference), else None."""
    from .detectors.neighbors import KNN

    return int(det.bank_.shape[0]) if isinstance(det, KNN) else None


def _closest_classes(anatomy: _Anatomy, i: int, n: int) -> list[ClassValue]:
    if anatomy.class_values is None:
        return []
    row = anatomy.class_values[i]
    order = np.argsort(row if anatomy.lower_is_closer else -row, kind="stable")[:n]
    return [ClassValue(_label(anatomy.class_labels[j]), float(row[j])) for j in order]


def _label(value: Any) -> int | str:
    return value if isinstance(value, str) else int(value)


def _top_classes(det: Detector, X: np.ndarray, n: int) -> list[list[TopClass]] | None:
    """The ``n`` largest logits with softmax probabilities, when the detector sees logits."""
    if det.input_kind != "logits" and getattr(det, "W_", None) is None:
        return None
    f = det._logits(X)
    if f.ndim != 2 or f.shape[1] < 2:
        return None
    logp = log_softmax(f, axis=1)
    order = np.argsort(-f, axis=1, kind="stable")[:, : min(n, f.shape[1])]
    return [
        [TopClass(int(c), float(f[r, c]), float(math.exp(logp[r, c]))) for c in order[r]] for r in range(f.shape[0])
    ]
