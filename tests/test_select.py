"""unseen.bench.select: a detector chosen from ID data alone, judged on the real (unseen) test OOD sets."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

import unseen
from tests._digits import load_digits_open_set, train_model
from tests.test_bench import FAR, NEAR, digits_data
from unseen.bench import Selection, select
from unseen.exceptions import InputError

select_module = importlib.import_module("unseen.bench.selection")

# A mix of families with clearly different quality on digits (logits, distance, subspace, shaping, open set).
CANDIDATES = ["msp", "energy", "knn", "mahalanobis", "gaussian", "vim", "residual", "react", "she", "openmax", "neco"]


def _train_val(seed=0):
    d = digits_data(seed)
    return d, (d.X_train, d.y_train, d.X_val, d.y_val)


def _test_auroc(name, params, d):
    det = unseen.get_detector(name, **params)
    det.fit(d.X_train, d.y_train, head=d.head if type(det).takes_head() else None)
    s_id = det.score_samples(d.X_test)
    return np.mean([unseen.metrics.auroc(s_id, det.score_samples(d.ood[k])) for k in (NEAR, FAR)])


@pytest.fixture(scope="module")
def chosen():
    d, split = _train_val(0)
    return d, select(*split, head=d.head, candidates=CANDIDATES, seed=0)


def test_choice_beats_the_median_detector_on_real_test_ood(chosen):
    d, sel = chosen
    assert isinstance(sel, Selection)
    test = {name: _test_auroc(name, params, d) for name, params in sel.tuned.items()}
    chosen_test = _test_auroc(sel.name, sel.params, d)
    assert chosen_test > np.median(list(test.values()))
    assert chosen_test >= sorted(test.values())[-3]  # among the top three of eleven


def test_selection_fields(chosen):
    d, sel = chosen
    assert set(sel.validation) >= set(CANDIDATES)
    assert sel.validation[sel.label] == max(v for k, v in sel.validation.items() if k.startswith(sel.name))
    assert sel.label in sel.reason and "held-out classes" in sel.reason and "feature permutation" in sel.method
    assert sel.tuned["knn"]["k"] in (1, 5, 10, 50)
    rebuilt = unseen.get_detector(sel.name, **sel.params)
    assert type(rebuilt) is type(sel.detector)
    # fitted on train, threshold calibrated on val: accepts ~tpr of the validation rows
    assert np.mean(sel.detector.predict(d.X_val) == 1) == pytest.approx(sel.detector.tpr, abs=0.02)
    # every grid point and synthetic set is kept
    assert {"knn(k=1)", "knn(k=50)"} <= set(sel.per_set)
    sets = sel.per_set["knn(k=1)"]
    # with labels: two partitions of the classes into three held-out folds (a fold drawn twice counts once),
    # class interpolation, and feature permutation (reported, not scored)
    held = [k for k in sets if k.startswith("held-out classes")]
    assert 4 <= len(held) <= 6
    assert set(sets) - set(held) == {"class interpolation", "feature permutation"}


def test_never_sees_test_data():
    params = inspect.signature(select).parameters
    assert not any("test" in p for p in params)
    # that changing the test and OOD arrays changes nothing is shown end to end in
    # tests/test_bench.py::test_test_and_ood_data_cannot_change_tuning_or_selection


def test_real_validation_outliers_replace_synthetic_ones():
    d, split = _train_val(0)
    rng = np.random.default_rng(0)
    # scrambled validation digits, through the same features: a far-OOD validation set
    data = load_digits_open_set(0)
    features, _ = train_model(*data["train"], seed=0)
    scrambled = np.stack([row[rng.permutation(row.size)] for row in data["val"][0]])
    sel = select(
        *split,
        head=d.head,
        candidates=["energy", "knn"],
        ood_val={"scrambled val": features(scrambled)},
        ensemble=False,
    )
    assert "real validation outliers" in sel.method and "scrambled val" in sel.method
    assert all(set(sets) == {"scrambled val"} for sets in sel.per_set.values())
    assert sel.name == "knn"  # on scrambled digits KNN (test AUROC 1.00) beats Energy (0.91)


def test_without_labels_or_validation_rows():
    d = digits_data(0)
    sel = select(d.X_train, candidates=["knn", "gaussian", "neco"], ensemble=False)
    assert "held-out" not in sel.method and "20% of the training rows" in sel.method
    assert "k-means clusters" in sel.method  # near-OOD from moving rows between pseudo-classes
    assert set(sel.per_set["knn(k=1)"]) == {"class interpolation", "feature permutation"}
    assert sel.name in {"knn", "gaussian", "neco"}
    assert sel.detector.n_features_in_ == d.X_train.shape[1]
    # default candidates without labels or head: only feature detectors that need neither
    auto = select(d.X_train[:300], ensemble=False)
    assert {"knn", "gaussian"} <= set(auto.validation)
    assert not {"msp", "mahalanobis", "vim"} & set(auto.validation)
    assert "head" in auto.errors["msp"] and "labels" in auto.errors["mahalanobis"]


def test_ensemble_of_the_top_three(monkeypatch):
    monkeypatch.setattr(select_module, "ENSEMBLE_MARGIN", -1.0)  # accept any ensemble, to test its construction
    d, split = _train_val(0)
    sel = select(*split, head=d.head, candidates=["msp", "energy", "knn", "vim", "mahalanobis"], ensemble=True)
    assert sel.name == "ensemble" and sel.label.startswith("ensemble(")
    members = [m[0] for m in sel.params["members"]]
    families = [unseen.get_detector(m).family for m in members]
    assert len(members) == 3 and len(set(families)) == 3  # one per family
    assert "beats the best single detector" in sel.reason
    assert isinstance(sel.detector, unseen.Ensemble)
    s = sel.detector.score_samples(d.X_test)
    assert s.shape == (len(d.X_test),)


def test_held_out_class_tasks_refit_the_head_on_kept_classes():
    d = digits_data(0)
    tasks, how = select_module._held_out_tasks(np.random.default_rng(0), d.X_train, d.y_train, d.X_val, d.y_val, d.head)
    assert len(tasks) == 3 and "3 folds" in how
    held_all = []
    for t in tasks:
        (name,) = t.ood
        held = [int(c) for c in name.split("[")[1].rstrip("]").split(",")]
        held_all += held
        kept = np.setdiff1d(np.arange(6), held)
        W, b = t.head
        assert W.shape == (kept.size, d.X_train.shape[1]) and b.shape == (kept.size,)
        assert not np.allclose(W, d.head[0][kept])  # a probe that never saw the held-out classes
        assert np.mean((t.X_id @ W.T + b).argmax(1) == t.y_id) > 0.9  # ... and classifies the kept ones
        assert set(np.unique(t.y_fit)) == set(range(kept.size))  # labels renumbered 0..K-1
        assert len(t.X_fit) == np.isin(d.y_train, kept).sum()
        assert len(t.ood[name]) == np.isin(d.y_val, held).sum()
    assert sorted(held_all) == list(range(6))  # each class held out exactly once


def test_input_errors():
    d, split = _train_val(0)
    with pytest.raises(InputError, match="Unknown detector"):
        select(*split, candidates=["nope"])
    with pytest.raises(InputError, match="y_val was given without X_val"):
        select(d.X_train, d.y_train, None, d.y_val)
    with pytest.raises(InputError, match="no candidate detector can run"):
        select(d.X_train, candidates=["msp"])
    with pytest.raises(InputError, match="ood_val"):
        select(*split, candidates=["knn"], ood_val=np.ones((5, 3)))
    with pytest.raises(InputError, match="neither a detector name"):
        select(*split, candidates=[42])


def test_class_interpolation_keeps_the_rows_own_noise():
    """Rows are moved between class means; unlike mixup, their within-class noise is not averaged away."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    X = np.column_stack([10.0 * y, np.zeros(2000)]) + rng.normal(size=(2000, 2))
    Z, how = select_module._interpolate(np.random.default_rng(1), X, y)
    assert how == "classes" and Z.shape == X.shape
    assert 0.9 < Z[:, 1].std() < 1.1  # mixup of two rows: about 0.75
    assert np.all((Z[:, 0] > 3 - 4.5) & (Z[:, 0] < 7 + 4.5))  # between the class means (0 and 10) up to noise
    assert 4.5 < Z[:, 0].mean() < 5.5


