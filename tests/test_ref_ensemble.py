"""Ensemble: members' scores mapped to their ID empirical CDFs and combined, against the formula written out here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import unseen
import unseen.base
from unseen.exceptions import InputError

# ------------------------------------------------------------------------------------------ the formula


def knn_scores(bank_rows, queries, k, leave_self_out=False):
    """-squared distance to the k-th nearest normalised bank row (x/||x|| + 1e-10), by brute force."""
    bank = (bank_rows / np.linalg.norm(bank_rows, axis=1, keepdims=True) + 1e-10).astype(np.float32).astype(np.float64)
    q = (queries / np.linalg.norm(queries, axis=1, keepdims=True) + 1e-10).astype(np.float32).astype(np.float64)
    out = []
    for i, row in enumerate(q):
        d = np.sum((bank - row) ** 2, axis=1)
        if leave_self_out:
            d = np.delete(d, i)
        out.append(-np.sort(d)[k - 1])
    return np.array(out)


def mahalanobis_scores(X, y, queries):
    classes = np.unique(y)
    means = np.stack([X[y == c].mean(0) for c in classes])
    centred = X - means[np.searchsorted(classes, y)]
    P = np.linalg.pinv(centred.T @ centred / len(X), hermitian=True)
    return np.array([-min((q - m) @ P @ (q - m) for m in means) for q in queries])


def energy_scores(queries, W, b):
    return logsumexp(queries @ W.T + b, axis=1)


def ecdf(reference, scores):
    """(1 + #{reference <= s}) / (n + 1), by counting."""
    return np.array([(1 + np.sum(reference <= s)) / (len(reference) + 1) for s in scores])


def combine(P, how):
    if how == "mean":
        return P.mean(1)
    if how == "min":
        return P.min(1)
    return np.prod(P, axis=1) ** (1.0 / P.shape[1])


@pytest.fixture(scope="module")
def expected_parts(data):
    """Reference (fit) scores and test scores of knn (k=10, leave-one-out on the fit rows), mahalanobis, energy."""
    X, y, (W, b) = data.X, data.y, data.head
    Q = np.vstack([data.X_test, data.X_ood])
    refs = [
        knn_scores(X, X, 10, leave_self_out=True),
        mahalanobis_scores(X, y, X),
        energy_scores(X, W, b),
    ]
    tests = [knn_scores(X, Q, 10), mahalanobis_scores(X, y, Q), energy_scores(Q, W, b)]
    return Q, refs, tests


MEMBERS = (("knn", {"k": 10}), "mahalanobis", "energy")


@pytest.mark.parametrize("how", ["mean", "min", "product"])
def test_matches_formula(data, expected_parts, how):
    Q, refs, tests = expected_parts
    det = unseen.Ensemble(members=MEMBERS, combine=how).fit(data.X, data.y, head=data.head)
    for i, ref in enumerate(refs):
        np.testing.assert_allclose(getattr(det, f"cdf_{i}_"), np.sort(ref), rtol=1e-6, atol=1e-9)
    P = np.column_stack([ecdf(ref, s) for ref, s in zip(refs, tests)])
    np.testing.assert_allclose(det.member_probabilities(Q), P, rtol=1e-12)
    np.testing.assert_allclose(det.score_samples(Q), combine(P, how), rtol=1e-12)
    # The threshold: fit rows scored as the references were (KNN leaving each row out), tpr kept.
    fit_scores = np.sort(combine(np.column_stack([ecdf(ref, ref) for ref in refs]), how))
    assert det.offset_ == pytest.approx(fit_scores[int(np.floor(0.05 * len(fit_scores) + 1e-9))], rel=1e-12)


def test_members_are_fitted_as_they_need(data):
    det = unseen.Ensemble(members=MEMBERS).fit(data.X, data.y, head=data.head)
    knn, maha, energy = det.members_
    assert isinstance(knn, unseen.KNN) and knn.k == 10 and knn.W_ is None
    assert isinstance(maha, unseen.Mahalanobis) and maha.W_ is None  # features only: no head handed on
    assert isinstance(energy, unseen.Energy)
    np.testing.assert_array_equal(energy.W_, data.W)  # a logit member takes features and the head
    np.testing.assert_array_equal(det.W_, data.W)


def test_single_member_is_a_conformal_p_value(data):
    det = unseen.Ensemble(members=["mahalanobis"]).fit(data.X, data.y)
    ref = unseen.Mahalanobis().fit(data.X, data.y)
    fit_scores = ref.score_samples(data.X)
    s = ref.score_samples(data.X_ood)
    expected = (1 + (fit_scores[None, :] <= s[:, None]).sum(1)) / (len(fit_scores) + 1)
    np.testing.assert_allclose(det.score_samples(data.X_ood), expected, rtol=1e-12)
    assert np.all(det.score_samples(data.X_ood) > 0)


def test_logit_members_without_head_take_logits(data):
    f = data.logits(data.X)
    det = unseen.Ensemble(members=("msp", "energy"), combine="min").fit(f)
    p = np.exp(f - logsumexp(f, axis=1, keepdims=True))
    refs = [p.max(1), logsumexp(f, axis=1)]
    g = data.logits(data.X_ood)
    pg = np.exp(g - logsumexp(g, axis=1, keepdims=True))
    P = np.column_stack([ecdf(refs[0], pg.max(1)), ecdf(refs[1], logsumexp(g, axis=1))])
    np.testing.assert_allclose(det.score_samples(g), P.min(1), rtol=1e-12)


def test_subsampled_reference_uses_the_threshold_rows(data, monkeypatch):
    monkeypatch.setattr(unseen.base, "THRESHOLD_SAMPLE", 100)
    det = unseen.Ensemble(members=(("knn", {"k": 5}), "energy")).fit(data.X, head=data.head)
    assert det.cdf_0_.shape == (100,) and det.cdf_1_.shape == (100,)
    idx = np.sort(np.random.default_rng(0).choice(len(data.X), 100, replace=False))
    sample = data.X[idx]
    np.testing.assert_allclose(det.cdf_1_, np.sort(energy_scores(sample, *data.head)), rtol=1e-12)
    # The cached fit-sample scores equal a fresh computation on the same rows.
    assert det.offset_ == det._threshold(det._score_fit_sample(sample))


# ------------------------------------------------------------------------------------------ persistence


@pytest.mark.parametrize("layout", ["ens.unseen", "ens_dir/"])
def test_save_load_round_trip(data, tmp_path, layout):
    members = (("knn", {"k": 10}), ("energy", {"temperature": 2.0}), "mahalanobis")
    det = unseen.Ensemble(members=members, combine="product")
    det.fit(data.X, data.y, head=data.head)
    loaded = unseen.load(det.save(tmp_path / layout))
    assert isinstance(loaded, unseen.Ensemble)
    # JSON turns tuples into lists; the ensemble reads both forms.
    assert loaded.members == [["knn", {"k": 10}], ["energy", {"temperature": 2.0}], "mahalanobis"]
    assert loaded.combine == "product" and loaded.offset_ == det.offset_
    assert [type(m) for m in loaded.members_] == [unseen.KNN, unseen.Energy, unseen.Mahalanobis]
    assert loaded.members_[1].temperature == 2.0
    for i in range(3):
        np.testing.assert_array_equal(getattr(loaded, f"cdf_{i}_"), getattr(det, f"cdf_{i}_"))
    Q = np.vstack([data.X_test, data.X_ood])
    np.testing.assert_array_equal(loaded.score_samples(Q), det.score_samples(Q))
    # A loaded ensemble refits the same way (its list-valued members parameter is valid input).
    again = unseen.Ensemble(**loaded.get_params()).fit(data.X, data.y, head=data.head)
    np.testing.assert_allclose(again.score_samples(Q), det.score_samples(Q), rtol=1e-12)


# ------------------------------------------------------------------------------------------ errors


def test_member_needing_labels_is_named(data):
    with pytest.raises(InputError, match=r"member 1 \('mahalanobis', Mahalanobis\) needs class labels"):
        unseen.Ensemble(members=("energy", "mahalanobis")).fit(data.X, head=data.head)


def test_member_needing_head_is_named(data):
    with pytest.raises(InputError, match=r"member 0 \('vim', ViM\) needs the classifier head"):
        unseen.Ensemble(members=(("vim", {"dim": 16}),)).fit(data.X, data.y)


@pytest.mark.parametrize(
    "members,match",
    [
        ((), "empty"),
        ("knn", "list or tuple"),
        (None, "list or tuple"),
        ((("knn",),), "member 0"),
        (("knn", 3), "member 1"),
        ((("knn", "k=3"),), "member 0"),
        (("not_a_detector",), "Unknown detector"),
        ((("knn", {"kk": 3}),), r"member 0 \('knn'\)"),
    ],
)
def test_bad_members(data, members, match):
    with pytest.raises(InputError, match=match):
        unseen.Ensemble(members=members).fit(data.X, data.y, head=data.head)


def test_detector_objects_are_refused_with_a_hint(data):
    with pytest.raises(InputError, match="Pass names, not detector objects"):
        unseen.Ensemble(members=(unseen.Energy(),)).fit(data.X, head=data.head)


def test_bad_combine_and_head(data):
    with pytest.raises(InputError, match="combine"):
        unseen.Ensemble(members=("energy",), combine="median").fit(data.X, head=data.head)
    with pytest.raises(InputError, match="transposed"):
        unseen.Ensemble(members=("energy",)).fit(data.X, head=(data.W.T, data.b))
    with pytest.raises(InputError, match="member 0"):  # a member's own hyperparameter check
        unseen.Ensemble(members=(("knn", {"k": 0}),)).fit(data.X)


@pytest.mark.parametrize("members", [["knn", "energy"], ["knn", "sdm", "energy"]])
def test_more_fit_rows_than_a_member_scores_for_its_threshold(members):
    """KNN scores at most threshold_rows (5000) fit rows and SDM its calibration rows: the ensemble aligns them."""
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(6001, 8)))
    W, b = rng.normal(size=(3, 8)), np.zeros(3)
    y = (X @ W.T + b).argmax(axis=1)  # labels the head gets right, as for a trained classifier
    det = unseen.Ensemble(members=members).fit(X, y, head=(W, b))
    held_out = np.abs(rng.normal(size=(4000, 8)))
    accepted = np.mean(det.predict(held_out) == 1)
    assert 0.93 < accepted < 0.97  # SDM too: its fit rows are scored with their own support entry left out


