"""Fixtures of the service tests: a real PostgreSQL server (Debian's postgresql, started for the session as the
postgres OS user on 127.0.0.1 and a free port, stopped at the end), a store on each of SQLite and PostgreSQL,
and a small model repository (a detector, a conformal flagger, an open-set classifier, a text model)."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import unseen
from unseen.decisions import ConformalFlagger, OpenSetClassifier
from unseen.exceptions import MissingDependencyError

from ._support import D, Models, make_features, write_version

_db_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole session (fails in CI when PostgreSQL is missing, skips elsewhere)."""
    from unseen.service.tempdb import TemporaryPostgres

    try:
        pg = TemporaryPostgres()
    except MissingDependencyError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh, empty store: a SQLite file, or a new schema on the session's PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'unseen.db'}"
        return
    pg = request.getfixturevalue("postgres")
    name = f"t{next(_db_names)}_{os.getpid()}"
    yield pg.create_schema(name)
    pg.drop_schema(name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'unseen.db'}"


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Models:
    """A model repository: knn (detector), knn-conformal (flagger), openset (open-set classifier)."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("models")
    X_all, y_all = make_features(0, 1000)
    X, y = X_all[:500], y_all[:500]
    X_cal, X_test = X_all[500:700], X_all[700:]
    rng = np.random.default_rng(1)
    X_ood = (np.abs(rng.normal(size=(100, D))) * 6).astype(np.float32)
    knn = unseen.KNN(k=5).fit(X)
    write_version(
        root, "knn", "1", knn, {"description": "test knn", "sample_rate": 0.5}, features=X, labels=y, calibration=X_cal
    )
    flagger = ConformalFlagger(unseen.KNN(k=5).fit(X), alpha=0.1).calibrate(X_cal)
    write_version(root, "knn-conformal", "1", flagger, {"sample_rate": 1.0}, features=X, labels=y)
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    osc = OpenSetClassifier(unseen.KNN(k=5)).fit(X, y, classifier=clf).calibrate(X_cal, y_all[500:700])
    write_version(root, "openset", "1", osc, {"class_names": ["a", "b", "c"]}, features=X, labels=y, calibration=X_cal)
    return Models(root, X, y, X_cal, X_test, X_ood, knn, flagger, osc)
