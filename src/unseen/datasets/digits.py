"""scikit-learn's digits as a tiny open-set benchmark (bundled with scikit-learn: no download, seconds).

Known classes 0–5 (1,083 images), split per seed into train 60 % / val 20 % / test 20 % (stratified).
OOD sets: ``near: unknown digits 6-9`` (all 714 images of the digits 6–9) and ``far: scrambled digits``
(the pixels of the known test digits in a random order, one permutation per image).
The data set is small, so ``size="small"`` is the same as ``"default"``.

Representations
    * ``"classifier"`` (default): the quick demo's network, scikit-learn ``MLPClassifier`` (one hidden
      ReLU layer of 64 units, seeded) on pixels / 16; features = hidden layer, head = output layer.
    * ``"raw"``: the 64 pixels / 16, no head.
"""

from __future__ import annotations

import os

import numpy as np

from ._base import OpenSetData
from ._util import rng_for
from .classifier import train_mlp

__all__ = ["KNOWN", "load_digits_benchmark", "split_rows"]

KNOWN = (0, 1, 2, 3, 4, 5)
REPRESENTATIONS = ("classifier", "raw")


def split_rows(seed: int) -> dict[str, np.ndarray]:
    """Row indices into ``load_digits()`` of train / val / test (known digits) and of the unknown digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    y = load_digits().target
    known = np.flatnonzero(np.isin(y, KNOWN))
    i_tr, i_rest = train_test_split(known, test_size=0.4, random_state=seed, stratify=y[known])
    i_val, i_te = train_test_split(i_rest, test_size=0.5, random_state=seed, stratify=y[i_rest])
    return {"train": i_tr, "val": i_val, "test": i_te, "unknown": np.flatnonzero(~np.isin(y, KNOWN))}


def _split(seed: int):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rows = split_rows(seed)
    X_te = X[rows["test"]]
    rng = rng_for(seed, "digits", "scrambled")
    scrambled = np.stack([row[rng.permutation(row.size)] for row in X_te])
    return (
        (X[rows["train"]], y[rows["train"]]),
        (X[rows["val"]], y[rows["val"]]),
        (X_te, y[rows["test"]]),
        {"near: unknown digits 6-9": X[rows["unknown"]], "far: scrambled digits": scrambled},
    )


def load_digits_benchmark(
    *,
    representation: str = "classifier",
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> OpenSetData:
    """Build the digits open-set benchmark (see the module docstring); use :func:`unseen.datasets.load`."""
    (X_tr, y_tr), (X_val, y_val), (X_te, y_te), ood = _split(seed)
    y_tr, y_val, y_te = (np.asarray(v, dtype=np.int64) for v in (y_tr, y_val, y_te))
    if representation == "classifier":
        net = train_mlp(
            X_tr, y_tr, hidden=(64,), seed=seed, max_iter=400, cache_dir=cache_dir, label=f"digits/mlp-seed{seed}"
        )
        f = net.features
        head = net.head
        what = "a scikit-learn MLP (64 ReLU units) trained on the known digits; features: its hidden layer"
    else:

        def f(X: np.ndarray) -> np.ndarray:
            return np.asarray(X, dtype=np.float32)

        head = None
        what = "raw pixels / 16 (64-d), no classifier head"
    return OpenSetData(
        name="digits",
        representation=representation,
        seed=seed,
        X_train=f(X_tr),
        y_train=y_tr,
        X_val=f(X_val),
        y_val=y_val,
        X_test=f(X_te),
        y_test=y_te,
        ood={k: f(v) for k, v in ood.items()},
        ood_kind={"near: unknown digits 6-9": "near", "far: scrambled digits": "far"},
        head=head,
        class_names=[str(c) for c in KNOWN],
        description=(
            f"scikit-learn digits open-set (seed {seed}): known digits 0-5; unknown digits 6-9 (near-OOD) and "
            f"known test digits with scrambled pixels (far-OOD). Representation: {what}."
        ),
    )
