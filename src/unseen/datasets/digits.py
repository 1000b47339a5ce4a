"""scikit-learn's digits as a tiny open-set benchmark (bundled with scikit-learn: no download, seconds).

Known classes 0–5 (1,083 images), split per seed into train 60 % / val 20 % / test 20 % (stratified).
OOD sets: ``near: unknown digits 6-9`` (all 714 images of the digits 6–9) and ``far: scrambled digits``
(the pixels of the known test digits in a random order, one permutation per image).
The data set is small, so ``size="small"`` is the same as ``"default"``.

Representations
    * ``"classifier"`` (default): the quick demo's network, scikit-learn ``MLPClassifier`` (one hidden
      ReLU layer of 64 units, seeded) on pixels / 16; features = hidden layer, head = output layer.
    * ``"raw"``: the 64 pixels / 16, no head.
    * ``"efficientnet-lite0"``: a frozen pretrained encoder: each 8×8 image drawn as a 28×28 digit (as in
      Fashion-MNIST's far set) through the ImageNet EfficientNet-Lite0 at 64 px, 1280-d pooled features; the
      head is a logistic-regression probe on the training features. Encoding takes ~6 s on 2 cores, cached.
"""

from __future__ import annotations

import os

import numpy as np

from . import _encoders
from ._base import OpenSetData
from ._util import rng_for
from .classifier import linear_probe, train_mlp

__all__ = ["KNOWN", "load_digits_benchmark", "split_rows"]

KNOWN = (0, 1, 2, 3, 4, 5)
REPRESENTATIONS = ("classifier", "raw", "efficientnet-lite0")


def split_rows(seed: int) -> dict[str, np.ndarray]:
    """Row indices into ``load_digits()`` of train / val / test (known digits) and of the unknown digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    y = load_digits().target
    known = np.flatnonzero(np.isin(y, KNOWN))
    i_tr, i_rest = train_test_split(known, test_size=0.4, random_state=seed, stratify=y[known])
    i_val, i_te = train_test_split(i_rest, test_size=0.5, random_state=seed, stratify=y[i_rest])
    return {"train": i_tr, "val": i_val, "test": i_te, "unknown": np.flatnonzero(~np.isin(y, KNOWN))}


def as_images(X: np.ndarray) -> np.ndarray:
    """Rows of 64 pixels / 16 as 28×28 uint8 images: the 8×8 digit zoomed to 20×20 in a 28×28 frame, ink 255."""
    from scipy import ndimage

    big = ndimage.zoom(np.asarray(X, dtype=np.float64).reshape(-1, 8, 8), (1, 2.5, 2.5), order=1)
    out = np.zeros((len(big), 28, 28))
    out[:, 4:24, 4:24] = np.clip(big, 0, 1)
    return np.rint(out * 255).astype(np.uint8)


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
    sets = {"train": X_tr, "val": X_val, "test": X_te, **ood}
    head: tuple[np.ndarray, np.ndarray] | None = None
    if representation == "classifier":
        net = train_mlp(
            X_tr, y_tr, hidden=(64,), seed=seed, max_iter=400, cache_dir=cache_dir, label=f"digits/mlp-seed{seed}"
        )
        F = {k: net.features(v) for k, v in sets.items()}
        head = net.head
        what = "a scikit-learn MLP (64 ReLU units) trained on the known digits; features: its hidden layer"
    elif representation == "efficientnet-lite0":
        F = _encoders.encode_sets(
            _encoders.image_encoder(_encoders.IMAGE_SIZE),
            {k: as_images(v) for k, v in sets.items()},
            key={"dataset": "digits", "seed": seed, "image_size": _encoders.IMAGE_SIZE},
            cache_dir=cache_dir,
            progress=progress,
            label=f"digits/{representation}-seed{seed}",
        )
        head = linear_probe(
            F["train"], y_tr, F["val"], y_val, cache_dir=cache_dir, label=f"digits/probe-{representation}-seed{seed}"
        )
        what = (
            f"EfficientNet-Lite0 (ImageNet, frozen) features at {_encoders.IMAGE_SIZE} px with a logistic-regression "
            "probe on the known digits"
        )
    else:
        F = {k: np.asarray(v, dtype=np.float32) for k, v in sets.items()}
        what = "raw pixels / 16 (64-d), no classifier head"
    return OpenSetData(
        name="digits",
        representation=representation,
        seed=seed,
        X_train=F["train"],
        y_train=y_tr,
        X_val=F["val"],
        y_val=y_val,
        X_test=F["test"],
        y_test=y_te,
        ood={k: F[k] for k in ood},
        ood_kind={"near: unknown digits 6-9": "near", "far: scrambled digits": "far"},
        head=head,
        class_names=[str(c) for c in KNOWN],
        description=(
            f"scikit-learn digits open-set (seed {seed}): known digits 0-5; unknown digits 6-9 (near-OOD) and "
            f"known test digits with scrambled pixels (far-OOD). Representation: {what}."
        ),
    )
