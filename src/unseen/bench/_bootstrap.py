"""Bootstrap replicates of the benchmark metrics, vectorised over replicates.

A bootstrap replicate of a test set is the same rows drawn with replacement; it is represented by a
count (weight) per row. With one sort of the scores, every metric of :mod:`unseen.metrics` becomes a
cumulative sum over the sorted, weighted rows, so ``B`` replicates cost a few passes over a ``(B, n)``
matrix instead of ``B`` calls to scikit-learn. With unit weights the functions here equal
``unseen.metrics.auroc``, ``aupr_in``, ``aupr_out`` and ``oscr`` exactly, and ``fpr_at_tpr`` except in
one tie case (scikit-learn's ``drop_intermediate`` can drop the first ROC point reaching the TPR when
tied ID/OOD groups lie on a straight line; it never matters on untied scores).

The confidence interval (:func:`hierarchical_ci`) is a two-stage percentile bootstrap: each replicate
draws the seeds with replacement and, inside each drawn seed, the test rows (ID and each OOD set) with
replacement. It covers both sources of variation in a benchmark number — the seed (split, training,
detector randomness) and the finite test set. With three seeds the seed stage is coarse (three values),
which is why the row stage matters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "hierarchical_ci", "row_weights", "weighted_metrics"]

METRICS = ("auroc", "fpr95", "aupr_in", "aupr_out", "oscr")

# Replicates are processed in blocks so that a (block, n_rows) matrix stays around 16 MB.
_CELLS = 100_000


def row_weights(rng: np.random.Generator, n_rows: int, n_replicates: int) -> np.ndarray:
    """Multiplicities of ``n_rows`` rows in ``n_replicates`` draws with replacement, shape ``(B, n)``.

    Examples
    --------
    >>> w = row_weights(np.random.default_rng(0), 5, 3)
    >>> w.shape, w.sum(axis=1).tolist()
    ((3, 5), [5.0, 5.0, 5.0])
    """
    idx = rng.integers(0, n_rows, size=(n_replicates, n_rows))
    flat = (idx + n_rows * np.arange(n_replicates)[:, None]).ravel()
    return np.bincount(flat, minlength=n_replicates * n_rows).reshape(n_replicates, n_rows).astype(np.float64)


def _pr_area(g_pos: np.ndarray, tp: np.ndarray, fp: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """Trapezoid area under the precision-recall points of cuts ranked best first, starting at (0, 1).

    ``g_pos`` is the positive weight at each cut (the recall step times ``n_pos``), ``tp``/``fp`` the
    cumulative counts including it. ``sum_k (r_k - r_{k-1}) (p_k + p_{k-1}) / 2`` with ``(r_0, p_0) = (0, 1)``.
    Cuts no drawn row has repeat the previous point and add nothing.
    """
    total = tp + fp
    precision = np.ones_like(tp)
    np.divide(tp, total, out=precision, where=total > 0)  # no row above the cut yet: the start point's 1
    area = np.einsum("ij,ij->i", g_pos, precision)
    area += g_pos[:, 0] + np.einsum("ij,ij->i", g_pos[:, 1:], precision[:, :-1])
    return area / (2.0 * n_pos)


def weighted_metrics(
    id_scores: np.ndarray,
    ood_scores: np.ndarray,
    id_weights: np.ndarray,
    ood_weights: np.ndarray,
    id_correct: np.ndarray | None = None,
    *,
    tpr: float = 0.95,
) -> dict[str, np.ndarray]:
    """AUROC, FPR@95 (OOD positive), AUPR-In, AUPR-Out and OSCR for each row of weights.

    Parameters
    ----------
    id_scores, ood_scores : ndarray of shape (n_id,), (n_ood,)
        Scores, higher = more in-distribution.
    id_weights, ood_weights : ndarray of shape (B, n_id), (B, n_ood)
        Multiplicity of each row in each replicate (all ones = the observed sample).
    id_correct : ndarray of bool, shape (n_id,), optional
        Whether each ID row was classified correctly; adds ``oscr``.
    tpr : float, default 0.95
        OOD detection rate at which ``fpr95`` is read.

    Returns
    -------
    dict of str to ndarray of shape (B,)

    Examples
    --------
    >>> import numpy as np, unseen
    >>> s_id, s_ood = np.array([0.9, 0.8, 0.4]), np.array([0.5, 0.1])
    >>> m = weighted_metrics(s_id, s_ood, np.ones((1, 3)), np.ones((1, 2)), np.array([True, False, True]))
    >>> float(m["auroc"][0]) == unseen.metrics.auroc(s_id, s_ood), round(float(m["oscr"][0]), 6)
    (True, 0.416667)
    """
    n_id, B = id_scores.shape[0], id_weights.shape[0]
    z = np.concatenate([id_scores, ood_scores])
    n = z.shape[0]
    order = np.argsort(z, kind="mergesort")
    pos = np.empty(n, dtype=np.intp)
    pos[order] = np.arange(n)  # rank of every row among all scores
    zs = z[order]
    starts = np.flatnonzero(np.r_[True, zs[1:] != zs[:-1]])
    tied = starts.shape[0] < n

    def spread(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Weights placed at their rows' ranks, summed over tied scores: (B, U), ascending score."""
        g = np.zeros((B, n))
        g[:, rows] = weights
        return np.add.reduceat(g, starts, axis=1) if tied else g

    g_id = spread(id_weights, pos[:n_id])
    g_ood = spread(ood_weights, pos[n_id:])
    n_i, n_o = id_weights.sum(axis=1), ood_weights.sum(axis=1)
    cum_id, cum_ood = np.cumsum(g_id, axis=1), np.cumsum(g_ood, axis=1)
    # AUROC: every ID weight times the OOD weight strictly below it, plus half the tied OOD weight.
    below_ood = cum_ood - g_ood
    out = {"auroc": (np.einsum("ij,ij->i", g_id, below_ood) + 0.5 * np.einsum("ij,ij->i", g_id, g_ood)) / (n_i * n_o)}
    # OOD positive, flagged when s <= t: ascending cuts trace the ROC curve (fpr = cum_id, tpr = cum_ood).
    first = np.argmax(cum_ood >= (tpr - 1e-12) * n_o[:, None], axis=1)
    out["fpr95"] = cum_id[np.arange(B), first] / n_i
    # AUPR-Out: OOD positive, best-ranked = lowest score = ascending cuts.
    out["aupr_out"] = _pr_area(g_ood, cum_ood, cum_id, n_o)
    # AUPR-In: ID positive, best-ranked = highest score: descending cuts, counts at or above each cut.
    tp_in = cum_id[:, -1:] - cum_id + g_id
    fp_in = cum_ood[:, -1:] - below_ood
    out["aupr_in"] = _pr_area(g_id[:, ::-1], tp_in[:, ::-1], fp_in[:, ::-1], n_i)
    if id_correct is not None:
        correct = np.asarray(id_correct, dtype=bool)
        g_c = spread(id_weights[:, correct], pos[:n_id][correct])
        above_c = g_c[:, ::-1].cumsum(axis=1)[:, ::-1] - g_c  # correct ID weight strictly above each cut
        # OSCR (Vaze et al. ties): walking the cuts downwards, the step to cut u adds FPR g_ood[u] while CCR
        # rises from its value at the previous *drawn* cut (above_c[u] - g_c[next drawn cut above u]) to
        # above_c[u]: trapezoid g_ood[u] * (above_c[u] - g_c[next] / 2).
        drawn = (g_id + g_ood) > 0
        U = g_id.shape[1]
        idx = np.where(drawn, np.arange(U), U)
        nxt = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]  # nearest drawn cut at or above
        nxt = np.concatenate([nxt[:, 1:], np.full((B, 1), U)], axis=1)  # strictly above
        g_next = np.take_along_axis(np.concatenate([g_c, np.zeros((B, 1))], axis=1), nxt, axis=1)
        area = np.einsum("ij,ij->i", g_ood, above_c) - 0.5 * np.einsum("ij,ij->i", g_ood, g_next)
        out["oscr"] = area / (n_i * n_o)
    return out


