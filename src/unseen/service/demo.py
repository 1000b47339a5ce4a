"""The models ``unseen serve --demo`` serves, built in seconds from data on this machine.

=================  =====================================================================================
model              what it is
=================  =====================================================================================
``knn``            KNN (k = 10) on scikit-learn's digits 0-5 (64 pixel intensities in [0, 1]); decision
                   and verdict by its threshold (95 % of training digits accepted)
``knn-conformal``  the same KNN in a conformal flagger calibrated on 217 held-out digits: p-values,
                   flagged at p <= 0.05
``digits-openset`` open-set classifier: logistic regression on the pixels plus KNN: a digit 0-5 or -1
                   (unknown); its predicted classes feed the class-prior drift test
``wordnet``        raw text in: noun definitions embedded by MiniLM (``config.json`` names the encoder), an
                   open-set classifier over six WordNet supersenses (artifact, person, plant, animal,
                   substance, location) or "unknown"; only when the ``text`` extra and WordNet are installed
=================  =====================================================================================

Every version folder holds ``reference.npz`` (training features and labels, held-out calibration rows), so
explanations show training exemplars and the dashboard's drift tests have their reference.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_demo_repository", "demo_dir", "demo_inputs", "send_demo_traffic"]


def demo_dir() -> Path:
    """``$UNSEEN_DEMO_DIR``, else ``~/.cache/unseen/demo``: the demo's models, store and API key."""
    return Path(os.environ.get("UNSEEN_DEMO_DIR", Path.home() / ".cache" / "unseen" / "demo")).expanduser()


def _write(folder: Path, model: Any, config: dict[str, Any], **reference: np.ndarray) -> None:
    import unseen

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    unseen.save(model, tmp / "model.unseen")
    np.savez(tmp / "reference.npz", **reference)  # type: ignore[arg-type]
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)  # a half-written version is never seen by the repository


def _digits() -> Any:
    import unseen.datasets as ds

    return ds.load("digits", representation="raw")


