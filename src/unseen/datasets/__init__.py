"""Offline open-set benchmarks on real data: seeded splits, named near / far / covariate OOD sets, cached features.

=================  ==========================================  ==============================================
name               representations (first = default)           OOD sets
=================  ==========================================  ==============================================
``digits``         ``classifier`` (MLP), ``raw`` (pixels),       near: unknown digits 6-9; far: scrambled digits
                   ``efficientnet-lite0``
``fashion-mnist``  ``efficientnet-lite0``, ``classifier``,       near: shirt, other unknown classes; far: digits;
                   ``logits``                                  covariate: 4 corruptions at severities 1-5
``wordnet``        ``minilm``, ``logits``                      near: held-out supersenses; far: verb glosses
``shuttle``        ``raw``                                     far: High, Bypass, rare valve states
``satellite``      ``raw``                                     near: held-out classes
``letter``         ``raw``                                     near: held-out letters (10 of 26)
``attribution``    ``cnn`` (attribution CNN on generated        near: unseen seed, unseen architecture, unseen
                   images; trained here, ~13 min cold)          classes; far: unseen data (see its module)
=================  ==========================================  ==============================================

Representation ``"logits"`` is the default representation passed through its head: the features are the
known-class logits ``X @ W.T + b`` and there is no head (for detectors that see logits only).

Each module's docstring gives the exact rule for its splits and set sizes. The data come from Debian
packages (``make data`` installs them); a missing one raises :class:`MissingDataError` with the command.
Encoder features and trained heads are cached on disk (:mod:`unseen.datasets.cache`), so the second
``load`` of a benchmark takes seconds.

>>> import unseen.datasets as ds
>>> ds.list_datasets()
['digits', 'fashion-mnist', 'wordnet', 'shuttle', 'satellite', 'letter', 'attribution']
>>> d = ds.load("digits", representation="raw")
>>> d.X_train.shape[1], d.n_classes, sorted(d.ood_kind.values())
(64, 6, ['far', 'near'])
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..exceptions import InputError
from ._base import OOD_KINDS, MissingDataError, OpenSetData
from ._util import check_seed, check_size

__all__ = [
    "MissingDataError",
    "OOD_KINDS",
    "OpenSetData",
    "list_datasets",
    "list_representations",
    "load",
    "logits_only",
]

_REPRESENTATIONS: dict[str, tuple[str, ...]] = {
    "digits": ("classifier", "raw", "efficientnet-lite0"),
    "fashion-mnist": ("efficientnet-lite0", "classifier", "logits"),
    "wordnet": ("minilm", "logits"),
    "shuttle": ("raw",),
    "satellite": ("raw",),
    "letter": ("raw",),
    "attribution": ("cnn",),
}


def _loader(name: str) -> Callable[..., OpenSetData]:
    if name == "digits":
        from .digits import load_digits_benchmark as f
    elif name == "fashion-mnist":
        from .fashion_mnist import load_fashion_mnist as f
    elif name == "wordnet":
        from .wordnet import load_wordnet as f
    elif name == "shuttle":
        from .mlbench import load_shuttle as f
    elif name == "satellite":
        from .mlbench import load_satellite as f
    elif name == "letter":
        from .mlbench import load_letter as f
    else:
        from .attribution import load_attribution as f
    return f


def list_datasets() -> list[str]:
    """Names of the built-in benchmarks.

    >>> list_datasets()[:2]
    ['digits', 'fashion-mnist']
    """
    return list(_REPRESENTATIONS)


def list_representations(name: str) -> list[str]:
    """The representations a benchmark offers; the first is the default.

    >>> list_representations("fashion-mnist")
    ['efficientnet-lite0', 'classifier', 'logits']
    """
    _check_name(name)
    return list(_REPRESENTATIONS[name])


def _check_name(name: object) -> str:
    if name not in _REPRESENTATIONS:
        raise InputError(f"unknown data set {name!r}; choose one of {list(_REPRESENTATIONS)}.")
    return str(name)


def load(
    name: str,
    *,
    representation: str | None = None,
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> OpenSetData:
    """Load a built-in open-set benchmark as features ready for detectors.

    Parameters
    ----------
    name : str
        One of :func:`list_datasets`.
    representation : str, optional
        One of :func:`list_representations` for that data set (default: its first).
    seed : int
        Chooses the known / unknown classes (for seed 0 a fixed, documented split), the rows of every
        set, and the seed of any model trained for it. The same seed gives identical arrays.
    size : {"default", "small"}
        ``"small"`` builds a few hundred rows per set, for tests and quick looks.
    cache_dir : path, optional
        Where encoder features and trained heads are cached (default ``$UNSEEN_CACHE`` or
        ``~/.cache/unseen/features``).
    progress : bool
        Show a progress bar while encoding.

    Returns
    -------
    OpenSetData

    Raises
    ------
    MissingDataError
        When the data set is not installed (the message gives the command).
    InputError
        For an unknown name, representation, size or a bad seed.

    Examples
    --------
    >>> d = load("digits", seed=1)
    >>> d.representation, d.head[0].shape, list(d.ood)
    ('classifier', (6, 64), ['near: unknown digits 6-9', 'far: scrambled digits'])
    """
    name = _check_name(name)
    options = _REPRESENTATIONS[name]
    if representation is None:
        representation = options[0]
    if representation not in options:
        raise InputError(f"{name} has no representation {representation!r}; choose one of {list(options)}.")
    seed = check_seed(seed)
    size = check_size(size)
    if representation == "logits":
        return logits_only(
            _loader(name)(representation=options[0], seed=seed, size=size, cache_dir=cache_dir, progress=progress)
        )
    return _loader(name)(representation=representation, seed=seed, size=size, cache_dir=cache_dir, progress=progress)


def logits_only(data: OpenSetData) -> OpenSetData:
    """The benchmark seen through its head: every set's features replaced by the known-class logits, no head.

    >>> d = logits_only(load("digits"))
    >>> d.representation, d.head, d.X_train.shape[1] == d.n_classes
    ('logits', None, True)
    """
    if data.head is None:
        raise InputError(f"{data.name} ({data.representation}) has no head, so it has no logits.")
    import dataclasses

    return dataclasses.replace(
        data,
        representation="logits",
        X_train=data.logits(data.X_train),
        X_val=data.logits(data.X_val),
        X_test=data.logits(data.X_test),
        ood={k: data.logits(v) for k, v in data.ood.items()},
        head=None,
        description=data.description + f" Seen as logits only: the {data.n_classes} known-class logits of that "
        f"representation ({data.representation}), no head.",
    )
