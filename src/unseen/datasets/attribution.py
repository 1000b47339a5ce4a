"""Open-set source attribution: which known generator made this image — or was it an unknown one?

Fourteen small image generators are trained here, seeded, on the CPU (or a GPU when torch sees one); each
makes 28×28 grey images. Five of them are the *known sources*; an attribution CNN learns to tell their
images apart, and its penultimate features and last linear layer are what detectors get. The other nine
are *unknown sources*, grouped in four scenarios. The known sources all draw the same kind of pictures
(Fashion-MNIST clothing), so attributing an image means reading the traces a generator leaves — its
architecture, its random initialisation and training noise, what it was trained on — not what the image
shows. Nothing is added to the images (no watermark): every difference comes from training.

Sources (``size="default"``; every generator trains 1,200 Adam steps of 64 images)

=====================  ==========  ====  ==================================  =====================  =======
source                 arch        seed  trained on                          role                   kind
=====================  ==========  ====  ==================================  =====================  =======
mlp-vae s0             mlp-vae     0     Fashion-MNIST, all classes          known
mlp-vae s1             mlp-vae     1     Fashion-MNIST, all classes          known
conv-vae s0            conv-vae    0     Fashion-MNIST, all classes          known
conv-vae s1            conv-vae    1     Fashion-MNIST, all classes          known
dcgan s0               dcgan       0     Fashion-MNIST, all classes          known
mlp-vae s2             mlp-vae     2     Fashion-MNIST, all classes          unseen seed            near
conv-vae s2            conv-vae    2     Fashion-MNIST, all classes          unseen seed            near
dcgan s1               dcgan       1     Fashion-MNIST, all classes          unseen seed            near
mlp-gan s0             mlp-gan     0     Fashion-MNIST, all classes          unseen architecture    near
resize-vae s0          resize-vae  0     Fashion-MNIST, all classes          unseen architecture    near
mlp-vae s0 (digits)    mlp-vae     0     scikit-learn digits (20×20 in 28)   unseen data            far
dcgan s0 (digits)      dcgan       0     scikit-learn digits (20×20 in 28)   unseen data            far
conv-vae s0 (footwear) conv-vae    0     Fashion-MNIST sandal/sneaker/boot   unseen classes         near
dcgan s0 (footwear)    dcgan       0     Fashion-MNIST sandal/sneaker/boot   unseen classes         near
=====================  ==========  ====  ==================================  =====================  =======

Architectures (see :mod:`unseen.datasets._generators`): ``mlp-vae`` fully connected VAE; ``conv-vae``
VAE with a transposed-convolution decoder; ``dcgan`` GAN with a transposed-convolution generator
(BatchNorm, tanh); ``mlp-gan`` GAN with MLP generator and discriminator; ``resize-vae`` VAE whose decoder
upsamples by nearest-neighbour resizing + 3×3 convolutions. The seed column is the generator's own seed
(weights, batches, noise); "s0 (digits)" starts from the same initial weights as "s0" and differs only
in its training data. All Fashion-MNIST generators of one benchmark seed share one training pool of
20,000 images. A different benchmark ``seed`` retrains every generator with other seeds and draws other
pools, samples and splits.

Sets (default; ``size="small"`` in brackets): each known source gives 1,200 [100] training, 300 [30]
validation and 500 [50] test images; each unknown source gives 1,000 [60] images to its scenario's OOD
set (``"unseen seed"`` 3,000, ``"unseen architecture"`` 2,000, ``"unseen data"`` 2,000,
``"unseen classes"`` 2,000). Kinds: a new seed, a new architecture, and known architectures trained on
other Fashion-MNIST classes are ``"near"`` (same pictures, other traces); generators trained on digits
are ``"far"`` (their pictures are of another kind, which a detector may see without any trace).

Representation ``"cnn"``: a small CNN (four 3×3 conv layers with BatchNorm, two max-pools, a fully
connected 128-d ReLU layer over the 7×7 map, then the linear head) trained on the known sources' training
images (8 epochs, Adam, one-cycle schedule, seeded). There is no global pooling on purpose: many traces
sit at fixed pixel positions (an MLP decoder's output biases, the upsampling pattern of a 7×7 map); a
global-average-pooled variant reached only 53% closed-set accuracy here. Features = the 128-d layer;
head = the last layer ``(W, b)``.

Cost and cache: the first build trains 14 generators and the CNN (minutes on two cores; see
``benchmarks/attribution.md`` for measured times); samples of each generator and the final features
are cached as ``.npz`` under ``$UNSEEN_CACHE`` (default ``~/.cache/unseen/features``) in
``attribution/``, keyed by the configuration, the device kind and the unseen version, so the second
load takes a second. ``size="small"`` (tiny generators, 40 steps) builds in seconds, for tests.

>>> from unseen.datasets import attribution
>>> d = attribution.load(seed=0)                                        # doctest: +SKIP
>>> d.class_names                                                       # doctest: +SKIP
['mlp-vae s0', 'mlp-vae s1', 'conv-vae s0', 'conv-vae s1', 'dcgan s0']
>>> sorted(d.ood)                                                       # doctest: +SKIP
['unseen architecture', 'unseen classes', 'unseen data', 'unseen seed']
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import asdict, dataclass

import numpy as np

from . import cache
from ._base import OpenSetData
from ._generators import CNNSpec, GeneratorSpec
from ._util import check_seed, check_size, rng_for, unseen_version

__all__ = [
    "SCENARIOS",
    "SOURCES",
    "Source",
    "is_cached",
    "load",
    "load_attribution",
    "load_images",
    "ood_sources",
    "sources_table",
]

FORMAT = 1  # bump when anything that changes the cached arrays changes without a config change

FOOTWEAR = (5, 7, 9)  # Fashion-MNIST sandal, sneaker, ankle boot


@dataclass(frozen=True)
class Source:
    """One generator: architecture, its own seed, what it was trained on, and its role in the benchmark."""

    arch: str
    gen_seed: int
    data: str = "fashion-mnist"  # "fashion-mnist", "footwear" (FOOTWEAR classes only) or "digits"
    role: str = "known"  # "known" or a scenario name

    @property
    def name(self) -> str:
        suffix = "" if self.data == "fashion-mnist" else f" ({self.data})"
        return f"{self.arch} s{self.gen_seed}{suffix}"


SOURCES: tuple[Source, ...] = (
    Source("mlp-vae", 0),
    Source("mlp-vae", 1),
    Source("conv-vae", 0),
    Source("conv-vae", 1),
    Source("dcgan", 0),
    Source("mlp-vae", 2, role="unseen seed"),
    Source("conv-vae", 2, role="unseen seed"),
    Source("dcgan", 1, role="unseen seed"),
    Source("mlp-gan", 0, role="unseen architecture"),
    Source("resize-vae", 0, role="unseen architecture"),
    Source("mlp-vae", 0, "digits", role="unseen data"),
    Source("dcgan", 0, "digits", role="unseen data"),
    Source("conv-vae", 0, "footwear", role="unseen classes"),
    Source("dcgan", 0, "footwear", role="unseen classes"),
)

#: OOD scenario -> kind.
SCENARIOS: dict[str, str] = {
    "unseen seed": "near",
    "unseen architecture": "near",
    "unseen data": "far",
    "unseen classes": "near",
}

_DATA_TEXT = {
    "fashion-mnist": "Fashion-MNIST, all classes",
    "digits": "scikit-learn digits (20×20 in 28)",
    "footwear": "Fashion-MNIST sandal/sneaker/boot",
}


@dataclass(frozen=True)
class _Size:
    generator: GeneratorSpec
    cnn: CNNSpec
    pool: int  # Fashion-MNIST images in the generators' training pool
    n_train: int  # per known source
    n_val: int
    n_test: int
    n_unknown: int  # per unknown source


_SIZES = {
    "default": _Size(
        GeneratorSpec(width=32, latent=16, steps=1200, batch=64),
        CNNSpec(width=16, feature_dim=128, epochs=8, batch=64, lr=3e-3),
        pool=20_000,
        n_train=1200,
        n_val=300,
        n_test=500,
        n_unknown=1000,
    ),
    "small": _Size(
        GeneratorSpec(width=8, latent=8, steps=40, batch=32),
        CNNSpec(width=8, feature_dim=32, epochs=5, batch=32, lr=3e-3),
        pool=1000,
        n_train=100,
        n_val=30,
        n_test=50,
        n_unknown=60,
    ),
}


def _known() -> list[Source]:
    return [s for s in SOURCES if s.role == "known"]


def _int_seed(*parts: object) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _check_threads(threads: object) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        from ..exceptions import InputError

        raise InputError(f"threads must be a positive integer or None, got {threads!r}.")
    return int(threads)


def _device() -> str:
    try:
        import torch
    except ImportError:  # cached features load without torch; training then asks for it
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _config(seed: int, size: str, device: str) -> dict:
    s = _SIZES[size]
    return {
        "benchmark": "attribution",
        "format": FORMAT,
        "unseen": unseen_version(),
        "seed": seed,
        "size": size,
        "device": device,
        "generator": asdict(s.generator),
        "cnn": asdict(s.cnn),
        "pool": s.pool,
        "n": [s.n_train, s.n_val, s.n_test, s.n_unknown],
        "footwear": list(FOOTWEAR),
    }


def _n_samples(src: Source, s: _Size) -> int:
    return s.n_train + s.n_val + s.n_test if src.role == "known" else s.n_unknown


# ---------------------------------------------------------------------------------------------- training data


def _training_images(data: str, seed: int, s: _Size, data_dir) -> np.ndarray:
    """The uint8 (n, 28, 28) images a generator trained on ``data`` learns from."""
    from .fashion_mnist import digits_as_fashion_images, read_split

    if data == "digits":
        return digits_as_fashion_images(min(s.pool, 1797), rng_for(seed, "attribution", "pool", "digits"))
    images, labels = read_split("train", data_dir)
    rows = np.arange(len(images)) if data == "fashion-mnist" else np.flatnonzero(np.isin(labels, FOOTWEAR))
    pick = rng_for(seed, "attribution", "pool", data).choice(rows, size=min(s.pool, len(rows)), replace=False)
    return np.ascontiguousarray(images[np.sort(pick)])


def _generate(
    src: Source, seed: int, size: str, device: str, data_dir, progress: bool, threads: int | None
) -> dict[str, np.ndarray]:
    from ._generators import deterministic, sample_generator, train_generator

    s = _SIZES[size]
    images = _training_images(src.data, seed, s, data_dir)
    t0 = time.perf_counter()
    with deterministic(threads):
        model = train_generator(
            src.arch,
            images,
            _int_seed("attribution", seed, src.arch, src.gen_seed),
            s.generator,
            device=device,
            progress=progress,
            desc=src.name,
        )
        samples = sample_generator(
            model,
            src.arch,
            _n_samples(src, s),
            _int_seed("attribution", seed, src.name, "samples"),
            s.generator,
            device=device,
        )
    return {"images": samples, "seconds": np.array(time.perf_counter() - t0)}


def load_images(
    *,
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    data_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """The generated images of every source, training (and caching) the generators that are not cached yet.

    Parameters
    ----------
    seed : int
        Benchmark seed (seeds every generator, its training pool and its samples).
    size : {"default", "small"}
    cache_dir : path, optional
        Cache folder (default ``$UNSEEN_CACHE`` or ``~/.cache/unseen/features``).
    progress : bool
        Progress bars while training.
    data_dir : path, optional
        Folder of the Fashion-MNIST IDX files (default ``/usr/share/datasets/fashion-mnist``).
    threads : int, optional
        Torch intra-op threads while training (restored afterwards); None leaves torch's setting alone. On a
        machine whose cores are shared with other busy processes, ``threads=1`` can be far faster (torch's
        OpenMP threads spin-wait for each other: a 40-step DCGAN took 58 s with 2 threads and 0.6 s with 1
        on a loaded 2-core machine).

    Returns
    -------
    dict of str to ndarray
        Source name -> uint8 images ``(n, 28, 28)``, in :data:`SOURCES` order. Known sources come first
        in their train / val / test order (see the module docstring for the counts).

    Raises
    ------
    MissingDataError
        When Fashion-MNIST is not installed (the message gives the command).

    Examples
    --------
    >>> imgs = load_images(size="small", progress=False)                  # doctest: +SKIP
    >>> imgs["dcgan s0"].shape, imgs["dcgan s0"].dtype                    # doctest: +SKIP
    ((180, 28, 28), dtype('uint8'))
    """
    return _images(
        check_seed(seed), check_size(size), cache_dir, progress, data_dir, _device(), _check_threads(threads)
    )[0]


def _sample_key(src: Source, seed: int, size: str, device: str) -> tuple[dict, str]:
    """Cache key and label of one generator's samples."""
    return (
        {**_config(seed, size, device), "what": "generator samples", "source": asdict(src)},
        f"attribution/{size}-seed{seed}-{src.name}",
    )


