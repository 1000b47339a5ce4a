"""Fashion-MNIST open-set benchmark: 6 known classes, 4 unknown, digits as far-OOD, corruptions as covariate shift.

Data: the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist/``, IDX files,
MIT licence; Xiao, Rasul & Vollgraf, 2017).

Known / unknown classes (the rule for every seed)
    T-shirt/top (0), Pullover (2) and Coat (4) are always known and Shirt (6) is always unknown, so
    "near: shirt" — a class that looks like three known ones — exists in every split. Seed 0 uses the
    fixed split known = {T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal} (the first six classes;
    unknown: Shirt, Sneaker, Bag, Ankle boot). Any other seed draws the remaining three known classes
    from {Trouser, Dress, Sandal, Sneaker, Bag, Ankle boot} with its own random stream.

Sets (default size; ``size="small"`` in brackets)
    * train 500 [40] and val 100 [10] images per known class, disjoint, from the training file;
    * test 200 [20] per known class, from the test file;
    * ``near: shirt`` — 600 [60] shirts; ``near: other unknown classes`` — 600 [60], the three other
      unknown classes in equal shares (test file);
    * ``far: digits`` — 600 [60] scikit-learn digits, 8×8 → 20×20 (bilinear) centred in 28×28 like
      MNIST; both data sets already use 0 for the background, so intensities are only rescaled 0–16 → 0–255;
    * ``covariate: gaussian noise | blur | contrast | rotation`` — 600 [60] further known-class test
      images each (100 [10] per class, disjoint from the ID test rows), severities 1–5 in equal shares
      (see :mod:`unseen.datasets.corruptions`); their labels are in ``ood_labels``.

Representations
    * ``"efficientnet-lite0"`` (default): 1280-d pooled features of the ImageNet EfficientNet-Lite0 at
      64×64 px; the head is a multinomial logistic regression (linear probe) on the training features.
    * ``"classifier"``: scikit-learn ``MLPClassifier`` (ReLU, hidden 256-128, seeded) trained on the
      pixels / 255 of the training images; features = last hidden layer (128-d), head = output layer.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _encoders
from ._base import MissingDataError, OpenSetData
from ._util import rng_for, sample_mixed, sample_per_class
from .classifier import linear_probe, train_mlp
from .corruptions import CORRUPTIONS, corrupt_mixed

__all__ = ["CLASS_NAMES", "DATA_DIR", "known_classes", "load_fashion_mnist", "read_idx", "read_split"]

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
ALWAYS_KNOWN = (0, 2, 4)
SHIRT = 6
SEED0_KNOWN = (0, 1, 2, 3, 4, 5)
REPRESENTATIONS = ("efficientnet-lite0", "classifier")
# Preprocessing version: bump when the images given to the encoder change in a way the content digest
# cannot see (it sees them all, so this is a safety net for the cache).
PREPROCESSING = 1

SIZES = {  # per known class: train, val, test, covariate; per set: near/far totals
    "default": {"train": 500, "val": 100, "test": 200, "covariate": 100, "ood": 600},
    "small": {"train": 40, "val": 10, "test": 20, "covariate": 10, "ood": 60},
}

INSTALL_HINT = (
    'Fashion-MNIST is not installed: run "sudo apt-get install -y dataset-fashion-mnist" '
    '(Debian/Ubuntu) or "make data".'
)

_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain), the format of MNIST and Fashion-MNIST.

    The header is two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
    one big-endian uint32 per dimension; the data follow (offset 16 for images, 8 for labels).

    Parameters
    ----------
    path : path

    Returns
    -------
    ndarray with the shape given by the header
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise MissingDataError(f"{path} is not an IDX file (bad magic number); reinstall it. {INSTALL_HINT}")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(raw) != offset + n * dtype.itemsize:
        raise MissingDataError(f"{path} is truncated or corrupt: {len(raw)} bytes for shape {dims}. {INSTALL_HINT}")
    return np.frombuffer(raw, dtype=dtype, count=n, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


@functools.lru_cache(maxsize=4)
def _read_split_cached(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = {"train": "train", "test": "t10k"}[split]
    d = Path(data_dir)
    images_path = d / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = d / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_path.exists() or not labels_path.exists():
        raise MissingDataError(f"{INSTALL_HINT} (looked for {images_path} and {labels_path})")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.shape != (len(images),):
        raise MissingDataError(f"{images_path} and {labels_path} do not match: {images.shape} vs {labels.shape}.")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def read_split(split: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (n, 28, 28)`` and labels ``uint8 (n,)`` of the ``"train"`` (60,000) or ``"test"`` (10,000) file.

    The arrays are read-only (they are shared through an in-process cache).

    Raises :class:`MissingDataError` with the install command when the files are missing.
    """
    return _read_split_cached(str(data_dir if data_dir is not None else DATA_DIR), split)


