"""The models a benchmark needs on top of its inputs: a small ReLU network, or a linear probe on encoder features.

Both are fitted on the known-class training rows only, seeded, and cached on disk by the content of
their training data (see :mod:`unseen.datasets.cache`), so a second load of a benchmark skips them.

* :func:`train_mlp` — scikit-learn's ``MLPClassifier`` (ReLU hidden layers). Features of a row are the
  activations of the last hidden layer; the head is the output layer, so
  ``logits = features @ W.T + b`` reproduces the network's own decision.
* :func:`linear_probe` — multinomial logistic regression on the features, converged, its L2 strength chosen
  on the validation rows' log-loss.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from ._util import digest, unseen_version
from .cache import cached

__all__ = ["MLP", "linear_probe", "probe_search", "train_mlp"]


@dataclass
class MLP:
    """The weights of a trained ReLU network: ``coefs[i]`` is ``(d_in, d_out)``, as in scikit-learn."""

    coefs: list[np.ndarray]
    intercepts: list[np.ndarray]

    def features(self, X: np.ndarray) -> np.ndarray:
        """Activations of the last hidden ReLU layer, float32 ``(n, hidden[-1])``."""
        H = np.asarray(X, dtype=np.float64)
        for W, b in zip(self.coefs[:-1], self.intercepts[:-1]):
            H = np.maximum(H @ W + b, 0.0)
        return H.astype(np.float32)

    @property
    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """The output layer as ``(W (C, d), b (C,))`` with ``logits = features @ W.T + b``.

        A two-class network has one logistic output ``z``; its head is ``(-z/2, z/2)``, whose softmax is
        the network's ``(1 - σ(z), σ(z))``.
        """
        W, b = self.coefs[-1].T.astype(np.float32), self.intercepts[-1].astype(np.float32)
        if W.shape[0] == 1:
            W, b = np.vstack([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2])
        return W.copy(), b.copy()


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def train_mlp(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: tuple[int, ...] = (64,),
    seed: int = 0,
    max_iter: int = 400,
    alpha: float = 1e-4,
    batch_size: int | str = "auto",
    cache_dir: str | os.PathLike | None = None,
    label: str = "mlp",
) -> MLP:
    """Train scikit-learn's ``MLPClassifier`` (ReLU, Adam) on ``(X, y)``; cached by content.

    Parameters
    ----------
    X : ndarray (n, d)
        Training inputs (already scaled, e.g. pixels / 255).
    y : ndarray (n,)
        Labels ``0..C-1`` (at least two classes).
    hidden : tuple of int
        Hidden layer sizes.
    seed, max_iter, alpha, batch_size
        Passed to ``MLPClassifier`` (``random_state``, ``max_iter``, ``alpha``, ``batch_size``). A float32
        ``X`` trains in float32 (about twice as fast).
    cache_dir : path, optional
        Cache folder.
    label : str
        Readable cache file prefix.

    Returns
    -------
    MLP

    Examples
    --------
    >>> import tempfile
    >>> X = np.random.default_rng(0).normal(size=(60, 4)); y = (X[:, 0] > 0).astype(int)
    >>> net = train_mlp(X, y, hidden=(8,), max_iter=50, cache_dir=tempfile.mkdtemp())
    >>> net.features(X).shape, net.head[0].shape
    ((60, 8), (2, 8))
    """
    hidden = tuple(int(h) for h in hidden)
    key = {
        "kind": "mlp",
        "hidden": hidden,
        "seed": int(seed),
        "max_iter": int(max_iter),
        "alpha": float(alpha),
        "batch_size": batch_size,
        "sklearn": _sklearn_version(),
        "unseen": unseen_version(),
        "X": digest(X),
        "y": digest(y),
    }

    def fit() -> dict[str, np.ndarray]:
        from sklearn.neural_network import MLPClassifier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected and harmless here
            clf = MLPClassifier(
                hidden_layer_sizes=hidden, max_iter=max_iter, alpha=alpha, batch_size=batch_size, random_state=seed
            ).fit(X, y)
        out = {}
        for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
            out[f"W{i}"], out[f"b{i}"] = W, b
        return out

    arrays = cached(key, fit, cache_dir=cache_dir, label=label)
    n_layers = len(hidden) + 1
    return MLP([arrays[f"W{i}"] for i in range(n_layers)], [arrays[f"b{i}"] for i in range(n_layers)])


#: inverse L2 strengths :func:`linear_probe` tries, in this order (half-decades, strongest first)
PROBE_C_GRID: tuple[float, ...] = tuple(float(f"{10 ** (e / 2):.3g}") for e in range(-8, 5))


def linear_probe(
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    cs: tuple[float, ...] = PROBE_C_GRID,
    tol: float = 1e-10,
    cache_dir: str | os.PathLike | None = None,
    label: str = "probe",
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on the features as they are, converged, its L2 strength chosen on validation.

    For each ``C`` in ``cs`` (strongest regularisation first, each fit warm-started from the previous one)
    scikit-learn's ``LogisticRegression`` is fitted on the training rows with Newton-CG to gradient tolerance
    ``tol``, and the ``C`` with the lowest log-loss on the validation rows wins; the search stops once the
    validation loss has risen at two grid points in a row. The head is fitted on the training rows only, so
    the validation rows stay held out for the detectors' thresholds.

    Why converged, and why chosen: scikit-learn's default lbfgs stops 0.01–0.15 (largest weight) short of the
    optimum on these benchmarks, where it stops depends on the machine's floating point, and head-based
    detectors' AUROCs moved by up to 0.018 between machines; and no fixed ``C`` suits both EfficientNet
    features (validation log-loss best at ``C ≤ 0.01``) and MiniLM embeddings (``C ≥ 3``), see
    ``benchmarks/probe.md``. Fitted on the raw features rather than z-scored ones: z-scoring weakens the
    effective regularisation on unit-norm embeddings and pooled CNN features.

    Parameters
    ----------
    X : ndarray (n, d)
        Training features (known classes only).
    y : ndarray (n,)
        Labels ``0..C-1``.
    X_val : ndarray (m, d)
        Validation features of the same classes, used only to choose ``C``.
    y_val : ndarray (m,)
    cs : tuple of float
        The inverse L2 strengths to try, ascending.
    tol : float
        Newton-CG's gradient tolerance.
    cache_dir : path, optional
    label : str

    Returns
    -------
    W : ndarray (n_classes, d), b : ndarray (n_classes,)
        ``logits = X @ W.T + b``; for two classes the single logistic output ``z`` becomes ``(-z/2, z/2)``.

    Examples
    --------
    >>> import tempfile
    >>> rng = np.random.default_rng(0); y = np.repeat([0, 1, 2], 30); X = rng.normal(size=(90, 5)) + y[:, None]
    >>> W, b = linear_probe(X[::2], y[::2], X[1::2], y[1::2], cache_dir=tempfile.mkdtemp())
    >>> W.shape, float(((X @ W.T + b).argmax(1) == y).mean()) > 0.6
    ((3, 5), True)
    """
    if list(cs) != sorted(cs) or not cs or min(cs) <= 0:
        raise ValueError(f"cs must be positive and ascending, got {cs!r}")
    key = {
        "kind": "probe",
        "solver": "newton-cg",
        "cs": [float(c) for c in cs],
        "tol": float(tol),
        "sklearn": _sklearn_version(),
        "unseen": unseen_version(),
        "X": digest(X),
        "y": digest(y),
        "X_val": digest(X_val),
        "y_val": digest(y_val),
    }

    def fit() -> dict[str, np.ndarray]:
        return probe_search(X, y, X_val, y_val, cs=cs, tol=tol)

    arrays = cached(key, fit, cache_dir=cache_dir, label=label)
    return arrays["W"], arrays["b"]