def _features_key(seed: int, size: str, device: str) -> tuple[dict, str]:
    """Cache key and label of the features, labels and head."""
    return {**_config(seed, size, device), "what": "features"}, f"attribution/{size}-seed{seed}-features"


def _images(seed: int, size: str, cache_dir, progress: bool, data_dir, device: str, threads: int | None):
    from tqdm.auto import tqdm

    entries = {}
    for src in SOURCES:
        key, label = _sample_key(src, seed, size, device)
        entries[src] = (key, label, cache.lookup(key, cache_dir=cache_dir, label=label))
    if any(entry is None and src.data != "digits" for src, (_, _, entry) in entries.items()):
        from .fashion_mnist import read_split

        read_split("train", data_dir)  # a missing data set fails here, before any training
    out, seconds = {}, {}
    for src in tqdm(SOURCES, desc="attribution generators", unit="generator", disable=not progress):
        key, label, entry = entries[src]
        if entry is None:
            entry = _generate(src, seed, size, device, data_dir, progress, threads)
            cache.store(key, entry, cache_dir=cache_dir, label=label)
        out[src.name] = entry["images"]
        seconds[src.name] = float(entry["seconds"])
    return out, seconds


# ---------------------------------------------------------------------------------------------- features


def ood_sources(size: str = "default") -> dict[str, list[tuple[str, slice]]]:
    """For each OOD scenario, its sources and their rows in the scenario's set (sources are stacked in order).

    >>> ood_sources()["unseen architecture"]
    [('mlp-gan s0', slice(0, 1000, None)), ('resize-vae s0', slice(1000, 2000, None))]
    """
    n = _SIZES[check_size(size)].n_unknown
    out: dict[str, list[tuple[str, slice]]] = {}
    for scenario in SCENARIOS:
        names = [s.name for s in SOURCES if s.role == scenario]
        out[scenario] = [(name, slice(i * n, (i + 1) * n)) for i, name in enumerate(names)]
    return out