def replicate_metrics(
    id_scores: np.ndarray,
    ood_scores: np.ndarray,
    id_weights: np.ndarray,
    ood_weights: np.ndarray,
    id_correct: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """:func:`weighted_metrics` over many replicates, in memory-bounded blocks."""
    n = id_scores.shape[0] + ood_scores.shape[0]
    block = max(1, _CELLS // n)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, id_weights.shape[0], block):
        stop = start + block
        m = weighted_metrics(id_scores, ood_scores, id_weights[start:stop], ood_weights[start:stop], id_correct)
        for key, value in m.items():
            parts.setdefault(key, []).append(value)
    return {key: np.concatenate(values) for key, values in parts.items()}


def hierarchical_ci(per_seed: list[np.ndarray], rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the seed-mean from per-seed row-bootstrap replicates.

    Each of the ``B`` outer replicates draws ``S`` seeds with replacement and, for each drawn seed, one of
    that seed's row-bootstrap replicates at random; the replicate value is their mean.

    Parameters
    ----------
    per_seed : list of ndarray of shape (B,)
        Row-bootstrap replicates of one metric, one array per seed.
    rng : numpy Generator
        Source of the seed draws (pass the same seeded generator state for reproducible intervals).
    level : float, default 0.95

    Returns
    -------
    (low, high)

    Examples
    --------
    >>> reps = [np.full(200, 0.8), np.full(200, 0.9)]
    >>> lo, hi = hierarchical_ci(reps, np.random.default_rng(0))
    >>> 0.8 <= lo < hi <= 0.9
    True
    """
    reps = np.stack(per_seed)  # (S, B)
    S, B = reps.shape
    seeds = rng.integers(0, S, size=(B, S))
    draws = rng.integers(0, B, size=(B, S))
    values = reps[seeds, draws].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)
