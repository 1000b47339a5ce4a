"""A seeded corpus of malformed requests against the in-process app: none may give a 5xx, every 2xx is one stored
event, and the store stays consistent."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from fastapi.testclient import TestClient

from unseen.service import create_app

from ._support import D, infer_body

N_MUTANTS = 300
JUNK = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    -(2**70),
    1e308,
    -1e-320,
    0.5,
    "",
    "x",
    "FP32",
    "BYTES",
    "NaN",
    "1e999",
    [],
    [[]],
    [None],
    [1, "a"],
    {},
    {"a": []},
    "\u0000",
    "\ud800",
    "é" * 50,
    [[1.0] * D] * 2,
    list(range(D * 2)),
]
PATHS = [
    "/v2/models/knn/infer",
    "/v2/models/knn-conformal/infer",
    "/v2/models/openset/versions/1/infer",
    "/v2/models/knn/versions/9/infer",
    "/v2/models/%ff%fe/infer",
    "/v2/models/" + "a" * 300 + "/infer",
    "/v2/models/knn%2F..%2F..%2Fopenset/infer",
    "/v2/models//infer",
    "/v2/models/knn/infer?x=%00",
    "/v2/repository/models/..%2F/load",
    "/v2/monitor/summary?window=-1",
    "/v2/monitor/unfamiliar?model=%2E%2E",
    "/v2/monitor/summary?windows=99999999999999999999",
    "/v2/monitor/unfamiliar?model=knn&limit=x",
]


def mutate(rng: random.Random, base: dict) -> bytes:
    body = json.loads(json.dumps(base))
    kind = rng.randrange(9)
    tensor = body["inputs"][0]
    if kind == 0:  # replace a field of the tensor
        tensor[rng.choice(["name", "shape", "datatype", "data", "parameters"])] = rng.choice(JUNK)
    elif kind == 1:  # drop a field
        del tensor[rng.choice(list(tensor))]
    elif kind == 2:  # replace a top-level field
        body[rng.choice(["inputs", "parameters", "outputs", "id"])] = rng.choice(JUNK)
    elif kind == 3:  # poison one value
        tensor["data"][rng.randrange(len(tensor["data"]))] = rng.choice(JUNK)
    elif kind == 4:  # a wrong shape
        tensor["shape"] = [rng.randrange(-2, 40) for _ in range(rng.randrange(0, 4))]
    elif kind == 5:  # truncate the text
        text = json.dumps(body).encode()
        return text[: rng.randrange(len(text))]
    elif kind == 6:  # flip bytes
        text = bytearray(json.dumps(body).encode())
        for _ in range(rng.randrange(1, 6)):
            text[rng.randrange(len(text))] = rng.randrange(256)
        return bytes(text)
    elif kind == 7:  # parameters
        body["parameters"] = {"explain": rng.choice(JUNK)}
    else:  # a valid request (so that 200s and the store are exercised too)
        body["id"] = f"fuzz-{rng.randrange(10**9)}"
    return json.dumps(body).encode()


def corpus(seed: int = 0) -> list[tuple[str, str, bytes, dict]]:
    rng = random.Random(seed)
    base = infer_body(np.abs(np.random.default_rng(seed).normal(size=(2, D))))
    items: list[tuple[str, str, bytes, dict]] = []
    fixed = [
        b"",
        b"null",
        b"[]",
        b'"x"',
        b"1e999",
        b"{" * 100_000,
        b"[" * 5000 + b"]" * 5000,
        b"\xff\xfe\x00",
        b'{"inputs": [' + b'{"name": 1},' * 1000 + b"{}]}",
        json.dumps({"inputs": [base["inputs"][0]] * 3}).encode(),
        json.dumps({"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}).encode(),
    ]
    for body in fixed:
        items.append(("POST", "/v2/models/knn/infer", body, {"content-type": "application/json"}))
    for _ in range(N_MUTANTS):
        headers = {"content-type": rng.choice(["application/json", "text/plain", "application/octet-stream", ""])}
        if rng.random() < 0.1:
            headers["x-request-id"] = rng.choice([b"", b" ", b"a" * 200, b"ok-id", "é".encode(), b"\t"])
        items.append(
            ("POST", rng.choice(PATHS[:4]) if rng.random() < 0.9 else rng.choice(PATHS), mutate(rng, base), headers)
        )
    for path in PATHS:
        for method in ("GET", "POST", "PUT", "DELETE"):
            items.append((method, path, b"{}", {}))
    return items


def test_no_malformed_request_gives_a_5xx_and_the_store_stays_consistent(models, sqlite_url):
    app = create_app(models=str(models.root), store=sqlite_url, auth=False, reload_interval=0, max_rows=64)
    statuses: dict[int, int] = {}
    acked: set[str] = set()
    with TestClient(app, raise_server_exceptions=False) as c:
        for method, path, body, headers in corpus():
            r = c.request(method, path, content=body, headers=headers)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (method, path, body[:300], r.text[:500])
            assert r.headers["content-type"].startswith(("application/json", "text/plain", "text/html")), path
            if r.status_code >= 400 and r.headers["content-type"].startswith("application/json"):
                assert isinstance(r.json().get("error", r.json().get("detail")), str)
            if r.status_code == 200 and path.split("?")[0].endswith("/infer"):
                acked.add(r.json()["id"])
        store = c.app.state.service.store
        assert store.verify() == []
        ids = store.request_ids()
        assert len(ids) == len(set(ids)) and set(ids) == acked
    assert statuses.get(200, 0) >= 20 and sum(v for k, v in statuses.items() if 400 <= k < 500) > N_MUTANTS // 2


@pytest.mark.parametrize(
    "header",
    [
        b"Bearer",
        b"Bearer ",
        b"bearer x",
        b"Bearer " + b"x" * 5000,
        b"Basic Zm9vOmJhcg==",
        "Bearer unseen_é".encode(),
        b"Bearer \x7f",
    ],
)
def test_junk_credentials_are_401_not_500(models, sqlite_url, header):
    app = create_app(models=str(models.root), store=sqlite_url, reload_interval=0)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v2/models/knn/infer", json=infer_body(np.ones((1, D))), headers={"Authorization": header})
        assert r.status_code == 401, r.text
