"""Helpers of the service tests: synthetic features, writing repository versions, request bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import unseen

D = 8  # feature width of the test models


@dataclass
class Models:
    root: Path
    X: np.ndarray  # training features (n, D)
    y: np.ndarray
    X_cal: np.ndarray  # held-out ID rows
    X_test: np.ndarray  # more ID rows
    X_ood: np.ndarray  # far from the training data
    knn: object
    flagger: object
    openset: object
    texts: list[str] | None = None


def make_features(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    centers = np.abs(rng.normal(size=(3, D))) * 3
    y = rng.integers(0, 3, n)
    X = (np.abs(centers[y] + rng.normal(scale=0.5, size=(n, D)))).astype(np.float32)
    return X, y


def write_version(root: Path, name: str, version: str, model, config: dict | None = None, **reference) -> Path:
    folder = root / name / version
    folder.mkdir(parents=True, exist_ok=True)
    unseen.save(model, folder / "model.unseen")
    if reference:
        np.savez(folder / "reference.npz", **reference)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def infer_body(X, *, id=None, explain=None, datatype="FP32"):
    X = np.asarray(X)
    body = {"inputs": [{"name": "features", "shape": list(X.shape), "datatype": datatype, "data": X.ravel().tolist()}]}
    if id is not None:
        body["id"] = id
    if explain is not None:
        body["parameters"] = {"explain": explain}
    return body


def outputs(response) -> dict:
    return {o["name"]: o["data"] for o in response.json()["outputs"]}
