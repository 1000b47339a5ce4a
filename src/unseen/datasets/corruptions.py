"""Covariate shift for small grey images: four corruptions at severities 1–5 (in the spirit of ImageNet-C).

Images are ``uint8`` arrays ``(n, h, w)`` with 0 = background (the MNIST / Fashion-MNIST convention);
the result has the same shape and dtype. With pixels ``x`` in [0, 1]:

===================  ==========================================================  =============================
corruption           operation                                                   severity 1 … 5
===================  ==========================================================  =============================
``gaussian noise``   ``x + N(0, c²)``, clipped                                    c = 0.08, 0.12, 0.18, 0.26, 0.38
``blur``             Gaussian filter of standard deviation c pixels               c = 0.4, 0.7, 1.0, 1.4, 2.0
``contrast``         ``(x − mean(x)) · c + mean(x)`` per image                    c = 0.4, 0.3, 0.2, 0.1, 0.05
``rotation``         rotation by ±c degrees (random sign), bilinear, black fill   c = 15, 30, 45, 60, 90
===================  ==========================================================  =============================

Noise and contrast use ImageNet-C's constants (Hendrycks & Dietterich, 2019); its blur constants are
for 224-pixel images, so the blur here is scaled to 28 pixels.

>>> imgs = np.zeros((2, 28, 28), np.uint8); imgs[:, 10:18, 10:18] = 200
>>> out = corrupt(imgs, "contrast", 5, np.random.default_rng(0))
>>> out.dtype, out.shape, int(out.max()) < 200
(dtype('uint8'), (2, 28, 28), True)
"""

from __future__ import annotations

import numpy as np

from ..exceptions import InputError

__all__ = ["CORRUPTIONS", "SEVERITY_LEVELS", "corrupt", "corrupt_mixed"]

SEVERITY_LEVELS = {
    "gaussian noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "blur": (0.4, 0.7, 1.0, 1.4, 2.0),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "rotation": (15.0, 30.0, 45.0, 60.0, 90.0),
}
CORRUPTIONS = tuple(SEVERITY_LEVELS)


def corrupt(images: np.ndarray, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply one corruption at one severity to every image.

    Parameters
    ----------
    images : ndarray of uint8 (n, h, w)
    kind : str
        One of :data:`CORRUPTIONS`.
    severity : int
        1 (mild) to 5 (severe).
    rng : numpy Generator
        Source of the noise and rotation signs.

    Returns
    -------
    ndarray of uint8 (n, h, w)
    """
    from scipy import ndimage

    if kind not in SEVERITY_LEVELS:
        raise InputError(f"corruption must be one of {CORRUPTIONS}, got {kind!r}.")
    if severity not in (1, 2, 3, 4, 5):
        raise InputError(f"severity must be an integer from 1 to 5, got {severity!r}.")
    c = SEVERITY_LEVELS[kind][severity - 1]
    x = np.asarray(images, dtype=np.float64) / 255.0
    if kind == "gaussian noise":
        x = x + rng.normal(scale=c, size=x.shape)
    elif kind == "blur":
        x = ndimage.gaussian_filter(x, sigma=(0, c, c), mode="constant")
    elif kind == "contrast":
        m = x.mean(axis=(1, 2), keepdims=True)
        x = (x - m) * c + m
    else:  # rotation
        signs = rng.choice([-1.0, 1.0], size=len(x))
        x = (
            np.stack(
                [
                    ndimage.rotate(img, s * c, reshape=False, order=1, mode="constant", cval=0.0)
                    for img, s in zip(x, signs)
                ]
            )
            if len(x)
            else x
        )
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def corrupt_mixed(images: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt images with severities 1–5 in equal shares (shuffled); returns ``(images, severities)``.

    >>> out, sev = corrupt_mixed(np.zeros((10, 28, 28), np.uint8), "blur", np.random.default_rng(0))
    >>> sorted(np.bincount(sev).tolist())
    [0, 2, 2, 2, 2, 2]
    """
    n = len(images)
    severities = rng.permutation(np.arange(n) % 5 + 1)
    out = np.empty_like(np.asarray(images, dtype=np.uint8))
    for s in range(1, 6):
        rows = np.flatnonzero(severities == s)
        if len(rows):
            out[rows] = corrupt(images[rows], kind, s, rng)
    return out, severities