def _build_features(
    seed: int, size: str, cache_dir, progress: bool, data_dir, device: str, threads: int | None
) -> dict[str, np.ndarray]:
    from ._generators import cnn_features, cnn_head, deterministic, train_attribution_cnn

    s = _SIZES[size]
    t0 = time.perf_counter()
    images, gen_seconds = _images(seed, size, cache_dir, progress, data_dir, device, threads)
    t_gen = time.perf_counter() - t0
    known = _known()
    parts = {
        "train": (0, s.n_train),
        "val": (s.n_train, s.n_train + s.n_val),
        "test": (s.n_train + s.n_val, s.n_train + s.n_val + s.n_test),
    }
    split_images, split_labels = {}, {}
    for split, (a, b) in parts.items():
        split_images[split] = np.concatenate([images[src.name][a:b] for src in known])
        split_labels[split] = np.repeat(np.arange(len(known)), b - a)
    t1 = time.perf_counter()
    with deterministic(threads):
        net = train_attribution_cnn(
            split_images["train"],
            split_labels["train"],
            len(known),
            _int_seed("attribution", seed, "cnn"),
            s.cnn,
            device=device,
            progress=progress,
        )
        arrays: dict[str, np.ndarray] = {}
        for split in parts:
            arrays[f"X_{split}"] = cnn_features(net, split_images[split], device=device)
            arrays[f"y_{split}"] = split_labels[split]
        for i, scenario in enumerate(SCENARIOS):
            ood_images = np.concatenate([images[src.name] for src in SOURCES if src.role == scenario])
            arrays[f"ood_{i}"] = cnn_features(net, ood_images, device=device)
    W_head, b_head = cnn_head(net)
    arrays.update(
        W=W_head,
        b=b_head,
        ood_names=np.array(list(SCENARIOS)),
        class_names=np.array([s.name for s in known]),
        generator_seconds=np.array([gen_seconds[src.name] for src in SOURCES]),
        build_seconds=np.array([t_gen, time.perf_counter() - t1]),
    )
    return arrays


