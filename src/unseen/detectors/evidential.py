"""Evidential (subjective-logic) uncertainty from logits: vacuity (ignorance) and dissonance (confusion).

The logits are read as evidence for a Dirichlet distribution (Sensoy et al., NeurIPS 2018). Its uncertainty splits
in two: **vacuity**, a lack of evidence for every class (the OOD signal), and **dissonance**, strong evidence for
several classes at once (a near-boundary / misclassification signal, not an OOD signal; Zhao et al. 2020).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_param
from ..base import Signals
from .logits import _LogitDetector

__all__ = ["Evidential"]

#: Bound on the ``rows * C * C`` floats of one dissonance block (32 MiB of float64).
_DISSONANCE_BLOCK = 1 << 22


def evidence_from_logits(f: np.ndarray, kind: str = "relu") -> np.ndarray:
    """Non-negative evidence from logits: ``relu(f)``, ``exp(clip(f, -10, 10))`` or ``softplus(f)``, in float64."""
    f = np.asarray(f, dtype=np.float64)
    if kind == "relu":
        return np.maximum(f, 0.0)
    if kind == "exp":
        return np.exp(np.clip(f, -10.0, 10.0))
    return np.logaddexp(0.0, f)


def dissonance(belief: np.ndarray) -> np.ndarray:
    """Dissonance of belief masses ``b`` (rows): ``sum_k b_k sum_{j!=k} b_j Bal(b_j, b_k) / sum_{j!=k} b_j``.

    ``Bal(b_j, b_k) = 1 - |b_j - b_k| / (b_j + b_k) = 2 min(b_j, b_k) / (b_j + b_k)`` (0 when both are 0); a
    class ``k`` whose other classes carry no belief contributes 0. O(C^2) per row, in blocks of rows so memory
    stays bounded for many classes.
    """
    b = np.asarray(belief, dtype=np.float64)
    n, C = b.shape
    off_diag = ~np.eye(C, dtype=bool)
    out = np.empty(n)
    rows = max(1, _DISSONANCE_BLOCK // (C * C))
    for s in range(0, n, rows):
        bb = b[s : s + rows]
        bj, bk = bb[:, :, None], bb[:, None, :]  # [row, j, k]
        total = bj + bk
        bal = np.divide(2.0 * np.minimum(bj, bk), total, out=np.zeros_like(total), where=total > 0)
        bal *= off_diag
        num = np.einsum("rj,rjk->rk", bb, bal)
        den = bb @ off_diag.astype(np.float64)  # sum over j != k, without the cancellation of total - b_k
        ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        out[s : s + rows] = np.sum(bb * ratio, axis=1)
    return out


class Evidential(_LogitDetector):
    """Evidential vacuity: the Dirichlet's lack of evidence, u = C / S, as an OOD score (Sensoy et al. 2018).

    Evidence ``e = ReLU(f)`` (or ``exp``/``softplus``), Dirichlet parameters ``alpha = e + 1``, strength
    ``S = sum_k alpha_k``, belief ``b_k = e_k / S``, expected probability ``alpha / S``.

    * **vacuity** ``u = C / S`` in ``(0, 1]``: ignorance, no class has evidence — the OOD signal;
    * **dissonance** ``sum_k b_k [sum_{j!=k} b_j Bal(b_j, b_k)] / [sum_{j!=k} b_j]`` with
      ``Bal(b_j, b_k) = 1 - |b_j - b_k| / (b_j + b_k)``: confusion, evidence for several classes — a
      near-boundary / misclassification signal, **not** an OOD signal (Zhao et al., AAAI 2020; Jøsang's
      subjective logic).

    Score: ``s = -u``, higher = more in-distribution. :meth:`uncertainty` returns both parts. The formulas follow the
    papers (docs/methods.md#evidential: no reference library implements them as a detector); the ``exp``
    evidence clips logits to ``[-10, 10]`` as the common PyTorch EDL code does. They are meant for
    EDL-trained models; on a cross-entropy model vacuity is just a transform of the logits (a ReLU'd sum).

    Parameters
    ----------
    evidence : {"relu", "exp", "softplus"}, default "relu"
        How logits become non-negative evidence.
    tpr : float, default 0.95
        Fraction of the fit data accepted by ``predict``.

    Examples
    --------
    >>> import numpy as np, unseen
    >>> f = np.array([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 3.0, 0.0]])
    >>> det = unseen.Evidential().fit(f)
    >>> det.score_samples(f).round(4)  # -vacuity: [-3/7, -1, -3/9]
    array([-0.4286, -1.    , -0.3333])
    >>> det.uncertainty(f)["dissonance"].round(4)  # only the third row has conflicting evidence
    array([0.    , 0.    , 0.6667])
    """

    name = "evidential"

    def __init__(self, evidence: str = "relu", *, tpr: float = 0.95):
        self.evidence = evidence
        self.tpr = tpr

    def _check_params(self) -> None:
        check_param(self.evidence, "evidence", owner=type(self).__name__, choices=["relu", "exp", "softplus"])

    def _evidence(self, X: np.ndarray) -> np.ndarray:
        return evidence_from_logits(self._logits(X), self.evidence)

    def _score(self, X: np.ndarray) -> np.ndarray:
        e = self._evidence(X)
        return -e.shape[1] / (e.sum(axis=1) + e.shape[1])

    def signals(self, X: np.ndarray) -> Signals:
        u = self.uncertainty(X)
        out = Signals.single("vacuity", u["vacuity"], higher_is_id=False)
        return out.with_classes(
            range(u["belief"].shape[1]), u["belief"], "evidential belief, higher = closer", lower_is_closer=False
        )

    def uncertainty(self, X) -> dict[str, np.ndarray]:
        """The evidential split of uncertainty into ignorance and confusion.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Logits (or features, when fitted with a head).

        Returns
        -------
        dict
            ``"vacuity"`` (n_samples,): ``C / S``, ignorance — high when no class has evidence (the OOD signal).
            ``"dissonance"`` (n_samples,): confusion — high when several classes have similar, strong evidence
            (near a decision boundary; a misclassification signal, not an OOD signal).
            ``"expected_probability"`` (n_samples, C): ``alpha / S``.
            ``"belief"`` (n_samples, C): ``e / S`` (beliefs plus vacuity sum to 1).
        """
        X = self._validate(X)
        rows = self.score_batch_rows
        parts = []
        for i in range(0, X.shape[0], rows):
            e = self._evidence(X[i : i + rows])
            alpha = e + 1.0
            S = e.sum(axis=1, keepdims=True) + e.shape[1]
            belief = e / S
            parts.append(
                {
                    "vacuity": e.shape[1] / S[:, 0],
                    "dissonance": dissonance(belief),
                    "expected_probability": alpha / S,
                    "belief": belief,
                }
            )
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