def build_demo_repository(root: str | Path | None = None, *, text: bool = True, log: Any = print) -> Path:
    """Write the demo models (see the module docstring) under ``root`` (default ``demo_dir() / "models"``).

    Existing versions are kept (the build is skipped for them), so a second start is instant.

    Returns
    -------
    Path
        The repository root.
    """
    from sklearn.linear_model import LogisticRegression

    import unseen

    from ..decisions import ConformalFlagger, OpenSetClassifier

    root = Path(root) if root is not None else demo_dir() / "models"
    root.mkdir(parents=True, exist_ok=True)
    need = [n for n in ("knn", "knn-conformal", "digits-openset") if not (root / n / "1" / "model.unseen").exists()]
    if need:
        d = _digits()
        ref = {"features": d.X_train.astype(np.float32), "labels": d.y_train, "calibration": d.X_val.astype(np.float32)}
        about = "scikit-learn digits 0-5, 64 pixel intensities in [0, 1] (8 x 8 image, row by row)"
        if "knn" in need:
            _write(
                root / "knn" / "1",
                unseen.KNN(k=10).fit(d.X_train),
                {"description": f"KNN on {about}", "class_names": d.class_names, "sample_rate": 0.5},
                **ref,
            )
        if "knn-conformal" in need:
            flagger = ConformalFlagger(unseen.KNN(k=10).fit(d.X_train), alpha=0.05).calibrate(d.X_val)
            _write(
                root / "knn-conformal" / "1",
                flagger,
                {"description": f"conformal KNN (alpha 0.05, 217 calibration digits) on {about}", "sample_rate": 0.5},
                features=ref["features"],
                labels=ref["labels"],
            )
        if "digits-openset" in need:
            clf = LogisticRegression(max_iter=2000).fit(d.X_train, d.y_train)
            osc = (
                OpenSetClassifier(unseen.KNN(k=10))
                .fit(d.X_train, d.y_train, classifier=clf)
                .calibrate(d.X_val, d.y_val)
            )
            _write(
                root / "digits-openset" / "1",
                osc,
                {
                    "description": f"open-set classifier (logistic regression + KNN) on {about}",
                    "class_names": d.class_names,
                    "sample_rate": 0.5,
                },
                **ref,
            )
        log(f"demo: built {', '.join(need)} in {root}")
    if text and not (root / "wordnet" / "1" / "model.unseen").exists():
        try:
            import unseen.datasets as ds

            w = ds.load("wordnet", size="small", progress=False)
        except Exception as exc:  # the text extra or WordNet is missing: serve the digits models only
            log(f"demo: no text model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        else:
            osc = OpenSetClassifier(unseen.KNN(k=5)).fit(w.X_train, w.y_train, head=w.head).calibrate(w.X_val, w.y_val)
            _write(
                root / "wordnet" / "1",
                osc,
                {
                    "encoder": "minilm",
                    "description": "WordNet noun definitions: six supersenses or unknown (MiniLM "
                    "embeddings; send text as a BYTES tensor)",
                    "class_names": w.class_names,
                    "store_text": True,
                    "sample_rate": 0.5,
                },
                features=w.X_train.astype(np.float32),
                labels=w.y_train,
                calibration=w.X_val.astype(np.float32),
            )
            log(f"demo: built wordnet in {root}")
    return root


def demo_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    """Digits to send to the demo models: known test digits, unknown digits 6-9 and scrambled ones."""
    d = _digits()
    ood = {k.split(":")[0]: v for k, v in d.ood.items()}
    return {
        "known": d.X_test.astype(np.float32),
        "near": ood["near"].astype(np.float32),
        "far": ood["far"].astype(np.float32),
    }


TEXTS_KNOWN = [
    "a cup of espresso",
    "a wooden chair with four legs",
    "a tall tree with needle-shaped leaves",
    "a person who plays the violin",
    "a small domesticated carnivorous mammal",
    "a city on the coast",
    "a sweet yellow fruit",
    "a soldier who fights on horseback",
]
TEXTS_NEW = [
    "to move quickly on foot",
    "the state of being happy",
    "the act of making a decision",
    "a feeling of great sadness",
    "to speak in a loud voice",
    "an idea that is hard to explain",
]


def send_demo_traffic(
    url: str,
    key: str | None,
    *,
    seconds: float = 60.0,
    drift_after: float = 40.0,
    rate: float = 4.0,
    rows: int = 8,
    log: Any = print,
) -> int:
    """Send the demo models a stream of requests: known test digits (and texts), then, after ``drift_after``
    seconds, a third of unknown digits 6-9 (and new kinds of text), so the dashboard shows an alert.

    Returns the number of requests sent.
    """
    import time

    import httpx

    data = demo_inputs()
    known, near = data["known"], data["near"]
    rng = np.random.default_rng(0)
    texts_known, texts_new = list(TEXTS_KNOWN), list(TEXTS_NEW)
    try:  # the WordNet test definitions and the held-out ones (not seen in training), when WordNet is installed
        from ..datasets.wordnet import build_texts

        parts = build_texts(0, "small")
        texts_known = list(rng.permutation(parts["texts"]["test"]))
        texts_new = list(rng.permutation([t for v in parts["ood"].values() for t in v]))
    except Exception:  # no WordNet: the few sentences above
        pass
    order = rng.permutation(known.shape[0])
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    sent, pos, t0 = 0, 0, time.time()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        names = [
            m["name"] for m in client.post("/v2/repository/index").raise_for_status().json() if m["state"] == "READY"
        ]
        while time.time() - t0 < seconds:
            drift = time.time() - t0 >= drift_after
            idx = order[[(pos + i) % order.size for i in range(rows)]]
            pos += rows
            X = known[idx].copy()
            if drift:
                X[: rows // 3 + 1] = near[rng.integers(0, near.shape[0], rows // 3 + 1)]
            for name in ("knn", "knn-conformal", "digits-openset"):
                if name in names:
                    body = {
                        "inputs": [
                            {"name": "features", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}
                        ]
                    }
                    client.post(f"/v2/models/{name}/infer", json=body).raise_for_status()
                    sent += 1
            if "wordnet" in names:
                texts = [texts_known[(sent + i) % len(texts_known)] for i in range(4)]  # cycling: no repeats
                if drift:
                    texts[:2] = [texts_new[(sent + i) % len(texts_new)] for i in range(2)]
                body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
                client.post("/v2/models/wordnet/infer", json=body).raise_for_status()
                sent += 1
            time.sleep(max(0.0, 1.0 / rate - 0.01))
    log(f"demo traffic: {sent} requests in {time.time() - t0:.0f} s (drift after {drift_after:g} s)")
    return sent
