"""The service in-process: Open Inference Protocol v2 endpoints, what each kind of model answers (checked against
the library's own results), replay of retried ids, repository reloads, bad input, limits, CORS, auth, metrics."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

import unseen
from unseen.service import create_app
from unseen.service.store import Store

from ._support import D, infer_body, outputs, write_version


@pytest.fixture
def repo(models, tmp_path):
    """A private copy of the test repository (tests here add, change and remove versions)."""
    root = tmp_path / "models"
    shutil.copytree(models.root, root)
    return root


@pytest.fixture
def client(repo, sqlite_url):
    app = create_app(models=str(repo), store=sqlite_url, auth=False, reload_interval=0)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def shared(models, tmp_path_factory):
    """One service for the tests that only read (the repository is not changed, events accumulate)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('shared') / 'unseen.db'}"
    app = create_app(models=str(models.root), store=url, auth=False, reload_interval=0)
    with TestClient(app) as c:
        yield c


def store_of(client) -> Store:
    return client.app.state.service.store


# ------------------------------------------------------------------------------------------ health, metadata


def test_health_and_server_metadata(shared):
    assert shared.get("/v2/health/live").json() == {"live": True}
    assert shared.get("/v2/health/ready").json() == {"ready": True, "reasons": []}
    meta = shared.get("/v2").json()
    assert meta["name"] == "unseen" and meta["version"] == unseen.__version__
    assert shared.get("/v2/models/knn/ready").json() == {"name": "knn", "version": "1", "ready": True}


