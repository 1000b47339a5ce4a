"""The vectorised bootstrap metrics agree with unseen.metrics, and the intervals cover the truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

import unseen
from unseen.bench._bootstrap import hierarchical_ci, replicate_metrics, row_weights, weighted_metrics


def _reference(s_id, s_ood, correct):
    m = unseen.metrics
    return {
        "auroc": m.auroc(s_id, s_ood),
        "fpr95": m.fpr_at_tpr(s_id, s_ood),
        "aupr_in": m.aupr_in(s_id, s_ood),
        "aupr_out": m.aupr_out(s_id, s_ood),
        "oscr": m.oscr(s_id, correct, s_ood),
    }


@pytest.mark.parametrize("tied", [False, True])
def test_unit_weights_equal_unseen_metrics(tied):
    rng = np.random.default_rng(3)
    for _ in range(40):
        n_id, n_ood = rng.integers(2, 80, 2)
        s_id, s_ood = rng.normal(size=n_id), rng.normal(size=n_ood) - 0.7
        if tied:  # coarse scores: many ID/OOD ties
            s_id, s_ood = np.round(s_id, 1), np.round(s_ood, 1)
        correct = rng.random(n_id) < 0.8
        got = weighted_metrics(s_id, s_ood, np.ones((1, n_id)), np.ones((1, n_ood)), correct)
        ref = _reference(s_id, s_ood, correct)
        # FPR@95 can differ on tied scores only (scikit-learn's drop_intermediate, see the module docstring)
        for key in ("auroc", "aupr_in", "aupr_out", "oscr") + (() if tied else ("fpr95",)):
            assert got[key][0] == pytest.approx(ref[key], abs=1e-12), key


def test_weights_equal_repeated_and_dropped_rows():
    """A replicate with multiplicities (zeros included) is the metric of the resampled rows."""
    rng = np.random.default_rng(4)
    for _ in range(40):
        n_id, n_ood = rng.integers(5, 60, 2)
        s_id, s_ood = rng.normal(size=n_id), rng.normal(size=n_ood) - 0.5
        correct = rng.random(n_id) < 0.7
        w_id = row_weights(rng, n_id, 1)
        w_ood = row_weights(rng, n_ood, 1)
        got = weighted_metrics(s_id, s_ood, w_id, w_ood, correct)
        rid, rood = np.repeat(np.arange(n_id), w_id[0].astype(int)), np.repeat(np.arange(n_ood), w_ood[0].astype(int))
        ref = _reference(s_id[rid], s_ood[rood], correct[rid])
        for key in ("auroc", "aupr_in", "aupr_out", "oscr"):
            assert got[key][0] == pytest.approx(ref[key], abs=1e-12), key


def test_blocks_give_the_same_replicates(monkeypatch):
    import unseen.bench._bootstrap as bs

    rng = np.random.default_rng(0)
    s_id, s_ood, correct = rng.normal(size=50), rng.normal(size=70), rng.random(50) < 0.9
    w_id, w_ood = row_weights(rng, 50, 30), row_weights(rng, 70, 30)
    whole = replicate_metrics(s_id, s_ood, w_id, w_ood, correct)
    monkeypatch.setattr(bs, "_CELLS", 500)  # blocks of 4 replicates
    blocked = replicate_metrics(s_id, s_ood, w_id, w_ood, correct)
    for key in whole:
        np.testing.assert_allclose(blocked[key], whole[key], rtol=0, atol=1e-12)


def test_row_weights_are_seeded_draws_with_replacement():
    a = row_weights(np.random.default_rng(1), 20, 50)
    b = row_weights(np.random.default_rng(1), 20, 50)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 20) and np.all(a.sum(axis=1) == 20)
    assert 0.25 < np.mean(a == 0) < 0.5  # about 1/e of the rows are left out of a replicate


def test_interval_covers_the_true_auroc():
    """95% row-bootstrap intervals from one seed cover the population AUROC in most repetitions."""
    truth = norm.cdf(1 / np.sqrt(2))  # P(X > Y) for X ~ N(1, 1), Y ~ N(0, 1)
    rng = np.random.default_rng(11)
    hits, widths = 0, []
    for _ in range(40):
        s_id, s_ood = rng.normal(1.0, 1.0, 150), rng.normal(0.0, 1.0, 150)
        reps = replicate_metrics(s_id, s_ood, row_weights(rng, 150, 300), row_weights(rng, 150, 300))["auroc"]
        low, high = hierarchical_ci([reps], np.random.default_rng(0))
        hits += low <= truth <= high
        widths.append(high - low)
    assert hits >= 34  # nominal 38 of 40
    assert 0.05 < np.mean(widths) < 0.15  # about 4 standard errors of an AUROC from 150 + 150 rows


def test_seed_stage_adds_between_seed_spread():
    rng = np.random.default_rng(0)
    tight = [0.80 + 0.001 * rng.normal(size=400), 0.90 + 0.001 * rng.normal(size=400)]
    low, high = hierarchical_ci(tight, np.random.default_rng(0))
    assert low < 0.83 and high > 0.87  # the seeds disagree: the interval spans them
    one_low, one_high = hierarchical_ci(tight[:1], np.random.default_rng(0))
    assert one_high - one_low < 0.01
