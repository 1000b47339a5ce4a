"""The README's Deploy section: its model-repository snippet runs and the service serves what it wrote."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from unseen.service import create_app

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_repository_snippet_gives_a_servable_model(tmp_path, monkeypatch):
    code = re.search(r"## Deploy\n.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README deploy", "exec"), namespace)
    app = create_app(models="models", store=f"sqlite:///{tmp_path / 'unseen.db'}", auth=False, reload_interval=0)
    X = np.vstack([namespace["X_cal"][:3], 5.0 * np.eye(16)[:1]])  # KNN compares directions: one lone feature
    with TestClient(app) as c:
        meta = c.get("/v2/models/knn-conformal").json()["parameters"]
        assert meta["alpha"] == 0.05 and meta["calibration_size"] == 200 and meta["reference"]["features"] == 500
        body = {"inputs": [{"name": "features", "shape": [4, 16], "datatype": "FP32", "data": X.ravel().tolist()}]}
        out = {o["name"]: o["data"] for o in c.post("/v2/models/knn-conformal/infer", json=body).json()["outputs"]}
    np.testing.assert_allclose(out["p_value"], namespace["flagger"].p_values(X.astype(np.float32)))
    assert out["verdict"][-1] == "unfamiliar"