def known_classes(seed: int) -> tuple[int, ...]:
    """The six known classes of a seed (see the module docstring for the rule).

    >>> known_classes(0)
    (0, 1, 2, 3, 4, 5)
    >>> k = known_classes(7); len(k), set((0, 2, 4)) <= set(k), 6 in k
    (6, True, False)
    """
    if seed == 0:
        return SEED0_KNOWN
    optional = [c for c in range(10) if c not in ALWAYS_KNOWN and c != SHIRT]
    extra = rng_for(seed, "fashion-mnist", "known classes").choice(optional, size=3, replace=False)
    return tuple(sorted((*ALWAYS_KNOWN, *(int(c) for c in extra))))


def digits_as_fashion_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` scikit-learn digits (all classes) as 28×28 uint8 images in Fashion-MNIST's convention."""
    from sklearn.datasets import load_digits

    from .digits import as_images

    X = load_digits().data  # (1797, 64), 0 (background) .. 16 (ink)
    rows = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
    return as_images(X[rows] / 16.0)


def build_images(seed: int, size: str, data_dir: str | os.PathLike | None = None) -> dict:
    """The images (uint8) and labels of every set of one split, before any representation.

    ``"rows"`` maps each set drawn from Fashion-MNIST to ``(file, row indices)`` (``file`` is ``"train"`` or
    ``"test"``), for provenance and tests; ``"severities"`` gives the severity (1–5) of each covariate row.
    """
    n = SIZES[size]
    known = known_classes(seed)
    unknown = tuple(c for c in range(10) if c not in known)
    others = tuple(c for c in unknown if c != SHIRT)
    tr_img, tr_lab = read_split("train", data_dir)
    te_img, te_lab = read_split("test", data_dir)
    remap = {c: i for i, c in enumerate(known)}

    idx_train = sample_per_class(tr_lab, known, n["train"], rng_for(seed, "fashion-mnist", "train"))
    used = np.zeros(len(tr_lab), bool)
    used[idx_train] = True
    idx_val = sample_per_class(tr_lab, known, n["val"], rng_for(seed, "fashion-mnist", "val"), exclude=used)
    idx_test = sample_per_class(te_lab, known, n["test"], rng_for(seed, "fashion-mnist", "test"))
    used_te = np.zeros(len(te_lab), bool)
    used_te[idx_test] = True

    sets = {
        "train": (tr_img[idx_train], tr_lab[idx_train]),
        "val": (tr_img[idx_val], tr_lab[idx_val]),
        "test": (te_img[idx_test], te_lab[idx_test]),
    }
    ood: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    ood_labels: dict[str, np.ndarray] = {}
    severities: dict[str, np.ndarray] = {}
    rows = {"train": ("train", idx_train), "val": ("train", idx_val), "test": ("test", idx_test)}
    idx_shirt = sample_mixed(te_lab, (SHIRT,), n["ood"], rng_for(seed, "fashion-mnist", "shirt"))
    ood["near: shirt"], kinds["near: shirt"] = te_img[idx_shirt], "near"
    idx_other = sample_mixed(te_lab, others, n["ood"], rng_for(seed, "fashion-mnist", "other unknown"))
    ood["near: other unknown classes"], kinds["near: other unknown classes"] = te_img[idx_other], "near"
    rows["near: shirt"], rows["near: other unknown classes"] = ("test", idx_shirt), ("test", idx_other)
    ood["far: digits"] = digits_as_fashion_images(n["ood"], rng_for(seed, "fashion-mnist", "digits"))
    kinds["far: digits"] = "far"
    for kind in CORRUPTIONS:
        rng = rng_for(seed, "fashion-mnist", "covariate", kind)
        idx = sample_per_class(te_lab, known, n["covariate"], rng, exclude=used_te)
        used_te[idx] = True
        images, severities[f"covariate: {kind}"] = corrupt_mixed(te_img[idx], kind, rng)
        name = f"covariate: {kind}"
        rows[name] = ("test", idx)
        ood[name], kinds[name] = images, "covariate"
        ood_labels[name] = np.array([remap[int(c)] for c in te_lab[idx]], dtype=np.int64)
    labels = {k: np.array([remap[int(c)] for c in v[1]], dtype=np.int64) for k, v in sets.items()}
    return {
        "known": known,
        "unknown": unknown,
        "images": {k: v[0] for k, v in sets.items()},
        "labels": labels,
        "ood": ood,
        "ood_kind": kinds,
        "ood_labels": ood_labels,
        "rows": rows,
        "severities": severities,
    }


def _pixels(images: np.ndarray) -> np.ndarray:
    return (images.reshape(len(images), -1) / np.float32(255.0)).astype(np.float32)


def load_fashion_mnist(
    *,
    representation: str = "efficientnet-lite0",
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    data_dir: str | os.PathLike | None = None,
) -> OpenSetData:
    """Build the Fashion-MNIST open-set benchmark (see the module docstring); use :func:`unseen.datasets.load`."""
    parts = build_images(seed, size, data_dir)
    imgs, labels = parts["images"], parts["labels"]
    if representation == "classifier":
        # 40 epochs in batches of 500 (float32): ≈ 0.97 train / 0.88 test accuracy in ~10 s on 2 cores;
        # training longer gains < 0.5 point.
        net = train_mlp(
            _pixels(imgs["train"]),
            labels["train"],
            hidden=(256, 128),
            seed=seed,
            max_iter=40,
            batch_size=500,
            cache_dir=cache_dir,
            label=f"fashion-mnist/mlp-{size}-seed{seed}",
        )

        def feats(x: np.ndarray) -> np.ndarray:
            return net.features(_pixels(x))

        F = {k: feats(v) for k, v in imgs.items()}
        F_ood = {k: feats(v) for k, v in parts["ood"].items()}
        head = net.head
        what = "a scikit-learn MLP (ReLU 256-128) trained on the known classes' pixels; features: last hidden layer"
    else:
        encoder = _encoders.image_encoder(_encoders.IMAGE_SIZE)
        everything = {**imgs, **parts["ood"]}
        key = {
            "dataset": "fashion-mnist",
            "size": size,
            "seed": seed,
            "image_size": _encoders.IMAGE_SIZE,
            "preprocessing": PREPROCESSING,
        }
        enc = _encoders.encode_sets(
            encoder,
            everything,
            key=key,
            cache_dir=cache_dir,
            progress=progress,
            label=f"fashion-mnist/{representation}-{size}-seed{seed}",
        )
        F = {k: enc[k] for k in imgs}
        F_ood = {k: enc[k] for k in parts["ood"]}
        head = linear_probe(
            F["train"],
            labels["train"],
            F["val"],
            labels["val"],
            cache_dir=cache_dir,
            label=f"fashion-mnist/probe-{representation}-{size}-seed{seed}",
        )
        what = (
            f"EfficientNet-Lite0 (ImageNet) features at {_encoders.IMAGE_SIZE} px with a logistic-regression "
            "probe on the known classes"
        )
    known_names = [CLASS_NAMES[c] for c in parts["known"]]
    unknown_names = [CLASS_NAMES[c] for c in parts["unknown"]]
    description = (
        f"Fashion-MNIST open-set (seed {seed}, {size}): known {', '.join(known_names)}; unknown "
        f"{', '.join(unknown_names)} (near-OOD), scikit-learn digits (far-OOD) and known-class test images "
        f"under {', '.join(CORRUPTIONS)} at severities 1-5 (covariate shift). Representation: {what}."
    )
    return OpenSetData(
        name="fashion-mnist",
        representation=representation,
        seed=seed,
        X_train=F["train"],
        y_train=labels["train"],
        X_val=F["val"],
        y_val=labels["val"],
        X_test=F["test"],
        y_test=labels["test"],
        ood=F_ood,
        ood_kind=dict(parts["ood_kind"]),
        head=head,
        class_names=known_names,
        ood_labels=dict(parts["ood_labels"]),
        description=description,
    )