def load_attribution(
    *,
    representation: str = "cnn",
    seed: int = 0,
    size: str = "default",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    data_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> OpenSetData:
    """The source-attribution benchmark: CNN features of known-source images and four unknown-source scenarios.

    Parameters
    ----------
    representation : {"cnn"}
        The only representation: the attribution CNN's penultimate layer (128-d; 32-d at small size).
    seed : int
        Benchmark seed: seeds every generator, the training pools, the samples and the CNN. The same seed
        gives identical arrays (on the same device kind and torch build).
    size : {"default", "small"}
        ``"small"``: tiny generators trained for 40 steps and a few hundred images, for tests.
    cache_dir : path, optional
        Cache folder (default ``$UNSEEN_CACHE`` or ``~/.cache/unseen/features``); the entries go to its
        ``attribution/`` sub-folder.
    progress : bool
        Progress bars while training generators and the CNN.
    data_dir : path, optional
        Folder of the Fashion-MNIST IDX files (default ``/usr/share/datasets/fashion-mnist``).
    threads : int, optional
        Torch intra-op threads while training (restored afterwards); None leaves torch's setting alone. On a
        machine whose cores are shared with other busy processes, ``threads=1`` can be far faster (torch's
        OpenMP threads spin-wait for each other: a 40-step DCGAN took 58 s with 2 threads and 0.6 s with 1
        on a loaded 2-core machine).

    Returns
    -------
    OpenSetData
        ``class_names`` are the known sources; ``ood`` holds ``"unseen seed"``, ``"unseen architecture"``,
        ``"unseen classes"`` (near) and ``"unseen data"`` (far); ``head`` is the CNN's last layer.

    Raises
    ------
    MissingDataError
        When the benchmark is not cached and Fashion-MNIST is not installed (the message gives the command).
    InputError
        For a bad seed, size or representation.

    Examples
    --------
    >>> d = load_attribution(size="small", progress=False)                # doctest: +SKIP
    >>> d.X_train.shape, d.ood_kind["unseen data"]                        # doctest: +SKIP
    ((500, 32), 'far')
    """
    from ..exceptions import InputError

    if representation != "cnn":
        raise InputError(f"attribution has no representation {representation!r}; the only one is 'cnn'.")
    seed, size = check_seed(seed), check_size(size)
    device = _device()
    key, label = _features_key(seed, size, device)
    arrays = cache.lookup(key, cache_dir=cache_dir, label=label)
    if arrays is None:
        arrays = _build_features(seed, size, cache_dir, progress, data_dir, device, _check_threads(threads))
        cache.store(key, arrays, cache_dir=cache_dir, label=label)
    names = [str(n) for n in arrays["ood_names"]]
    t_gen, t_cnn = (float(t) for t in arrays["build_seconds"])
    s = _SIZES[size]
    return OpenSetData(
        name="attribution",
        representation="cnn",
        seed=seed,
        X_train=arrays["X_train"],
        y_train=arrays["y_train"],
        X_val=arrays["X_val"],
        y_val=arrays["y_val"],
        X_test=arrays["X_test"],
        y_test=arrays["y_test"],
        ood={n: arrays[f"ood_{i}"] for i, n in enumerate(names)},
        ood_kind={n: SCENARIOS[n] for n in names},
        head=(arrays["W"], arrays["b"]),
        class_names=[str(c) for c in arrays["class_names"]],
        description=(
            f"Open-set source attribution ({size}, seed {seed}): {len(arrays['class_names'])} known image "
            f"generators (VAEs and a GAN trained on Fashion-MNIST; {s.n_train} training images each) are told "
            "apart by a small CNN from the traces they leave; unknown generators — a known architecture with a "
            "new seed, a new architecture, known architectures trained on other Fashion-MNIST classes (near) "
            "or on digits (far) — should be flagged. Features: the CNN's penultimate layer. "
            f"Build: generators {t_gen:.0f} s, CNN {t_cnn:.0f} s ({device})."
        ),
    )


def is_cached(*, seed: int = 0, size: str = "default", cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether :func:`load_attribution` would read the features from the cache (no training).

    >>> import tempfile
    >>> is_cached(size="small", cache_dir=tempfile.mkdtemp())
    False
    """
    key, label = _features_key(check_seed(seed), check_size(size), _device())
    return cache.lookup(key, cache_dir=cache_dir, label=label) is not None


#: ``unseen.datasets.attribution.load`` — the same as :func:`load_attribution`.
load = load_attribution


def sources_table() -> str:
    """The sources as a Markdown table (for READMEs and reports).

    >>> print(sources_table().splitlines()[2])
    | mlp-vae s0 | mlp-vae | 0 | Fashion-MNIST, all classes | known | - |
    """
    lines = ["| source | architecture | seed | trained on | role | OOD kind |", "|---|---|---|---|---|---|"]
    for s in SOURCES:
        kind = SCENARIOS.get(s.role, "-")
        lines.append(f"| {s.name} | {s.arch} | {s.gen_seed} | {_DATA_TEXT[s.data]} | {s.role} | {kind} |")
    return "\n".join(lines) + "\n"