def test_binary_probe_head_is_a_two_row_softmax():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    X = rng.normal(size=(300, 5)) + 2.0 * y[:, None]
    W, b = select_module._probe_head(X, y, 2)
    assert W.shape == (2, 5) and b.shape == (2,)
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1.0, max_iter=300).fit(X, y)
    logits = X @ W.T + b
    p1 = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
    np.testing.assert_allclose(p1, lr.predict_proba(X)[:, 1], atol=1e-6)


def test_geometry_respecting_far_proxies():
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(400, 12))) @ rng.normal(size=(12, 12))
    G = select_module._moment_matched(np.random.default_rng(1), X)
    # exactly the sample mean's neighbourhood and covariance in expectation; here: close on 400 rows
    assert G.shape == X.shape
    np.testing.assert_allclose(G.mean(0), X.mean(0), atol=0.35 * X.std(0).max())
    np.testing.assert_allclose(np.cov(G.T), np.cov(X.T), atol=0.25 * np.abs(np.cov(X.T)).max())
    N = select_module._norm_shifted(np.random.default_rng(1), X)
    mu = X.mean(0)
    t = np.linalg.norm(N - mu, axis=1) / np.linalg.norm(X - mu, axis=1)
    cos = np.einsum("ij,ij->i", N - mu, X - mu) / (np.linalg.norm(N - mu, axis=1) * np.linalg.norm(X - mu, axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-9)  # same direction from the mean
    assert np.all(((t >= 0.25) & (t <= 0.5)) | ((t >= 2.0) & (t <= 3.0)))


def test_criterion_is_the_mean_of_the_near_proxies():
    d, split = _train_val(0)
    sel = select(*split, head=d.head, candidates=["msp", "knn", "vim"])
    for label, sets in sel.per_set.items():
        held = [v for k, v in sets.items() if k.startswith("held-out classes")]
        want = np.mean([np.mean(held), sets["class interpolation"]])
        assert sel.validation[label.split("(")[0]] >= want - 1e-12  # the detector's best setting
    assert sel.validation["msp"] == pytest.approx(
        np.mean(
            [
                np.mean([v for k, v in sel.per_set["msp"].items() if k.startswith("held-out classes")]),
                sel.per_set["msp"]["class interpolation"],
            ]
        ),
        abs=1e-12,
    )
    assert "reported, not scored" in sel.method  # feature permutation never decides


def test_logits_as_features_drop_the_held_out_classes_columns():
    d = digits_data(0)
    L_tr, L_va = d.logits(d.X_train), d.logits(d.X_val)
    tasks, how = select_module._held_out_tasks(
        np.random.default_rng(0), L_tr, d.y_train, L_va, d.y_val, None, columns_are_classes=True
    )
    assert "logit columns removed" in how
    for t in tasks:
        (name,) = t.ood
        held = [int(c) for c in name.split("[")[1].rstrip("]").split(",")]
        assert t.X_fit.shape[1] == t.X_id.shape[1] == t.ood[name].shape[1] == 6 - len(held)
    sel = select(L_tr, d.y_train, L_va, d.y_val, candidates=["msp", "energy", "knn"], logits=True)
    assert {"msp", "energy", "knn"} == set(sel.validation)  # logit detectors run on logits without a head
    with pytest.raises(InputError, match="no column among"):
        select(L_tr[:, :3], d.y_train, logits=True, candidates=["msp"])
