"""unseen.explain: exemplars, per-class values and the driving signal, checked against brute-force formulas."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.linalg import pinvh
from scipy.special import logsumexp, softmax

import unseen
from unseen.exceptions import InputError, NotFittedError
from unseen.explain import Explanation


def brute_nearest(Q, R, k):
    d = ((Q[:, None, :] - R[None, :, :]) ** 2).sum(axis=2)
    ids = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(d, ids, 1)


def normalise(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True) + 1e-10


@pytest.fixture(scope="module")
def maha(data):
    return unseen.Mahalanobis().fit(data.X, data.y)


@pytest.fixture(scope="module")
def queries(data):
    return np.vstack([data.X_test[:6], data.X_ood[:6]])


def test_exemplars_are_the_true_nearest_training_rows(data, maha, queries):
    out = unseen.explain(maha, queries, reference=data.X, reference_labels=data.y, k=7)
    ids, d2 = brute_nearest(queries, data.X, 7)
    assert len(out) == len(queries)
    for e, id_row, d_row in zip(out, ids, d2):
        assert [x.index for x in e.exemplars] == id_row.tolist()
        np.testing.assert_allclose([x.distance for x in e.exemplars], np.sqrt(d_row), rtol=1e-10)
        assert [x.label for x in e.exemplars] == data.y[id_row].tolist()
        assert "Euclidean" in e.exemplar_metric


def test_knn_exemplars_come_from_its_bank(data, queries):
    det = unseen.KNN(k=10).fit(data.X, data.y)
    out = unseen.explain(det, queries, k=4)  # no reference: the bank and its labels
    ids, d2 = brute_nearest(normalise(queries), normalise(data.X), 4)
    for e, id_row, d_row in zip(out, ids, d2):
        assert [x.index for x in e.exemplars] == id_row.tolist()
        np.testing.assert_allclose([x.distance for x in e.exemplars], d_row, rtol=1e-4, atol=1e-7)
        assert [x.label for x in e.exemplars] == data.y[id_row].tolist()
    # The ID comparison uses leave-one-out k-th distances of the bank rows (every row: the bank is small).
    B = normalise(data.X)
    full = ((B[:, None, :] - B[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(full, np.inf)
    loo = np.sort(full, axis=1)[:, 9]
    e = out[-1]
    assert e.driver == "k-th neighbour distance"
    np.testing.assert_allclose(e.component_baseline["k-th neighbour distance"], loo.mean(), rtol=1e-4)
    np.testing.assert_allclose(e.component_percentile["k-th neighbour distance"], np.mean(loo >= -e.score), atol=1e-9)
    np.testing.assert_allclose(e.score_percentile, np.mean(-loo <= e.score), atol=1e-9)


def test_per_class_values_are_the_mahalanobis_formula(data, maha, queries):
    means = np.stack([data.X[data.y == c].mean(0) for c in range(5)])
    S = sum((data.X[data.y == c] - means[c]).T @ (data.X[data.y == c] - means[c]) for c in range(5))
    P = pinvh(S / len(data.X))
    md = np.stack([np.einsum("ij,jk,ik->i", queries - m, P, queries - m) for m in means], axis=1)
    out = unseen.explain(maha, queries, n_classes=5)
    for e, row in zip(out, md):
        assert [c.label for c in e.classes] == np.argsort(row).tolist()  # closest first
        np.testing.assert_allclose([c.value for c in e.classes], np.sort(row), rtol=1e-6)
        np.testing.assert_allclose(e.components["nearest-class MD^2"], row.min(), rtol=1e-6)
        assert e.exemplars == [] and e.component_baseline is None  # no reference given
        assert "pass reference=" in str(e)
    assert len(unseen.explain(maha, queries[:1], n_classes=2)[0].classes) == 2


def test_rmds_terms_add_up_to_the_score(data, queries):
    det = unseen.RelativeMahalanobis().fit(data.X, data.y)
    for e in unseen.explain(det, queries, reference=data.X):
        assert e.additive
        np.testing.assert_allclose(e.components["class term"] + e.components["background term"], e.score, rtol=1e-9)
        np.testing.assert_allclose(e.classes[0].value, -e.score, rtol=1e-9)


def vim_setup():
    """Features whose head lives in the top-4 (principal) coordinates; the residual space is the other 12."""
    rng = np.random.default_rng(5)
    n, D = 800, 16
    scale = np.r_[np.full(4, 3.0), np.full(12, 0.1)]
    X = rng.normal(size=(n, D)) * scale + np.r_[np.full(4, 5.0), np.zeros(12)]
    W = np.zeros((3, D))
    W[:, :4] = rng.normal(size=(3, 4))
    b = np.zeros(3)
    return X, W, b


def test_vim_driver_flips_between_residual_and_energy():
    X, W, b = vim_setup()
    det = unseen.ViM(dim=4).fit(X, head=(W, b))
    base = X[:1]
    huge_residual = base + 50.0 * np.eye(16)[10]  # off the principal space: logits unchanged
    low_energy = base - 100.0 * (np.linalg.pinv(W) @ np.ones(3))  # in W's row space: every logit drops by 100
    np.testing.assert_allclose(low_energy @ W.T, base @ W.T - 100.0, atol=1e-9)
    r, e = unseen.explain(det, np.vstack([huge_residual, low_energy]), reference=X)
    assert r.verdict == e.verdict == "unfamiliar"
    assert r.driver == "residual" and e.driver == "energy"
    for ex in (r, e):
        np.testing.assert_allclose(ex.components["energy"] + ex.components["residual"], ex.score, rtol=1e-9)
    np.testing.assert_allclose(e.components["energy"], logsumexp(low_energy @ W.T + b), rtol=1e-9)
    assert e.component_baseline["energy"] - e.components["energy"] > 50
    assert "energy pulled the score down most" in e.reason
    # An ID row is accepted, and the explanation says so.
    assert unseen.explain(det, X[1:2], reference=X)[0].verdict == "known"


def test_she_classes_and_top_logits(data, queries):
    det = unseen.SHE().fit(data.X, data.y, head=data.head)
    f = data.logits(queries)
    p = softmax(f, axis=1)
    for e, q, f_row, p_row in zip(unseen.explain(det, queries, n_classes=3), queries, f, p):
        inner = det.patterns_ @ q
        assert [c.label for c in e.classes] == np.argsort(-inner)[:3].tolist()
        np.testing.assert_allclose([c.value for c in e.classes], np.sort(inner)[::-1][:3], rtol=1e-10)
        top = np.argsort(-f_row)[:3]
        assert [t.label for t in e.top_classes] == top.tolist()
        np.testing.assert_allclose([t.logit for t in e.top_classes], f_row[top], rtol=1e-10)
        np.testing.assert_allclose([t.probability for t in e.top_classes], p_row[top], rtol=1e-8, atol=1e-300)


def test_fdbd_boundary_distances(data, queries):
    det = unseen.FDBD().fit(data.X, head=data.head)
    W, b = data.head
    for e, q in zip(unseen.explain(det, queries, n_classes=5), queries):
        f = W @ q + b
        c = int(np.argmax(f))
        bd = np.array([0.0 if j == c else abs(f[c] - f[j]) / np.linalg.norm(W[c] - W[j]) for j in range(5)])
        got = {cv.label: cv.value for cv in e.classes}
        np.testing.assert_allclose([got[j] for j in range(5)], bd, rtol=1e-9, atol=1e-12)
        ratio = e.components["boundary distance sum"] / e.components["distance to the mean feature"]
        np.testing.assert_allclose(ratio, e.score, rtol=1e-9)


def test_ensemble_driver_is_the_least_typical_member(data):
    det = unseen.Ensemble(members=["knn", "energy"]).fit(data.X, data.y, head=data.head)
    P = det.member_probabilities(data.X_ood[:5])
    for e, p in zip(unseen.explain(det, data.X_ood[:5]), P):
        assert e.component_percentile == pytest.approx({"knn": p[0], "energy": p[1]})
        if e.verdict == "unfamiliar":
            assert e.driver == ["knn", "energy"][int(np.argmin(p))]


def test_nnguide_exemplars_are_its_most_similar_bank_rows(data, queries):
    det = unseen.NNGuide(k=10, alpha=0.2).fit(data.X, head=data.head)
    sims = normalise(queries) @ det.bank_.astype(np.float64).T
    for e, s in zip(unseen.explain(det, queries, k=3), sims):
        top = np.argsort(-s)[:3]
        assert [x.index for x in e.exemplars] == det.bank_index_[top].tolist()
        np.testing.assert_allclose([x.distance for x in e.exemplars], -s[top], rtol=1e-5)


def test_json_round_trip_and_summary(data, maha, queries):
    out = unseen.explain(maha, queries, reference=data.X, reference_labels=data.y, k=3)
    text = json.dumps([e.to_dict() for e in out])
    back = [Explanation.from_dict(d) for d in json.loads(text)]
    assert back == out
    flagged = next(e for e in out if e.verdict == "unfamiliar")
    s = str(flagged)
    assert s.startswith(f"row {flagged.row}: UNFAMILIAR") and "why:" in s
    assert f"#{flagged.exemplars[0].index}" in s and "squared Mahalanobis distance" in s


def test_explain_errors(data, maha, queries):
    with pytest.raises(NotFittedError):
        unseen.explain(unseen.Mahalanobis(), queries)
    with pytest.raises(InputError, match="fitted on 32 features"):
        unseen.explain(maha, queries[:, :5])
    with pytest.raises(InputError, match="reference"):
        unseen.explain(maha, queries, reference=data.X[:, :5])
    with pytest.raises(InputError, match="labels for"):
        unseen.explain(maha, queries, reference=data.X, reference_labels=data.y[:10])
    with pytest.raises(InputError, match="pass reference="):
        unseen.explain(maha, queries, reference_labels=data.y)
    with pytest.raises(InputError, match="k must be"):
        unseen.explain(maha, queries, k=0)
    with pytest.raises(InputError, match="fitted unseen detector"):
        unseen.explain("knn", queries)


@pytest.mark.filterwarnings("ignore::UserWarning")  # experimental detectors warn at fit
@pytest.mark.parametrize("name", [info.name for info in unseen.list_detectors()])
def test_every_registered_detector_can_be_explained(data, name):
    cls = unseen.registry.builtin_detectors()[name]
    det = data.fit(cls)
    X = data.inputs(cls, data.X)
    Q = data.inputs(cls, np.vstack([data.X_test[:2], data.X_ood[:2]]))
    out = unseen.explain(det, Q, reference=X, reference_labels=data.y, k=3)
    assert [e.verdict for e in out] == ["known" if p == 1 else "unfamiliar" for p in det.predict(Q)]
    np.testing.assert_allclose([e.score for e in out], det.score_samples(Q))
    for e in out:
        assert len(e.exemplars) == 3 and e.components and str(e)
        json.dumps(e.to_dict())