def probe_search(
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    cs: tuple[float, ...] = PROBE_C_GRID,
    tol: float = 1e-10,
) -> dict[str, np.ndarray]:
    """:func:`linear_probe`'s search, uncached: the head, the chosen ``C`` and the validation log-loss per ``C`` tried.

    Returns
    -------
    dict
        ``W`` (n_classes, d) and ``b`` (n_classes,) float32; ``C`` (0-d); ``val_log_loss`` (one per ``C`` tried,
        in the order of ``cs``; fewer than ``len(cs)`` when the search stopped early).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    Xt, Xv = np.asarray(X, dtype=np.float64), np.asarray(X_val, dtype=np.float64)
    clf = LogisticRegression(solver="newton-cg", tol=tol, max_iter=1000, warm_start=True)
    losses: list[float] = []
    for C in cs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.set_params(C=C).fit(Xt, y)
        losses.append(log_loss(y_val, clf.predict_proba(Xv), labels=clf.classes_))
        if losses[-1] < min(losses[:-1], default=np.inf):
            W, b = clf.coef_.copy(), clf.intercept_.copy()
        elif len(losses) >= 3 and losses[-1] > losses[-2] > losses[-3]:
            break
    if W.shape[0] == 1:  # binary: scikit-learn keeps one row; a two-class head gives the same probabilities
        W = np.vstack([-W / 2, W / 2])
        b = np.array([-b[0] / 2, b[0] / 2])
    return {
        "W": W.astype(np.float32),
        "b": b.astype(np.float32),
        "C": np.array(cs[int(np.argmin(losses))]),
        "val_log_loss": np.array(losses),
    }
