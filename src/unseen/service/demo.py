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

__all__ = ["build_demo_repository", "demo_dir", "demo_inputs"]


def demo_dir() -> Path:
    """``$UNSEEN_DEMO_DIR``, else ``~/.cache/unseen/demo``: the demo's models, store and API key."""
    return Path(os.environ.get("UNSEEN_DEMO_DIR", Path.home() / ".cache" / "unseen" / "demo")).expanduser()


def _write(folder: Path, model: Any, config: dict[str, Any], **reference: np.ndarray) -> None:
    import unseen

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    unseen.save(model, tmp / "model.unseen")
    np.savez(tmp / "reference.npz", **reference)
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
    import unseen
    from sklearn.linear_model import LogisticRegression

    from ..decisions import ConformalFlagger, OpenSetClassifier

    root = Path(root) if root is not None else demo_dir() / "models"
    root.mkdir(parents=True, exist_ok=True)
    need = [n for n in ("knn", "knn-conformal", "digits-openset") if not (root / n / "1" / "model.unseen").exists()]
    if need:
        d = _digits()
        ref = {"features": d.X_train.astype(np.float32), "labels": d.y_train, "calibration": d.X_val.astype(np.float32)}
        about = "scikit-learn digits 0-5, 64 pixel intensities in [0, 1] (8 x 8 image, row by row)"
        if "knn" in need:
            _write(root / "knn" / "1", unseen.KNN(k=10).fit(d.X_train),
                   {"description": f"KNN on {about}", "class_names": d.class_names, "sample_rate": 0.25}, **ref)
        if "knn-conformal" in need:
            flagger = ConformalFlagger(unseen.KNN(k=10).fit(d.X_train), alpha=0.05).calibrate(d.X_val)
            _write(root / "knn-conformal" / "1", flagger,
                   {"description": f"conformal KNN (alpha 0.05, 217 calibration digits) on {about}", "sample_rate": 0.25},
                   features=ref["features"], labels=ref["labels"])
        if "digits-openset" in need:
            clf = LogisticRegression(max_iter=2000).fit(d.X_train, d.y_train)
            osc = OpenSetClassifier(unseen.KNN(k=10)).fit(d.X_train, d.y_train, classifier=clf).calibrate(d.X_val, d.y_val)
            _write(root / "digits-openset" / "1", osc,
                   {"description": f"open-set classifier (logistic regression + KNN) on {about}",
                    "class_names": d.class_names, "sample_rate": 0.25}, **ref)
        log(f"demo: built {', '.join(need)} in {root}")
    if text and not (root / "wordnet" / "1" / "model.unseen").exists():
        try:
            import unseen.datasets as ds

            w = ds.load("wordnet", size="small", progress=False)
        except Exception as exc:  # the text extra or WordNet is missing: serve the digits models only
            log(f"demo: no text model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
        else:
            osc = OpenSetClassifier(unseen.KNN(k=5)).fit(w.X_train, w.y_train, head=w.head).calibrate(w.X_val, w.y_val)
            _write(root / "wordnet" / "1", osc,
                   {"encoder": "minilm", "description": "WordNet noun definitions: six supersenses or unknown (MiniLM "
                    "embeddings; send text as a BYTES tensor)", "class_names": w.class_names, "store_text": True,
                    "sample_rate": 0.5},
                   features=w.X_train.astype(np.float32), labels=w.y_train, calibration=w.X_val.astype(np.float32))
            log(f"demo: built wordnet in {root}")
    return root


def demo_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    """Digits to send to the demo models: known test digits, unknown digits 6-9 and scrambled ones."""
    d = _digits()
    ood = {k.split(":")[0]: v for k, v in d.ood.items()}
    return {"known": d.X_test.astype(np.float32), "near": ood["near"].astype(np.float32), "far": ood["far"].astype(np.float32)}
