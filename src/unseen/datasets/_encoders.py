"""Pretrained encoders for the image and text benchmarks, and cached encoding of named sets of inputs.

The encoders themselves live in :mod:`unseen.encoders` (imported here lazily: they need torch).
Tests replace :func:`image_encoder` / :func:`text_encoder` with fakes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._util import digest, text_digest, unseen_version
from .cache import lookup, store

IMAGE_SIZE = 64  # EfficientNet-Lite0 input side for the Fashion-MNIST benchmark: ≈ 7× faster than 224 px on a CPU


def image_encoder(image_size: int = IMAGE_SIZE):
    """EfficientNet-Lite0 (ImageNet-1k), ``.features(uint8 (n, 28, 28), progress=) -> float32 (n, 1280)``."""
    from ..encoders import EfficientNetLite0

    return EfficientNetLite0(image_size=image_size)


def text_encoder():
    """all-MiniLM-L6-v2, ``.encode(list[str], progress=) -> float32 (n, 384)``."""
    from ..encoders import MiniLM

    return MiniLM()


def encode_sets(
    encoder,
    inputs: Mapping[str, Any],
    *,
    key: Mapping[str, Any],
    label: str,
    cache_dir: str | os.PathLike | None,
    progress: bool,
) -> dict[str, np.ndarray]:
    """Features of each named set of inputs (images or texts), from the cache or from one encoder call.

    Every set is its own cache entry keyed by ``key`` + the set's name + the encoder's name and version +
    a digest of the set's content; the sets that miss are encoded together (one progress bar).
    """
    is_text = {name: isinstance(x, list) for name, x in inputs.items()}
    base = {**key, "encoder": str(encoder.name), "encoder_version": str(encoder.version), "unseen": unseen_version()}
    keys = {
        name: {**base, "set": name, "content": text_digest(x) if is_text[name] else digest(np.asarray(x))}
        for name, x in inputs.items()
    }
    out: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for name in inputs:
        hit = lookup(keys[name], cache_dir=cache_dir, label=f"{label}-{name}")
        if hit is None or "features" not in hit:
            missing.append(name)
        else:
            out[name] = hit["features"]
    if missing:
        if all(is_text[n] for n in missing):
            texts = [t for n in missing for t in inputs[n]]
            feats = np.asarray(encoder.encode(texts, progress=progress), dtype=np.float32)
        else:
            images = np.concatenate([np.asarray(inputs[n]) for n in missing])
            feats = np.asarray(encoder.features(images, progress=progress), dtype=np.float32)
        expected = sum(len(inputs[n]) for n in missing)
        if feats.ndim != 2 or len(feats) != expected:
            raise RuntimeError(f"{encoder.name} returned features of shape {feats.shape} for {expected} inputs.")
        start = 0
        for n in missing:
            out[n] = feats[start : start + len(inputs[n])]
            store(keys[n], {"features": out[n]}, cache_dir=cache_dir, label=f"{label}-{n}")
            start += len(inputs[n])
    return {name: out[name] for name in inputs}
