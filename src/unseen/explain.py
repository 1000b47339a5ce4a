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
from scipy.special import log_softmax

from ._validation import as_float_array, check_labels, check_param
from .base import Detector, Signals
from .exceptions import InputError

__all__ = ["ClassValue", "Exemplar", "Explanation", "TopClass", "explain"]

#: ID rows (a seeded sample of the reference, or of a KNN bank) that give the signals' ID distribution.
BASELINE_ROWS = 2000


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
                f"#{e.index} d={e.distance:.4g}" + ("" if e.label is None else f" class {e.label}")
                for e in self.exemplars
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


# ---------------------------------------------------------------------------------------------------- exemplars


def _exemplars(
    det: Detector, X: np.ndarray, reference: np.ndarray | None, labels: np.ndarray | None, k: int
) -> tuple[list[list[Exemplar]], str | None]:
    """The nearest training rows of each input, as the detector compares them (its ``neighbours`` hook)."""
    nb = det.neighbours(X, k, reference)
    if nb is None:
        return [[] for _ in range(X.shape[0])], None
    lab = nb.labels if nb.labels is not None else (None if labels is None else labels[nb.ids])
    out = []
    for r in range(nb.ids.shape[0]):
        out.append(
            [
                Exemplar(int(i), float(d), None if lab is None else int(lab[r, j]))
                for j, (i, d) in enumerate(zip(nb.ids[r], nb.distances[r]))
                if np.isfinite(d)
            ]
        )
    return out, nb.metric


# ---------------------------------------------------------------------------------------------------- baseline


def _baseline(det: Detector, reference: np.ndarray | None) -> tuple[np.ndarray, Signals] | None:
    """Scores and signals of in-distribution rows: the detector's own bank (leave-one-out) when it keeps one,
    else a seeded sample of the reference."""
    own = det.bank_baseline(BASELINE_ROWS)
    if own is not None or reference is None:
        return own
    R = reference
    if R.shape[0] > BASELINE_ROWS:
        R = R[np.sort(np.random.default_rng(0).choice(R.shape[0], BASELINE_ROWS, replace=False))]
    # The fit-row scorer: neighbour detectors (and ensembles of them) skip a row's exact self-match, so the
    # training set as reference does not look more familiar than it is; other rows are scored as usual.
    scores = np.asarray(det._score_fit_sample(R), dtype=np.float64)
    return scores, det.signals(R)


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
        driver = min(names, key=dev.__getitem__) if flagged else max(names, key=dev.__getitem__)
        verb = "pulled the score down most" if flagged else "held the score up most"
        parts = "; ".join(f"{n} {values[n]:.4g} vs ID mean {baseline[n]:.4g} ({dev[n]:+.4g})" for n in names)
        return driver, f"{driver} {verb} against its in-distribution average: {parts}"
    if percentile is not None:
        driver = min(names, key=percentile.__getitem__) if flagged else max(names, key=percentile.__getitem__)
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
        n_rows = reference.shape[0] if reference is not None else detector.bank_size()
        if n_rows is None:
            raise InputError(
                f"{owner}: reference_labels label the rows of reference; pass reference= (the training features) "
                "too. Only KNN can label its own bank without it."
            )
        labels = check_labels(reference_labels, n_rows, owner=owner)

    scores = detector._score_batched(X)
    offset = float(detector.offset_)
    anatomy = detector.signals(X)
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


def _closest_classes(anatomy: Signals, i: int, n: int) -> list[ClassValue]:
    if anatomy.class_values is None or anatomy.class_labels is None:
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