def test_model_metadata_names_width_threshold_calibration_and_alpha(shared, models):
    knn = shared.get("/v2/models/knn").json()
    assert knn["name"] == "knn" and knn["versions"] == ["1"] and knn["platform"] == "unseen"
    assert knn["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, D]}]
    assert [o["name"] for o in knn["outputs"]] == ["score", "decision", "verdict"]
    p = knn["parameters"]
    assert p["kind"] == "detector" and p["detector"] == "knn" and p["n_features"] == D and p["head"] is False
    assert p["threshold"] == pytest.approx(models.knn.offset_)
    flagged = int((models.knn.predict(models.X_cal) == -1).sum())  # its threshold on the held-out rows of reference.npz
    assert p["monitor"] == {"calibration_flags": flagged, "n_calibration": 200}
    flag = shared.get("/v2/models/knn-conformal/versions/1").json()["parameters"]
    assert (flag["kind"], flag["alpha"], flag["calibration_size"], flag["mode"]) == ("flagger", 0.1, 200, "marginal")
    assert flag["monitor"] == {"alpha": 0.1, "n_calibration": 200}
    osc = shared.get("/v2/models/openset").json()
    assert [o["name"] for o in osc["outputs"]] == ["score", "decision", "label", "class_name", "verdict"]
    assert osc["parameters"]["classes"] == [0, 1, 2] and osc["parameters"]["class_names"] == ["a", "b", "c"]
    assert osc["parameters"]["head"] is True and osc["parameters"]["unknown_label"] == -1


# ------------------------------------------------------------------------------------------ inference


def test_detector_scores_and_verdicts_are_the_librarys(shared, models):
    X = np.vstack([models.X_test[:20], models.X_ood[:5]])
    r = shared.post("/v2/models/knn/infer", json=infer_body(X, id="d-1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("knn", "1", "d-1")
    assert body["parameters"]["durable"] is True and r.headers["x-request-id"] == "d-1"
    out = outputs(r)
    np.testing.assert_array_equal(out["score"], models.knn.score_samples(X))
    np.testing.assert_array_equal(out["decision"], models.knn.decision_function(X))
    assert out["verdict"] == ["known" if v == 1 else "unfamiliar" for v in models.knn.predict(X)]
    assert out["verdict"][-5:] == ["unfamiliar"] * 5
    stored = store_of(shared).get_event("d-1")
    assert stored["scores"] == out["score"] and stored["n_flagged"] == out["verdict"].count("unfamiliar")
    assert stored["id"] == body["parameters"]["event_id"]


def test_flagger_gives_conformal_p_values(shared, models):
    X = np.vstack([models.X_test[:30], models.X_ood[:3]])
    out = outputs(shared.post("/v2/models/knn-conformal/infer", json=infer_body(X)))
    np.testing.assert_allclose(out["p_value"], models.flagger.p_values(X), rtol=0, atol=0)
    assert out["verdict"] == ["unfamiliar" if f else "known" for f in models.flagger.flag(X)]
    assert "decision" not in out


def test_open_set_classifier_gives_a_class_or_unknown(shared, models):
    X = np.vstack([models.X_test[:30], models.X_ood[:3]])
    out = outputs(shared.post("/v2/models/openset/infer", json=infer_body(X)))
    assert out["label"] == models.openset.predict(X).tolist()
    np.testing.assert_allclose(out["decision"], models.openset.decision_function(X))
    names = ["a", "b", "c"]
    assert out["class_name"] == ["unknown" if lab == -1 else names[lab] for lab in out["label"]]
    assert out["label"][-3:] == [-1, -1, -1]


def test_explanations_are_unseen_explain(shared, models):
    X = np.vstack([models.X_test[:2], models.X_ood[:1]])
    r = shared.post("/v2/models/knn/infer", json=infer_body(X, explain=3))
    got = r.json()["parameters"]["explanations"]
    want = unseen.explain(models.knn, X.astype(np.float32), reference=models.X, reference_labels=models.y, k=3)
    assert got == json.loads(json.dumps([e.to_dict() for e in want]))
    assert got[2]["verdict"] == "unfamiliar" and len(got[2]["exemplars"]) == 3 and got[2]["reason"]


def test_outputs_can_be_chosen_and_nested_data_is_read(shared, models):
    X = models.X_test[:4]
    body = {
        "inputs": [{"name": "x", "shape": [4, D], "datatype": "FP64", "data": X.astype(float).tolist()}],
        "outputs": [{"name": "verdict"}, {"name": "score"}],
    }
    r = shared.post("/v2/models/knn/infer", json=body)
    assert [o["name"] for o in r.json()["outputs"]] == ["verdict", "score"]
    np.testing.assert_allclose(outputs(r)["score"], models.knn.score_samples(X.astype(float)))


def test_a_retry_with_the_same_id_is_answered_from_the_store(client, models):
    X = np.vstack([models.X_test[:3], models.X_ood[:2]])
    first = client.post("/v2/models/openset/infer", json=infer_body(X), headers={"X-Request-Id": "retry-1"})
    again = client.post("/v2/models/openset/infer", json=infer_body(X, id="retry-1"))
    assert again.status_code == 200 and again.json()["parameters"]["replayed"] is True
    assert again.json()["outputs"] == first.json()["outputs"]
    assert again.json()["parameters"]["event_id"] == first.json()["parameters"]["event_id"]
    assert store_of(client).request_ids().count("retry-1") == 1
    other = client.post("/v2/models/openset/infer", json=infer_body(X[:2], id="retry-1"))
    assert other.status_code == 409 and "already used for a different request" in other.json()["error"]
    both = client.post("/v2/models/knn/infer", json=infer_body(X, id="a"), headers={"X-Request-Id": "b"})
    assert both.status_code == 400 and "differ" in both.json()["error"]


def test_samples_are_kept_for_drift_and_triage(client, models):
    X = np.vstack([models.X_test[:40], models.X_ood[:2]])
    client.post("/v2/models/knn-conformal/infer", json=infer_body(X, id="s-1"))  # sample_rate 1.0, at most 8 rows
    store = store_of(client)
    mv = client.app.state.service.repo.get("knn-conformal").version_id
    rnd = store.window_samples(mv, since_ms=0, until_ms=2**62, kind="random")
    flagged = store.window_samples(mv, since_ms=0, until_ms=2**62, kind="flagged")
    assert len(rnd) == 8 and len(flagged) == 1
    row = flagged[0]["row"]
    assert row in (40, 41) and np.array_equal(np.frombuffer(flagged[0]["features"], np.float32), X[row])
    for s in rnd:
        assert np.array_equal(np.frombuffer(s["features"], np.float32), X[s["row"]])


# ------------------------------------------------------------------------------------------ repository


def test_versions_reload_without_restart(client, repo, models):
    knn2 = unseen.KNN(k=9).fit(models.X)
    write_version(repo, "knn", "2", knn2)
    assert client.get("/v2/models/knn").json()["parameters"]["version"] == "1"  # not yet reloaded
    r = client.post("/v2/repository/models/knn/load")
    assert r.status_code == 200 and {v["version"] for v in r.json()["versions"]} == {"1", "2"}
    assert client.get("/v2/models/knn").json()["versions"] == ["1", "2"]
    X = models.X_test[:5]
    np.testing.assert_array_equal(
        outputs(client.post("/v2/models/knn/infer", json=infer_body(X)))["score"], knn2.score_samples(X)
    )
    np.testing.assert_array_equal(
        outputs(client.post("/v2/models/knn/versions/1/infer", json=infer_body(X)))["score"],
        models.knn.score_samples(X),
    )
    missing = client.post("/v2/models/knn/versions/7/infer", json=infer_body(X))
    assert missing.status_code == 404 and "has no version '7'; it has ['1', '2']" in missing.json()["error"]
    # a broken artifact: the version keeps serving what it had, and the index says why
    (repo / "knn" / "2" / "model.unseen").write_bytes(b"not a zip")
    client.post("/v2/repository/models/knn/load")
    entry = [e for e in client.post("/v2/repository/index").json() if e["version"] == "2"][0]
    assert entry["state"] == "READY" and "reload failed, serving the previous artifact" in entry["reason"]
    np.testing.assert_array_equal(
        outputs(client.post("/v2/models/knn/versions/2/infer", json=infer_body(X)))["score"], knn2.score_samples(X)
    )
    shutil.rmtree(repo / "knn" / "2")
    client.post("/v2/repository/models/knn/load")
    assert client.get("/v2/models/knn").json()["versions"] == ["1"]


def test_names_that_leave_the_repository_are_refused(client, repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "knn" / "evil").symlink_to(outside, target_is_directory=True)
    (repo / "escape").symlink_to(outside, target_is_directory=True)
    client.post("/v2/repository/models/knn/load")
    index = {(e["name"], e["version"]): e for e in client.post("/v2/repository/index").json()}
    assert (
        index[("knn", "evil")]["state"] == "UNAVAILABLE"
        and "outside the repository" in index[("knn", "evil")]["reason"]
    )
    assert index[("escape", "")]["state"] == "UNAVAILABLE"
    for path in [
        "/v2/models/..%2F..%2Fetc/infer",
        "/v2/models/%2E%2E/infer",
        "/v2/models/.hidden/infer",
        "/v2/models/knn/versions/..%2F1/infer",
        "/v2/models/escape/infer",
        "/v2/models/a%00b/infer",
    ]:
        r = client.post(path, json=infer_body(np.zeros((1, D))))
        assert r.status_code in (400, 404), (path, r.status_code)
        assert "error" in r.json()


# ------------------------------------------------------------------------------------------ bad input

GOOD = infer_body(np.ones((2, D)))


def with_tensor(**changes):
    body = json.loads(json.dumps(GOOD))
    body["inputs"][0].update(changes)
    return json.dumps(body).encode()


BAD = [
    (b"", 400, "body is empty"),
    (b"{not json", 400, "not valid JSON"),
    (
        b'{"inputs": [{"name": "f", "shape": [1, 8], "datatype": "FP32", "data": [NaN, 1, 1, 1, 1, 1, 1, 1]}]}',
        400,
        "NaN",
    ),
    (b"[1, 2]", 400, "Expected a JSON object"),
    (b'{"input": []}', 400, "Unknown field(s) ['input']"),
    (b'{"inputs": []}', 400, "exactly one tensor"),
    (with_tensor(shape=[2, 4]), 400, f"takes {D} features per row"),
    (with_tensor(shape=[16]), 400, f"shape must be [N, {D}]"),
    (with_tensor(shape=[3, D]), 400, "needs 24"),
    (with_tensor(shape=[0, D], data=[]), 400, "holds no rows"),
    (with_tensor(shape=[2, "8"]), 400, "list of integers"),
    (with_tensor(datatype="BYTES"), 400, "takes features, not text"),
    (with_tensor(datatype="FP128"), 400, "not supported"),
    (with_tensor(datatype="INT32"), 400, "fractional numbers"),
    (with_tensor(data=["1"] * 16), 400, "numbers only"),
    (with_tensor(data=[True] * 16), 400, "true/false"),
    (with_tensor(data=[1.0] * 15 + [True]), 400, "true/false among them"),
    (with_tensor(data=[[1.0] * D, [1.0] * 3]), 400, "ragged"),
    (with_tensor(data=[3.5e38] + [1.0] * 15), 400, "outside the FP32 range"),
    (with_tensor(data=[1e400] + [1.0] * 15), 400, "not valid JSON"),
    (with_tensor(data={"a": 1}), 400, "must be a list"),
    (with_tensor(extra=1), 400, "unknown ['extra']"),
    (json.dumps({**GOOD, "parameters": {"explain": 999}}).encode(), 400, "explain must be an integer from 0 to 20"),
    (json.dumps({**GOOD, "parameters": {"explian": 2}}).encode(), 400, "Unknown parameter(s) ['explian']"),
    (json.dumps({**GOOD, "outputs": [{"name": "nope"}]}).encode(), 400, "Unknown output(s) ['nope']"),
    (json.dumps({**GOOD, "id": "has space"}).encode(), 400, "is not valid"),
    (json.dumps({**GOOD, "id": 5}).encode(), 400, "'id' must be a string"),
]


@pytest.mark.parametrize("body,status,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_requests_get_a_4xx_that_says_what_was_expected(shared, body, status, message):
    r = shared.post("/v2/models/knn/infer", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_unknown_models_routes_and_methods(shared):
    before = store_of(shared).count_events()
    r = shared.post("/v2/models/nope/infer", json=GOOD)
    assert r.status_code == 404 and "serves ['knn', 'knn-conformal', 'openset']" in r.json()["error"]
    assert shared.get("/v2/nothing").status_code == 404
    assert shared.get("/v2/models/knn/infer").status_code == 405
    assert store_of(shared).count_events() == before


def test_row_and_body_limits(repo, sqlite_url):
    app = create_app(
        models=str(repo), store=sqlite_url, auth=False, reload_interval=0, max_rows=10, max_body_bytes=20_000
    )
    with TestClient(app) as c:
        r = c.post("/v2/models/knn/infer", json=infer_body(np.ones((11, D))))
        assert r.status_code == 413 and "limit is 10" in r.json()["error"]
        big = json.dumps(infer_body(np.ones((10, 400)))).encode()
        r = c.post("/v2/models/knn/infer", content=big)
        assert r.status_code == 413 and "limit is 20000" in r.json()["error"]

        def chunks():  # no Content-Length: the limit applies while reading
            for i in range(0, len(big), 4096):
                yield big[i : i + 4096]

        r = c.post("/v2/models/knn/infer", content=chunks())
        assert r.status_code == 413 and "exceeds 20000" in r.json()["error"]
        assert c.app.state.service.store.count_events() == 0


def test_cors_is_off_unless_configured(client, repo, sqlite_url):
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v2/models/knn/infer", headers=pre).headers
    assert "access-control-allow-origin" not in client.get("/v2", headers={"Origin": "https://app.example"}).headers
    app = create_app(
        models=str(repo), store=sqlite_url, auth=False, reload_interval=0, cors_origins=["https://app.example"]
    )
    with TestClient(app) as c:
        assert (
            c.options("/v2/models/knn/infer", headers=pre).headers["access-control-allow-origin"]
            == "https://app.example"
        )
        evil = {**pre, "Origin": "https://evil.example"}
        assert "access-control-allow-origin" not in c.options("/v2/models/knn/infer", headers=evil).headers


def test_a_failing_store_gives_503_and_nothing_is_acknowledged(client, models, monkeypatch):
    import sqlalchemy as sa

    def broken(batch):
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(store_of(client), "insert_events", broken)  # a unit test of the error path
    r = client.post("/v2/models/knn/infer", json=infer_body(models.X_test[:2], id="lost-1"))
    assert r.status_code == 503 and "nothing was kept" in r.json()["error"] and "lost-1" in r.json()["error"]
    monkeypatch.undo()
    assert store_of(client).get_event("lost-1") is None
    assert client.post("/v2/models/knn/infer", json=infer_body(models.X_test[:2], id="lost-1")).status_code == 200


# ------------------------------------------------------------------------------------------ auth


@pytest.fixture
def secured(repo, sqlite_url):
    app = create_app(models=str(repo), store=sqlite_url, reload_interval=0)
    with TestClient(app) as c:
        c.app.state.service.keys.ttl = 0.0  # no cache: revocation shows at once
        yield c


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_auth_401_without_a_key_403_outside_its_scope(secured, models):
    store = store_of(secured)
    knn_only = store.add_api_key("knn-client", ["model:knn"])
    monitor = store.add_api_key("grafana", ["monitor"])
    admin = store.add_api_key("ops", ["admin"])
    body = infer_body(models.X_test[:2])
    r = secured.post("/v2/models/knn/infer", json=body)
    assert (
        r.status_code == 401
        and r.headers["www-authenticate"].startswith("Bearer")
        and "Bearer KEY" in r.json()["error"]
    )
    assert secured.post("/v2/models/knn/infer", json=body, headers={"Authorization": "Basic abc"}).status_code == 401
    assert secured.post("/v2/models/knn/infer", json=body, headers=bearer("unseen_wrong")).status_code == 401
    assert secured.post("/v2/models/knn/infer", json=body, headers=bearer(knn_only)).status_code == 200
    r = secured.post("/v2/models/openset/infer", json=body, headers=bearer(knn_only))
    assert r.status_code == 403 and "may use knn, not model 'openset'" in r.json()["error"]
    assert secured.get("/v2/models/openset", headers=bearer(knn_only)).status_code == 403
    assert secured.post("/v2/models/knn/infer", json=body, headers=bearer(monitor)).status_code == 403
    assert secured.get("/metrics").status_code == 401
    assert secured.get("/metrics", headers=bearer(knn_only)).status_code == 403
    assert secured.get("/metrics", headers=bearer(monitor)).status_code == 200
    assert secured.get("/v2/monitor/summary", headers=bearer(monitor)).status_code == 200
    assert secured.post("/v2/repository/models/knn/load", headers=bearer(monitor)).status_code == 403
    assert secured.post("/v2/repository/models/knn/load", headers=bearer(admin)).status_code == 200
    assert [e["name"] for e in secured.post("/v2/repository/index", headers=bearer(knn_only)).json()] == ["knn"]
    # open without a key: health, the dashboard page (it asks for a key for its data)
    assert secured.get("/v2/health/ready").status_code == 200 and secured.get("/dashboard").status_code == 200
    assert (
        store.get_event(
            secured.post(
                "/v2/models/knn/infer", json=infer_body(models.X_test[:1], id="k-1"), headers=bearer(knn_only)
            ).json()["id"]
        )["key_id"]
        == store.list_api_keys()[0]["id"]
    )
    store.revoke_api_key("knn-client")
    assert secured.post("/v2/models/knn/infer", json=body, headers=bearer(knn_only)).status_code == 401


# ------------------------------------------------------------------------------------------ monitoring


def test_metrics_count_requests_and_export_the_ood_rate(client, models):
    for _ in range(3):
        client.post("/v2/models/knn/infer", json=infer_body(np.vstack([models.X_test[:8], models.X_ood[:2]])))
    client.post("/v2/models/knn/infer", content=b"{")
    text = client.get("/metrics").text
    assert 'unseen_requests_total{model="knn",status="200",version="1"} 3.0' in text
    assert 'unseen_requests_total{model="knn",status="400",version="1"} 1.0' in text
    assert 'unseen_rows_total{model="knn",verdict="unfamiliar",version="1"}' in text
    assert 'unseen_ood_rate{model="knn",version="1"}' in text and "unseen_ood_rate_bound" in text
    assert 'unseen_http_request_duration_seconds_count{method="POST",route="/v2/models/{name}/infer"} 4.0' in text
    assert "unseen_store_commit_seconds_count" in text


def test_monitor_endpoints(client, models):
    X = np.vstack([models.X_test[:30], models.X_ood[:10]])
    client.post("/v2/models/knn/infer", json=infer_body(X))
    report = client.get("/v2/monitor/summary?window=60&windows=3").json()
    (m,) = report["models"]
    assert m["name"] == "knn" and m["totals"] == {"events": 1, "rows": 40, "flagged": m["totals"]["flagged"]}
    w = [w for w in m["windows"] if w["rows"]][0]
    assert w["flagged"] >= 10 and w["alert"] and w["ks"]["p_value"] is not None
    un = client.get("/v2/monitor/unfamiliar?model=knn&k=2").json()
    (item,) = un["items"]
    assert item["explanation"]["verdict"] == "unfamiliar" and len(item["explanation"]["exemplars"]) == 2
    assert client.get("/v2/monitor/summary?window=abc").status_code == 400
    assert client.get("/v2/monitor/unfamiliar").status_code == 400


# ------------------------------------------------------------------------------------------ raw text


def test_a_model_with_a_built_in_encoder_takes_text(tmp_path, sqlite_url):
    pytest.importorskip("onnxruntime")
    from unseen.encoders import get_encoder

    enc = get_encoder("minilm-onnx")
    known = [
        f"a {w} made of {m}"
        for w in ("cup", "chair", "table", "knife", "bowl", "lamp", "box", "bottle")
        for m in ("wood", "glass", "steel", "clay", "plastic")
    ]
    X = enc.encode([t for t in known if t != "a bowl made of steel"])  # held out: a new mix of known words
    det = unseen.KNN(k=3).fit(X)
    write_version(tmp_path / "repo", "text", "1", det, {"encoder": "minilm-onnx"}, features=X)
    write_version(
        tmp_path / "repo", "wide", "1", unseen.KNN(k=3).fit(np.arange(150.0).reshape(30, 5)), {"encoder": "minilm-onnx"}
    )
    app = create_app(models=str(tmp_path / "repo"), store=sqlite_url, auth=False, reload_interval=0)
    with TestClient(app) as c:
        texts = ["a bowl made of steel", "the theory of relativity"]
        body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
        r = c.post("/v2/models/text/infer", json=body)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(outputs(r)["score"], det.score_samples(enc.encode(texts)), rtol=1e-6)
        assert outputs(r)["verdict"] == ["known", "unfamiliar"]
        feats = c.post("/v2/models/text/infer", json=infer_body(enc.encode(texts)))  # embeddings work too
        np.testing.assert_allclose(outputs(feats)["score"], outputs(r)["score"], rtol=1e-6)
        bad = c.post(
            "/v2/models/text/infer",
            json={"inputs": [{"name": "t", "shape": [2], "datatype": "BYTES", "data": ["ok", 5]}]},
        )
        assert bad.status_code == 400 and "data[1] must be a string" in bad.json()["error"]
        meta = c.get("/v2/models/text").json()
        assert meta["inputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [-1]}
        assert meta["parameters"]["encoder"] == "minilm-onnx"
        wide = [e for e in c.post("/v2/repository/index").json() if e["name"] == "wide"][0]
        assert wide["state"] == "UNAVAILABLE" and "gives 384 features but the model was fitted on 5" in wide["reason"]
        assert c.get("/v2/health/ready").status_code == 503
