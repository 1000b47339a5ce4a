"""Choose a detector from in-distribution data alone: validation on real or synthetic outliers, never on test data.

:func:`select` scores every candidate detector (and hyperparameter setting) on validation tasks and returns
the one with the highest score (optionally an ECDF ensemble of the top three, ``ensemble=True``). Without
real validation outliers (``ood_val``) the tasks are built from the ID data:

**Held-out classes** (needs labels and at least three classes; simulates *near-OOD*: unknown classes of
the same kind). The known classes are shuffled and split into three folds, twice (two partitions); each fold
is held out in turn. Every candidate is fitted on the training rows of the kept classes and must tell the
validation rows of the kept classes (ID) from those of the held-out classes (OOD). Detectors that use a
classifier head get a head **refitted on the kept classes** (multinomial logistic regression on their
training features): the user's head was trained to reject the held-out classes, which makes logit
detectors look better on them than on truly unseen classes. When the features *are* logits
(``logits=True``) the held-out classes' columns are dropped: a model that never saw a class has no logit for
it, and with the column kept the held-out rows are told apart trivially (measured: regret 0.13 on WordNet
seen as logits). What no refit can undo: the backbone itself was trained with the held-out classes.

**Class interpolation** (near-OOD between the classes; k-means clusters stand in for classes without
labels). Validation rows whose class mean is moved toward another class's mean,
``z = x + (1 - l)(m_c' - m_c)``, ``l ~ U(0.3, 0.7)``, keeping the row's own within-class deviation. Plain
mixup of two rows would average away half of their noise and look *more* typical to distance detectors.

Criterion: the mean of the two near-OOD AUROCs (held-out folds averaged first; class interpolation alone
when no class can be held out). **Feature permutation** (every column shuffled independently: jointly unlike
anything seen) is computed and reported with the evidence but not scored. With ``ood_val`` the score is the
mean AUROC over the given sets.

Why this criterion: measured leave-one-data-set-out on eleven built-in benchmarks (six data sets; image features
of a frozen pretrained encoder and of trained networks, text embeddings, tabular, logits only; two known/unknown
splits or row draws each; ``benchmarks/bench_selection.py``, ``benchmarks/selection.md``): mean regret (best
detector in hindsight − choice, overall test AUROC) 0.015, worst 0.062, against 0.035 / 0.155 for the former
(held-out + permutation) / 2 and 0.032 / 0.155 with its ensemble step. Far-OOD proxies (permutation,
moment-matched Gaussian rows, norm-shifted rows) made it worse as part of the score (0.035–0.061 mean): they
rank detectors by what those synthetic sets reward, not by what real far-OOD sets do; so did a prior ranking of
detectors learnt on the other benchmarks, alone (0.050) or shrunk by the evidence (0.027–0.053), a shortlist by
that prior (0.017–0.053), worst-case rules (0.033–0.068), a learnt selector (0.060) and the top-3 ensemble step
(0.023). The criterion itself, re-chosen on the other data sets for each held-out one, gives 0.014: choosing it
was not fitted to the benchmarks it is scored on. It misses the targets (mean ≤ 0.005, within 0.01 everywhere):
on Fashion-MNIST/EfficientNet it picks Energy and OpenMax (0.823) where KNN reaches 0.868, on WordNet/MiniLM
SCALE and GEN (0.871) where SAGE reaches 0.934. The scores rank
detectors; they are not estimates of test performance. Pass real validation outliers when you have them.

The data never includes test rows: the function takes none. Large inputs are subsampled for the
validation tasks (at most MAX_TRAIN_ROWS training rows and MAX_TASK_VALUES feature values, and MAX_VAL_ROWS
validation rows, stratified); the
returned detector is fitted on all of ``X_train`` (when ``X_val`` is not given: on the 80 % of it not held
out for validation).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import as_float_array, check_head, check_labels
from ..base import DataShape, Detector
from ..exceptions import InputError
from ..metrics import auroc
from ._plan import Registry, plan_detectors

__all__ = ["Candidate", "Selection", "candidate_label", "select"]

MAX_TRAIN_ROWS = 5_000
MAX_VAL_ROWS = 1_500
#: At most this many feature values (rows x columns) of training rows per validation task: 3,125 rows of
#: 1280-d features, about the Fashion-MNIST benchmark's 3,000, on which the criterion was measured. It keeps
#: the selection on 50k x 1280 features within minutes (benchmarks/bench_selection.py speed).
MAX_TASK_VALUES = 4_000_000
N_FOLDS = 3
ENSEMBLE_SIZE = 3
# The ensemble replaces the best single detector only when it is better by this much (mean AUROC): smaller
# gains are within the noise of the synthetic validation sets, and the single detector is simpler.
ENSEMBLE_MARGIN = 0.005
#: Partitions of the known classes into N_FOLDS held-out folds (benchmarks/bench_selection.py measured 2; one
#: for features wider than 512, as on Fashion-MNIST/EfficientNet there).
HELD_OUT_REPEATS = 2

HELD_OUT, INTERPOLATION, PERMUTATION = "held-out classes", "class interpolation", "feature permutation"


@dataclass(frozen=True)
class Candidate:
    """A detector and one hyperparameter setting to validate."""

    name: str
    params: dict = field(default_factory=dict)
    label: str = ""


@dataclass
class Selection:
    """The outcome of :func:`select`.

    Attributes
    ----------
    name : str
        Registry name of the chosen detector (``"ensemble"`` for an ensemble of the top candidates).
    params : dict
        Its hyperparameters: ``unseen.get_detector(name, **params)`` rebuilds it.
    detector : Detector
        The chosen detector fitted on all of ``X_train`` (temperature scaling: on ``X_val``) and calibrated
        on ``X_val`` (its threshold accepts ``tpr`` of the validation rows).
    validation : dict of str to float
        Validation score (mean AUROC, see the module docstring) of every detector at its best setting, and
        of the ensemble when one was tried; keys are :attr:`label` strings.
    reason : str
        Why this one, by how much, on which outliers.
    method : str
        How the validation outliers were obtained.
    label : str
        Display name: the detector name, or ``"ensemble(a+b+c)"``.
    tuned : dict of str to dict
        Best hyperparameters of each detector on the validation tasks.
    per_set : dict of str to dict
        AUROC per validation set, per candidate label (every grid point, labelled ``name(param=value)``).
    errors : dict of str to str
        Candidates that failed on some validation task, and why.
    seconds : float
        Time spent.
    """

    name: str
    params: dict
    detector: Detector
    validation: dict[str, float]
    reason: str
    method: str
    label: str = ""
    tuned: dict[str, dict] = field(default_factory=dict)
    per_set: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def __repr__(self) -> str:
        score = self.validation.get(self.label)
        return (
            f"Selection({self.label!r}, validation={score:.4f})" if score is not None else f"Selection({self.label!r})"
        )


def candidate_label(name: str, params: Mapping[str, Any], varied: Sequence[str] = ()) -> str:
    """``name`` alone, or ``name(p=v, ...)`` showing the parameters in ``varied``.

    Examples
    --------
    >>> candidate_label("knn", {"k": 5}, ["k"])
    'knn(k=5)'
    """
    shown = [f"{k}={params[k]}" for k in varied if k in params]
    return f"{name}({', '.join(shown)})" if shown else name


@dataclass
class _Task:
    """Fit rows, the ID rows to score, and named OOD sets grouped as near / far / val."""

    X_fit: np.ndarray
    y_fit: np.ndarray | None
    head: tuple[np.ndarray, np.ndarray] | None
    X_id: np.ndarray
    y_id: np.ndarray | None
    ood: dict[str, np.ndarray]
    group: dict[str, str]  # set name -> criterion group ("near", "far", or "val" for real outliers)


# ------------------------------------------------------------------------------------------ inputs


def _subsample(rng: np.random.Generator, n: int, limit: int, y: np.ndarray | None) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    if y is None:
        return np.sort(rng.choice(n, limit, replace=False))
    # Stratified: the same share of every class, so rare classes survive.
    keep = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        m = max(1, int(round(limit * rows.size / n)))
        keep.append(rng.choice(rows, min(m, rows.size), replace=False))
    return np.sort(np.concatenate(keep))


def _split_val(rng: np.random.Generator, n: int, y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """20 % of the training rows (stratified) as validation rows when the caller gave none."""
    val = []
    groups = [np.arange(n)] if y is None else [np.flatnonzero(y == c) for c in np.unique(y)]
    for rows in groups:
        m = int(round(0.2 * rows.size))
        if rows.size >= 2:
            val.append(rng.choice(rows, max(1, m), replace=False))
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, int)
    return np.setdiff1d(np.arange(n), val_idx), val_idx


def _ood_sets(ood_val: Any, d: int) -> dict[str, np.ndarray]:
    sets = dict(ood_val) if isinstance(ood_val, Mapping) else {"ood_val": ood_val}
    if not sets:
        raise InputError("select: ood_val is empty; pass an array of validation outliers or a dict of named arrays.")
    out = {}
    for k, v in sets.items():
        X = as_float_array(v, owner="select", what=f"ood_val[{k!r}]")
        if X.shape[1] != d:
            raise InputError(
                f"select: ood_val[{k!r}] has {X.shape[1]} features but X_train has {d}; validation "
                "outliers must be features from the same encoder and layer."
            )
        out[str(k)] = X
    return out


def _candidates(candidates: Any, shape: DataShape, registry: Registry) -> tuple[list[Candidate], dict[str, str]]:
    """Normalise ``candidates`` to a list of :class:`Candidate` (grid points with labels) and skipped names."""
    if candidates is None:
        planned, skipped = plan_detectors(shape, registry=registry)
        pairs = [(p.name, point) for p in planned for point in p.grid]
    else:
        if isinstance(candidates, (str, bytes)):
            raise InputError(
                f"select: candidates must be a list of detector names or (name, params) pairs, got {candidates!r}."
            )
        items = candidates.items() if isinstance(candidates, Mapping) else candidates
        wanted: list[tuple[str, dict | None]] = []  # None: the detector's default grid
        for item in items:
            if isinstance(item, str):
                name, grid = item, [None]
            elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
                name, value = item
                grid = list(value) if isinstance(value, (list, tuple)) else [value if value is not None else {}]
            else:
                raise InputError(
                    f"select: candidate {item!r} is neither a detector name nor a (name, params) pair, "
                    "e.g. candidates=['msp', ('knn', {'k': 10}), ('vim', [{'dim': 32}, {'dim': 48}])]."
                )
            key = registry.key(name)
            for point in grid:
                if point is not None and not isinstance(point, Mapping):
                    raise InputError(f"select: parameters of {name!r} must be a dict, got {point!r}.")
                wanted.append((key, None if point is None else dict(point)))
        planned, skipped = plan_detectors(shape, sorted({n for n, _ in wanted}), registry=registry)
        runnable = {p.name: p for p in planned}
        pairs = []
        for n, point in wanted:
            if n in runnable:
                pairs.extend((n, dict(g)) for g in runnable[n].grid) if point is None else pairs.append(
                    (n, {**runnable[n].params, **point})
                )
    if not pairs:
        raise InputError(
            "select: no candidate detector can run on this data"
            + (f" ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})" if skipped else "")
            + ". Pass labels (y_train) or head=(W, b), or name detectors that need neither, e.g. candidates=['knn']."
        )
    varied: dict[str, set[str]] = {}
    for name, p in pairs:
        for other_name, q in pairs:
            if other_name == name:
                varied.setdefault(name, set()).update(k for k in set(p) | set(q) if p.get(k) != q.get(k))
    out: list[Candidate] = []
    for name, p in pairs:
        label = candidate_label(name, p, sorted(varied.get(name, ())))
        if all(c.label != label for c in out):
            out.append(Candidate(name, p, label))
    return out, skipped


# ------------------------------------------------------------------------------------------ tasks


def _interpolate(rng: np.random.Generator, X: np.ndarray, y: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Rows moved between two classes: own within-class deviation kept, class mean moved toward another's.

    ``z = x_i + (1 - l) (m_c' - m_c)`` with ``c`` the row's class, ``c'`` another class, ``l ~ U(0.3, 0.7)``,
    clipped to the observed range of every feature (post-ReLU features stay non-negative). Mixing two rows
    instead (mixup) would also average away half of their noise, and distance detectors would then see
    the mixtures as *more* typical than real rows. Without labels, k-means clusters stand in for classes.
    """
    n = X.shape[0]
    how = "classes"
    if y is None or np.unique(y).size < 2:
        from sklearn.cluster import KMeans

        k = int(min(8, max(2, n // 50)))
        y = KMeans(n_clusters=k, n_init=3, random_state=int(rng.integers(2**31))).fit_predict(X)
        how = f"{k} k-means clusters"
    classes, inv = np.unique(y, return_inverse=True)
    C = classes.size
    means = np.stack([X[inv == c].mean(axis=0) for c in range(C)])
    i = rng.integers(0, n, n)
    j = (inv[i] + rng.integers(1, C, n)) % C  # another class, uniformly
    lam = rng.uniform(0.3, 0.7, size=(n, 1))
    Z = X[i] + (1.0 - lam) * (means[j] - means[inv[i]])
    return np.clip(Z, X.min(axis=0), X.max(axis=0)), how


def _permute(rng: np.random.Generator, X: np.ndarray) -> np.ndarray:
    return np.column_stack([X[rng.permutation(X.shape[0]), k] for k in range(X.shape[1])])


def _moment_matched(rng: np.random.Generator, X: np.ndarray) -> np.ndarray:
    """Gaussian rows with the mean and covariance of ``X`` (far-OOD that keeps the features' second-order geometry:
    scale, correlations, the principal subspace; it loses the cluster structure and the marginals' shape).

    ``z = mu + (X - mu)^T g / sqrt(n - 1)``, ``g ~ N(0, I_n)``: exactly the sample covariance, also when d > n.
    """
    mu = X.mean(axis=0)
    G = rng.standard_normal((X.shape[0], X.shape[0])) / np.sqrt(max(X.shape[0] - 1, 1))
    return mu + G @ (X - mu)


def _norm_shifted(rng: np.random.Generator, X: np.ndarray) -> np.ndarray:
    """Rows moved along their own direction from the ID mean: ``mu + t (x - mu)``, ``t`` from U(0.25, 0.5) for half
    the rows and U(2, 3) for the others (feature-norm OOD: too weak or too strong an activation, same direction)."""
    mu = X.mean(axis=0)
    n = X.shape[0]
    t = np.where(rng.random(n) < 0.5, rng.uniform(0.25, 0.5, n), rng.uniform(2.0, 3.0, n))
    return mu + t[:, None] * (X - mu)


def _probe_head(X: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A linear head (W, b) trained on the kept classes only (multinomial logistic regression)."""
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the probe only needs to rank
        lr = LogisticRegression(C=1.0, max_iter=300).fit(X, y)
    W, b = lr.coef_, lr.intercept_
    if n_classes == 2:  # scikit-learn's binary form: softmax([-z/2, z/2]) = sigmoid(z)
        W, b = np.vstack([-W / 2, W / 2]), np.array([-b[0] / 2, b[0] / 2])
    return W, b


def _held_out_tasks(
    rng: np.random.Generator,
    X_tr: np.ndarray,
    y_tr: np.ndarray,
    X_va: np.ndarray,
    y_va: np.ndarray,
    head: tuple[np.ndarray, np.ndarray] | None,
    repeats: int = 1,
    columns_are_classes: bool = False,
) -> tuple[list[_Task], str]:
    classes = np.intersect1d(np.unique(y_tr), np.unique(y_va))
    if classes.size < 3:
        return [], ""
    folds = []
    for _ in range(repeats):  # each repeat: a new partition of the classes into N_FOLDS folds
        folds += [f for f in np.array_split(rng.permutation(classes), min(N_FOLDS, classes.size)) if f.size]
    names = set()
    tasks = []
    for held in folds:
        key = f"{HELD_OUT} {sorted(held.tolist())}"
        if key in names:  # the same fold drawn again (few classes): nothing new to learn from it
            continue
        names.add(key)
        kept = np.setdiff1d(classes, held)
        tr, va_in, va_out = np.isin(y_tr, kept), np.isin(y_va, kept), np.isin(y_va, held)
        if not va_out.any() or not va_in.any():
            continue
        remap = np.full(int(max(y_tr.max(), y_va.max())) + 1, -1)
        remap[kept] = np.arange(kept.size)
        task_head = None if head is None else _probe_head(X_tr[tr], remap[y_tr[tr]], kept.size)
        # Logits as features: a model that never saw the held-out classes has no logits for them, so their
        # columns go (kept, the held-out rows would be told apart by their own class's logit, trivially).
        cols = kept if columns_are_classes else slice(None)
        tasks.append(
            _Task(
                X_fit=X_tr[tr][:, cols],
                y_fit=remap[y_tr[tr]],
                head=task_head,
                X_id=X_va[va_in][:, cols],
                y_id=remap[y_va[va_in]],
                ood={f"{HELD_OUT} {sorted(held.tolist())}": X_va[va_out][:, cols]},
                group={f"{HELD_OUT} {sorted(held.tolist())}": "near"},
            )
        )
    how = (
        (
            f"{len(tasks)} folds each holding out about {classes.size // min(N_FOLDS, classes.size)} of "
            f"{classes.size} known classes"
            + (f" ({repeats} partitions)" if repeats > 1 else "")
            + (" (head refitted on the kept classes)" if head is not None else "")
            + (" (the held-out classes' logit columns removed)" if columns_are_classes else "")
        )
        if tasks
        else ""
    )
    return tasks, how


def _criterion(aurocs: dict[str, float], group: dict[str, str]) -> float:
    """The mean of the near-OOD proxies (held-out-class folds averaged first, class interpolation), or the mean
    over real validation sets. Sets of group ``"check"`` (feature permutation) are reported, not scored."""
    if any(g == "val" for g in group.values()):
        return float(np.mean([aurocs[k] for k in aurocs]))
    held = [v for k, v in aurocs.items() if k.startswith(HELD_OUT)]
    near = [v for k, v in aurocs.items() if group[k] == "near" and not k.startswith(HELD_OUT)]
    if held:
        near.append(float(np.mean(held)))
    return float(np.mean(near))


def _fit(
    cand: Candidate,
    X: np.ndarray,
    y: np.ndarray | None,
    head: Any,
    X_val: np.ndarray,
    y_val: np.ndarray | None,
    registry: Registry,
) -> Detector:
    """Fit a candidate as the benchmark does: labels when known, the head when it uses one, temperature on val."""
    det = registry.make(cand.name, cand.params)
    cls = type(det)
    head = head if cls.takes_head() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cls.fits_on_validation:
            det.fit(X_val, y_val, head=head)
        else:
            det.fit(X, y, head=head)
    return det


def _evaluate(cand: Candidate, tasks: list[_Task], registry: Registry) -> dict[str, float]:
    aurocs = {}
    for task in tasks:
        det = _fit(cand, task.X_fit, task.y_fit, task.head, task.X_id, task.y_id, registry)
        s_id = det.score_samples(task.X_id)
        for name, X in task.ood.items():
            s_ood = det.score_samples(X)
            if not (np.all(np.isfinite(s_id)) and np.all(np.isfinite(s_ood))):
                raise InputError(f"{cand.label} gave non-finite scores")
            aurocs[name] = auroc(s_id, s_ood)
    return aurocs


# ------------------------------------------------------------------------------------------ public


def select(
    X_train: Any,
    y_train: Any = None,
    X_val: Any = None,
    y_val: Any = None,
    *,
    head: tuple[Any, Any] | None = None,
    candidates: Any = None,
    ood_val: Any = None,
    seed: int = 0,
    ensemble: bool = False,
    logits: bool = False,
    progress: bool = False,
    _registry: Registry | None = None,
) -> Selection:
    """Choose a detector (and its hyperparameters) for this model from in-distribution data alone.

    Parameters
    ----------
    X_train : array-like of shape (n, d)
        ID training features (or logits for logit-only data without a head).
    y_train : array-like of shape (n,), optional
        Their class labels. Enable label-needing detectors and the held-out-class simulation.
    X_val, y_val : array-like, optional
        Held-out ID rows (and labels). Without them 20 % of the training rows are held out (stratified).
    head : tuple (W, b), optional
        The classifier's last linear layer; enables logit and head-based detectors.
    candidates : list, optional
        Detector names (each with its small default grid, :mod:`unseen.bench._plan`), ``(name, params)``
        pairs (fixed settings), or ``(name, [params, ...])`` grids. Default: every registered detector that
        can run on the data, experimental ones excluded.
    ood_val : array-like or dict of str to array-like, optional
        Real validation outliers. When given they replace the synthetic outliers. With a frozen pretrained
        encoder and the inputs at hand, the encoded :func:`unseen.bench.proxies.shuffle_parts` of the validation
        inputs are an option (measured: better on two of three such benchmarks, worse on one; see there).
    seed : int, default 0
        Seed of the folds, subsamples and synthetic outliers.
    ensemble : bool, default False
        Also try an ECDF ensemble of the three best detectors from different families; it replaces the best
        single detector when it validates higher by more than ``ENSEMBLE_MARGIN``. Off by default: measured
        leave-one-data-set-out it raised the mean regret from 0.019 to 0.027 (benchmarks/selection.md).
    logits : bool, default False
        ``X_train`` holds the classifier's logits (one column per class, label ``c`` = column ``c``) rather than
        features: logit detectors run without a head, and the held-out-class tasks drop the held-out classes'
        columns.
    progress : bool, default False
        Show a progress bar over the candidates.

    Returns
    -------
    Selection

    Examples
    --------
    >>> import numpy as np, unseen
    >>> from unseen.bench import select
    >>> rng = np.random.default_rng(0); y = rng.integers(0, 4, 400)
    >>> X = np.abs(rng.normal(size=(400, 8)) + 3 * np.eye(4, 8)[y])
    >>> sel = select(X, y, candidates=["knn", "mahalanobis", "gaussian"], ensemble=False)
    >>> sel.name in {"knn", "mahalanobis", "gaussian"}, sorted(sel.validation) == ["gaussian", "knn", "mahalanobis"]
    (True, True)
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    split = _Split.of(X_train, y_train, X_val, y_val, head, rng)
    registry = _registry or Registry()
    if logits and split.y_fit is not None and int(split.y_fit.max()) >= split.X_fit.shape[1]:
        raise InputError(
            f"select: logits=True but label {int(split.y_fit.max())} has no column among the "
            f"{split.X_fit.shape[1]} logits; labels must index the logit columns."
        )
    shape = DataShape.of(
        split.X_fit, split.y_fit, split.head, has_val_labels=split.y_val is not None, features_are_logits=logits
    )
    cands, skipped = _candidates(candidates, shape, registry)
    tasks, method = _tasks(split, ood_val, rng, logits)
    per_set, score, errors = _validate(cands, tasks, registry, progress)
    errors = {**skipped, **errors}
    best_of = _best_settings(cands, score)
    ranked = sorted(best_of.values(), key=lambda c: -score[c.label])
    validation = {name: score[c.label] for name, c in best_of.items()}
    groups = {k: g for t in tasks for k, g in t.group.items()}
    winner, ens_note = ranked[0], ""
    if ensemble and len(ranked) >= 2:
        winner, ens_note = _try_ensemble(ranked, tasks, groups, registry, score, per_set, validation, errors)
    label = winner.label if winner is not ranked[0] else winner.name  # a built ensemble, or a detector
    reason = _reason(winner, label, ranked, score, per_set[winner.label], ens_note, method)
    final = _fit(winner, split.X_fit, split.y_fit, split.head, split.X_val, split.y_val, registry)
    final.calibrate(split.X_val)
    return Selection(
        name=winner.name,
        params=dict(winner.params),
        detector=final,
        validation=validation,
        reason=reason,
        method=method,
        label=label,
        tuned={name: dict(c.params) for name, c in best_of.items()},
        per_set=per_set,
        errors=errors,
        seconds=time.perf_counter() - t0,
    )


# ------------------------------------------------------------------------------------------ steps of select


@dataclass
class _Split:
    """Validated inputs: the rows to fit the final detector on, the validation rows, and their subsamples
    for the validation tasks (at most MAX_TRAIN_ROWS / MAX_VAL_ROWS, stratified)."""

    X_fit: np.ndarray
    y_fit: np.ndarray | None
    X_val: np.ndarray
    y_val: np.ndarray | None
    head: tuple[np.ndarray, np.ndarray] | None
    X_tr: np.ndarray
    y_tr: np.ndarray | None
    X_va: np.ndarray
    y_va: np.ndarray | None
    note: str

    @classmethod
    def of(cls, X_train: Any, y_train: Any, X_val: Any, y_val: Any, head: Any, rng: np.random.Generator) -> _Split:
        X_train = as_float_array(X_train, owner="select", what="X_train")
        n, d = X_train.shape
        y_train = None if y_train is None else check_labels(y_train, n, owner="select (y_train)")
        head = None if head is None else check_head(head, d, owner="select")
        if X_val is None:
            if y_val is not None:
                raise InputError(
                    "select: y_val was given without X_val; pass both, or neither (20% of X_train is held out)."
                )
            fit_idx, val_idx = _split_val(rng, n, y_train)
            X_fit, X_val = X_train[fit_idx], X_train[val_idx]
            y_fit = None if y_train is None else y_train[fit_idx]
            y_val = None if y_train is None else y_train[val_idx]
            note = "20% of the training rows held out as validation rows; "
        else:
            X_val = as_float_array(X_val, owner="select", what="X_val", n_features=d)
            y_val = None if y_val is None else check_labels(y_val, X_val.shape[0], owner="select (y_val)")
            X_fit, y_fit = X_train, y_train
            note = ""
        rows = max(500, min(MAX_TRAIN_ROWS, MAX_TASK_VALUES // d))
        tr = _subsample(rng, X_fit.shape[0], rows, y_fit)
        va = _subsample(rng, X_val.shape[0], min(MAX_VAL_ROWS, max(rows // 2, 250)), y_val)
        return cls(
            X_fit,
            y_fit,
            X_val,
            y_val,
            head,
            X_fit[tr],
            None if y_fit is None else y_fit[tr],
            X_val[va],
            None if y_val is None else y_val[va],
            note,
        )


def _tasks(split: _Split, ood_val: Any, rng: np.random.Generator, logits: bool = False) -> tuple[list[_Task], str]:
    """The validation tasks and a sentence saying where their outliers come from."""
    X_tr, y_tr, X_va, y_va, head = split.X_tr, split.y_tr, split.X_va, split.y_va, split.head
    if ood_val is not None:
        sets = _ood_sets(ood_val, X_tr.shape[1])
        tasks = [_Task(X_tr, y_tr, head, X_va, y_va, sets, {k: "val" for k in sets})]
        return (
            tasks,
            f"{split.note}real validation outliers: {', '.join(f'{k} ({len(v)} rows)' for k, v in sets.items())}",
        )
    tasks, held_how = [], ""
    if y_tr is not None and y_va is not None:
        repeats = HELD_OUT_REPEATS if X_tr.shape[1] <= 512 else 1  # wide features: one partition (cost; as measured)
        tasks, held_how = _held_out_tasks(rng, X_tr, y_tr, X_va, y_va, head, repeats, logits)
    between, between_how = _interpolate(rng, X_va, y_va)
    synthetic = {INTERPOLATION: between, PERMUTATION: _permute(rng, X_va)}
    group = {INTERPOLATION: "near", PERMUTATION: "check"}
    kinds = [held_how] if held_how else []
    kinds.append(f"{INTERPOLATION} (rows moved partway toward another class's mean; {between_how})")
    tasks.append(_Task(X_tr, y_tr, head, X_va, y_va, synthetic, group))
    method = (
        f"{split.note}synthetic outliers from ID data only: "
        + "; ".join(kinds)
        + (
            f"; score = mean of the {HELD_OUT} AUROC (folds averaged) and the {INTERPOLATION} AUROC"
            if held_how
            else f"; score = the {INTERPOLATION} AUROC"
        )
        + f"; {PERMUTATION} (columns shuffled independently) is reported, not scored"
    )
    return tasks, method


def _validate(
    cands: list[Candidate], tasks: list[_Task], registry: Registry, progress: bool
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, str]]:
    """AUROC per validation set and the criterion of every candidate; the failures, and why."""
    from tqdm.auto import tqdm

    groups = {k: g for t in tasks for k, g in t.group.items()}
    per_set: dict[str, dict[str, float]] = {}
    score: dict[str, float] = {}
    errors: dict[str, str] = {}
    for cand in tqdm(cands, desc="select", disable=not progress, leave=False):
        try:
            aurocs = _evaluate(cand, tasks, registry)
        except Exception as exc:  # a failing candidate is reported, not fatal
            errors[cand.label] = f"{type(exc).__name__}: {exc}"
            continue
        per_set[cand.label] = aurocs
        score[cand.label] = _criterion(aurocs, groups)
    if not score:
        raise InputError(
            "select: every candidate failed on the validation tasks: "
            + "; ".join(f"{k}: {v}" for k, v in errors.items())
        )
    return per_set, score, errors


def _best_settings(cands: list[Candidate], score: dict[str, float]) -> dict[str, Candidate]:
    """The best setting of each detector (ties: the first in candidate order)."""
    best_of: dict[str, Candidate] = {}
    for c in cands:
        if c.label in score and (c.name not in best_of or score[c.label] > score[best_of[c.name].label]):
            best_of[c.name] = c
    return best_of


def _try_ensemble(
    ranked: list[Candidate],
    tasks: list[_Task],
    groups: dict[str, str],
    registry: Registry,
    score: dict[str, float],
    per_set: dict[str, dict[str, float]],
    validation: dict[str, float],
    errors: dict[str, str],
) -> tuple[Candidate, str]:
    """An ECDF ensemble of the best detectors of up to ENSEMBLE_SIZE families; it replaces the best single
    detector when it validates higher by more than ENSEMBLE_MARGIN. Returns the winner and a note."""
    best = ranked[0]
    seen, members = set(), []
    for c in ranked:
        cls = registry.classes[c.name]
        if cls.fits_on_validation or not cls.ensemble_member or cls.family in seen:
            continue
        seen.add(cls.family)
        members.append(c)
        if len(members) == ENSEMBLE_SIZE:
            break
    if len(members) < 2:
        return best, ""
    label = "ensemble(" + "+".join(m.name for m in members) + ")"
    ens = Candidate("ensemble", {"members": [[m.name, dict(m.params)] for m in members]}, label)
    try:
        per_set[label] = _evaluate(ens, tasks, registry)
    except Exception as exc:
        errors[label] = f"{type(exc).__name__}: {exc}"
        return best, ""
    validation[label] = score[label] = _criterion(per_set[label], groups)
    gain = score[label] - score[best.label]
    if gain > ENSEMBLE_MARGIN:
        return ens, f"; it beats the best single detector {best.label} ({score[best.label]:.4f}) by {gain:.4f}"
    if gain > 0:
        return best, (
            f"; {label} scored {score[label]:.4f}, only {gain:.4f} higher "
            f"(below the {ENSEMBLE_MARGIN} margin), so the single detector is kept"
        )
    return best, ""


def _reason(
    winner: Candidate,
    win_label: str,
    ranked: list[Candidate],
    score: dict[str, float],
    sets: dict[str, float],
    ens_note: str,
    method: str,
) -> str:
    """One sentence: the winner's validation score per set, the runner-up, the ensemble, the outliers."""
    win_score = score[winner.label]
    singles = [(c.name, score[c.label]) for c in ranked if c.name != win_label]
    detail = ", ".join(
        f"{k} {v:.3f}" + (" (not scored)" if k == PERMUTATION and INTERPOLATION in sets else "")
        for k, v in sorted(sets.items())
        if not k.startswith(HELD_OUT)
    )
    held = [v for k, v in sets.items() if k.startswith(HELD_OUT)]
    if held:
        detail = f"{HELD_OUT} {np.mean(held):.3f}" + (f", {detail}" if detail else "")
    best_word = "highest" if win_score >= max(score.values()) else "highest single-detector"
    reason = f"{winner.label} has the {best_word} validation score, {win_score:.4f} ({detail})"
    if singles and winner is ranked[0]:
        reason += f", {win_score - singles[0][1]:.4f} above the runner-up {singles[0][0]} ({singles[0][1]:.4f})"
    return reason + ens_note + f"; outliers: {method}."