def test_sdm_scores_fit_rows_as_new_rows():
    """SDM's fit-row scores for an ensemble leave each support row's own entry out: a support row then scores as
    an SDM fitted without it would, and calibration rows (never in the support) keep their calibration scores."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    X = np.abs(rng.normal(size=(400, 6)) + 2.5 * np.eye(3, 6)[y])
    W, b = np.eye(3, 6), np.zeros(3)
    det = unseen.SDM().fit(X, y, head=(W, b))
    cal, sup = det.calibration_index_, det.support_index_
    np.testing.assert_allclose(det._score_fit_rows(X[cal]), det.calibration_probability_, rtol=1e-12)
    loo = det._score_fit_rows(X[sup[:20]])
    assert not np.allclose(loo, det.score_samples(X[sup[:20]]))  # scoring them plainly finds themselves
    for row in sup[:20]:  # the nearest support row found is never the row itself
        _, d0, nearest_id = det._similarity(
            X[row : row + 1], (X[row : row + 1] @ W.T + b).argmax(1), leave_self_out=True
        )
        assert det.support_index_[nearest_id[0]] != row and d0[0] > 0
    # the ensemble's threshold accepts about 95% of new ID rows with SDM as a member
    ens = unseen.Ensemble(members=["knn", "sdm"]).fit(X, y, head=(W, b))
    y_new = rng.integers(0, 3, 3000)
    X_new = np.abs(rng.normal(size=(3000, 6)) + 2.5 * np.eye(3, 6)[y_new])
    assert 0.93 < np.mean(ens.predict(X_new) == 1) < 0.97
